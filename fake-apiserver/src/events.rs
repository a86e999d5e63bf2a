//! core/v1 ⇄ events.k8s.io/v1 Event conversion: a real server stores
//! Events once and serves both; kube's `Recorder` writes events.k8s.io/v1
//! while `kubectl get events` and `kubectl describe` read core/v1.

use crate::resource::ResKey;
use serde_json::{Map, Value, json};

/// (core/v1 field, events.k8s.io/v1 field) pairs that only change name.
const RENAMES: [(&str, &str); 8] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingInstance", "reportingInstance"),
];

/// The other side's key and object for an Event written on one side.
pub fn mirror(key: &ResKey, obj: &Value) -> Option<(ResKey, Value)> {
    let to_core = match (key.0.as_str(), key.1.as_str()) {
        ("events.k8s.io", "events") => true,
        ("", "events") => false,
        _ => return None,
    };
    let src = obj.as_object()?;
    let mut out = Map::new();
    for (k, v) in src {
        let renamed = RENAMES
            .iter()
            .find_map(|(core, new)| {
                if to_core {
                    (k == new).then_some(*core)
                } else {
                    (k == core).then_some(*new)
                }
            })
            .unwrap_or(k.as_str());
        out.insert(renamed.to_string(), v.clone());
    }
    if to_core {
        out.insert("apiVersion".into(), json!("v1"));
        out.entry("source").or_insert_with(|| json!({}));
        // The "Last Seen" column reads lastTimestamp; events.k8s.io writers
        // set only eventTime and the series, so fill it from them.
        if out.get("lastTimestamp").is_none_or(Value::is_null) {
            let last = src
                .get("series")
                .and_then(|s| s.get("lastObservedTime"))
                .or_else(|| src.get("eventTime"))
                .cloned();
            if let Some(t) = last {
                out.insert("lastTimestamp".into(), t);
            }
        }
        Some((("".into(), "events".into()), Value::Object(out)))
    } else {
        out.insert("apiVersion".into(), json!("events.k8s.io/v1"));
        Some((
            ("events.k8s.io".into(), "events".into()),
            Value::Object(out),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let new = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "regarding": {"name": "x"}, "note": "hi", "reason": "R", "reportingController": "ktune"});
        let (k, core) = mirror(&("events.k8s.io".into(), "events".into()), &new).unwrap();
        assert_eq!(k, (String::new(), "events".to_string()));
        assert_eq!(core["involvedObject"]["name"], "x");
        assert_eq!(core["message"], "hi");
        assert_eq!(core["reportingComponent"], "ktune");
        let (_, back) = mirror(&k, &core).unwrap();
        assert_eq!(back["note"], "hi");
        assert_eq!(back["regarding"]["name"], "x");
    }
}
