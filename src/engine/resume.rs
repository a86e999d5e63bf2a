//! What may change when an experiment that already exists in the store is
//! run again. Katib lets a resumed experiment change only its trial budget;
//! ktune also lets the trial template change (a fixed typo in a command
//! should not cost the trials already run), and refuses everything that
//! would make the stored trials belong to a different search.

use serde_json::Value;

/// `spec` fields that may change between runs of one experiment.
const MUTABLE: &[&str] = &[
    "maxTrialCount",
    "parallelTrialCount",
    "maxFailedTrialCount",
    "resumePolicy",
    "trialTemplate",
];

/// How a new spec compares with the stored one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecChange {
    /// Nothing that matters changed.
    Same,
    /// Only the budget, resume policy or trial template changed.
    Allowed,
    /// These `spec` fields changed and must not.
    Forbidden(Vec<String>),
}

/// Compares two stored experiments (`{"metadata":…, "spec":…}`).
#[must_use]
pub fn compare_specs(stored: &Value, new: &Value) -> SpecChange {
    let empty = serde_json::Map::new();
    let old = stored
        .get("spec")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let new = new.get("spec").and_then(Value::as_object).unwrap_or(&empty);
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let differing: Vec<&String> = keys
        .into_iter()
        .filter(|k| old.get(k.as_str()) != new.get(k.as_str()))
        .collect();
    let forbidden: Vec<String> = differing
        .iter()
        .filter(|k| !MUTABLE.contains(&k.as_str()))
        .map(|k| format!("spec.{k}"))
        .collect();
    if !forbidden.is_empty() {
        SpecChange::Forbidden(forbidden)
    } else if differing.is_empty() {
        SpecChange::Same
    } else {
        SpecChange::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn exp(spec: Value) -> Value {
        json!({"metadata": {"name": "e"}, "spec": spec})
    }

    #[test]
    fn the_budget_and_template_may_change_the_search_may_not() {
        let base = exp(
            json!({"maxTrialCount": 5, "parameters": [{"name": "lr"}], "trialTemplate": {"a": 1}}),
        );
        assert_eq!(compare_specs(&base, &base), SpecChange::Same);
        let raised = exp(
            json!({"maxTrialCount": 9, "parameters": [{"name": "lr"}], "trialTemplate": {"a": 2}}),
        );
        assert_eq!(compare_specs(&base, &raised), SpecChange::Allowed);
        let other = exp(
            json!({"maxTrialCount": 5, "parameters": [{"name": "momentum"}], "algorithm": {}, "trialTemplate": {"a": 1}}),
        );
        assert_eq!(
            compare_specs(&base, &other),
            SpecChange::Forbidden(vec!["spec.algorithm".into(), "spec.parameters".into()])
        );
    }
}
