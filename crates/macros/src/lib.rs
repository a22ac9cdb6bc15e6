//! The `model!` macro of kiln: parse, check shapes at compile time, expand to forward
//! and backward code.
//!
//! Use it through the facade, as `kiln::model!`; its documentation lives there.
//!
//! The macro runs in three stages, one module each: `parse` turns tokens into an AST
//! that keeps every span; `check` builds each layer's `kiln_shape::LayerSpec` (the
//! arguments of each kind are bound in `layers`) and runs the shape rules of
//! `kiln-shape`, the same functions the layers call at run time, collecting every
//! error; `expand` writes the struct and its straight-line forward and backward code
//! (`literals` spells kiln's values as tokens). `suggest` finds the "did you mean".

mod check;
mod expand;
mod layers;
mod literals;
mod parse;
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
/// # Syntax
/// Doc comments and a visibility on the struct (no other attributes), then
/// `input: [dims]` first (`[features]`, `[time, features]` or
/// `[height, width, channels]`), then one `name: Kind` or `name: Kind(args)` per
/// layer. Arguments are positional, then named (`key = value`):
///
/// | layer | positional | named only | defaults |
/// |---|---|---|---|
/// | `Dense` | `units, activation` | | `activation = linear` |
/// | `Conv2d` | `filters, kernel, activation` | `stride, padding` | `stride = 1`, `padding = valid`, `activation = linear` |
/// | `MaxPool2d`, `AvgPool2d` | `size, stride` | `padding` | `stride = size`, `padding = valid` |
/// | `GlobalAvgPool2d`, `Flatten` | | | |
/// | `Dropout` | `rate` | | |
/// | `Relu`, `Sigmoid`, `Tanh`, `Gelu`, `Softmax` | | | |
/// | `LeakyRelu` | `negative_slope` | | `0.3` |
///
/// `kernel`, `stride` and `size` take `3` or `(3, 3)`; `padding` is `valid` or `same`;
/// activations are `linear`, `relu`, `leaky_relu`, `sigmoid`, `tanh`, `gelu`,
/// `softmax`.
///
/// # Checks
/// Every layer's output shape is computed by the rules of `kiln-shape`, the ones the
/// layers run at run time. A wrong model does not compile; each error points at the
/// offending token and all of them are reported at once: a layer that cannot take its
/// input (`` `fc1: Dense(128, relu)` expects a rank-1 input but `pool3` produces
/// [2, 2, 128]: insert `Flatten` (or `GlobalAvgPool2d`) before it ``), an argument out
/// of range, an unknown layer, argument or activation (with "did you mean", Keras and
/// PyTorch names included), a duplicate layer name, a missing input.
///
/// # Generated API
/// `pub struct SeedCnn<B: Backend = Cpu>` with a public field per layer, and a
/// workspace sized once for `max_batch`. Constants `NAME`, `PARAMETERS`,
/// `INPUT_SHAPE`, `OUTPUT_SHAPE`, `LAYERS`, `OUTPUT_ACTIVATION`,
/// `ACTIVATION_FLOATS_PER_SAMPLE` and `summary()` need no backend (`<SeedCnn>::...`);
/// `new(backend, max_batch, seed)`, `forward` (which takes only a
/// `Tensor<Rank3<32, 32, 3>, B>`), `forward_host`, `output`, `backward`, `zero_grad`,
/// `visit_parameters` and `parameters` are inherent methods and implement
/// `kiln::nn::Model`. Forward and backward are straight-line code that allocates
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
