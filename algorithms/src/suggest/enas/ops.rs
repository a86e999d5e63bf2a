//! Katib's operation expansion (`Operation.py`): every combination of an
//! operation's parameter values is one operation id, numbered from 0 in the
//! order of the operations and, within one, of `itertools.product` (the
//! last parameter varies fastest).

use crate::space::nas::{NasGraph, NasValue};

/// One expanded operation: what an `nn_config` embedding entry describes.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    /// Its id: its index in the expansion.
    pub id: usize,
    /// The operation type (`convolution`).
    pub op_type: String,
    /// One value per parameter, in the parameters' order.
    pub params: Vec<(String, NasValue)>,
}

/// Every operation of `graph`, ids in Katib's order.
#[must_use]
pub fn expand(graph: &NasGraph) -> Vec<Op> {
    let mut out = Vec::new();
    for operation in graph.operations() {
        let axes: Vec<(String, Vec<NasValue>)> = operation
            .parameters
            .iter()
            .map(|p| (p.name.clone(), p.values.values()))
            .collect();
        if axes.iter().any(|(_, values)| values.is_empty()) {
            continue;
        }
        // An odometer over the axes, last axis fastest, as itertools.product.
        let mut index = vec![0_usize; axes.len()];
        loop {
            out.push(Op {
                id: out.len(),
                op_type: operation.operation_type.clone(),
                params: axes
                    .iter()
                    .zip(&index)
                    .map(|((name, values), &i)| (name.clone(), values[i].clone()))
                    .collect(),
            });
            let mut axis = axes.len();
            loop {
                if axis == 0 {
                    break;
                }
                axis -= 1;
                index[axis] += 1;
                if index[axis] < axes[axis].1.len() {
                    break;
                }
                index[axis] = 0;
            }
            if index.iter().all(|&i| i == 0) {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::nas::{NasOperation, NasParameter, NasValues};

    fn list(values: &[&str]) -> NasValues {
        NasValues::List(values.iter().map(|v| (*v).to_owned()).collect())
    }

    #[test]
    fn combinations_are_numbered_as_itertools_product() {
        let graph = NasGraph::new(
            2,
            vec![],
            vec![],
            vec![
                NasOperation {
                    operation_type: "convolution".into(),
                    parameters: vec![
                        NasParameter {
                            name: "filter_size".into(),
                            values: list(&["3", "5"]),
                        },
                        NasParameter {
                            name: "stride".into(),
                            values: NasValues::Int {
                                min: 1,
                                max: 3,
                                step: 1,
                            },
                        },
                    ],
                },
                NasOperation {
                    operation_type: "skip".into(),
                    parameters: vec![],
                },
            ],
        )
        .unwrap();
        let ops = expand(&graph);
        let described: Vec<(usize, &str, Vec<NasValue>)> = ops
            .iter()
            .map(|o| {
                (
                    o.id,
                    o.op_type.as_str(),
                    o.params.iter().map(|(_, v)| v.clone()).collect(),
                )
            })
            .collect();
        let t = |s: &str| NasValue::Text(s.into());
        let i = NasValue::Int;
        assert_eq!(
            described,
            vec![
                (0, "convolution", vec![t("3"), i(1)]),
                (1, "convolution", vec![t("3"), i(2)]),
                (2, "convolution", vec![t("3"), i(3)]),
                (3, "convolution", vec![t("5"), i(1)]),
                (4, "convolution", vec![t("5"), i(2)]),
                (5, "convolution", vec![t("5"), i(3)]),
                // No parameters: product() of nothing is one empty tuple.
                (6, "skip", vec![]),
            ]
        );
        assert_eq!(ops[4].params[1].0, "stride");
    }
}
