//! The fake cluster runs every kind of the trial-kind table: each is built
//! in or served by a CRD (the manifests of `crds` agree with the table,
//! and `crds::for_kind` serves any kind), and each kind whose replicas the
//! table lists runs to its success condition with its pods labelled as
//! the table says — so a kind added to the table runs here at once.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use ktune_fake_apiserver::{ExecutorConfig, FakeApiServer, crds};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::{Value, json};

const MANIFESTS: [&str; 6] = [
    crds::TRAINING_OPERATOR,
    crds::MPIJOB_V1,
    crds::MPIJOB_V2BETA1,
    crds::TRAINER,
    crds::ARGO,
    crds::TEKTON,
];

/// Whether the server's discovery lists the kind's plural at its version.
async fn served(client: &Client, kind: &ktune_kinds::TrialKind) -> bool {
    client
        .list_api_group_resources(&kind.api_version())
        .await
        .is_ok_and(|list| {
            list.resources
                .iter()
                .any(|r| r.name == kind.plural && r.kind == kind.kind)
        })
}

#[tokio::test]
async fn every_kind_is_built_in_or_served_by_its_crd() {
    for kind in ktune_kinds::KINDS {
        let server = FakeApiServer::new();
        let client = Client::new(server.router(), "default");
        if kind.served_by.is_some() {
            assert!(!served(&client, kind).await, "{} before its CRD", kind.kind);
            server.create_manifest(&crds::for_kind(kind)).unwrap();
        }
        assert!(served(&client, kind).await, "{}", kind.trial_resource());
    }
}

#[tokio::test]
async fn install_workload_crds_serves_every_kind_but_the_second_mpijob() {
    let server = FakeApiServer::new();
    server.install_workload_crds().unwrap();
    let client = Client::new(server.router(), "default");
    for kind in ktune_kinds::KINDS {
        // The two MPIJobs are one resource: a cluster serves one of them.
        let expected = kind.trial_resource() != "MPIJob.v2beta1.kubeflow.org";
        assert_eq!(
            served(&client, kind).await,
            expected,
            "{}",
            kind.trial_resource()
        );
    }
}

#[test]
fn the_crd_manifests_serve_kinds_of_the_table() {
    for manifest in MANIFESTS {
        let documents: Vec<Value> = serde_saphyr::from_multiple(manifest).unwrap();
        for crd in documents.iter().filter(|d| !d.is_null()) {
            let spec = &crd["spec"];
            let group = spec["group"].as_str().unwrap();
            let kind = spec["names"]["kind"].as_str().unwrap();
            for version in spec["versions"].as_array().unwrap() {
                let version = version["name"].as_str().unwrap();
                let entry = ktune_kinds::find(group, version, kind)
                    .unwrap_or_else(|| panic!("{kind}.{version}.{group} is not in the table"));
                assert_eq!(spec["names"]["plural"], entry.plural);
            }
        }
    }
}

/// The container every replica runs: prints its pod's name.
fn container(kind: &ktune_kinds::TrialKind) -> Value {
    let name = kind.container.default.unwrap_or("main");
    json!({"name": name, "image": "x", "command": ["sh", "-c", "echo $HOSTNAME"]})
}

#[tokio::test]
async fn every_kind_with_replicas_runs_to_its_success_condition() {
    for kind in ktune_kinds::KINDS {
        let Some(workload) = kind.example("w", &container(kind)) else {
            continue;
        };
        let server = FakeApiServer::new();
        server.create_manifest(&crds::for_kind(kind)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let _executor = server.start_executor(ExecutorConfig {
            workdir: dir.path().to_path_buf(),
            grace: Duration::from_secs(1),
            ..ExecutorConfig::default()
        });
        server.create_manifest(&workload.to_string()).unwrap();
        let client = Client::new(server.router(), "default");
        let gvk = GroupVersionKind::gvk(kind.group, kind.version, kind.kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, kind.plural);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
        let success = kind.conditions.unwrap().success;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let now = serde_json::to_value(api.get("w").await.unwrap()).unwrap();
            let conditions = now["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if conditions
                .iter()
                .any(|c| c["type"] == success && c["status"] == "True")
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not succeed: {now:#}",
                kind.trial_resource()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let replicas = kind.replicas(&workload).unwrap();
        let owner = format!("{}=w", kind.owner_label.unwrap());
        let pods: Api<Pod> = Api::default_namespaced(client);
        let listed = pods
            .list(&ListParams::default().labels(&owner))
            .await
            .unwrap();
        assert_eq!(listed.items.len(), replicas.len(), "{}", kind.kind);
    }
}
