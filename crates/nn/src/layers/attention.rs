//! Multi-head self-attention: one projection to queries, keys and values, the fused
//! attention op, one projection back.

use kiln_kernels::ops::attention::AttentionParams;
use kiln_kernels::ops::bias::BiasParams;
use kiln_kernels::ops::matmul::MatmulParams;
use kiln_kernels::rng::Rng;
use kiln_kernels::{Backend, ParamMut, ParamRef, ViewParams, VisitParams};
use kiln_shape::{AttentionSpec, Shape};

use crate::init::glorot_uniform;
use crate::layer::checked_output;
use crate::{Backward, Error, Layer, Mode, Result};

/// `y = attention(x Wqkv + bqkv) Wo + bo` over each sequence, `heads` heads of
/// `width / heads` values (PyTorch's `nn.MultiheadAttention(width, heads,
/// batch_first=True)` called as `mha(x, x, x)`; Keras's `MultiHeadAttention` on
/// `(x, x)` with `key_dim = width / heads`). Each head's
/// `softmax(q kᵀ / sqrt(head_dim)) v` runs fused (the
/// [`attention`](kiln_kernels::ops::attention) op): the `time x time` attention
/// matrix is never stored, and the layer's memory grows with the sequence, not with
/// its square. With `causal = true` each step attends only to itself and the steps
/// before it.
///
/// # Shapes
/// - input: `[batch, time, width]`, `heads` dividing `width`
/// - output: the input's shape
/// - `qkv_weight`: `[width, 3 * width]`, queries', keys' and values' columns in that
///   order, each head's `head_dim` columns side by side (PyTorch's `in_proj_weight`
///   is its transpose), initialised glorot-uniform
/// - `qkv_bias`: `[3 * width]` (PyTorch's `in_proj_bias`), zero; absent with
///   `bias = false`
/// - `out_weight`: `[width, width]` (PyTorch's `out_proj.weight` transposed),
///   glorot-uniform
/// - `out_bias`: `[width]`, zero; absent with `bias = false`
#[derive(Debug)]
pub struct MultiHeadAttention<B: Backend> {
    spec: AttentionSpec,
    time: usize,
    width: usize,
    qkv_weight: B::Buffer,
    qkv_bias: B::Buffer,
    out_weight: B::Buffer,
    out_bias: B::Buffer,
    dqkv_weight: B::Buffer,
    dqkv_bias: B::Buffer,
    dout_weight: B::Buffer,
    dout_bias: B::Buffer,
    /// The projection's output, `[batch, time, 3 * width]`, kept for the backward.
    qkv: B::Buffer,
    /// The heads' outputs side by side, `[batch, time, width]`, kept likewise.
    heads_out: B::Buffer,
    /// Each query row's log-sum-exp, `[batch, heads, time]`.
    lse: B::Buffer,
    /// The backward pass's scratch: `delta`, the heads' outputs' and the
    /// projection's gradients.
    delta: B::Buffer,
    dheads_out: B::Buffer,
    dqkv: B::Buffer,
}

const NAME: &str = "MultiHeadAttention";

fn u32_of(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Spec {
        kind: NAME,
        detail: format!("size {v} does not fit in 32 bits"),
    })
}

/// `[rows, k] x [k, n]`, either side transposed.
fn product(
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    accumulate: bool,
) -> Result<MatmulParams> {
    Ok(MatmulParams {
        m: u32_of(m)?,
        n: u32_of(n)?,
        k: u32_of(k)?,
        trans_a,
        trans_b,
        accumulate,
    })
}

impl<B: Backend> MultiHeadAttention<B> {
    fn attention(&self, batch: usize) -> Result<AttentionParams> {
        Ok(AttentionParams::new(
            batch,
            self.time,
            self.spec.heads,
            self.width / self.spec.heads,
            self.spec.causal,
        )?)
    }
}

/// `y = x W (+ b)` for `rows` rows of `k` to `n`.
fn project<B: Backend>(
    backend: &B,
    rows: usize,
    (k, n): (usize, usize),
    bias: bool,
    (x, w, b): (&B::Buffer, &B::Buffer, &B::Buffer),
    y: &mut B::Buffer,
) -> Result<()> {
    backend.matmul(&product(rows, n, k, false, false, false)?, x, w, y)?;
    if bias {
        backend.bias_activation(&BiasParams::new(u32_of(rows)?, u32_of(n)?), b, y)?;
    }
    Ok(())
}

/// The backward of `y = x W + b` for `rows` rows of `k` to `n`: `dW += xᵀ dy`,
/// `db += sum dy` (with a bias), and `dx = dy Wᵀ` (or `+=`) when wanted.
#[allow(clippy::too_many_arguments)]
fn project_backward<B: Backend>(
    backend: &B,
    rows: usize,
    (k, n): (usize, usize),
    bias: bool,
    (x, w, dy): (&B::Buffer, &B::Buffer, &B::Buffer),
    (dw, db): (&mut B::Buffer, &mut B::Buffer),
    dx: Option<(&mut B::Buffer, bool)>,
) -> Result<()> {
    backend.matmul(&product(k, n, rows, true, false, true)?, x, dy, dw)?;
    if bias {
        backend.bias_grad(&BiasParams::new(u32_of(rows)?, u32_of(n)?), dy, db)?;
    }
    if let Some((dx, accumulate)) = dx {
        backend.matmul(&product(rows, k, n, false, true, accumulate)?, dy, w, dx)?;
    }
    Ok(())
}

impl<B: Backend> Layer<B> for MultiHeadAttention<B> {
    type Spec = AttentionSpec;

    fn build(
        backend: &B,
        spec: &AttentionSpec,
        input: Shape,
        max_batch: usize,
        rng: &mut Rng,
    ) -> Result<Self> {
        checked_output(spec, input)?;
        let (time, width) = (input.dims()[0], input.dims()[1]);
        let rows = max_batch * time;
        let stats = rows * spec.heads;
        let biases = if spec.bias { 1 } else { 0 };
        Ok(Self {
            spec: *spec,
            time,
            width,
            qkv_weight: glorot_uniform(backend, 3 * width * width, width, 3 * width, rng)?,
            qkv_bias: backend.alloc(biases * 3 * width)?,
            out_weight: glorot_uniform(backend, width * width, width, width, rng)?,
            out_bias: backend.alloc(biases * width)?,
            dqkv_weight: backend.alloc(3 * width * width)?,
            dqkv_bias: backend.alloc(biases * 3 * width)?,
            dout_weight: backend.alloc(width * width)?,
            dout_bias: backend.alloc(biases * width)?,
            qkv: backend.alloc(3 * rows * width)?,
            heads_out: backend.alloc(rows * width)?,
            lse: backend.alloc(stats)?,
            delta: backend.alloc(stats)?,
            dheads_out: backend.alloc(rows * width)?,
            dqkv: backend.alloc(3 * rows * width)?,
        })
    }

    fn forward(
        &mut self,
        backend: &B,
        x: &B::Buffer,
        y: &mut B::Buffer,
        batch: usize,
        _mode: Mode,
    ) -> Result<()> {
        let (rows, w) = (batch * self.time, self.width);
        let bias = self.spec.bias;
        project(
            backend,
            rows,
            (w, 3 * w),
            bias,
            (x, &self.qkv_weight, &self.qkv_bias),
            &mut self.qkv,
        )?;
        backend.attention_fwd(
            &self.attention(batch)?,
            &self.qkv,
            &mut self.heads_out,
            &mut self.lse,
        )?;
        project(
            backend,
            rows,
            (w, w),
            bias,
            (&self.heads_out, &self.out_weight, &self.out_bias),
            y,
        )
    }

    fn backward(&mut self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        let x = pass.input(NAME)?;
        let (rows, w) = (pass.batch * self.time, self.width);
        project_backward(
            backend,
            rows,
            (w, w),
            self.spec.bias,
            (&self.heads_out, &self.out_weight, pass.dy),
            (&mut self.dout_weight, &mut self.dout_bias),
            Some((&mut self.dheads_out, false)),
        )?;
        backend.attention_bwd(
            &self.attention(pass.batch)?,
            &self.qkv,
            &self.heads_out,
            &self.lse,
            &self.dheads_out,
            &mut self.delta,
            &mut self.dqkv,
        )?;
        project_backward(
            backend,
            rows,
            (w, 3 * w),
            self.spec.bias,
            (x, &self.qkv_weight, &self.dqkv),
            (&mut self.dqkv_weight, &mut self.dqkv_bias),
            pass.dx.map(|d| (d.buffer, d.accumulate)),
        )
    }

    fn visit_parameters<'a>(
        &'a mut self,
        layer: &'static str,
        f: VisitParams<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        let w = self.width;
        f(ParamMut {
            layer,
            kind: NAME,
            name: "qkv_weight",
            shape: Shape::new(&[w, 3 * w]),
            value: &mut self.qkv_weight,
            grad: &mut self.dqkv_weight,
        })?;
        if self.spec.bias {
            f(ParamMut {
                layer,
                kind: NAME,
                name: "qkv_bias",
                shape: Shape::new(&[3 * w]),
                value: &mut self.qkv_bias,
                grad: &mut self.dqkv_bias,
            })?;
        }
        f(ParamMut {
            layer,
            kind: NAME,
            name: "out_weight",
            shape: Shape::new(&[w, w]),
            value: &mut self.out_weight,
            grad: &mut self.dout_weight,
        })?;
        if self.spec.bias {
            f(ParamMut {
                layer,
                kind: NAME,
                name: "out_bias",
                shape: Shape::new(&[w]),
                value: &mut self.out_bias,
                grad: &mut self.dout_bias,
            })?;
        }
        Ok(())
    }

    fn parameters<'a>(
        &'a self,
        layer: &'static str,
        f: ViewParams<'_, 'a, B>,
    ) -> kiln_kernels::Result<()> {
        let w = self.width;
        f(ParamRef {
            layer,
            kind: NAME,
            name: "qkv_weight",
            shape: Shape::new(&[w, 3 * w]),
            value: &self.qkv_weight,
            grad: &self.dqkv_weight,
        })?;
        if self.spec.bias {
            f(ParamRef {
                layer,
                kind: NAME,
                name: "qkv_bias",
                shape: Shape::new(&[3 * w]),
                value: &self.qkv_bias,
                grad: &self.dqkv_bias,
            })?;
        }
        f(ParamRef {
            layer,
            kind: NAME,
            name: "out_weight",
            shape: Shape::new(&[w, w]),
            value: &self.out_weight,
            grad: &self.dout_weight,
        })?;
        if self.spec.bias {
            f(ParamRef {
                layer,
                kind: NAME,
                name: "out_bias",
                shape: Shape::new(&[w]),
                value: &self.out_bias,
                grad: &self.dout_bias,
            })?;
        }
        Ok(())
    }
}
