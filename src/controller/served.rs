//! Whether the cluster serves a trial's workload kind, asked of discovery
//! when it matters (before a trial's workload is created), so that a trial
//! of a kind whose operator is not installed fails at once saying what to
//! install — instead of a 404 on every reconcile and an experiment
//! `Running` forever.
//!
//! Served answers are remembered for a while; a missing kind is asked
//! again each time, so a CRD installed later serves the next trial without
//! a controller restart (its workloads are then followed by polling until
//! the controller restarts and watches them too).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::Client;

use super::kinds::TrialResource;

/// How long a kind found served is not asked about again.
const SERVED_FOR: Duration = Duration::from_secs(60);

/// Whether a kind is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// The cluster serves it.
    Yes,
    /// It does not; the message says which kind and what to install.
    No(String),
}

/// Discovery answers about trial kinds.
pub struct ServedKinds {
    client: Client,
    served: Mutex<HashMap<TrialResource, Instant>>,
}

impl std::fmt::Debug for ServedKinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedKinds").finish_non_exhaustive()
    }
}

impl ServedKinds {
    /// Asks discovery through `client`.
    #[must_use]
    pub fn new(client: Client) -> Self {
        Self {
            client,
            served: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the cluster serves `resource` now.
    ///
    /// # Errors
    /// Discovery's, other than the 404 of a group/version not served.
    pub async fn check(&self, resource: &TrialResource) -> Result<Served, kube::Error> {
        if self
            .served
            .lock()
            .is_ok_and(|s| s.get(resource).is_some_and(|t| t.elapsed() < SERVED_FOR))
        {
            return Ok(Served::Yes);
        }
        let list = if resource.group.is_empty() {
            self.client.list_core_api_resources(&resource.version).await
        } else {
            self.client
                .list_api_group_resources(&format!("{}/{}", resource.group, resource.version))
                .await
        };
        let served = match list {
            Ok(list) => list
                .resources
                .iter()
                .any(|r| r.kind == resource.kind && !r.name.contains('/')),
            Err(kube::Error::Api(status)) if status.code == 404 => false,
            Err(e) => return Err(e),
        };
        if let Ok(mut known) = self.served.lock() {
            if served {
                known.insert(resource.clone(), Instant::now());
            } else {
                known.remove(resource);
            }
        }
        Ok(if served {
            Served::Yes
        } else {
            Served::No(not_served(resource))
        })
    }
}

/// Why a trial of `resource` cannot run: which kind, which group/version,
/// and what to install.
#[must_use]
pub fn not_served(resource: &TrialResource) -> String {
    let api_version = if resource.group.is_empty() {
        resource.version.clone()
    } else {
        format!("{}/{}", resource.group, resource.version)
    };
    format!(
        "{} {api_version} is not served by this cluster: {}",
        resource.kind,
        install_hint(resource)
    )
}

/// What serves a kind, by its group (and version, for the two MPIJobs).
fn install_hint(resource: &TrialResource) -> &'static str {
    match (
        resource.group.as_str(),
        resource.kind.as_str(),
        resource.version.as_str(),
    ) {
        ("kubeflow.org", "MPIJob", "v2beta1") => {
            "install the MPI operator (github.com/kubeflow/mpi-operator)"
        }
        ("kubeflow.org", _, _) => "install the Kubeflow training operator",
        ("trainer.kubeflow.org", _, _) => "install Kubeflow Trainer",
        ("argoproj.io", _, _) => "install Argo Workflows",
        ("tekton.dev", _, _) => "install Tekton Pipelines",
        _ => "install the CustomResourceDefinition that defines it",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(text: &str) -> TrialResource {
        text.parse().unwrap()
    }

    #[test]
    fn the_message_names_the_kind_its_group_version_and_what_to_install() {
        assert_eq!(
            not_served(&resource("PyTorchJob.v1.kubeflow.org")),
            "PyTorchJob kubeflow.org/v1 is not served by this cluster: install the Kubeflow training operator"
        );
        assert!(not_served(&resource("MPIJob.v2beta1.kubeflow.org")).contains("MPI operator"));
        assert!(
            not_served(&resource("TrainJob.v1alpha1.trainer.kubeflow.org"))
                .contains("install Kubeflow Trainer")
        );
        assert!(
            not_served(&resource("Widget.v1.example.com")).contains("CustomResourceDefinition")
        );
    }

    #[tokio::test]
    async fn discovery_decides_and_a_kind_installed_later_is_served_at_once() {
        let server = ktune_fake_apiserver::FakeApiServer::new();
        let kinds = ServedKinds::new(Client::new(server.router(), "default"));
        let job = resource("Job.v1.batch");
        assert_eq!(kinds.check(&job).await.unwrap(), Served::Yes);
        let torch = resource("PyTorchJob.v1.kubeflow.org");
        assert_eq!(
            kinds.check(&torch).await.unwrap(),
            Served::No(not_served(&torch))
        );
        server
            .create_manifest(ktune_fake_apiserver::crds::TRAINING_OPERATOR)
            .unwrap();
        assert_eq!(kinds.check(&torch).await.unwrap(), Served::Yes);
        // A kind the group does not serve.
        let other = resource("Nope.v1.kubeflow.org");
        assert!(matches!(kinds.check(&other).await.unwrap(), Served::No(_)));
    }
}
