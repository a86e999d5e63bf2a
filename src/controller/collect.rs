//! The experiment worker's collector: the one factory
//! ([`crate::metrics::kinds::start`]) on the cluster backend, and the
//! cluster runner set up for what the collector needs of the trials'
//! workloads (the push endpoint's Secret for Push and File, File's
//! sidecar).

use super::Context;
use super::kinds::owner_label;
use super::workload::ClusterRunner;
use crate::api::experiment::{ExperimentSpec, TrialTemplate};
use crate::metrics::cluster::{ClusterBackend, SidecarImage, TrialPods};
use crate::metrics::kinds::{self, Backend, KindCollector};

/// Why an experiment's collector cannot run: the Failed condition's
/// reason and message.
#[derive(Debug)]
pub struct Refusal {
    /// The condition's reason.
    pub reason: &'static str,
    /// What to do about it.
    pub message: String,
}

/// The collector `spec` asks for and its runner set up for it, or why
/// this controller cannot collect it. `workload` is the namespace and the
/// workload's apiVersion and kind.
///
/// # Errors
/// The [`Refusal`] that fails the experiment.
pub async fn for_experiment(
    ctx: &Context,
    spec: &ExperimentSpec,
    (namespace, (api_version, kind)): (&str, (&str, &str)),
    template: &TrialTemplate,
    runner: ClusterRunner,
) -> Result<(ClusterRunner, KindCollector), Refusal> {
    let backend = ClusterBackend {
        pods: TrialPods {
            client: ctx.client.clone(),
            namespace: namespace.to_owned(),
            owner_label: owner_label(api_version, kind),
            primary_labels: template.primary_pod_labels.clone().unwrap_or_default(),
            primary_container: template.primary_container_name.clone().unwrap_or_default(),
        },
        push: ctx.push.clone(),
        sidecar: SidecarImage {
            image: ctx.options.collector_image.clone(),
            command: ctx.options.collector_command.clone(),
        },
    };
    let collector = kinds::start(spec, Backend::Cluster(&backend))
        .await
        .map_err(|e| Refusal {
            reason: e.reason(),
            message: e.to_string(),
        })?;
    let mut runner = runner;
    if let Some(endpoint) = collector.push_endpoint() {
        runner = runner.with_push(endpoint);
    }
    if let Some(sidecar) = collector.file_sidecar() {
        runner = runner.with_file_sidecar(sidecar.clone());
    }
    if let Some(sidecar) = collector.custom_sidecar() {
        runner = runner.with_custom_sidecar(sidecar.clone());
    }
    Ok((runner, collector))
}
