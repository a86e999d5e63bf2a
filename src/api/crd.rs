//! CustomResourceDefinitions generated from the Rust types; `crds/` holds
//! the generated YAML and a test keeps it in sync.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use super::{Experiment, Trial};

/// Every CRD ktune serves, with the file name it is kept under in `crds/`.
#[must_use]
pub fn all() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("experiments.ktune.dev.yaml", Experiment::crd()),
        ("trials.ktune.dev.yaml", Trial::crd()),
    ]
}

/// One CRD as YAML, as written to `crds/`.
///
/// # Errors
/// When serialisation fails (it does not for these types).
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string(crd)
}
