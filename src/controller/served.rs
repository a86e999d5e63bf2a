//! Whether the cluster serves a trial's workload kind, asked of discovery
//! when a workload's creation is answered 404, so that a trial of a kind
//! whose operator is not installed fails at once saying what to install —
//! instead of a 404 on every reconcile and an experiment `Running` forever.
//!
//! Discovery is asked each time (a refused trial is not reconciled again),
//! so a CRD installed later serves the next trial without a controller
//! restart (its workloads are then followed by polling until the
//! controller restarts and watches them too).

use kube::Client;

use super::kinds::TrialResource;

/// Whether a kind is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// The cluster serves it.
    Yes,
    /// It does not; the message says which kind and what to install.
    No(String),
}

/// Whether the cluster behind `client` serves `resource` now.
///
/// # Errors
/// Discovery's, other than the 404 of a group/version not served.
pub async fn check(client: &Client, resource: &TrialResource) -> Result<Served, kube::Error> {
    let api_version = resource.api_resource().api_version;
    let list = if resource.group.is_empty() {
        client.list_core_api_resources(&api_version).await
    } else {
        client.list_api_group_resources(&api_version).await
    };
    let served = match list {
        Ok(list) => list
            .resources
            .iter()
            .any(|r| r.kind == resource.kind && !r.name.contains('/')),
        Err(kube::Error::Api(status)) if status.code == 404 => false,
        Err(e) => return Err(e),
    };
    Ok(if served {
        Served::Yes
    } else {
        Served::No(not_served(resource))
    })
}

/// Why a trial of `resource` cannot run: which kind, which group/version,
/// and what to install (the trial-kind table's; for a kind it does not
/// know, what serves its group, else its CRD).
#[must_use]
pub fn not_served(resource: &TrialResource) -> String {
    let api_version = resource.api_resource().api_version;
    let hint = ktune_kinds::install_hint(&resource.group, &resource.version, &resource.kind);
    format!(
        "{} {api_version} is not served by this cluster: {hint}",
        resource.kind
    )
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
        let client = Client::new(server.router(), "default");
        let job = resource("Job.v1.batch");
        assert_eq!(check(&client, &job).await.unwrap(), Served::Yes);
        let torch = resource("PyTorchJob.v1.kubeflow.org");
        assert_eq!(
            check(&client, &torch).await.unwrap(),
            Served::No(not_served(&torch))
        );
        server
            .create_manifest(ktune_fake_apiserver::crds::TRAINING_OPERATOR)
            .unwrap();
        assert_eq!(check(&client, &torch).await.unwrap(), Served::Yes);
        // A kind the group does not serve.
        let other = resource("Nope.v1.kubeflow.org");
        assert!(matches!(
            check(&client, &other).await.unwrap(),
            Served::No(_)
        ));
    }
}
