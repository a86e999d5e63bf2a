//! `darts`: Katib's DARTS service does no search of its own. DARTS
//! (differentiable architecture search) runs inside the trial, and the
//! service hands every trial the same three parameters, which
//! [`trial_parameters`] builds in exactly Katib's formats:
//!
//! - `algorithm-settings`: the settings over Katib's defaults, as Python's
//!   `json.dumps` writes a dict, with every `"` turned into `'`
//!   (`{'num_epochs': 50, 'w_lr': 0.025, …}`; a user's value stays a
//!   string, `'3'`, and `None` becomes `null`);
//! - `search-space`: the operations as a list in the same style
//!   (`['separable_convolution_3x3', 'skip_connection']`): each operation
//!   but `skip_connection` once per value of its first parameter, as
//!   `<operation>_<f>x<f>`;
//! - `num-layers`: `graphConfig.numLayers` as text.
//!
//! The search space the caller builds from them holds one categorical
//! parameter per name with that single value, and [`DartsSuggester`]
//! repeats its only point, as Katib's service repeats its assignments.

use crate::error::AlgorithmError;
use crate::space::{Assignment, Domain, ParamValue};

use super::pyjson::python_string;
use super::{SuggestRequest, Suggester, Suggestion, Suggestions};

/// The trial parameter holding the algorithm settings.
pub const ALGORITHM_SETTINGS: &str = "algorithm-settings";
/// The trial parameter holding the search space.
pub const SEARCH_SPACE: &str = "search-space";
/// The trial parameter holding the number of layers.
pub const NUM_LAYERS: &str = "num-layers";

/// Katib's default DARTS settings, in its order, as Python writes them.
const DEFAULTS: [(&str, &str); 14] = [
    ("num_epochs", "50"),
    ("w_lr", "0.025"),
    ("w_lr_min", "0.001"),
    ("w_momentum", "0.9"),
    ("w_weight_decay", "0.0003"),
    ("w_grad_clip", "5.0"),
    ("alpha_lr", "0.0003"),
    ("alpha_weight_decay", "0.001"),
    ("batch_size", "128"),
    ("num_workers", "4"),
    ("init_channels", "16"),
    ("print_step", "50"),
    ("num_nodes", "4"),
    ("stem_multiplier", "3"),
];

/// One NAS operation as DARTS reads it: its type and the values of its
/// first parameter (the filter sizes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DartsOperation {
    /// `operationType`, e.g. `separable_convolution`.
    pub operation_type: String,
    /// The first parameter's `feasibleSpace.list`.
    pub filter_sizes: Vec<String>,
}

/// The three trial parameters of every DARTS trial, in Katib's order and
/// formats, from the operations, `graphConfig.numLayers` and the user's
/// settings (name, value; in the order given).
#[must_use]
pub fn trial_parameters(
    operations: &[DartsOperation],
    num_layers: i64,
    settings: &[(&str, &str)],
) -> [(String, String); 3] {
    let mut merged: Vec<(String, String)> = DEFAULTS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    for (name, value) in settings {
        // Python's dict: an update keeps the key's place; a new key goes last.
        let written = if *value == "None" {
            "null".to_owned()
        } else {
            python_string(value)
        };
        match merged.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = written,
            None => merged.push(((*name).to_owned(), written)),
        }
    }
    let settings = format!(
        "{{{}}}",
        merged
            .iter()
            .map(|(k, v)| format!("{}: {v}", python_string(k)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let space: Vec<String> = operations
        .iter()
        .flat_map(|op| {
            if op.operation_type == "skip_connection" {
                vec![python_string(&op.operation_type)]
            } else {
                op.filter_sizes
                    .iter()
                    .map(|f| python_string(&format!("{}_{f}x{f}", op.operation_type)))
                    .collect()
            }
        })
        .collect();
    [
        (ALGORITHM_SETTINGS.to_owned(), settings),
        (SEARCH_SPACE.to_owned(), format!("[{}]", space.join(", "))),
        (NUM_LAYERS.to_owned(), num_layers.to_string()),
    ]
}

/// DARTS: every suggestion is the space's only point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DartsSuggester;

impl Suggester for DartsSuggester {
    fn name(&self) -> &'static str {
        "darts"
    }

    fn suggest(&self, req: &SuggestRequest<'_>) -> Result<Suggestions, AlgorithmError> {
        let mut point = Assignment::new();
        for param in req.space.params() {
            match param.domain() {
                Domain::Categorical { values } if values.len() == 1 => {
                    point.set(param.name(), ParamValue::Text(values[0].clone()));
                }
                _ => {
                    return Err(AlgorithmError::UnknownParameter {
                        name: param.name().to_owned(),
                    });
                }
            }
        }
        Ok(Suggestions {
            suggestions: (0..req.count)
                .map(|_| Suggestion::new(point.clone()))
                .collect(),
            state: None,
            exhausted: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Direction, Objective};
    use crate::space::{ParameterSpec, SearchSpace};

    /// Katib's `darts-cpu.yaml`: its settings over the defaults, one
    /// pooling operation.
    #[test]
    fn katibs_formats_byte_for_byte() {
        let operations = [
            DartsOperation {
                operation_type: "max_pooling".into(),
                filter_sizes: vec!["3".into()],
            },
            DartsOperation {
                operation_type: "skip_connection".into(),
                filter_sizes: vec![],
            },
            DartsOperation {
                operation_type: "separable_convolution".into(),
                filter_sizes: vec!["3".into(), "5".into()],
            },
        ];
        let settings = [
            ("num_epochs", "1"),
            ("num_nodes", "1"),
            ("batch_size", "None"),
            ("extra", "é"),
        ];
        let [a, s, n] = trial_parameters(&operations, 1, &settings);
        assert_eq!(a.0, "algorithm-settings");
        assert_eq!(
            a.1,
            "{'num_epochs': '1', 'w_lr': 0.025, 'w_lr_min': 0.001, 'w_momentum': 0.9, \
             'w_weight_decay': 0.0003, 'w_grad_clip': 5.0, 'alpha_lr': 0.0003, \
             'alpha_weight_decay': 0.001, 'batch_size': null, 'num_workers': 4, \
             'init_channels': 16, 'print_step': 50, 'num_nodes': '1', 'stem_multiplier': 3, \
             'extra': '\\u00e9'}"
        );
        assert_eq!(
            s,
            (
                "search-space".to_owned(),
                "['max_pooling_3x3', 'skip_connection', 'separable_convolution_3x3', \
                 'separable_convolution_5x5']"
                    .to_owned()
            )
        );
        assert_eq!(n, ("num-layers".to_owned(), "1".to_owned()));
    }

    #[test]
    fn every_suggestion_is_the_same_point() {
        let [a, s, n] = trial_parameters(&[], 8, &[]);
        let space = SearchSpace::new(
            [a, s, n]
                .into_iter()
                .map(|(name, value)| ParameterSpec::categorical(name, vec![value]).unwrap())
                .collect(),
        )
        .unwrap();
        let objective = Objective::new("Best-Genotype", Direction::Maximize);
        let request = SuggestRequest {
            space: &space,
            objective: &objective,
            history: &[],
            count: 3,
            seed: 0,
            state: None,
        };
        let got = DartsSuggester.suggest(&request).unwrap();
        assert_eq!(got.suggestions.len(), 3);
        assert!(got.suggestions.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(
            got.suggestions[0].assignment.get(NUM_LAYERS),
            Some(&ParamValue::Text("8".into()))
        );
        assert!(!got.exhausted);
    }
}
