//! The Trial reconciler: creates each trial's workload from its `runSpec`
//! (owned by the Trial, so deleting the Trial deletes it), and removes the
//! workload of a finished trial unless `retainRun` keeps it. A trial's
//! state itself is decided by its experiment's engine.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{DeleteParams, DynamicObject, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::workload::workload_api;
use super::{Context, ControllerError};
use crate::api::Trial;

/// Whether the trial's last condition is an outcome.
fn finished(trial: &Trial) -> bool {
    trial
        .status
        .as_ref()
        .and_then(|s| s.conditions.last())
        .is_some_and(|c| {
            matches!(
                c.type_.to_string().as_str(),
                "Succeeded" | "Failed" | "Killed" | "EarlyStopped" | "MetricsUnavailable"
            )
        })
}

/// Reconciles one Trial.
///
/// # Errors
/// [`ControllerError`] when the API refuses.
pub async fn reconcile(trial: Arc<Trial>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    if trial.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = trial.namespace().unwrap_or_else(|| "default".to_owned());
    let name = trial.name_any();
    let Some(run_spec) = trial.spec.run_spec.clone() else {
        return Ok(Action::await_change());
    };
    let Some(api) = workload_api(&ctx.client, &namespace, &run_spec) else {
        return Err(ControllerError::Workload(format!(
            "trial {namespace}/{name}: runSpec has no apiVersion and kind"
        )));
    };
    if finished(&trial) {
        if !trial.spec.retain_run && api.get_opt(&name).await?.is_some() {
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..DeleteParams::default()
            };
            api.delete(&name, &params).await?;
        }
        return Ok(Action::await_change());
    }
    if api.get_opt(&name).await?.is_none() {
        let mut object: DynamicObject = serde_json::from_value(run_spec)
            .map_err(|e| ControllerError::Workload(format!("trial {namespace}/{name}: {e}")))?;
        object.metadata.name = Some(name.clone());
        object.metadata.namespace = Some(namespace.clone());
        object.metadata.owner_references = trial.controller_owner_ref(&()).map(|r| vec![r]);
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => {
                ctx.publish(&trial.object_ref(&()), "Created", "Workload created")
                    .await;
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::requeue(Duration::from_secs(30)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::TrialSpec;
    use crate::controller::ControllerOptions;
    use http::{Request, Response};
    use kube::Client;
    use kube::client::Body;
    use kube::runtime::events::{Recorder, Reporter};
    use serde_json::{Value, json};

    async fn context(client: Client) -> Arc<Context> {
        let store = crate::store::SqlStore::connect("sqlite::memory:")
            .await
            .unwrap();
        Arc::new(Context {
            recorder: Recorder::new(client.clone(), Reporter::from("ktune-test")),
            client,
            store: Arc::new(store),
            options: ControllerOptions::default(),
            workers: std::sync::Mutex::new(std::collections::HashMap::new()),
            ops: Arc::default(),
            push: None,
        })
    }

    fn trial() -> Trial {
        let mut trial = Trial::new(
            "t1",
            TrialSpec {
                run_spec: Some(json!({
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": {"name": "t1"},
                    "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "x", "command": ["true"]}]}}}
                })),
                ..TrialSpec::default()
            },
        );
        trial.metadata.namespace = Some("ns".into());
        trial.metadata.uid = Some("uid-1".into());
        trial
    }

    fn respond(status: u16, body: &Value) -> Response<Body> {
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap()
    }

    /// The exact calls for a new trial: look for its Job, create it owned
    /// by the trial, record an Event; then wait for changes.
    #[tokio::test]
    async fn a_new_trial_gets_its_job_owned_by_it_and_an_event() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let ctx = context(Client::new(service, "default")).await;
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.unwrap();
            assert_eq!(request.method(), "GET");
            assert_eq!(request.uri().path(), "/apis/batch/v1/namespaces/ns/jobs/t1");
            send.send_response(respond(
                404,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
            ));
            let (request, send) = handle.next_request().await.unwrap();
            assert_eq!(request.method(), "POST");
            assert_eq!(request.uri().path(), "/apis/batch/v1/namespaces/ns/jobs");
            let body: Value =
                serde_json::from_slice(&request.into_body().collect_bytes().await.unwrap())
                    .unwrap();
            assert_eq!(body["metadata"]["name"], "t1");
            let owner = &body["metadata"]["ownerReferences"][0];
            assert_eq!(
                (owner["kind"].as_str(), owner["uid"].as_str()),
                (Some("Trial"), Some("uid-1"))
            );
            assert_eq!(owner["controller"], true);
            send.send_response(respond(201, &body));
            let (request, send) = handle.next_request().await.unwrap();
            assert_eq!(request.method(), "POST");
            assert!(
                request.uri().path().ends_with("/events"),
                "{}",
                request.uri()
            );
            let event: Value =
                serde_json::from_slice(&request.into_body().collect_bytes().await.unwrap())
                    .unwrap();
            assert_eq!(event["reason"], "Created");
            send.send_response(respond(201, &event));
        });
        let action = reconcile(Arc::new(trial()), ctx).await.unwrap();
        assert_eq!(action, Action::requeue(Duration::from_secs(30)));
        tokio::time::timeout(Duration::from_secs(1), server)
            .await
            .unwrap()
            .unwrap();
    }

    /// A finished trial's workload is deleted unless retainRun keeps it.
    #[tokio::test]
    async fn a_finished_trial_loses_its_workload_unless_retained() {
        let mut done = trial();
        done.status = Some(
            serde_json::from_value(json!({"conditions": [
                {"type": "Created", "status": "True"},
                {"type": "Succeeded", "status": "True"}
            ]}))
            .unwrap(),
        );
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let ctx = context(Client::new(service, "default")).await;
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.unwrap();
            assert_eq!(request.method(), "GET");
            send.send_response(respond(
                200,
                &json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "t1", "namespace": "ns"}}),
            ));
            let (request, send) = handle.next_request().await.unwrap();
            assert_eq!(request.method(), "DELETE");
            assert_eq!(request.uri().path(), "/apis/batch/v1/namespaces/ns/jobs/t1");
            send.send_response(respond(
                200,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            ));
        });
        let action = reconcile(Arc::new(done.clone()), Arc::clone(&ctx))
            .await
            .unwrap();
        assert_eq!(action, Action::await_change());
        tokio::time::timeout(Duration::from_secs(1), server)
            .await
            .unwrap()
            .unwrap();
        // Retained: no call at all (the mock has no server left to answer).
        done.spec.retain_run = true;
        let action = reconcile(Arc::new(done), ctx).await.unwrap();
        assert_eq!(action, Action::await_change());
    }
}
