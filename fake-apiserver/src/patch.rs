//! The four patch types: JSON patch (RFC 6902, incl. `test`), JSON merge
//! patch (RFC 7386), server-side apply (merged, no field ownership; on
//! `/status` the applied status replaces the old one, see `Store::patch`) and
//! strategic merge (a merge that also merges lists of objects by their
//! usual keys and understands the `$patch`/`$setElementOrder` directives).

use crate::status::ApiError;
use serde_json::{Map, Value};

/// A PATCH request's content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchType {
    /// From a `Content-Type` header.
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(Self::Apply),
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }
}

/// Parses a request body as JSON, or as YAML when it is not JSON.
pub fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(json_err) => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request(json_err.to_string()))?;
            serde_saphyr::from_str::<Value>(text).map_err(|e| {
                ApiError::bad_request(format!("error decoding body: {json_err}; as YAML: {e}"))
            })
        }
    }
}

/// Applies a patch body to `current`, giving the patched object.
pub fn apply(pt: PatchType, current: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let mut doc = current.clone();
    match pt {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            for op in &ops.0 {
                // As the real server (evanphx/json-patch) does, `test` for
                // null passes on a missing path: kube's finalizer helper
                // relies on it when an object has no finalizers yet.
                if let json_patch::PatchOperation::Test(t) = op
                    && t.value.is_null()
                    && doc.pointer(t.path.as_str()).is_none()
                {
                    continue;
                }
                json_patch::patch(&mut doc, std::slice::from_ref(op))
                    .map_err(|e| ApiError::unprocessable(e.to_string()))?;
            }
        }
        PatchType::Merge => {
            let p = parse_json(body)?;
            json_patch::merge(&mut doc, &p);
        }
        PatchType::Apply => {
            let p = parse_body(body)?;
            if !p.is_object() {
                return Err(ApiError::bad_request("apply patch must be an object"));
            }
            json_patch::merge(&mut doc, &p);
        }
        PatchType::Strategic => {
            let p = parse_json(body)?;
            doc = strategic_merge(doc, p, "");
        }
    }
    Ok(doc)
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// The merge key of a list field, as Kubernetes' patchMergeKey tags give it.
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "volumeMounts"
        | "imagePullSecrets" => "name",
        "ports" => "containerPort",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "tolerations" | "hostAliases" => return None,
        _ => return None,
    })
}

/// Primitive lists that strategic merge unions rather than replaces.
fn merges_primitives(field: &str) -> bool {
    field == "finalizers"
}

fn strategic_merge(target: Value, patch: Value, field: &str) -> Value {
    match (target, patch) {
        (Value::Object(mut t), Value::Object(p)) => {
            if p.get("$patch").and_then(Value::as_str) == Some("replace") {
                let mut p = p;
                p.remove("$patch");
                return Value::Object(strip_directives(p));
            }
            let mut deletions: Vec<(String, Vec<Value>)> = Vec::new();
            for (k, v) in p {
                if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/") {
                    if let Value::Array(a) = v {
                        deletions.push((list.to_string(), a));
                    }
                    continue;
                }
                if k.starts_with('$') {
                    continue;
                }
                if v.is_null() {
                    t.remove(&k);
                    continue;
                }
                let cur = t.remove(&k).unwrap_or(Value::Null);
                let merged = strategic_merge(cur, v, &k);
                t.insert(k, merged);
            }
            for (list, remove) in deletions {
                if let Some(Value::Array(a)) = t.get_mut(&list) {
                    a.retain(|x| !remove.contains(x));
                }
            }
            Value::Object(t)
        }
        (Value::Array(t), Value::Array(p)) => {
            if let Some(key) = merge_key(field) {
                let mut out = t;
                for item in p {
                    let id = item.get(key).cloned();
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    let pos = id
                        .as_ref()
                        .and_then(|id| out.iter().position(|x| x.get(key) == Some(id)));
                    match (pos, delete) {
                        (Some(i), true) => {
                            out.remove(i);
                        }
                        (None, true) => {}
                        (Some(i), false) => {
                            let cur = std::mem::take(&mut out[i]);
                            out[i] = strategic_merge(cur, item, "");
                        }
                        (None, false) => out.push(strip(item)),
                    }
                }
                Value::Array(out)
            } else if merges_primitives(field) {
                let mut out = t;
                for item in p {
                    if !out.contains(&item) {
                        out.push(item);
                    }
                }
                Value::Array(out)
            } else {
                Value::Array(p.into_iter().map(strip).collect())
            }
        }
        (_, p) => strip(p),
    }
}

fn strip(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(strip_directives(m)),
        Value::Array(a) => Value::Array(a.into_iter().map(strip).collect()),
        other => other,
    }
}

fn strip_directives(m: Map<String, Value>) -> Map<String, Value> {
    m.into_iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k, strip(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_test_failure_is_422() {
        let cur = json!({"metadata": {"finalizers": ["a"]}});
        let body = br#"[{"op":"test","path":"/metadata/finalizers/0","value":"b"},{"op":"remove","path":"/metadata/finalizers/0"}]"#;
        let err = apply(PatchType::Json, &cur, body).unwrap_err();
        assert_eq!(err.code, 422);
        let ok = br#"[{"op":"test","path":"/metadata/finalizers/0","value":"a"},{"op":"remove","path":"/metadata/finalizers/0"}]"#;
        assert_eq!(
            apply(PatchType::Json, &cur, ok).unwrap(),
            json!({"metadata": {"finalizers": []}})
        );
        let add = br#"[{"op":"test","path":"/metadata/finalizers","value":null},{"op":"add","path":"/metadata/finalizers","value":["f"]}]"#;
        assert_eq!(
            apply(PatchType::Json, &json!({"metadata": {}}), add).unwrap(),
            json!({"metadata": {"finalizers": ["f"]}})
        );
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let cur = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let p = br#"{"spec":{"$setElementOrder/containers":[{"name":"a"},{"name":"b"}],"containers":[{"name":"b","image":"z"}]}}"#;
        let out = apply(PatchType::Strategic, &cur, p).unwrap();
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "z"}]}})
        );
    }

    #[test]
    fn apply_accepts_yaml() {
        let out = apply(PatchType::Apply, &json!({"a": 1}), b"b: 2\n").unwrap();
        assert_eq!(out, json!({"a": 1, "b": 2}));
    }
}
