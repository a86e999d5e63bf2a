//! CustomResourceDefinitions generated from the Rust types; `crds/` holds
//! the generated YAML of both groups and a test keeps it in sync.
//!
//! `ktune.dev`'s CRDs carry the full schema of the types. `kubeflow.org`'s
//! accept anything, as Katib's own CRDs do (their root schema is an object
//! with `x-kubernetes-preserve-unknown-fields`): whatever a Katib user's
//! YAML, SDK or old controller wrote must be stored as it was, and the
//! controller's validation — not the API server's pruning — says what is
//! wrong with it.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::CustomResourceExt;

use super::ApiGroup;
use super::experiment::ExperimentCrd;
use super::trial::TrialCrd;

/// Every CRD ktune serves under `group`, with the file name it is kept
/// under in `crds/` (`crds/kubeflow.org/` for Katib's group).
#[must_use]
pub fn all(group: ApiGroup) -> Vec<(String, CustomResourceDefinition)> {
    [ExperimentCrd::crd(), TrialCrd::crd()]
        .into_iter()
        .map(|crd| in_group(crd, group))
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let file = match group {
                ApiGroup::Ktune => format!("{name}.yaml"),
                ApiGroup::Kubeflow => format!("kubeflow.org/{name}.yaml"),
            };
            (file, crd)
        })
        .collect()
}

/// Kubeflow Trainer's OptimizationJob CRD, for clusters without Trainer's
/// own (`ktune crds --optimization-job`), with its file name in `crds/`.
///
/// # Errors
/// As [`super::optimization_job::crd`].
pub fn optimization_job() -> Result<(String, CustomResourceDefinition), serde_json::Error> {
    let crd = super::optimization_job::crd()?;
    let name = crd.metadata.name.clone().unwrap_or_default();
    Ok((format!("trainer.kubeflow.org/{name}.yaml"), crd))
}

/// A CRD generated for `ktune.dev` (from the `…Crd` shape types, whose
/// name the schema's title must not show), moved to `group`.
fn in_group(mut crd: CustomResourceDefinition, group: ApiGroup) -> CustomResourceDefinition {
    let kind = crd.spec.names.kind.clone();
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|v| v.open_api_v3_schema.as_mut())
        {
            schema.title = Some(kind.clone());
        }
    }
    if group == ApiGroup::Ktune {
        return crd;
    }
    crd.metadata.name = Some(format!("{}.{}", crd.spec.names.plural, group.name()));
    group.name().clone_into(&mut crd.spec.group);
    let categories = crd.spec.names.categories.get_or_insert_with(Vec::new);
    categories.retain(|c| c != "ktune");
    categories.push("katib".to_owned());
    for version in &mut crd.spec.versions {
        if let Some(validation) = version.schema.as_mut() {
            validation.open_api_v3_schema = Some(JSONSchemaProps {
                type_: Some("object".to_owned()),
                x_kubernetes_preserve_unknown_fields: Some(true),
                ..JSONSchemaProps::default()
            });
        }
    }
    crd
}

/// One CRD as YAML, as written to `crds/`.
///
/// # Errors
/// When serialisation fails (it does not for these types).
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string(crd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn katib_group_crds_keep_everything_and_name_the_group() {
        let crds = all(ApiGroup::Kubeflow);
        let names: Vec<&str> = crds.iter().map(|(file, _)| file.as_str()).collect();
        assert_eq!(
            names,
            [
                "kubeflow.org/experiments.kubeflow.org.yaml",
                "kubeflow.org/trials.kubeflow.org.yaml"
            ]
        );
        for (_, crd) in &crds {
            assert_eq!(crd.spec.group, "kubeflow.org");
            let value = serde_json::to_value(crd).unwrap();
            let version = &value["spec"]["versions"][0];
            assert_eq!(version["name"], "v1beta1");
            assert_eq!(version["subresources"]["status"], serde_json::json!({}));
            assert_eq!(
                version["schema"]["openAPIV3Schema"],
                serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
            );
            let categories = value["spec"]["names"]["categories"].to_string();
            assert!(categories.contains("katib") && !categories.contains("ktune"));
        }
        let ktune = all(ApiGroup::Ktune);
        assert_eq!(ktune[0].0, "experiments.ktune.dev.yaml");
        assert_eq!(ktune[0].1.spec.group, "ktune.dev");
    }
}
