//! The [`Backend`] trait: where buffers live and which ops run on them.
//!
//! Layers, losses and optimizers are written once against this trait: [`Storage`]
//! (the buffers, in [`storage`](crate::storage)) plus one trait per op.
//!
//! Ops work on prefixes: a buffer sized once for the largest batch serves every smaller
//! batch, which is how a model's workspace is reused without reallocation.

use crate::ops::activation::ActivationKernel;
use crate::ops::add::AddKernel;
use crate::ops::bias::BiasKernel;
use crate::ops::concat::ConcatKernel;
use crate::ops::conv2d::Conv2dKernel;
use crate::ops::dropout::DropoutKernel;
use crate::ops::loss::LossKernel;
use crate::ops::matmul::MatmulKernel;
use crate::ops::metric::MetricKernel;
use crate::ops::optimizer::OptimizerKernel;
use crate::ops::pool2d::Pool2dKernel;
use crate::ops::reduce::ReduceKernel;
use crate::storage::Storage;

/// Everything layers, losses and optimizers need from a backend: storage plus every op.
///
/// Each op is a trait of its own, in its own folder under [`ops`](crate::ops) with the
/// CPU math and (with the `cuda` feature) the CUDA kernel side by side.
pub trait Backend:
    Storage
    + MatmulKernel
    + Conv2dKernel
    + Pool2dKernel
    + ActivationKernel
    + BiasKernel
    + AddKernel
    + ConcatKernel
    + DropoutKernel
    + LossKernel
    + MetricKernel
    + OptimizerKernel
    + ReduceKernel
{
}

impl<T> Backend for T where
    T: Storage
        + MatmulKernel
        + Conv2dKernel
        + Pool2dKernel
        + ActivationKernel
        + BiasKernel
        + AddKernel
        + ConcatKernel
        + DropoutKernel
        + LossKernel
        + MetricKernel
        + OptimizerKernel
        + ReduceKernel
{
}
