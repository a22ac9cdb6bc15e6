//! The walk over a model's graph: each kiln value becomes an ONNX value in a known
//! layout, converted only where a consumer needs another one.
//!
//! ONNX's convolutions and pooling take images as `[batch, c, h, w]`; kiln's are
//! `[batch, h, w, c]`. Images therefore live in ONNX as NCHW from the first layer that
//! needs it, and a `Flatten` of such an image leaves its vector in `c, h, w` order
//! ([`Form::ChwVector`]): the `Dense` layer after it takes its weight rows in that
//! order, so the transpose is folded into the weights and never runs. Only a consumer
//! that cannot absorb the order (a concatenation with other vectors, the model's
//! output) gets a transpose.

use std::collections::HashMap;

use kiln_nn::{Node, NodeOp};
use kiln_shape::{Activation, Shape};

use crate::builder::{Attr, Builder, value_info};
use crate::proto::GraphProto;
use crate::{Error, Layout, Result};

/// A model's tensors on the host by key (`conv1.weight`): dimensions and values.
pub(crate) type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// How an ONNX value holds a kiln value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    /// kiln's own order: `[batch, ..sample]` (an image `[batch, h, w, c]`).
    Kiln,
    /// An image as `[batch, c, h, w]`.
    Nchw,
    /// A vector from an NCHW image `(h, w, c)` flattened: the values of kiln's vector
    /// in `c, h, w` order.
    ChwVector(usize, usize, usize),
}

/// A kiln value in the ONNX graph.
#[derive(Clone, Debug)]
pub(crate) struct Val {
    /// The ONNX value's name.
    pub(crate) name: String,
    /// Its layout.
    pub(crate) form: Form,
    /// kiln's per-sample shape.
    pub(crate) shape: Shape,
}

impl Val {
    /// The ONNX dimensions, the batch first (`None`).
    fn dims(&self) -> Vec<Option<usize>> {
        let mut dims = vec![None];
        match (self.form, self.shape.as_image()) {
            (Form::Nchw, Some((h, w, c))) => dims.extend([Some(c), Some(h), Some(w)]),
            _ => dims.extend(self.shape.dims().iter().map(|&d| Some(d))),
        }
        dims
    }
}

/// The graph being written, the model's tensors, and the conversions made so far.
pub(crate) struct Exporter<'t> {
    pub(crate) b: Builder,
    tensors: &'t Tensors,
    /// `(value, to NCHW)` to the converted value's name: a value is converted once
    /// however many consumers need it.
    converted: HashMap<(String, bool), String>,
}

/// The ONNX graph of `graph` on per-sample inputs of shape `input`, with the weights
/// from `tensors`.
pub(crate) fn graph_proto(
    name: &str,
    input: Shape,
    graph: &[Node],
    tensors: &Tensors,
    layout: Layout,
) -> Result<GraphProto> {
    let shapes = kiln_nn::dataflow::value_shapes(input, graph).map_err(|node| Error::Graph {
        node: node.to_string(),
    })?;
    let mut ex = Exporter::new(tensors);
    ex.b.reserve("input");
    ex.b.reserve("output");
    let image = input.as_image().is_some();
    let input_val = Val {
        name: "input".into(),
        form: if image && layout == Layout::Nchw {
            Form::Nchw
        } else {
            Form::Kiln
        },
        shape: input,
    };
    let input_info = value_info(&input_val.name, &input_val.dims());
    let mut values = vec![input_val];
    for (i, node) in graph.iter().enumerate() {
        let malformed = || Error::Graph {
            node: node.name.to_string(),
        };
        let inputs: Vec<Val> = node
            .inputs
            .iter()
            .map(|&v| values.get(v).cloned().ok_or_else(malformed))
            .collect::<Result<_>>()?;
        let first = inputs.first().ok_or_else(malformed)?;
        let shape = shapes[i + 1];
        let out = match node.op {
            NodeOp::Layer(spec) => crate::lower::layer(&mut ex, node.name, spec, first, shape)?,
            NodeOp::Add { activation } => {
                let [a, b] = inputs.as_slice() else {
                    return Err(malformed());
                };
                ex.add(node.name, a, b, activation, shape)
            }
            NodeOp::Concat => ex.concat(node.name, &inputs, shape),
        };
        values.push(out);
    }
    let last = values.last().cloned().ok_or_else(|| Error::Graph {
        node: "input".into(),
    })?;
    let out = match (layout, last.shape.as_image()) {
        (Layout::Nchw, Some(_)) => ex.as_nchw(&last),
        _ => ex.as_kiln(&last),
    };
    let out_name = if out.name == "input" {
        // Nothing ran (a model of alias layers only): the output is the input.
        ex.b.node("Identity", "output", &["input"], "output", vec![])
    } else {
        ex.b.rename(&out.name, "output");
        "output".to_string()
    };
    let output_info = value_info(&out_name, &out.dims());
    Ok(GraphProto {
        node: std::mem::take(&mut ex.b.nodes),
        name: name.to_string(),
        initializer: std::mem::take(&mut ex.b.initializers),
        input: vec![input_info],
        output: vec![output_info],
        ..GraphProto::default()
    })
}

impl<'t> Exporter<'t> {
    /// An empty graph over `tensors`.
    pub(crate) fn new(tensors: &'t Tensors) -> Self {
        Exporter {
            b: Builder::default(),
            tensors,
            converted: HashMap::new(),
        }
    }

    /// The model's tensor `layer.name`.
    pub(crate) fn tensor(&self, layer: &str, name: &str) -> Result<&(Vec<usize>, Vec<f32>)> {
        self.optional_tensor(layer, name)
            .ok_or_else(|| Error::MissingTensor {
                layer: layer.to_string(),
                key: format!("{layer}.{name}"),
            })
    }

    /// The model's tensor `layer.name`, if it has one (a frozen scale has none).
    pub(crate) fn optional_tensor(
        &self,
        layer: &str,
        name: &str,
    ) -> Option<&(Vec<usize>, Vec<f32>)> {
        self.tensors.get(&format!("{layer}.{name}"))
    }

    /// `v` as an NCHW image (a transpose, once, when it is in kiln's order).
    pub(crate) fn as_nchw(&mut self, v: &Val) -> Val {
        if v.form == Form::Nchw || v.shape.as_image().is_none() {
            return v.clone();
        }
        let name = self.convert(v, true, |b| {
            let node = format!("{}/as_nchw", v.name);
            b.node(
                "Transpose",
                &node,
                &[&v.name],
                &node,
                vec![("perm", Attr::Ints(vec![0, 3, 1, 2]))],
            )
        });
        Val {
            name,
            form: Form::Nchw,
            shape: v.shape,
        }
    }

    /// `v` in kiln's order (a transpose, once, when it is not).
    pub(crate) fn as_kiln(&mut self, v: &Val) -> Val {
        let form = v.form;
        let name = match form {
            Form::Kiln => return v.clone(),
            Form::Nchw => self.convert(v, false, |b| {
                let node = format!("{}/to_nhwc", v.name);
                b.node(
                    "Transpose",
                    &node,
                    &[&v.name],
                    &node,
                    vec![("perm", Attr::Ints(vec![0, 2, 3, 1]))],
                )
            }),
            Form::ChwVector(h, w, c) => self.convert(v, false, |b| {
                let base = format!("{}/to_hwc", v.name);
                let dims = [0, c, h, w].map(|d| i64::try_from(d).unwrap_or(i64::MAX));
                let shape = b.int_constant(&format!("{base}/shape"), &dims);
                let image = b.node(
                    "Reshape",
                    &format!("{base}/reshape"),
                    &[&v.name, &shape],
                    &format!("{base}/chw"),
                    vec![],
                );
                let hwc = b.node(
                    "Transpose",
                    &format!("{base}/transpose"),
                    &[&image],
                    &format!("{base}/hwc"),
                    vec![("perm", Attr::Ints(vec![0, 2, 3, 1]))],
                );
                b.node(
                    "Flatten",
                    &base,
                    &[&hwc],
                    &base,
                    vec![("axis", Attr::Int(1))],
                )
            }),
        };
        Val {
            name,
            form: Form::Kiln,
            shape: v.shape,
        }
    }

    fn convert(
        &mut self,
        v: &Val,
        nchw: bool,
        make: impl FnOnce(&mut Builder) -> String,
    ) -> String {
        let key = (v.name.clone(), nchw);
        if let Some(name) = self.converted.get(&key) {
            return name.clone();
        }
        let name = make(&mut self.b);
        self.converted.insert(key, name.clone());
        name
    }

    /// `activation(x)` as the node(s) `node`, writing `out`; the identity writes
    /// nothing and returns `x`.
    pub(crate) fn activation(
        &mut self,
        x: &Val,
        activation: Activation,
        node: &str,
        out: &str,
    ) -> Val {
        let b = &mut self.b;
        let name = match activation {
            Activation::Linear => return x.clone(),
            Activation::Relu => b.node("Relu", node, &[&x.name], out, vec![]),
            Activation::LeakyRelu { negative_slope } => b.node(
                "LeakyRelu",
                node,
                &[&x.name],
                out,
                vec![("alpha", Attr::Float(negative_slope))],
            ),
            Activation::Sigmoid => b.node("Sigmoid", node, &[&x.name], out, vec![]),
            Activation::Tanh => b.node("Tanh", node, &[&x.name], out, vec![]),
            Activation::Softmax => {
                // Over kiln's last axis: the channels, which NCHW holds at axis 1; a
                // vector's order does not matter to a softmax over all of it.
                let axis = if x.form == Form::Nchw { 1 } else { -1 };
                b.node(
                    "Softmax",
                    node,
                    &[&x.name],
                    out,
                    vec![("axis", Attr::Int(axis))],
                )
            }
            Activation::Gelu => {
                // The exact GELU, x * Phi(x) = x * (1 + erf(x / sqrt 2)) / 2, from ops
                // that opset 17 has (`Gelu` came in opset 20).
                let sqrt2 = b.constant(&format!("{node}/sqrt2"), &[], &[std::f32::consts::SQRT_2]);
                let one = b.constant(&format!("{node}/one"), &[], &[1.0]);
                let half = b.constant(&format!("{node}/half"), &[], &[0.5]);
                let scaled = b.node(
                    "Div",
                    &format!("{node}/div"),
                    &[&x.name, &sqrt2],
                    &format!("{node}/scaled"),
                    vec![],
                );
                let erf = b.node(
                    "Erf",
                    &format!("{node}/erf"),
                    &[&scaled],
                    &format!("{node}/erf"),
                    vec![],
                );
                let plus = b.node(
                    "Add",
                    &format!("{node}/add"),
                    &[&erf, &one],
                    &format!("{node}/plus_one"),
                    vec![],
                );
                let times = b.node(
                    "Mul",
                    &format!("{node}/mul"),
                    &[&x.name, &plus],
                    &format!("{node}/times"),
                    vec![],
                );
                b.node("Mul", node, &[&times, &half], out, vec![])
            }
        };
        Val {
            name,
            form: x.form,
            shape: x.shape,
        }
    }

    /// A residual sum, `activation(a + b)`, in a layout both share.
    fn add(&mut self, name: &str, a: &Val, b: &Val, activation: Activation, shape: Shape) -> Val {
        let (a, b) = if a.form == b.form {
            (a.clone(), b.clone())
        } else if shape.as_image().is_some() {
            (self.as_nchw(a), self.as_nchw(b))
        } else {
            (self.as_kiln(a), self.as_kiln(b))
        };
        let sum_name = if activation == Activation::Linear {
            name.to_string()
        } else {
            format!("{name}/sum")
        };
        let sum = self
            .b
            .node("Add", &sum_name, &[&a.name, &b.name], &sum_name, vec![]);
        let sum = Val {
            name: sum,
            form: a.form,
            shape,
        };
        self.activation(
            &sum,
            activation,
            &format!("{name}/{}", activation.name()),
            name,
        )
    }

    /// A concatenation along kiln's last axis: the channels of NCHW images, or
    /// vectors in kiln's order.
    fn concat(&mut self, name: &str, inputs: &[Val], shape: Shape) -> Val {
        let image = shape.as_image().is_some();
        let inputs: Vec<Val> = inputs
            .iter()
            .map(|v| {
                if image {
                    self.as_nchw(v)
                } else {
                    self.as_kiln(v)
                }
            })
            .collect();
        let names: Vec<&str> = inputs.iter().map(|v| v.name.as_str()).collect();
        let axis = if image { 1 } else { -1 };
        let out = self.b.node(
            "Concat",
            name,
            &names,
            name,
            vec![("axis", Attr::Int(axis))],
        );
        Val {
            name: out,
            form: if image { Form::Nchw } else { Form::Kiln },
            shape,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_shape::{ShapeError, Traits};

    /// A layer kind the exporter has never heard of.
    #[derive(Debug)]
    struct Mystery;

    impl kiln_shape::Spec for Mystery {
        fn kind_name(&self) -> &'static str {
            "Mystery"
        }
        fn output_shape(&self, input: &Shape) -> std::result::Result<Shape, ShapeError> {
            Ok(*input)
        }
        fn traits(&self) -> Traits {
            Traits::default()
        }
        fn rust(&self) -> String {
            String::new()
        }
    }

    #[test]
    fn a_kind_without_an_onnx_form_is_an_error_naming_the_layer() {
        let graph = [
            Node {
                name: "act",
                op: NodeOp::Layer(&Activation::Relu),
                inputs: &[0],
            },
            Node {
                name: "block.odd",
                op: NodeOp::Layer(&Mystery),
                inputs: &[1],
            },
        ];
        let err = graph_proto(
            "Net",
            Shape::new(&[4]),
            &graph,
            &Tensors::new(),
            Layout::Nhwc,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "layer `block.odd` (Mystery) cannot be exported to ONNX yet: kiln has no ONNX form \
             for Mystery"
        );
    }

    #[test]
    fn a_missing_weight_is_an_error_naming_the_tensor() {
        let graph = [Node {
            name: "fc",
            op: NodeOp::Layer(&kiln_shape::DenseSpec {
                units: 2,
                activation: Activation::Linear,
            }),
            inputs: &[0],
        }];
        let err = graph_proto(
            "Net",
            Shape::new(&[4]),
            &graph,
            &Tensors::new(),
            Layout::Nhwc,
        )
        .unwrap_err();
        assert!(err.to_string().contains("`fc.weight`"), "{err}");
    }
}
