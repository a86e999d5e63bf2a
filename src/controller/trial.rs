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
