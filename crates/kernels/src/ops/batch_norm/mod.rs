//! Batch normalisation over the channels of a `rows x channels` batch, with the
//! activation that follows it applied in the same pass.
//!
//! A batch is row-major with the channels last and contiguous: an NHWC image batch is
//! `rows = batch * height * width` rows, a batch of vectors `rows = batch`. For each
//! channel `c`, over all rows, with the batch's mean and biased variance `var` (a
//! training pass) or the running statistics (an inference pass):
//!
//! ```text
//! invstd = 1 / sqrt(var + epsilon)
//! xhat   = (x - mean) * invstd
//! y      = act(gamma[c] * xhat + beta[c])
//! ```
//!
//! The batch statistics are sums over rows in `f64`, of the values less the channel's
//! first value (which keeps the variance exact when the mean is large beside the
//! spread), in a fixed order on every backend: per band of rows into the workspace,
//! then the bands in order. The same inputs give the same bits on every run.
//!
//! # Backward
//!
//! [`BatchNormKernel::batch_norm_bwd`] starts from the gradient at the pre-activation
//! (the layer applies the activation's backward from the output, which is why only
//! the activations that [fuse into an epilogue](ActivationKind::fuses_into_epilogue)
//! are accepted) and reads the forward's input and its saved mean and `invstd`.

pub(crate) mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;
#[cfg(test)]
mod tests;

use super::activation::ActivationKind;
use super::{InputGrad, u32_of, us};
use crate::error::check_len;
use crate::storage::Storage;
use crate::{Error, Result};

/// A batch of `rows x channels` values, the constants of the normalisation and the
/// activation applied after it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormParams {
    /// Rows: every value of a channel but the channel (samples, or pixels over the
    /// batch).
    pub rows: u32,
    /// Channels (the last, contiguous axis).
    pub channels: u32,
    /// Added to the variance before its square root.
    pub epsilon: f32,
    /// Keras's meaning: `running = momentum * running + (1 - momentum) * batch
    /// statistic` (PyTorch's `momentum` is 1 minus this).
    pub momentum: f32,
    /// Whether the running variance takes the batch's unbiased variance
    /// (`var * rows / (rows - 1)`, as PyTorch) or the biased one (as Keras). The
    /// normalisation itself always divides by the biased one.
    pub unbiased: bool,
    /// Applied after the affine map; only kinds that
    /// [fuse into an epilogue](ActivationKind::fuses_into_epilogue).
    pub activation: ActivationKind,
    /// Slope below zero for [`ActivationKind::LeakyRelu`].
    pub negative_slope: f32,
}

impl BatchNormParams {
    /// `rows x channels` with Keras's defaults: `epsilon` 1e-3, `momentum` 0.99, the
    /// biased variance for the running one, no activation.
    pub fn new(rows: usize, channels: usize) -> Result<Self> {
        Ok(Self {
            rows: u32_of("batch_norm", "rows", rows)?,
            channels: u32_of("batch_norm", "channels", channels)?,
            epsilon: 1e-3,
            momentum: 0.99,
            unbiased: false,
            activation: ActivationKind::Linear,
            negative_slope: 0.0,
        })
    }

    /// Values of a batch: `rows * channels`.
    pub fn len(&self) -> usize {
        us(self.rows) * us(self.channels)
    }

    /// Whether a batch holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks a forward pass (`training`: from the batch's statistics): the
    /// parameters, the lengths of `x`, `gamma`, `beta`, `running`, `saved` and `y`, and
    /// the workspace's where the pass takes one.
    pub(crate) fn check_forward<B: BatchNormKernel>(
        &self,
        backend: &B,
        op: &'static str,
        training: bool,
        [x, gamma, beta, running_mean, running_var, saved, y]: [&B::Buffer; 7],
        ws: Option<&B::Buffer>,
    ) -> Result<()> {
        self.check(op, training)?;
        let (n, c) = (self.len(), us(self.channels));
        let operands = [
            ("x", x, n),
            ("gamma", gamma, c),
            ("beta", beta, c),
            ("running_mean", running_mean, c),
            ("running_var", running_var, c),
            ("saved", saved, 2 * c),
            ("y", y, n),
        ];
        for (name, buffer, needed) in operands
            .into_iter()
            .chain(ws.map(|ws| ("ws", ws, backend.batch_norm_workspace_len(self))))
        {
            check_len(op, name, needed, backend.len(buffer))?;
        }
        Ok(())
    }

    /// Checks a backward pass: the parameters, the lengths of `x`, `dy`, `saved`,
    /// `gamma`, `dgamma` and `dbeta`, `dx` where there is one, and the workspace.
    pub(crate) fn check_backward<B: BatchNormKernel>(
        &self,
        backend: &B,
        training: bool,
        [x, dy, saved, gamma, dgamma, dbeta]: [&B::Buffer; 6],
        dx: Option<&B::Buffer>,
        ws: &B::Buffer,
    ) -> Result<()> {
        const OP: &str = "batch_norm_bwd";
        self.check(OP, training)?;
        let (n, c) = (self.len(), us(self.channels));
        let operands = [
            ("x", x, n),
            ("dy", dy, n),
            ("saved", saved, 2 * c),
            ("gamma", gamma, c),
            ("dgamma", dgamma, c),
            ("dbeta", dbeta, c),
            ("ws", ws, backend.batch_norm_workspace_len(self)),
        ];
        for (name, buffer, needed) in operands.into_iter().chain(dx.map(|dx| ("dx", dx, n))) {
            check_len(OP, name, needed, backend.len(buffer))?;
        }
        Ok(())
    }

    /// Refuses an activation that does not fuse, and a training pass over fewer than
    /// two rows.
    fn check(&self, op: &'static str, training: bool) -> Result<()> {
        let invalid = |detail: String| Err(Error::InvalidParams { op, detail });
        if !self.activation.fuses_into_epilogue() {
            return invalid(format!(
                "{:?} cannot be fused after a batch normalisation; apply it as an op of \
                 its own",
                self.activation
            ));
        }
        if training && self.rows < 2 {
            return invalid(format!(
                "a training pass needs at least 2 rows a channel to have a variance, got \
                 {}; use a larger batch, or the running statistics (inference)",
                self.rows
            ));
        }
        Ok(())
    }
}

/// The batch normalisation op.
///
/// ```
/// use kiln_kernels::ops::batch_norm::{BatchNormKernel, BatchNormParams};
/// use kiln_kernels::{Cpu, Storage};
///
/// let cpu = Cpu::with_threads(1)?;
/// let p = BatchNormParams { epsilon: 0.0, ..BatchNormParams::new(2, 1)? };
/// let x = cpu.alloc_from(&[1.0, 3.0])?;
/// let (gamma, beta) = (cpu.alloc_from(&[2.0])?, cpu.alloc_from(&[0.5])?);
/// let (mut mean, mut var) = (cpu.alloc_from(&[0.0])?, cpu.alloc_from(&[1.0])?); // running
/// let (mut saved, mut y) = (cpu.alloc(2)?, cpu.alloc(2)?);
/// let mut ws = cpu.alloc(cpu.batch_norm_workspace_len(&p))?;
/// cpu.batch_norm_fwd_train(&p, &x, &gamma, &beta, &mut mean, &mut var, &mut saved, &mut y, &mut ws)?;
/// assert_eq!(cpu.to_host(&y, 2)?, [-1.5, 2.5]);
/// assert_eq!(cpu.to_host(&saved, 2)?, [2.0, 1.0]); // mean 2, 1 / sqrt(variance 1)
/// # Ok::<(), kiln_kernels::Error>(())
/// ```
pub trait BatchNormKernel: Storage {
    /// Elements of the scratch buffer the passes use for geometry `p` (its rows being
    /// the most used): partial sums per band of rows, and per-channel coefficients.
    fn batch_norm_workspace_len(&self, p: &BatchNormParams) -> usize;

    /// The training forward pass: the batch's per-channel mean and `invstd` into
    /// `saved` (`2 * channels` values: the means, then the `invstd`s), `running` (the
    /// running means, then the running variances) moved towards the batch's with
    /// [`momentum`](BatchNormParams::momentum), and `y = act(gamma * xhat + beta)`.
    /// Fewer than 2 rows is an [`Error::InvalidParams`]: one value a channel has no
    /// variance.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_fwd_train(
        &self,
        p: &BatchNormParams,
        x: &Self::Buffer,
        gamma: &Self::Buffer,
        beta: &Self::Buffer,
        running_mean: &mut Self::Buffer,
        running_var: &mut Self::Buffer,
        saved: &mut Self::Buffer,
        y: &mut Self::Buffer,
        ws: &mut Self::Buffer,
    ) -> Result<()>;

    /// The inference forward pass, from the running statistics. It also writes `saved`
    /// (the running means and `1 / sqrt(running variance + epsilon)`), so that a
    /// backward pass after it differentiates the inference map.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_fwd_eval(
        &self,
        p: &BatchNormParams,
        x: &Self::Buffer,
        gamma: &Self::Buffer,
        beta: &Self::Buffer,
        running_mean: &Self::Buffer,
        running_var: &Self::Buffer,
        saved: &mut Self::Buffer,
        y: &mut Self::Buffer,
    ) -> Result<()>;

    /// The backward pass from the output gradient `dy` at the pre-activation, the
    /// forward's input `x` and its `saved` statistics: `dgamma[c] += sum(dy * xhat)`,
    /// `dbeta[c] += sum(dy)` and, unless `dx` is `None`, the input gradient written or
    /// [added](InputGrad::accumulate). After a training forward (`training`), the
    /// statistics depend on `x`:
    /// `dx = gamma * invstd / n * (n * dy - sum(dy) - xhat * sum(dy * xhat))` with `n`
    /// the rows; after an inference forward, `dx = gamma * invstd * dy`. `ws` is
    /// scratch.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_bwd(
        &self,
        p: &BatchNormParams,
        training: bool,
        x: &Self::Buffer,
        dy: &Self::Buffer,
        saved: &Self::Buffer,
        gamma: &Self::Buffer,
        dgamma: &mut Self::Buffer,
        dbeta: &mut Self::Buffer,
        dx: Option<InputGrad<'_, Self::Buffer>>,
        ws: &mut Self::Buffer,
    ) -> Result<()>;
}
