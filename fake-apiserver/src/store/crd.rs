//! CustomResourceDefinitions: creating or updating one serves its kinds
//! (and marks it `Established`); deleting one takes its objects and kinds.

use super::meta::{meta_str, now};
use super::{ObjKey, State, Store};
use crate::resource::{self, ResKey, ResourceType};
use crate::status::ApiError;
use serde_json::{Value, json};

fn invalid(name: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        name,
        message,
    )
}

/// A CRD's status once its names are accepted.
fn established(crd: &Value) -> Value {
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let t = now();
    json!({
        "acceptedNames": names,
        "storedVersions": stored,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": t},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": t},
        ],
    })
}

impl State {
    /// Registers (or re-registers) the kinds a CRD serves and marks it Established.
    pub(super) fn register_crd(&mut self, crd: &mut Value) -> Result<(), ApiError> {
        let name = meta_str(crd, "name").unwrap_or_default().to_string();
        let types = resource::from_crd(crd).map_err(|e| invalid(&name, e))?;
        let owned_by_other = |t: &ResourceType| {
            self.types.iter().any(|x| {
                x.group == t.group
                    && x.plural == t.plural
                    && x.crd.as_deref() != Some(name.as_str())
            })
        };
        if let Some(t) = types.iter().find(|t| owned_by_other(t)) {
            return Err(invalid(
                &name,
                format!("{}.{} is already served", t.plural, t.group),
            ));
        }
        self.types
            .retain(|t| t.crd.as_deref() != Some(name.as_str()));
        self.types.extend(types);
        let status = established(crd);
        if let Some(m) = crd.as_object_mut() {
            m.insert("status".into(), status);
        }
        Ok(())
    }

    /// A CRD was removed: its objects and the kinds it served go.
    pub(super) fn unregister_crd(&mut self, store: &Store, name: &str) {
        let owned: Vec<ResKey> = self
            .types
            .iter()
            .filter(|t| t.crd.as_deref() == Some(name))
            .map(ResourceType::key)
            .collect();
        for k in owned {
            let names: Vec<ObjKey> = self
                .objects
                .get(&k)
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            for (n, nm) in names {
                self.remove(store, &k, &n, &nm, false);
            }
            self.objects.remove(&k);
        }
        self.types.retain(|t| t.crd.as_deref() != Some(name));
    }
}
