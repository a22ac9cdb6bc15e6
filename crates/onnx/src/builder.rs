//! [`Builder`]: the ONNX graph under construction (nodes, initialisers, names), with
//! the helpers every lowering uses.

use std::collections::HashMap;

use crate::proto::{
    AttributeProto, AttributeType, Dimension, DimensionValue, NodeProto, TensorProto,
    TensorShapeProto, TensorTypeProto, TypeProto, ValueInfoProto, data_type,
};

/// An attribute's value.
pub(crate) enum Attr {
    /// `f`.
    Float(f32),
    /// `i`.
    Int(i64),
    /// `ints`.
    Ints(Vec<i64>),
}

/// Integers as ONNX's `int64` (sizes of kiln tensors always fit).
pub(crate) fn ints(values: &[usize]) -> Vec<i64> {
    values
        .iter()
        .map(|&v| i64::try_from(v).unwrap_or(i64::MAX))
        .collect()
}

/// The nodes and initialisers written so far.
#[derive(Default)]
pub(crate) struct Builder {
    pub(crate) nodes: Vec<NodeProto>,
    pub(crate) initializers: Vec<TensorProto>,
    /// Names given, to keep value and node names unique.
    used: HashMap<String, usize>,
}

impl Builder {
    /// `name`, or `name_2`, `name_3`, ... when it is taken: a value name that no other
    /// value has.
    pub(crate) fn fresh(&mut self, name: &str) -> String {
        let n = self.used.entry(name.to_string()).or_insert(0);
        *n += 1;
        if *n == 1 {
            name.to_string()
        } else {
            let candidate = format!("{name}_{n}");
            self.fresh(&candidate)
        }
    }

    /// Reserves `name` as it is (the graph's input).
    pub(crate) fn reserve(&mut self, name: &str) {
        self.used.insert(name.to_string(), 1);
    }

    /// Adds a node `op_type` named `name` reading `inputs`, and returns the name of its
    /// output (`output`, made unique).
    pub(crate) fn node(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: &[&str],
        output: &str,
        attributes: Vec<(&str, Attr)>,
    ) -> String {
        let output = self.fresh(output);
        let attribute = attributes
            .into_iter()
            .map(|(name, value)| {
                let mut a = AttributeProto {
                    name: name.to_string(),
                    ..AttributeProto::default()
                };
                match value {
                    Attr::Float(f) => {
                        a.f = f;
                        a.r#type = AttributeType::Float as i32;
                    }
                    Attr::Int(i) => {
                        a.i = i;
                        a.r#type = AttributeType::Int as i32;
                    }
                    Attr::Ints(v) => {
                        a.ints = v;
                        a.r#type = AttributeType::Ints as i32;
                    }
                }
                a
            })
            .collect();
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            name: name.to_string(),
            op_type: op_type.to_string(),
            attribute,
            ..NodeProto::default()
        });
        output
    }

    /// Adds a float initialiser `name` of dimensions `dims`, and returns its name.
    pub(crate) fn constant(&mut self, name: &str, dims: &[usize], values: &[f32]) -> String {
        let name = self.fresh(name);
        let raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers.push(TensorProto {
            dims: ints(dims),
            data_type: data_type::FLOAT,
            name: name.clone(),
            raw_data,
        });
        name
    }

    /// Adds an `int64` initialiser (a shape for `Reshape`), and returns its name.
    pub(crate) fn int_constant(&mut self, name: &str, values: &[i64]) -> String {
        let name = self.fresh(name);
        let raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers.push(TensorProto {
            dims: vec![i64::try_from(values.len()).unwrap_or(0)],
            data_type: data_type::INT64,
            name: name.clone(),
            raw_data,
        });
        name
    }

    /// Renames the value `from` to `to` where a node writes or reads it.
    pub(crate) fn rename(&mut self, from: &str, to: &str) {
        for node in &mut self.nodes {
            for name in node.input.iter_mut().chain(node.output.iter_mut()) {
                if name == from {
                    *name = to.to_string();
                }
            }
        }
    }
}

/// A float tensor value named `name` of dimensions `dims`, `None` being the batch
/// (symbolic, `batch`).
pub(crate) fn value_info(name: &str, dims: &[Option<usize>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(n) => DimensionValue::DimValue(i64::try_from(*n).unwrap_or(i64::MAX)),
                None => DimensionValue::DimParam("batch".to_string()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
        doc_string: String::new(),
    }
}
