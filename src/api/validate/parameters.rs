//! Validation of `spec.parameters`.

use std::collections::BTreeMap;

use super::Report;
use crate::api::experiment::ExperimentSpec;
use crate::api::parameters::parse_parameter;

pub(super) fn validate_parameters(spec: &ExperimentSpec, report: &mut Report) {
    let mut first_index = BTreeMap::new();
    for (i, parameter) in spec.parameters.iter().flatten().enumerate() {
        let path = format!("spec.parameters[{i}]");
        if parameter.name.trim().is_empty() {
            report.error(format!("{path}.name"), "required");
        } else if parameter.name.contains(['{', '}']) {
            report.error(format!("{path}.name"), "must not contain '{' or '}'");
        } else if let Some(first) = first_index.insert(parameter.name.as_str(), i) {
            report.error(
                format!("{path}.name"),
                format!(
                    "{:?} is already the name of spec.parameters[{first}]",
                    parameter.name
                ),
            );
        }
        if let Err(problems) = parse_parameter(parameter) {
            for problem in problems {
                report.error(format!("{path}.{}", problem.field), problem.message);
            }
        }
    }
}
