//! The `model!` macro of kiln: parse, check shapes at compile time, expand to forward
//! and backward code.
//!
//! Use it through the facade, as `kiln::model!`; its documentation lives there.
//!
//! The macro runs in stages, one module each: `parse` turns tokens into an AST that
//! keeps every span; `check` binds each layer's arguments to its kind's description
//! in `kiln-shape` (`args`), builds its spec and runs the shape rules, the same
//! functions the layers call at run time, and checks that blocks (`blocks`) fit
//! together, collecting every error; `plan` lowers the checked model to a dataflow
//! graph and plans its backward schedule and workspace; `expand` writes the struct and
//! its straight-line forward and backward code (`literals` spells kiln's values as
//! tokens). `suggest` finds the "did you mean". No layer kind is named here: each is
//! its description.

mod args;
mod blocks;
mod check;
mod expand;
mod literals;
mod parse;
mod plan;
mod suggest;

use proc_macro::TokenStream;

/// Declares a network whose shapes are checked while the crate compiles, and
/// generates its forward and backward code.
///
/// ```text
/// kiln::model! {
///     /// The CNN of the Keras CIFAR-10 tutorial.
///     pub struct SeedCnn {
///         input: [32, 32, 3],            // one sample: height, width, channels
///         conv1: Conv2d(32, 3, relu),    // filters, kernel, activation
///         pool1: MaxPool2d(2),
///         conv2: Conv2d(64, 3, relu),
///         pool2: MaxPool2d(2),
///         conv3: Conv2d(128, 3, relu),
///         pool3: MaxPool2d(2),
///         flat: Flatten,
///         fc1: Dense(128, relu),
///         out: Dense(10, softmax),
///     }
/// }
/// assert_eq!(<SeedCnn>::PARAMETERS, 160_202);
/// ```
///
/// Blocks make the model a graph:
///
/// ```text
/// kiln::model! {
///     pub struct SmallResNet {
///         input: [32, 32, 3],
///         stem: Conv2d(32, 3, padding = same, activation = relu),
///         res1: Residual(activation = relu) {          // relu(x + branch(x))
///             a: Conv2d(32, 3, padding = same, activation = relu),
///             b: Conv2d(32, 3, padding = same),
///         },
///         res2: Residual(activation = relu) {
///             a: Conv2d(64, 3, stride = 2, padding = same, activation = relu),
///             b: Conv2d(64, 3, padding = same),
///             shortcut: Conv2d(64, 1, stride = 2),     // projects the input
///         },
///         mix: Concat {                                // along the channels
///             wide: Conv2d(16, 3, padding = same),
///             narrow: Sequential { squeeze: Conv2d(8, 1), conv: Conv2d(16, 3, padding = same) },
///             skip: Identity,
///         },
///         gap: GlobalAvgPool2d,
///         out: Dense(10, softmax),
///     }
/// }
/// ```
///
/// # Syntax
/// Doc comments and a visibility on the struct (no other attributes), then
/// `input: [dims]` first (`[features]`, `[time, features]` or
/// `[height, width, channels]`), then one `name: Kind` or `name: Kind(args)` per
/// layer, or `name: Block(args) { .. }` for a block of layers (blocks nest). Arguments
/// are positional, then named (`key = value`):
///
#[doc = include_str!(concat!(env!("OUT_DIR"), "/kinds.md"))]
///
/// `kernel`, `stride` and `size` take `3` or `(3, 3)` (a 1-D layer's, `3`); `padding`
/// is `valid`, `same` or, for `Conv1d` over a `[time, features]` sequence, `causal`;
/// activations are `linear`, `relu`, `leaky_relu`, `sigmoid`, `tanh`, `gelu`,
/// `softmax`. Inside a block, names are the block's own: `res2.a`, `res2.shortcut` in
/// the layer table and checkpoints.
///
/// # Checks
/// Every layer's output shape is computed by the rules of `kiln-shape`, the ones the
/// layers run at run time. A wrong model does not compile; each error points at the
/// offending token and all of them are reported at once: a layer that cannot take its
/// input (`` `fc1: Dense(128, relu)` expects a rank-1 input but `pool3` produces
/// [2, 2, 128]: insert `Flatten` (or `GlobalAvgPool2d`) before it ``), a residual
/// branch whose shape differs from what its shortcut carries (with the projection to
/// add), concatenated branches that disagree, an empty block, an argument out of
/// range, an unknown layer, argument or activation (with "did you mean", Keras and
/// PyTorch names included), a duplicate name, a missing input.
///
/// # Generated API
/// `pub struct SeedCnn<B: Backend = Cpu>` with a public field per layer or block (a
/// block's layers are fields of its own struct), and a workspace planned from the
/// graph and sized once for `max_batch`. Constants `NAME`, `PARAMETERS`,
/// `INPUT_SHAPE`, `OUTPUT_SHAPE`, `LAYERS`, `GRAPH` (the dataflow graph as data, which
/// the ONNX exporter walks), `OUTPUT_ACTIVATION`, `WORKSPACE_FLOATS_PER_SAMPLE` and
/// `summary()` need no backend (`<SeedCnn>::...`);
/// `new(backend, max_batch, seed)`, `forward` (which takes only a
/// `Tensor<Rank3<32, 32, 3>, B>`), `forward_host`, `output`, `backward`, `zero_grad`
/// and `criterion(loss)` are inherent methods; the model implements
/// `kiln::nn::Model` and `kiln::kernels::Trainable` (its parameters, their gradients
/// and its saved state). Forward and backward are straight-line code that allocates
/// nothing.
#[proc_macro]
pub fn model(input: TokenStream) -> TokenStream {
    let def = match parse::parse(input.into()) {
        Ok(def) => def,
        Err(err) => return err.into_compile_error().into(),
    };
    match check::check(def) {
        Ok(model) => expand::expand(&model),
        Err((header, err)) => expand::stub(&header, err),
    }
    .into()
}
