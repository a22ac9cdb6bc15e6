//! Stage 2: the AST to a checked model (a tree of layers and blocks), or every error
//! of the model at once.
//!
//! Each layer's arguments are bound to its kind's description (`args.rs`), its spec
//! built, validated and given its input shape by the rules of `kiln-shape`; nothing
//! here knows a shape rule. Blocks (`blocks.rs`) check that their branches fit
//! together. Errors are collected, never thrown, each spanned on the user's token. A
//! layer whose output shape is unknown (it failed, or one before it did) ends the
//! shape checks of its chain silently, so each real mistake gives one error, not a
//! cascade.

use std::collections::HashSet;

use kiln_shape::{Activation, LayerKind, Shape, ShapeError, Spec, kind};
use proc_macro2::Span;
use syn::{Attribute, Ident, Visibility};

use crate::args::{self, Bound};
use crate::blocks::{BlockKind, residual_activation_fuses};
use crate::parse::{Field, LayerField, ModelDef, ShapeField};
use crate::suggest::{self, did_you_mean};

/// What the struct needs even when the model is wrong: a stub of that name is emitted
/// so that the user's other uses of it do not fail too.
pub struct Header {
    /// The doc comments.
    pub docs: Vec<Attribute>,
    /// The visibility.
    pub vis: Visibility,
    /// The struct's name.
    pub name: Ident,
}

/// A model whose every layer fits.
pub struct Model {
    /// Name, docs and visibility.
    pub header: Header,
    /// One sample's input shape.
    pub input: Shape,
    /// Where the input shape is written, for the methods that take an input batch.
    pub input_span: Span,
    /// The layers and blocks, in order.
    pub nodes: Vec<Node>,
}

/// A layer or a block.
pub enum Node {
    /// A layer.
    Layer(Layer),
    /// A block of layers.
    Block(Block),
}

/// A checked layer.
pub struct Layer {
    /// The field name.
    pub name: Ident,
    /// The fields from the model down to it: `[res2, shortcut]`.
    pub access: Vec<Ident>,
    /// The name qualified by its blocks' (`res2.shortcut`), raw identifiers unrawed:
    /// its label in the layer table and checkpoints.
    pub path: String,
    /// The kind and arguments as written: `Conv2d(32, 3, relu)`.
    pub source: String,
    /// The kind's description.
    pub kind: &'static LayerKind,
    /// The arguments.
    pub spec: Box<dyn Spec>,
    /// One sample's input shape.
    pub input: Shape,
    /// One sample's output shape.
    pub output: Shape,
    /// Trainable parameters.
    pub parameters: usize,
    /// Values saved but not trained (running statistics).
    pub state: usize,
}

/// A checked block.
pub struct Block {
    /// The field name.
    pub name: Ident,
    /// The name qualified by its blocks'.
    pub path: String,
    /// Residual, concatenation or chain.
    pub kind: BlockKind,
    /// A residual block's activation after the sum (`Linear` for none, and for the
    /// other kinds).
    pub activation: Activation,
    /// A chain's layers (the branch of a residual block), or a concatenation's
    /// branches.
    pub body: Vec<Node>,
    /// A residual block's shortcut, when given (the identity otherwise).
    pub shortcut: Option<Box<Node>>,
    /// Whether the shortcut was written before the branch (it then comes first in
    /// the struct and the parameter order).
    pub shortcut_first: bool,
    /// One sample's output shape.
    pub output: Shape,
    /// Trainable parameters of the layers inside.
    pub parameters: usize,
    /// Values the layers inside save but do not train.
    pub state: usize,
}

impl Node {
    /// The field name.
    pub fn name(&self) -> &Ident {
        match self {
            Self::Layer(l) => &l.name,
            Self::Block(b) => &b.name,
        }
    }

    /// The qualified name.
    pub fn path(&self) -> &str {
        match self {
            Self::Layer(l) => &l.path,
            Self::Block(b) => &b.path,
        }
    }

    /// One sample's output shape.
    pub fn output(&self) -> Shape {
        match self {
            Self::Layer(l) => l.output,
            Self::Block(b) => b.output,
        }
    }

    /// Trainable parameters.
    pub fn parameters(&self) -> usize {
        match self {
            Self::Layer(l) => l.parameters,
            Self::Block(b) => b.parameters,
        }
    }

    /// Values saved but not trained.
    pub fn state(&self) -> usize {
        match self {
            Self::Layer(l) => l.state,
            Self::Block(b) => b.state,
        }
    }
}

impl Block {
    /// The block's children in the order they were written (a residual block's
    /// shortcut before or after its branch).
    pub fn children(&self) -> Vec<&Node> {
        let shortcut = self.shortcut.as_deref();
        if self.shortcut_first {
            shortcut.into_iter().chain(&self.body).collect()
        } else {
            self.body.iter().chain(shortcut).collect()
        }
    }
}

/// Checks the model; on failure returns its header (for the stub) and every error
/// combined into one.
pub fn check(def: ModelDef) -> Result<Model, (Header, syn::Error)> {
    let mut errors = def.errors;
    let docs = docs_only(def.attrs, &mut errors);
    let header = Header {
        docs,
        vis: def.vis,
        name: def.name,
    };

    let mut fields = def.fields.into_iter().peekable();
    let mut input_span = header.name.span();
    // `None`: no input (already reported, or a syntax error stands for it).
    let input = match fields.peek() {
        Some(Field::Shape(_)) => match fields.next() {
            Some(Field::Shape(shape)) => {
                input_span = shape.bracket.span.join();
                input_shape(&shape, &mut errors)
            }
            _ => None,
        },
        Some(Field::Layer(layer)) if layer.name == "input" => {
            errors.push(syn::Error::new_spanned(
                &layer.call,
                "`input` is the shape of one sample, like `[32, 32, 3]` or `[64]`",
            ));
            fields.next();
            None
        }
        Some(Field::Broken(_)) => None,
        Some(Field::Layer(_)) | None => {
            errors.push(syn::Error::new_spanned(
                &header.name,
                format!(
                    "`{}` has no input shape: begin with `input: [height, width, channels]` or `input: [features]`",
                    header.name
                ),
            ));
            None
        }
    };

    let fields: Vec<Field> = fields.collect();
    let mut checker = Checker { errors };
    let none_after_input = fields.is_empty();
    let scope = Scope {
        prefix: String::new(),
        fields: Vec::new(),
        block: None,
    };
    let (nodes, _) = checker.chain(fields, &scope, input.map(|s| (s, Source::Input)));
    let mut errors = checker.errors;

    if none_after_input && input.is_some() {
        errors.push(syn::Error::new_spanned(
            &header.name,
            format!(
                "`{}` has no layers: add at least one after its input",
                header.name
            ),
        ));
    }
    let total = nodes
        .iter()
        .try_fold(0usize, |sum, n| sum.checked_add(n.parameters()));
    if total.is_none() {
        errors.push(syn::Error::new_spanned(
            &header.name,
            format!(
                "`{}` has more parameters than `usize` can count: make its layers smaller",
                header.name
            ),
        ));
    }
    let mut errors = errors.into_iter();
    match (errors.next(), input) {
        (None, Some(input)) => Ok(Model {
            header,
            input,
            input_span,
            nodes,
        }),
        (first, _) => {
            // A missing input is always reported, so `first` is never `None` here.
            let mut first = first.unwrap_or_else(|| {
                syn::Error::new_spanned(&header.name, "the model has no input shape")
            });
            first.extend(errors);
            Err((header, first))
        }
    }
}

/// Keeps the doc comments, and reports every other attribute.
fn docs_only(attrs: Vec<Attribute>, errors: &mut Vec<syn::Error>) -> Vec<Attribute> {
    let mut docs = Vec::new();
    for attr in attrs {
        if attr.path().is_ident("doc") {
            docs.push(attr);
        } else if attr.path().is_ident("derive") {
            errors.push(syn::Error::new_spanned(
                &attr,
                "`#[derive]` is not available on a `model!` struct: the macro writes its impls, and its fields are backend buffers",
            ));
        } else {
            errors.push(syn::Error::new_spanned(
                &attr,
                "`model!` takes only doc comments (`///`) on its struct",
            ));
        }
    }
    docs
}

/// The input shape, if its dimensions are valid.
fn input_shape(field: &ShapeField, errors: &mut Vec<syn::Error>) -> Option<Shape> {
    if field.name != "input" {
        errors.push(syn::Error::new_spanned(
            &field.name,
            format!(
                "the input shape is named `input`, not `{}`: `input: [32, 32, 3]`",
                field.name
            ),
        ));
    }
    let before = errors.len();
    let mut dims = Vec::new();
    for lit in &field.dims {
        match lit.base10_parse::<usize>() {
            Ok(0) => errors.push(syn::Error::new_spanned(
                lit,
                "an input dimension must be at least 1, got 0",
            )),
            Ok(dim) => dims.push(dim),
            Err(err) => errors.push(err),
        }
    }
    if errors.len() > before {
        return None;
    }
    if !(1..=3).contains(&dims.len()) {
        errors.push(syn::Error::new_spanned(
            field,
            format!(
                "an input shape of rank {} is not supported: write `[features]`, `[time, features]` or `[height, width, channels]`",
                dims.len()
            ),
        ));
        return None;
    }
    let mut shape = Shape::try_new(&dims)?;
    if let Some((word, vocabulary)) = &field.tokens {
        match vocabulary.base10_parse::<usize>() {
            Ok(0) => {
                errors.push(syn::Error::new_spanned(
                    vocabulary,
                    "a vocabulary must hold at least 1 token, got 0",
                ));
                return None;
            }
            Ok(v) if dims.len() == 1 => shape = Shape::tokens(&dims, v),
            Ok(_) => {
                errors.push(syn::Error::new_spanned(
                    word,
                    format!(
                        "token ids form a sequence of rank 1, `tokens[time] of vocabulary`, not rank {}",
                        dims.len()
                    ),
                ));
                return None;
            }
            Err(err) => {
                errors.push(err);
                return None;
            }
        }
    }
    if shape.checked_size().is_none() {
        errors.push(syn::Error::new_spanned(
            field,
            format!("an input of shape {shape} has more values than `usize` can count"),
        ));
        return None;
    }
    if shape.size() > MAX_TENSOR {
        errors.push(syn::Error::new_spanned(
            field,
            format!(
                "an input of shape {shape} has {} values a sample, more than the {MAX_TENSOR} that kernels index with 32 bits",
                shape.size()
            ),
        ));
        return None;
    }
    Some(shape)
}

/// The most values one sample of a tensor (an input, a layer's output, a layer's
/// parameters) may hold: kernels index with 32 bits.
const MAX_TENSOR: usize = u32::MAX as usize;

/// Why a layer's output or parameters are too large to index, if they are.
fn too_large(output: &Shape, parameters: usize) -> Option<String> {
    match output.checked_size() {
        None => Some(format!(
            "produces {output}, more values than `usize` can count"
        )),
        Some(n) if n > MAX_TENSOR => Some(format!(
            "produces {output}, {n} values a sample, more than the {MAX_TENSOR} that kernels index with 32 bits"
        )),
        Some(_) if parameters > MAX_TENSOR => Some(format!(
            "has {parameters} parameters, more than the {MAX_TENSOR} that kernels index with 32 bits"
        )),
        Some(_) => None,
    }
}

/// Where a shape came from, for messages: "`pool3` produces [2, 2, 128]".
#[derive(Clone)]
enum Source {
    /// The model's input.
    Input,
    /// The input of the block with this path.
    BlockInput(String),
    /// The layer or block with this path.
    Node(String),
}

impl Source {
    fn produces(&self, shape: &Shape) -> String {
        match self {
            Self::Input => format!("the input is {shape}"),
            Self::BlockInput(block) => format!("the input of `{block}` is {shape}"),
            Self::Node(path) => format!("`{path}` produces {shape}"),
        }
    }
}

/// Where a chain of layers is: its names' prefix, and its block.
struct Scope {
    /// `res2.`, or empty at the top.
    prefix: String,
    /// The fields from the model down to the block.
    fields: Vec<Ident>,
    /// The block's path and kind, or `None` at the top.
    block: Option<(String, BlockKind)>,
}

impl Scope {
    fn path(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn access(&self, name: &Ident) -> Vec<Ident> {
        self.fields.iter().chain([name]).cloned().collect()
    }

    fn inside(&self, name: &Ident, path: &str, kind: BlockKind) -> Scope {
        Scope {
            prefix: format!("{path}."),
            fields: self.access(name),
            block: Some((path.to_string(), kind)),
        }
    }
}

/// A shape, and where it came from; `None` once unknown.
type Current = Option<(Shape, Source)>;

struct Checker {
    errors: Vec<syn::Error>,
}

impl Checker {
    /// Checks `fields` as a chain starting from `current`, in `scope`; the nodes that
    /// checked and the shape at the end of the chain.
    fn chain(
        &mut self,
        fields: Vec<Field>,
        scope: &Scope,
        mut current: Current,
    ) -> (Vec<Node>, Current) {
        let mut names = HashSet::new();
        let mut nodes = Vec::new();
        for field in fields {
            match field {
                Field::Broken(err) => {
                    self.errors.push(err);
                    current = None;
                }
                Field::Shape(shape) => {
                    let message = if shape.name == "input" && scope.block.is_none() {
                        "the input shape must come first, before the layers"
                    } else {
                        "only `input` takes a shape; a layer is written `name: Kind(args)`, like `fc1: Dense(128, relu)`"
                    };
                    self.errors.push(syn::Error::new_spanned(&shape, message));
                    current = None;
                }
                Field::Layer(layer) => {
                    self.name(&layer.name, scope, &mut names);
                    match self.node(layer, scope, current.clone()) {
                        Some(node) => {
                            current = Some((node.output(), Source::Node(node.path().to_string())));
                            nodes.push(node);
                        }
                        None => current = None,
                    }
                }
            }
        }
        (nodes, current)
    }

    /// Checks the field's name: unique in its block, not reserved.
    fn name(&mut self, name: &Ident, scope: &Scope, names: &mut HashSet<String>) {
        let label = label(name);
        if label == "input" && scope.block.is_none() {
            self.errors.push(syn::Error::new_spanned(
                name,
                "`input` names the model's input shape: give this layer another name",
            ));
        } else if label.contains("__") {
            self.errors.push(syn::Error::new_spanned(
                name,
                "layer names with `__` are reserved for the fields kiln generates",
            ));
        } else if !names.insert(label.clone()) {
            let place = match &scope.block {
                Some((block, _)) => format!(" in `{block}`"),
                None => String::new(),
            };
            self.errors.push(syn::Error::new_spanned(
                name,
                format!(
                    "there is already a layer named `{label}`{place}: layer names become the struct's fields and must be unique"
                ),
            ));
        }
    }

    /// Checks one layer or block fed `current`.
    fn node(&mut self, field: LayerField, scope: &Scope, current: Current) -> Option<Node> {
        let kind_name = field.call.kind.to_string();
        if let Some(block) = BlockKind::from_name(&kind_name) {
            return self.block(field, block, scope, current).map(Node::Block);
        }
        let Some(kind) = kind(&kind_name) else {
            self.unknown_kind(&field.call.kind);
            return None;
        };
        if let Some((brace, _)) = &field.call.body {
            self.errors.push(syn::Error::new(
                brace.span.join(),
                format!(
                    "`{kind_name}` is a layer and takes no `{{ .. }}`; the blocks are `Residual`, `Concat` and `Sequential`"
                ),
            ));
        }
        self.layer(&field, kind, scope, current).map(Node::Layer)
    }

    fn unknown_kind(&mut self, kind: &Ident) {
        let kind_name = kind.to_string();
        let mut names: Vec<&str> = kiln_shape::KINDS.iter().map(|k| k.name).collect();
        let layers = suggest::list(&names);
        let blocks: Vec<&str> = BlockKind::ALL.iter().map(|b| b.name()).collect();
        names.extend(&blocks);
        let aliases: Vec<(&str, &str)> = kiln_shape::KINDS
            .iter()
            .flat_map(|k| k.aliases.iter().map(|a| (*a, k.name)))
            .chain(
                BlockKind::ALL
                    .iter()
                    .flat_map(|b| b.aliases().iter().map(|a| (*a, b.name()))),
            )
            .collect();
        let tail = did_you_mean(&kind_name, &names, &aliases, || {
            format!(
                "the layers are {layers}, and the blocks {}",
                suggest::list(&blocks)
            )
        });
        self.errors.push(syn::Error::new_spanned(
            kind,
            format!("unknown layer `{kind_name}`{tail}"),
        ));
    }

    /// Builds, validates and shape-checks a layer.
    fn layer(
        &mut self,
        field: &LayerField,
        kind: &'static LayerKind,
        scope: &Scope,
        current: Current,
    ) -> Option<Layer> {
        let call = &field.call;
        let Bound { args, written } = args::bind(kind.name, kind.args, call, &mut self.errors);
        let spec = (kind.spec)(&args?);
        let path = scope.path(&label(&field.name));
        let source = call.to_string();

        let mut problems = spec.validate();
        if problems.iter().any(|p| written.contains_key(p.argument)) {
            // `MaxPool2d(0)` also has a zero stride, by default: one mistake.
            problems.retain(|p| written.contains_key(p.argument));
        }
        for problem in &problems {
            let message = format!("`{path}: {source}`: {problem}");
            self.errors.push(match written.get(problem.argument) {
                Some(tokens) => syn::Error::new_spanned(tokens, message),
                None => syn::Error::new_spanned(call, message),
            });
        }
        if !problems.is_empty() {
            return None;
        }

        let (input, from) = current?;
        let output = match spec.output_for(&input) {
            Ok(output) => output,
            Err(err) => {
                let message = shape_message(&path, &source, &from, &err);
                self.errors.push(syn::Error::new_spanned(call, message));
                return None;
            }
        };
        let Some(parameters) = spec.parameter_count(&input) else {
            self.errors.push(syn::Error::new_spanned(
                call,
                format!(
                    "`{path}: {source}` has more parameters than `usize` can count on an input of {input}"
                ),
            ));
            return None;
        };
        if let Some(problem) = too_large(&output, parameters) {
            self.errors.push(syn::Error::new_spanned(
                call,
                format!("`{path}: {source}` on an input of {input} {problem}"),
            ));
            return None;
        }
        let state = spec.state_count(&input);
        Some(Layer {
            name: field.name.clone(),
            access: scope.access(&field.name),
            path,
            source,
            kind,
            spec,
            input,
            output,
            parameters,
            state,
        })
    }

    /// Checks a block: its arguments, its body, and that its branches fit together.
    fn block(
        &mut self,
        field: LayerField,
        kind: BlockKind,
        scope: &Scope,
        current: Current,
    ) -> Option<Block> {
        let path = scope.path(&label(&field.name));
        let head = format!("`{path}: {}`", kind.name());
        let Bound { args, written } =
            args::bind(kind.name(), kind.args(), &field.call, &mut self.errors);
        let activation = args
            .as_ref()
            .map_or(Activation::Linear, |a| a.activation("activation"));
        if !residual_activation_fuses(activation) {
            let message = format!(
                "{head}: the sum can apply `linear`, `relu`, `leaky_relu`, `sigmoid` or `tanh`, not `{}`; put a `{}` layer after the block instead",
                activation.name(),
                Spec::kind_name(&activation)
            );
            let at = written.get("activation");
            self.errors.push(match at {
                Some(tokens) => syn::Error::new_spanned(tokens, message),
                None => syn::Error::new_spanned(&field.call, message),
            });
        }
        let Some((_, fields)) = field.call.body else {
            self.errors.push(syn::Error::new_spanned(
                &field.call,
                format!(
                    "`{}` is a block: write its layers between braces, `{}: {} {{ a: .., b: .. }}`",
                    kind.name(),
                    label(&field.name),
                    kind.name()
                ),
            ));
            return None;
        };
        let inner = scope.inside(&field.name, &path, kind);
        let input = current.as_ref().map(|(shape, _)| *shape);
        let entry = current.map(|(shape, _)| (shape, Source::BlockInput(path.clone())));

        // A residual block's `shortcut` is apart from its branch.
        let mut shortcut_field = None;
        let mut shortcut_first = false;
        let mut body_fields = Vec::new();
        for f in fields {
            match f {
                Field::Layer(layer) if layer.name == "shortcut" => {
                    if kind != BlockKind::Residual {
                        self.errors.push(syn::Error::new_spanned(
                            &layer.name,
                            format!(
                                "`shortcut` is the projection of a `Residual` block; in a `{}` give this layer another name",
                                kind.name()
                            ),
                        ));
                    } else if shortcut_field.is_some() {
                        self.errors.push(syn::Error::new_spanned(
                            &layer.name,
                            format!("{head} has two shortcuts: write several layers as `shortcut: Sequential {{ .. }}`"),
                        ));
                    } else {
                        shortcut_first = body_fields.is_empty();
                        shortcut_field = Some(layer);
                    }
                }
                other => body_fields.push(other),
            }
        }
        if body_fields.is_empty() {
            let needs = match kind {
                BlockKind::Residual => "its branch needs at least one layer",
                BlockKind::Concat => "it needs at least two branches",
                BlockKind::Sequential => "it needs at least one layer",
            };
            self.errors.push(syn::Error::new_spanned(
                &field.name,
                format!("{head} is empty: {needs}"),
            ));
            return None;
        }

        let (body, end) = match kind {
            BlockKind::Residual | BlockKind::Sequential => {
                let (nodes, end) = self.chain(body_fields, &inner, entry.clone());
                (nodes, end.map(|(shape, _)| shape))
            }
            BlockKind::Concat => self.concat(body_fields, &inner, &head, entry.clone()),
        };
        let shortcut = shortcut_field.and_then(|f| self.shortcut(f, &inner, &head, entry.clone()));
        let output = end?;
        let input = input?;
        if kind == BlockKind::Residual {
            let carried = shortcut.as_ref().map_or(input, |s| s.output());
            if carried != output {
                let projection = projection(&input, &output);
                let message = match (&shortcut, projection) {
                    (Some(s), Some(p)) => format!(
                        "{head}: its branch produces {output} but its shortcut `{}` produces {carried}: the two are added, so they must have the same shape; `shortcut: {p}` would project the input",
                        s.path()
                    ),
                    (Some(s), None) => format!(
                        "{head}: its branch produces {output} but its shortcut `{}` produces {carried}: the two are added, so they must have the same shape",
                        s.path()
                    ),
                    (None, Some(p)) => format!(
                        "{head}: its branch produces {output} but its input is {input}, which the shortcut carries unchanged: add `shortcut: {p}` to project it"
                    ),
                    (None, None) => format!(
                        "{head}: its branch produces {output} but its input is {input}, which the shortcut carries unchanged: add a `shortcut:` that maps the input to the branch's shape"
                    ),
                };
                self.errors
                    .push(syn::Error::new_spanned(&field.call.kind, message));
                return None;
            }
        }
        let parameters = body
            .iter()
            .chain(shortcut.as_ref())
            .try_fold(0usize, |sum, n| sum.checked_add(n.parameters()))?;
        let state = body
            .iter()
            .chain(shortcut.as_ref())
            .map(Node::state)
            .fold(0usize, usize::saturating_add);
        Some(Block {
            name: field.name,
            path,
            kind,
            activation,
            body,
            shortcut: shortcut.map(Box::new),
            shortcut_first,
            output,
            parameters,
            state,
        })
    }

    /// A residual block's shortcut: a layer or block applied to the block's input.
    fn shortcut(
        &mut self,
        field: LayerField,
        scope: &Scope,
        head: &str,
        entry: Current,
    ) -> Option<Node> {
        if field.call.kind == "Identity" && field.call.body.is_none() {
            self.errors.push(syn::Error::new_spanned(
                &field.call,
                format!(
                    "{head}: the shortcut is the identity unless given: remove `shortcut: Identity`"
                ),
            ));
            return None;
        }
        let (mut nodes, _) = self.chain(vec![Field::Layer(field)], scope, entry);
        nodes.pop()
    }

    /// A concatenation's branches, each applied to the block's input; the shape of
    /// the concatenation.
    fn concat(
        &mut self,
        fields: Vec<Field>,
        scope: &Scope,
        head: &str,
        entry: Current,
    ) -> (Vec<Node>, Option<Shape>) {
        if let [Field::Layer(only)] = fields.as_slice() {
            self.errors.push(syn::Error::new_spanned(
                &only.name,
                format!("{head} has one branch: a concatenation needs two or more (write the layer without the block)"),
            ));
        }
        let mut names = HashSet::new();
        let mut branches = Vec::new();
        let mut known = fields.len() > 1;
        for field in fields {
            match field {
                Field::Layer(layer) => {
                    self.name(&layer.name, scope, &mut names);
                    match self.node(layer, scope, entry.clone()) {
                        Some(node) => branches.push(node),
                        None => known = false,
                    }
                }
                Field::Broken(err) => {
                    self.errors.push(err);
                    known = false;
                }
                Field::Shape(shape) => {
                    self.errors.push(syn::Error::new_spanned(
                        &shape,
                        "only `input` takes a shape; a branch is written `name: Kind(args)`",
                    ));
                    known = false;
                }
            }
        }
        if !known || entry.is_none() {
            return (branches, None);
        }
        let first = branches[0].output();
        let mut last = 0usize;
        for branch in &branches {
            let shape = branch.output();
            let dims = shape.dims();
            let agree = shape.rank() == first.rank()
                && dims[..dims.len() - 1] == first.dims()[..first.rank() - 1];
            if !agree {
                let axes = if first.rank() > 1 {
                    "every axis but the last"
                } else {
                    "their rank"
                };
                self.errors.push(syn::Error::new_spanned(
                    branch.name(),
                    format!(
                        "{head}: its branches must agree on {axes}, but `{}` produces {first} and `{}` produces {shape}",
                        branches[0].path(),
                        branch.path()
                    ),
                ));
                return (branches, None);
            }
            last += dims[dims.len() - 1];
        }
        let mut dims = first.dims().to_vec();
        if let Some(d) = dims.last_mut() {
            *d = last;
        }
        (branches, Shape::try_new(&dims))
    }
}

/// The layer that projects a residual block's `input` to its branch's `output`: a
/// 1x1 convolution (1-wide over sequences) with the stride that gives the branch's
/// size, or a dense layer on vectors; `None` when no single such layer does.
fn projection(input: &Shape, output: &Shape) -> Option<String> {
    match (input.dims(), output.dims()) {
        (&[h, w, _], &[oh, ow, c]) => {
            let stride = (1..=h.max(w)).find(|s| h.div_ceil(*s) == oh && w.div_ceil(*s) == ow);
            match stride? {
                1 => Some(format!("Conv2d({c}, 1)")),
                s => Some(format!("Conv2d({c}, 1, stride = {s})")),
            }
        }
        (&[t, _], &[ot, c]) => match (1..=t).find(|s| t.div_ceil(*s) == ot)? {
            1 => Some(format!("Conv1d({c}, 1)")),
            s => Some(format!("Conv1d({c}, 1, stride = {s})")),
        },
        (&[_], &[units]) => Some(format!("Dense({units})")),
        _ => None,
    }
}

/// `` `fc1: Dense(128)` expects a rank-1 input but `pool3` produces [2, 2, 128]: insert `Flatten` ``
fn shape_message(path: &str, source: &str, from: &Source, err: &ShapeError) -> String {
    let mut message = format!(
        "`{path}: {source}` expects {} but {}",
        err.expected,
        from.produces(&err.got)
    );
    if let Some(hint) = &err.hint {
        message.push_str(": ");
        message.push_str(hint);
    }
    message
}

/// The identifier as a string, without `r#`.
fn label(ident: &Ident) -> String {
    let s = ident.to_string();
    s.strip_prefix("r#")
        .map_or_else(|| s.clone(), str::to_string)
}

#[cfg(test)]
mod tests;
