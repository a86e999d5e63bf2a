//! `meta.k8s.io/v1 Table` output for kubectl, from printer columns.

use crate::resource::ResourceType;
use serde_json::{Value, json};

/// Splits a JSONPath on its dots; `\.` is a dot inside a field name
/// (`.metadata.labels.katib\.kubeflow\.org/experiment`).
fn segments(path: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                chars.next();
                if let Some(s) = out.last_mut() {
                    s.push('.');
                }
            }
            '.' => out.push(String::new()),
            c => {
                if let Some(s) = out.last_mut() {
                    s.push(c);
                }
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// Evaluates the JSONPath subset printer columns use: `.a.b`, `.a[0]`,
/// `.a[-1:]`, `.a[*].b` (first match is returned), `\.` inside names.
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('$');
    let mut cur = obj;
    for raw in segments(path) {
        let raw = raw.as_str();
        let (field, index) = match raw.split_once('[') {
            Some((f, rest)) => (f, Some(rest.trim_end_matches(']'))),
            None => (raw, None),
        };
        if !field.is_empty() {
            cur = cur.get(field)?;
        }
        if let Some(ix) = index {
            let arr = cur.as_array()?;
            cur = match ix {
                "*" | "0:" | ":" => arr.first()?,
                "-1:" | "-1" => arr.last()?,
                n => {
                    let i: i64 = n.trim_end_matches(':').parse().ok()?;
                    let i = if i < 0 { arr.len() as i64 + i } else { i };
                    arr.get(usize::try_from(i).ok()?)?
                }
            };
        }
    }
    Some(cur)
}

/// Kubernetes' `HumanDuration` of the time since an RFC 3339 timestamp.
pub fn age(ts: &str) -> String {
    let Ok(t) = ts.parse::<jiff::Timestamp>() else {
        return "<unknown>".into();
    };
    let secs = jiff::Timestamp::now().as_second() - t.as_second();
    human_duration(secs.max(0))
}

fn human_duration(s: i64) -> String {
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y{}d", d / 365, d % 365)
    }
}

fn cell(ty: &str, format: &str, v: Option<&Value>) -> Value {
    match v {
        None | Some(Value::Null) => Value::Null,
        // `date-time` columns (the CRD list's "Created At") print the timestamp itself.
        Some(Value::String(s)) if ty == "date" && format != "date-time" => json!(age(s)),
        Some(v @ (Value::Object(_) | Value::Array(_))) => json!(v.to_string()),
        Some(v) => v.clone(),
    }
}

/// The column definitions (Name first).
pub fn columns(rt: &ResourceType) -> Vec<Value> {
    let mut cols = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    for c in &rt.printer_columns {
        cols.push(json!({
            "name": c.get("name").cloned().unwrap_or(json!("")),
            "type": c.get("type").cloned().unwrap_or(json!("string")),
            "format": c.get("format").cloned().unwrap_or(json!("")),
            "description": c.get("description").cloned().unwrap_or(json!("")),
            "priority": c.get("priority").cloned().unwrap_or(json!(0)),
        }));
    }
    cols
}

/// One row for an object.
pub fn row(rt: &ResourceType, obj: &Value) -> Value {
    let mut cells = vec![
        obj.pointer("/metadata/name")
            .cloned()
            .unwrap_or(Value::Null),
    ];
    for c in &rt.printer_columns {
        let path = c
            .get("jsonPath")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let ty = c.get("type").and_then(Value::as_str).unwrap_or("string");
        let format = c.get("format").and_then(Value::as_str).unwrap_or_default();
        cells.push(cell(ty, format, json_path(obj, path)));
    }
    json!({
        "cells": cells,
        "object": {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
        },
    })
}

/// A Table of objects.
pub fn table(rt: &ResourceType, objs: &[Value], list_meta: Value, headers: bool) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": if headers { columns(rt) } else { vec![] },
        "rows": objs.iter().map(|o| row(rt, o)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_dots_are_part_of_a_name() {
        let obj = json!({"metadata": {"labels": {"katib.kubeflow.org/experiment": "e"}}});
        assert_eq!(
            json_path(&obj, ".metadata.labels.katib\\.kubeflow\\.org/experiment"),
            Some(&json!("e"))
        );
    }

    #[test]
    fn json_path_subset() {
        let o = json!({"status": {"conditions": [{"type": "Created"}, {"type": "Running"}]}, "spec": {"n": 3}});
        assert_eq!(
            json_path(&o, ".status.conditions[-1:].type"),
            Some(&json!("Running"))
        );
        assert_eq!(
            json_path(&o, ".status.conditions[0].type"),
            Some(&json!("Created"))
        );
        assert_eq!(json_path(&o, ".spec.n"), Some(&json!(3)));
        assert_eq!(json_path(&o, ".spec.missing"), None);
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3600 * 5 + 60), "5h1m");
        assert_eq!(human_duration(86400 * 3), "3d");
    }
}
