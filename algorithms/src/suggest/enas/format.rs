//! The two trial parameters of an ENAS trial, in Katib's formats
//! (`service.py`): Python's `json.dumps` of the value with every `"`
//! turned into `'`.
//!
//! - `architecture`: one list per layer, `[op_id, skip_0, …, skip_{l-1}]`
//!   (layer `l` has a 0/1 skip bit per earlier layer): `[[3], [0, 1]]`;
//! - `nn_config`: `{'num_layers': 2, 'input_sizes': [32, 32, 3],
//!   'output_sizes': [10], 'embedding': {'3': {'opt_id': 3, 'opt_type':
//!   'convolution', 'opt_params': {'filter_size': '3', 'stride': 1}}, …}}`:
//!   the embedding describes each operation the architecture uses, keyed by
//!   its id as text, in the order the layers first use it; categorical
//!   values stay strings, `int` values are integers, `double` values floats.

use super::ops::Op;
use crate::space::nas::{NasGraph, NasValue};
use crate::suggest::pyjson::{python_float, python_string};

/// The trial parameter holding the architecture.
pub const ARCHITECTURE: &str = "architecture";
/// The trial parameter holding the network description.
pub const NN_CONFIG: &str = "nn_config";

/// One layer's choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The operation id.
    pub op: usize,
    /// One bit per earlier layer: whether it feeds this layer too.
    pub skips: Vec<bool>,
}

/// A sampled network: one [`Layer`] per layer, layer `l` with `l` skip bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Architecture {
    /// The layers in order.
    pub layers: Vec<Layer>,
}

impl Architecture {
    /// The `architecture` parameter: `[[op], [op, skip], …]`.
    #[must_use]
    pub fn to_katib(&self) -> String {
        let layers: Vec<String> = self
            .layers
            .iter()
            .map(|layer| {
                let mut items = vec![layer.op.to_string()];
                items.extend(layer.skips.iter().map(|&s| u8::from(s).to_string()));
                format!("[{}]", items.join(", "))
            })
            .collect();
        format!("[{}]", layers.join(", "))
    }

    /// Reads an `architecture` parameter back, if it is a well-formed
    /// architecture of `num_layers` layers over `num_ops` operations (a
    /// trial's parameters are data: anything else is `None`).
    #[must_use]
    pub fn from_katib(text: &str, num_layers: usize, num_ops: usize) -> Option<Self> {
        let rows: Vec<Vec<u64>> = serde_json::from_str(&text.replace('\'', "\"")).ok()?;
        if rows.len() != num_layers {
            return None;
        }
        let mut layers = Vec::with_capacity(rows.len());
        for (l, row) in rows.iter().enumerate() {
            let (&op, skips) = row.split_first()?;
            let op = usize::try_from(op).ok().filter(|&op| op < num_ops)?;
            if skips.len() != l || skips.iter().any(|&s| s > 1) {
                return None;
            }
            layers.push(Layer {
                op,
                skips: skips.iter().map(|&s| s == 1).collect(),
            });
        }
        Some(Self { layers })
    }
}

/// The `nn_config` parameter of `arch` (whose op ids index `ops`).
#[must_use]
pub fn nn_config(graph: &NasGraph, ops: &[Op], arch: &Architecture) -> String {
    let ints = |values: &[i64]| {
        let items: Vec<String> = values.iter().map(i64::to_string).collect();
        format!("[{}]", items.join(", "))
    };
    let mut seen: Vec<usize> = Vec::new();
    for layer in &arch.layers {
        if !seen.contains(&layer.op) {
            seen.push(layer.op);
        }
    }
    let embedding: Vec<String> = seen
        .iter()
        .filter_map(|&id| ops.get(id))
        .map(|op| {
            let params: Vec<String> = op
                .params
                .iter()
                .map(|(name, value)| format!("{}: {}", python_string(name), value_text(value)))
                .collect();
            format!(
                "'{id}': {{'opt_id': {id}, 'opt_type': {}, 'opt_params': {{{}}}}}",
                python_string(&op.op_type),
                params.join(", "),
                id = op.id,
            )
        })
        .collect();
    format!(
        "{{'num_layers': {}, 'input_sizes': {}, 'output_sizes': {}, 'embedding': {{{}}}}}",
        graph.num_layers(),
        ints(graph.input_sizes()),
        ints(graph.output_sizes()),
        embedding.join(", ")
    )
}

fn value_text(value: &NasValue) -> String {
    match value {
        NasValue::Text(t) => python_string(t),
        NasValue::Int(i) => i.to_string(),
        NasValue::Float(f) => python_float(*f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::nas::{NasOperation, NasParameter, NasValues};
    use crate::suggest::enas::ops::expand;

    /// Katib's `enas-cpu.yaml`'s `reduction` operation and a double one.
    fn graph() -> NasGraph {
        NasGraph::new(
            3,
            vec![32, 32, 3],
            vec![10],
            vec![
                NasOperation {
                    operation_type: "reduction".into(),
                    parameters: vec![
                        NasParameter {
                            name: "reduction_type".into(),
                            values: NasValues::List(vec![
                                "max_pooling".into(),
                                "avg_pooling".into(),
                            ]),
                        },
                        NasParameter {
                            name: "pool_size".into(),
                            values: NasValues::Int {
                                min: 2,
                                max: 3,
                                step: 1,
                            },
                        },
                    ],
                },
                NasOperation {
                    operation_type: "dropout".into(),
                    parameters: vec![NasParameter {
                        name: "rate".into(),
                        values: NasValues::Double {
                            min: 0.5,
                            max: 1.0,
                            step: 0.5,
                        },
                    }],
                },
            ],
        )
        .unwrap()
    }

    #[test]
    fn katibs_formats_byte_for_byte() {
        let graph = graph();
        let ops = expand(&graph);
        let arch = Architecture {
            layers: vec![
                Layer {
                    op: 3,
                    skips: vec![],
                },
                Layer {
                    op: 5,
                    skips: vec![true],
                },
                Layer {
                    op: 3,
                    skips: vec![false, true],
                },
            ],
        };
        assert_eq!(arch.to_katib(), "[[3], [5, 1], [3, 0, 1]]");
        // What Python's json.dumps + replace('"', "'") writes for this
        // arc (service.py), the embedding in first-use order.
        assert_eq!(
            nn_config(&graph, &ops, &arch),
            "{'num_layers': 3, 'input_sizes': [32, 32, 3], 'output_sizes': [10], \
             'embedding': {'3': {'opt_id': 3, 'opt_type': 'reduction', 'opt_params': \
             {'reduction_type': 'avg_pooling', 'pool_size': 3}}, \
             '5': {'opt_id': 5, 'opt_type': 'dropout', 'opt_params': {'rate': 1.0}}}}"
        );
    }

    #[test]
    fn the_formats_read_back_as_katibs_trial_program_reads_them() {
        // RunTrial.py: replace("'", '"') then json.loads.
        let graph = graph();
        let ops = expand(&graph);
        let arch = Architecture {
            layers: vec![
                Layer {
                    op: 0,
                    skips: vec![],
                },
                Layer {
                    op: 4,
                    skips: vec![false],
                },
                Layer {
                    op: 1,
                    skips: vec![true, true],
                },
            ],
        };
        let text = arch.to_katib();
        assert_eq!(
            Architecture::from_katib(&text, 3, ops.len()),
            Some(arch.clone())
        );
        let config: serde_json::Value =
            serde_json::from_str(&nn_config(&graph, &ops, &arch).replace('\'', "\"")).unwrap();
        assert_eq!(config["num_layers"], 3);
        assert_eq!(config["output_sizes"], serde_json::json!([10]));
        assert_eq!(
            config["embedding"]["1"],
            serde_json::json!({"opt_id": 1, "opt_type": "reduction",
                "opt_params": {"reduction_type": "max_pooling", "pool_size": 3}})
        );
        assert_eq!(config["embedding"]["4"]["opt_params"]["rate"], 0.5);
        assert_eq!(config["embedding"].as_object().unwrap().len(), 3);
    }

    #[test]
    fn malformed_architectures_are_not_read() {
        for text in [
            "[[0], [1, 0]]",            // two layers, three expected
            "[[0], [1], [2, 0, 1]]",    // layer 1 lacks its skip bit
            "[[0], [1, 2], [2, 0, 1]]", // a skip bit of 2
            "[[9], [1, 0], [2, 0, 1]]", // no op 9
            "[[], [1, 0], [2, 0, 1]]",
            "not json",
        ] {
            assert_eq!(Architecture::from_katib(text, 3, 6), None, "{text}");
        }
        assert!(Architecture::from_katib("[[0], [1, 0], [2, 0, 1]]", 3, 6).is_some());
    }
}
