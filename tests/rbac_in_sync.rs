//! `deploy/rbac.yaml` must hold exactly what `ktune rbac` generates from
//! the controller's needs and the trial-kind table.

mod support;

#[test]
fn deploy_rbac_matches_the_trial_kind_table() {
    let path = support::repo_root().join("deploy").join("rbac.yaml");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == ktune::controller::rbac::manifest(),
        "deploy/rbac.yaml is out of date; refresh it with: cargo run -- rbac > deploy/rbac.yaml"
    );
}
