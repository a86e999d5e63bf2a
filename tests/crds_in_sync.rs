//! `crds/` must hold exactly what the Rust types generate.

mod support;

use ktune::api::ApiGroup;

#[test]
fn crds_folder_matches_the_rust_types() {
    let dir = support::repo_root().join("crds");
    let mut stale = Vec::new();
    let both = ApiGroup::ALL.into_iter().flat_map(ktune::api::crd::all);
    let trainer = ktune::api::crd::optimization_job().unwrap();
    for (file, definition) in both.chain([trainer]) {
        let generated = ktune::api::crd::to_yaml(&definition).unwrap();
        let on_disk = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
        if on_disk != generated {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "crds/ is out of date for {stale:?}; refresh it with: cargo run -- crds --out-dir crds \
         && cargo run -- crds --api-group kubeflow.org --out-dir crds \
         && cargo run -- crds --optimization-job --out-dir crds"
    );
}

#[test]
fn crds_have_status_subresource_short_names_and_printer_columns() {
    for (file, crd) in ktune::api::crd::all(ApiGroup::Ktune) {
        let version = &crd.spec.versions[0];
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{file}"
        );
        assert!(
            crd.spec
                .names
                .categories
                .as_ref()
                .is_some_and(|c| c.contains(&"ktune".to_owned())),
            "{file}"
        );
        let columns: Vec<_> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert!(columns.contains(&"Age"), "{file}: {columns:?}");
    }
    let (_, experiments) = &ktune::api::crd::all(ApiGroup::Ktune)[0];
    assert_eq!(
        experiments.spec.names.short_names.as_deref(),
        Some(&["exp".to_owned()][..])
    );
}
