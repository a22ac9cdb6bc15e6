//! `GlobalAvgPool2d`: the mean of each channel over the whole image.

use crate::kind::{LayerKind, Spec, Traits};
use crate::window::image;
use crate::{Shape, ShapeError};

/// Average over height and width: `[h, w, c]` to `[c]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GlobalAvgPool2dSpec;

/// `GlobalAvgPool2d`.
pub static GLOBAL_AVG_POOL2D: LayerKind = LayerKind {
    name: "GlobalAvgPool2d",
    aliases: &[
        "GlobalAveragePooling2D",
        "GlobalAvgPool2D",
        "AdaptiveAvgPool2d",
    ],
    about: "the mean of each channel over the image: `[h, w, c]` to `[c]`",
    args: &[],
    runtime: "::kiln::nn::layers::pool2d::GlobalAvgPool2d<B>",
    spec: |_| Box::new(GlobalAvgPool2dSpec),
};

impl Spec for GlobalAvgPool2dSpec {
    fn kind_name(&self) -> &'static str {
        GLOBAL_AVG_POOL2D.name
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, ShapeError> {
        let (_, _, c) = image(input, "global pooling works on images")?;
        Ok(Shape::new(&[c]))
    }

    fn traits(&self) -> Traits {
        // The backward op is average pooling's, which takes the forward's input and
        // output.
        Traits {
            reads_input: true,
            reads_output: true,
            ..Traits::default()
        }
    }

    fn rust(&self) -> String {
        "::kiln::shape::GlobalAvgPool2dSpec".into()
    }
}
