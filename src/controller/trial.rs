//! The Trial reconciler: creates each trial's workload from its `runSpec`
//! (owned by the Trial, so deleting the Trial deletes it), and removes the
//! workload of a finished trial unless `retainRun` keeps it. A trial's
//! state itself is decided by its experiment's engine.
//!
//! A workload the cluster refuses for good — its kind is not served (no
//! CRD: the operator is not installed), RBAC forbids it (403), validation
//! rejects what the template made (422) — is not retried forever: the
//! Trial gets the [`WORKLOAD_ERROR`] annotation and a Warning Event saying
//! why, and its runner fails the trial with that reason (Katib's failure
//! rules then decide the experiment). Transient errors (the API server
//! away, 5xx) are retried with backoff by the error policy.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, PropagationPolicy,
};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::health::transient;
use super::kinds::TrialResource;
use super::served::{self, Served};
use super::watch::experiment_of;
use super::{Context, ControllerError};
use crate::api::Trial;

/// Set on a Trial whose workload the cluster refuses for good; its value
/// is the reason, which the trial's runner reports as the trial's failure.
pub const WORKLOAD_ERROR: &str = "ktune.dev/workload-error";

/// The reason of the Warning Event on such a Trial.
pub const WORKLOAD_ERROR_REASON: &str = "WorkloadError";

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
/// [`ControllerError`] when the API fails in a way that may pass.
pub async fn reconcile(trial: Arc<Trial>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    // The trial's cache holds this change now: its worker reads it.
    if let Some(experiment) = experiment_of(&trial) {
        ctx.wake(experiment);
    }
    if trial.meta().deletion_timestamp.is_some() || trial.annotations().contains_key(WORKLOAD_ERROR)
    {
        return Ok(Action::await_change());
    }
    let namespace = trial.namespace().unwrap_or_else(|| "default".to_owned());
    let name = trial.name_any();
    let Some(run_spec) = trial.spec.run_spec.clone() else {
        return Ok(Action::await_change());
    };
    let Some(kind) = TrialResource::of_workload(&run_spec) else {
        let why = "the trial's runSpec has no apiVersion and kind";
        return reject(&ctx, &trial, why).await;
    };
    let resource = kind.api_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &namespace, &resource);
    let key = format!("{}/{namespace}/{name}", resource.plural);
    let cached = ctx
        .created
        .exists(&key, &ctx.caches.workload(&resource, &namespace, &name));
    if finished(&trial) {
        if !trial.spec.retain_run && exists(&api, cached, &name).await? {
            remove(&api, &name).await?;
        }
        return Ok(Action::await_change());
    }
    let exists = match exists(&api, cached, &name).await {
        Ok(exists) => exists,
        Err(e) => return failed(&ctx, &trial, &kind, e).await,
    };
    if !exists {
        let mut object: DynamicObject = match serde_json::from_value(run_spec) {
            Ok(o) => o,
            Err(e) => {
                return reject(
                    &ctx,
                    &trial,
                    &format!("the trial's runSpec is not an object: {e}"),
                )
                .await;
            }
        };
        object.metadata.name = Some(name.clone());
        object.metadata.namespace = Some(namespace.clone());
        object.metadata.owner_references =
            trial.controller_owner_ref(&ctx.group()).map(|r| vec![r]);
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => {
                ctx.created.created(key);
                ctx.publish(
                    &trial.object_ref(&ctx.group()),
                    "Created",
                    "Workload created",
                )
                .await;
            }
            Err(kube::Error::Api(e)) if e.code == 409 => ctx.created.created(key),
            Err(e) => return failed(&ctx, &trial, &kind, e).await,
        }
    }
    Ok(Action::requeue(Duration::from_secs(30)))
}

/// Whether the workload `name` exists: as the cache says (`cached`, see
/// [`Expectations::exists`](super::watch::Expectations::exists)), or the
/// API when no cache knows.
///
/// # Errors
/// The API's.
async fn exists(
    api: &Api<DynamicObject>,
    cached: Option<bool>,
    name: &str,
) -> Result<bool, kube::Error> {
    match cached {
        Some(exists) => Ok(exists),
        None => Ok(api.get_opt(name).await?.is_some()),
    }
}

/// Deletes a finished trial's workload (its pods with it).
///
/// # Errors
/// The API's, other than: it is gone already (the cache had not seen it go).
async fn remove(api: &Api<DynamicObject>, name: &str) -> Result<(), ControllerError> {
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A workload request that failed: an error that may pass goes to the
/// error policy; any other fails the trial for good, saying why.
///
/// # Errors
/// The transient error itself, or the API's while the trial is marked.
async fn failed(
    ctx: &Context,
    trial: &Trial,
    kind: &TrialResource,
    error: kube::Error,
) -> Result<Action, ControllerError> {
    if transient(&error) {
        return Err(error.into());
    }
    let why = refused(ctx, kind, &trial.name_any(), &error).await?;
    reject(ctx, trial, &why).await
}

/// Why the cluster refused the workload `name` of `kind` with `error`:
/// discovery tells a kind that is not served from a missing namespace.
///
/// # Errors
/// Discovery's, when it fails too.
async fn refused(
    ctx: &Context,
    kind: &TrialResource,
    name: &str,
    error: &kube::Error,
) -> Result<String, ControllerError> {
    let what = &kind.kind;
    let code = match error {
        kube::Error::Api(status) => status.code,
        _ => 0,
    };
    if code == 404
        && let Served::No(why) = served::check(&ctx.client, kind).await?
    {
        return Ok(why);
    }
    Ok(match code {
        403 => {
            let plural = kind.api_resource().plural;
            let resource = if kind.group.is_empty() {
                plural
            } else {
                format!("{plural}.{}", kind.group)
            };
            format!(
                "the cluster forbids creating the {what} {name}: {error} (grant the controller's service account get and create on {resource} in its RBAC rules)"
            )
        }
        422 => {
            format!("the cluster rejected the {what} {name} made from the trial template: {error}")
        }
        _ => format!("the cluster refused the {what} {name}: {error}"),
    })
}

/// Marks the trial as one whose workload cannot be created (the
/// [`WORKLOAD_ERROR`] annotation, read by its runner) and says why in a
/// Warning Event.
///
/// # Errors
/// The API's, when the annotation cannot be written.
async fn reject(ctx: &Context, trial: &Trial, why: &str) -> Result<Action, ControllerError> {
    let namespace = trial.namespace().unwrap_or_else(|| "default".to_owned());
    let trials = ctx.trials(&namespace);
    let patch = json!({"metadata": {"annotations": {WORKLOAD_ERROR: why}}});
    trials
        .patch(
            &trial.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?;
    tracing::warn!("the trial's workload cannot be created: {why}");
    ctx.publish(&trial.object_ref(&ctx.group()), WORKLOAD_ERROR_REASON, why)
        .await;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiGroup;
    use crate::api::TrialSpec;
    use crate::controller::ControllerOptions;
    use http::{Request, Response};
    use kube::Client;
    use kube::client::Body;
    use serde_json::{Value, json};

    async fn context(client: Client) -> Arc<Context> {
        let store = crate::store::SqlStore::connect("sqlite::memory:")
            .await
            .unwrap();
        Arc::new(Context::new(
            client,
            Arc::new(store),
            ControllerOptions::default(),
            Arc::default(),
            None,
        ))
    }

    fn trial() -> Trial {
        let mut trial = Trial::new(
            ApiGroup::Ktune,
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

    fn status(code: u16, reason: &str, message: &str) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message})
    }

    /// Answers the trial reconciler's reject: the annotation patch on the
    /// Trial (whose reason is returned) and the Warning Event.
    async fn expect_reject(
        handle: &mut tower_test::mock::Handle<Request<Body>, Response<Body>>,
    ) -> String {
        let (request, send) = handle.next_request().await.unwrap();
        assert_eq!(request.method(), "PATCH");
        assert_eq!(
            request.uri().path(),
            "/apis/ktune.dev/v1beta1/namespaces/ns/trials/t1"
        );
        let body: Value =
            serde_json::from_slice(&request.into_body().collect_bytes().await.unwrap()).unwrap();
        let why = body["metadata"]["annotations"][WORKLOAD_ERROR]
            .as_str()
            .unwrap()
            .to_owned();
        send.send_response(respond(200, &serde_json::to_value(trial()).unwrap()));
        let (request, send) = handle.next_request().await.unwrap();
        let event: Value =
            serde_json::from_slice(&request.into_body().collect_bytes().await.unwrap()).unwrap();
        assert_eq!(
            (event["reason"].as_str(), event["type"].as_str()),
            (Some(WORKLOAD_ERROR_REASON), Some("Warning"))
        );
        assert_eq!(event["note"].as_str(), Some(why.as_str()));
        send.send_response(respond(201, &event));
        why
    }

    /// A workload the cluster refuses for good (RBAC's 403, validation's
    /// 422) marks the trial with the reason once, with a Warning Event,
    /// instead of failing every reconcile forever.
    #[tokio::test]
    async fn a_workload_refused_for_good_marks_the_trial_with_the_reason() {
        for (code, reason, expected) in [
            (
                422,
                "Invalid",
                "rejected the Job t1 made from the trial template",
            ),
            (403, "Forbidden", "get and create on jobs.batch"),
        ] {
            let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
            let ctx = context(Client::new(service, "default")).await;
            let server = tokio::spawn(async move {
                let (request, send) = handle.next_request().await.unwrap();
                assert_eq!(request.method(), "GET");
                if code == 403 {
                    send.send_response(respond(
                        403,
                        &status(403, reason, "jobs.batch is forbidden"),
                    ));
                } else {
                    send.send_response(respond(404, &status(404, "NotFound", "not found")));
                    let (request, send) = handle.next_request().await.unwrap();
                    assert_eq!(request.method(), "POST");
                    send.send_response(respond(
                        422,
                        &status(422, reason, "spec.template: Required value"),
                    ));
                }
                expect_reject(&mut handle).await
            });
            let action = reconcile(Arc::new(trial()), ctx).await.unwrap();
            assert_eq!(action, Action::await_change());
            let why = tokio::time::timeout(Duration::from_secs(1), server)
                .await
                .unwrap()
                .unwrap();
            assert!(why.contains(expected), "{why}");
        }
    }

    /// An API server that is away is no reason to fail a trial: the error
    /// goes to the error policy, which retries with backoff.
    #[tokio::test]
    async fn a_transient_error_is_retried_not_recorded() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let ctx = context(Client::new(service, "default")).await;
        let server = tokio::spawn(async move {
            let (_, send) = handle.next_request().await.unwrap();
            send.send_response(respond(
                503,
                &status(503, "ServiceUnavailable", "etcd is away"),
            ));
        });
        let error = reconcile(Arc::new(trial()), ctx).await.unwrap_err();
        assert!(error.transient(), "{error}");
        server.await.unwrap();
    }

    /// A trial of a kind the cluster does not serve (no CRD) is marked with
    /// which kind and what to install; a marked trial is left alone.
    #[tokio::test]
    async fn a_kind_not_served_marks_the_trial_with_what_to_install() {
        let server = ktune_fake_apiserver::FakeApiServer::new();
        server
            .create_manifest(include_str!("../../crds/trials.ktune.dev.yaml"))
            .unwrap();
        let client = Client::new(server.router(), "default");
        let ctx = context(client.clone()).await;
        let mut torch = trial();
        torch.spec.run_spec = Some(json!({
            "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
            "spec": {"pytorchReplicaSpecs": {}}
        }));
        torch.metadata.uid = None;
        torch.metadata.namespace = Some("default".into());
        let trials: Api<Trial> = Api::namespaced_with(client, "default", &ApiGroup::Ktune);
        let torch = trials.create(&PostParams::default(), &torch).await.unwrap();
        let action = reconcile(Arc::new(torch), Arc::clone(&ctx)).await.unwrap();
        assert_eq!(action, Action::await_change());
        let marked = trials.get("t1").await.unwrap();
        let why = marked.annotations().get(WORKLOAD_ERROR).cloned().unwrap();
        assert_eq!(
            why,
            "PyTorchJob kubeflow.org/v1 is not served by this cluster: install the Kubeflow training operator"
        );
        // Marked: nothing more is tried.
        let action = reconcile(Arc::new(marked), ctx).await.unwrap();
        assert_eq!(action, Action::await_change());
    }
}
