//! What the real API server defaults on create, for the built-in kinds
//! where it matters: a Namespace's name label and phase, a Pod's phase,
//! and a Job's spec fields, selector and pod-template labels (as the Job
//! controller's defaulting does).

use super::meta::{meta_mut, meta_str};
use crate::resource::ResourceType;
use crate::status::ApiError;
use serde_json::{Value, json};

/// Fills a new object's defaults; refuses a Job without containers.
pub(super) fn defaults(rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
    let name = meta_str(obj, "name").unwrap_or_default().to_string();
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => {
            if let Some(m) = meta_mut(obj) {
                let labels = m.entry("labels").or_insert_with(|| json!({}));
                if let Some(l) = labels.as_object_mut() {
                    l.insert("kubernetes.io/metadata.name".into(), json!(name));
                }
            }
            obj["status"] = json!({"phase": "Active"});
        }
        ("", "pods") => {
            obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
        }
        ("batch", "jobs") => job(obj, &name)?,
        _ => {}
    }
    Ok(())
}

/// A `batch/v1` Job's defaults.
fn job(obj: &mut Value, name: &str) -> Result<(), ApiError> {
    let uid = meta_str(obj, "uid").unwrap_or_default().to_string();
    let spec = obj
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| ApiError::invalid("batch", "Job", name, "spec: Required value"))?;
    for (k, v) in [
        ("parallelism", json!(1)),
        ("completions", json!(1)),
        ("backoffLimit", json!(6)),
        ("completionMode", json!("NonIndexed")),
        ("suspend", json!(false)),
        ("manualSelector", json!(false)),
    ] {
        spec.entry(k).or_insert(v);
    }
    if spec
        .get("template")
        .and_then(|t| t.get("spec"))
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .is_none_or(|c| c.is_empty())
    {
        return Err(ApiError::invalid(
            "batch",
            "Job",
            name,
            "spec.template.spec.containers: Required value",
        ));
    }
    if spec.get("manualSelector") != Some(&json!(true)) {
        spec.insert(
            "selector".into(),
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
        );
        let tmeta = spec
            .get_mut("template")
            .and_then(Value::as_object_mut)
            .map(|t| t.entry("metadata").or_insert_with(|| json!({})));
        if let Some(tmeta) = tmeta.and_then(Value::as_object_mut) {
            let labels = tmeta.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("batch.kubernetes.io/controller-uid".into(), json!(uid));
                l.insert("batch.kubernetes.io/job-name".into(), json!(name));
                l.insert("controller-uid".into(), json!(uid));
                l.insert("job-name".into(), json!(name));
            }
        }
    }
    obj["status"] = json!({});
    Ok(())
}
