//! `deploy/rbac.yaml` must hold exactly what `ktune rbac` generates from
//! the controller's needs and the trial-kind table.

mod support;

use ktune::api::ApiGroup;

#[test]
fn deploy_rbac_matches_the_trial_kind_table() {
    let path = support::repo_root().join("deploy").join("rbac.yaml");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == ktune::controller::rbac::manifest(ApiGroup::Ktune),
        "deploy/rbac.yaml is out of date; refresh it with: cargo run -- rbac > deploy/rbac.yaml"
    );
}

#[test]
fn the_katib_overlays_rbac_matches_too() {
    let path = support::repo_root().join("deploy/katib/rbac.yaml");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == ktune::controller::rbac::manifest(ApiGroup::Kubeflow),
        "deploy/katib/rbac.yaml is out of date; refresh it with: \
         cargo run -- rbac --api-group kubeflow.org > deploy/katib/rbac.yaml"
    );
}
