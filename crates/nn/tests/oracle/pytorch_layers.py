#!/usr/bin/env python3
"""PyTorch (CPU) oracle for kiln's layer forward tests.

Writes `pytorch_layers.rs` (next to this file): a module of `pub const`
items holding the expected outputs of each layer case, computed with
PyTorch on the CPU in float32, plus the shapes and the first 3 values of
every input / parameter tensor (`*_HEAD`) so the Rust side can check that
it regenerates the inputs bit-exactly.

How to run (any Python >= 3.9 with torch and numpy; CPU is enough):

    python3 -m venv /tmp/oracle-venv
    /tmp/oracle-venv/bin/pip install torch numpy
    /tmp/oracle-venv/bin/python crates/nn/tests/oracle/pytorch_layers.py

The checked-in file was produced with torch 2.15.0+cu132 (run on CPU),
numpy 2.4.6, Python 3.11.7. The exact torch version is also written into
the generated file's header.

Every case is also recomputed by a plain numpy float64 reference (explicit
loops) and the script asserts max |torch - reference| < 1e-5, which guards
the layout and padding conversions below.

Conventions (kiln, Keras-like):
  * Activations are NHWC; PyTorch is NCHW (x.permute(0,3,1,2) and back
    with .permute(0,2,3,1)).
  * Conv2d kernel is (kh, kw, in, out); torch weight = w.permute(3,2,0,1).
  * Dense kernel is (in, units); torch Linear weight = w.T. Output x @ W + b.
  * `same` padding follows TensorFlow: out = ceil(in / stride),
    total = max((out-1)*stride + k - in, 0), before = total // 2, the extra
    cell goes after (bottom / right). Implemented as an explicit F.pad and a
    `valid` op. Max pool pads with -inf; avg pool averages only the cells
    inside the input (padded sum / padded count of a ones mask).
  * GELU is the exact erf form; softmax is over the last axis.

Deterministic data (no RNG), element i = flat row-major index from 0,
computed in float64 then cast to float32:
  * inputs:             sin(0.37 * i + salt) * 0.9
  * weights and biases: cos(0.23 * i + salt) * 0.5
  salts: x = 1.0, weight = 2.0, bias = 3.0.
Special inputs:
  * softmax: x (3, 7) from the input formula, then row 1 multiplied by
    100.0 in float32.
  * linspace: the 11 values -5, -4, ..., 5 (exact in float32).
"""

import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

TOL = 1e-5
SALT_X, SALT_W, SALT_B = 1.0, 2.0, 3.0

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


# ----------------------------------------------------------------------------
# Deterministic data
# ----------------------------------------------------------------------------

def gen_input(shape, salt=SALT_X):
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.float64)
    return (np.sin(0.37 * i + salt) * 0.9).astype(np.float32).reshape(shape)


def gen_param(shape, salt):
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.float64)
    return (np.cos(0.23 * i + salt) * 0.5).astype(np.float32).reshape(shape)


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


# ----------------------------------------------------------------------------
# TF `same` padding
# ----------------------------------------------------------------------------

def same_pad_1d(n, k, s):
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def out_size(n, k, s, padding):
    if padding == "same":
        return -(-n // s)
    return (n - k) // s + 1


# ----------------------------------------------------------------------------
# PyTorch implementations (NHWC in, NHWC out)
# ----------------------------------------------------------------------------

def torch_pad_nchw(x, kh, kw, sh, sw, value=0.0):
    top, bottom = same_pad_1d(x.shape[2], kh, sh)
    left, right = same_pad_1d(x.shape[3], kw, sw)
    return F.pad(x, (left, right, top, bottom), value=value)


def torch_conv2d(x, w, b, stride, padding):
    kh, kw = w.shape[0], w.shape[1]
    xn = t(x).permute(0, 3, 1, 2)
    wt = t(w).permute(3, 2, 0, 1).contiguous()
    if padding == "same":
        xn = torch_pad_nchw(xn, kh, kw, stride[0], stride[1])
    y = F.conv2d(xn, wt, t(b), stride=stride, padding=0)
    return y.permute(0, 2, 3, 1).contiguous().numpy()


def torch_maxpool(x, size, stride, padding):
    xn = t(x).permute(0, 3, 1, 2)
    if padding == "same":
        xn = torch_pad_nchw(xn, size[0], size[1], stride[0], stride[1], -math.inf)
    y = F.max_pool2d(xn, size, stride, padding=0)
    return y.permute(0, 2, 3, 1).contiguous().numpy()


def torch_avgpool(x, size, stride, padding):
    xn = t(x).permute(0, 3, 1, 2)
    if padding == "same":
        ones = torch.ones_like(xn)
        xp = torch_pad_nchw(xn, size[0], size[1], stride[0], stride[1])
        mp = torch_pad_nchw(ones, size[0], size[1], stride[0], stride[1])
        y = F.avg_pool2d(xp, size, stride) / F.avg_pool2d(mp, size, stride)
    else:
        y = F.avg_pool2d(xn, size, stride)
    return y.permute(0, 2, 3, 1).contiguous().numpy()


# ----------------------------------------------------------------------------
# Plain numpy float64 references (explicit loops)
# ----------------------------------------------------------------------------

def ref_window_origin(n, k, s, padding):
    before = same_pad_1d(n, k, s)[0] if padding == "same" else 0
    return out_size(n, k, s, padding), before


def ref_conv2d(x, w, b, stride, padding):
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    N, H, W, C = x.shape
    kh, kw, _, O = w.shape
    oh, pt = ref_window_origin(H, kh, stride[0], padding)
    ow, pl = ref_window_origin(W, kw, stride[1], padding)
    y = np.zeros((N, oh, ow, O))
    for n in range(N):
        for i in range(oh):
            for j in range(ow):
                for o in range(O):
                    acc = float(b[o])
                    for di in range(kh):
                        for dj in range(kw):
                            r = i * stride[0] + di - pt
                            c = j * stride[1] + dj - pl
                            if 0 <= r < H and 0 <= c < W:
                                for ci in range(C):
                                    acc += x[n, r, c, ci] * w[di, dj, ci, o]
                    y[n, i, j, o] = acc
    return y


def ref_pool(x, size, stride, padding, mode):
    x = x.astype(np.float64)
    N, H, W, C = x.shape
    oh, pt = ref_window_origin(H, size[0], stride[0], padding)
    ow, pl = ref_window_origin(W, size[1], stride[1], padding)
    y = np.zeros((N, oh, ow, C))
    for n in range(N):
        for i in range(oh):
            for j in range(ow):
                for ch in range(C):
                    vals = []
                    for di in range(size[0]):
                        for dj in range(size[1]):
                            r = i * stride[0] + di - pt
                            c = j * stride[1] + dj - pl
                            if 0 <= r < H and 0 <= c < W:
                                vals.append(x[n, r, c, ch])
                    y[n, i, j, ch] = max(vals) if mode == "max" else sum(vals) / len(vals)
    return y


def ref_dense(x, w, b):
    B, I = x.shape
    U = w.shape[1]
    y = np.zeros((B, U))
    for r in range(B):
        for u in range(U):
            acc = float(b[u])
            for k in range(I):
                acc += float(x[r, k]) * float(w[k, u])
            y[r, u] = acc
    return y


def ref_gap(x):
    N, H, W, C = x.shape
    y = np.zeros((N, C))
    for n in range(N):
        for c in range(C):
            y[n, c] = sum(float(x[n, i, j, c]) for i in range(H) for j in range(W)) / (H * W)
    return y


def ref_softmax(x):
    y = np.zeros(x.shape)
    for r in range(x.shape[0]):
        row = [float(v) for v in x[r]]
        m = max(row)
        e = [math.exp(v - m) for v in row]
        s = sum(e)
        y[r] = [v / s for v in e]
    return y


def ref_elementwise(x, f):
    return np.array([f(float(v)) for v in x.reshape(-1)]).reshape(x.shape)


REF_ACTS = {
    "gelu": lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))),
    "sigmoid": lambda v: 1.0 / (1.0 + math.exp(-v)),
    "tanh": math.tanh,
    "relu": lambda v: max(v, 0.0),
    "leaky_relu": lambda v: v if v >= 0 else 0.2 * v,
}

TORCH_ACTS = {
    "gelu": lambda x: F.gelu(x, approximate="none"),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, negative_slope=0.2),
}


# ----------------------------------------------------------------------------
# Rust emission
# ----------------------------------------------------------------------------

MAX_WIDTH = 100


def f32_lit(v):
    v = np.float32(v)
    assert np.isfinite(v), v
    s = "%.9g" % v
    assert np.float32(s) == v  # round-trips
    if not any(ch in s for ch in ".eE"):
        s += ".0"
    return s


class Emitter:
    def __init__(self):
        self.lines = []
        self.names = []

    def array(self, name, ty, items, doc=None):
        self.names.append(name)
        if doc:
            self.lines.append("/// " + doc)
        one = "pub const %s: &[%s] = &[%s];" % (name, ty, ", ".join(items))
        if len(one) <= MAX_WIDTH:
            self.lines.append(one)
            return
        self.lines.append("pub const %s: &[%s] = &[" % (name, ty))
        # rustfmt: horizontal wrapping when every item is "short" (<= 10
        # chars), otherwise one item per line.
        if all(len(s) <= 10 for s in items):
            cur = "   "
            for s in items:
                piece = " " + s + ","
                if len(cur) + len(piece) > MAX_WIDTH:
                    self.lines.append(cur)
                    cur = "   "
                cur += piece
            self.lines.append(cur)
        else:
            for s in items:
                self.lines.append("    " + s + ",")
        self.lines.append("];")

    def shape(self, name, shape):
        self.array(name, "usize", [str(int(d)) for d in shape])

    def f32s(self, name, values, doc=None):
        self.array(name, "f32", [f32_lit(v) for v in np.asarray(values).reshape(-1)], doc)

    def blank(self):
        self.lines.append("")


# ----------------------------------------------------------------------------
# Cases
# ----------------------------------------------------------------------------

def check(name, got, ref):
    got = np.asarray(got, dtype=np.float32)
    assert got.shape == ref.shape, (name, got.shape, ref.shape)
    err = float(np.max(np.abs(got.astype(np.float64) - ref)))
    print("%-28s shape=%-16s max|torch-ref|=%.3g" % (name, tuple(got.shape), err))
    assert err < TOL, (name, err)
    return got


def emit_tensor_meta(em, prefix, tag, arr):
    em.shape("%s_%s_SHAPE" % (prefix, tag), arr.shape)
    em.f32s("%s_%s_HEAD" % (prefix, tag), arr.reshape(-1)[:3])


def emit_out(em, prefix, out, doc, name="OUT"):
    em.shape("%s_%s_SHAPE" % (prefix, name), out.shape)
    em.f32s("%s_%s" % (prefix, name), out, doc)


def case_dense(em):
    p = "DENSE"
    x = gen_input((3, 5))
    w = gen_param((5, 4), SALT_W)
    b = gen_param((4,), SALT_B)
    y = F.linear(t(x), t(w).T.contiguous(), t(b)).numpy()
    y = check(p, y, ref_dense(x, w, b))
    em.lines.append("// dense: x [3, 5] @ W [5, 4] + b [4], no activation.")
    emit_tensor_meta(em, p, "X", x)
    emit_tensor_meta(em, p, "W", w)
    emit_tensor_meta(em, p, "B", b)
    emit_out(em, p, y, "Output [3, 4], row-major.")


def case_conv(em, p, desc, xshape, kshape, filters, stride, padding):
    x = gen_input(xshape)
    w = gen_param(kshape + (xshape[3], filters), SALT_W)
    b = gen_param((filters,), SALT_B)
    y = torch_conv2d(x, w, b, stride, padding)
    y = check(p, y, ref_conv2d(x, w, b, stride, padding))
    em.lines.append("// %s: x NHWC %s, kernel (kh, kw, in, out) %s, stride %s, padding %s."
                    % (desc, list(x.shape), list(w.shape), list(stride), padding))
    emit_tensor_meta(em, p, "X", x)
    emit_tensor_meta(em, p, "W", w)
    emit_tensor_meta(em, p, "B", b)
    emit_out(em, p, y, "Output NHWC %s, row-major." % list(y.shape))


def case_pool(em, p, mode, xshape, size, stride, padding):
    x = gen_input(xshape)
    fn = torch_maxpool if mode == "max" else torch_avgpool
    y = fn(x, size, stride, padding)
    y = check(p, y, ref_pool(x, size, stride, padding, mode))
    em.lines.append("// %spool2d: x NHWC %s, pool %s, stride %s, padding %s."
                    % (mode, list(x.shape), list(size), list(stride), padding))
    emit_tensor_meta(em, p, "X", x)
    emit_out(em, p, y, "Output NHWC %s, row-major." % list(y.shape))


def case_gap(em):
    p = "GLOBAL_AVG_POOL"
    x = gen_input((2, 3, 4, 5))
    y = t(x).permute(0, 3, 1, 2).mean(dim=(2, 3)).numpy()
    y = check(p, y, ref_gap(x))
    em.lines.append("// global average pool: x NHWC [2, 3, 4, 5] -> [2, 5].")
    emit_tensor_meta(em, p, "X", x)
    emit_out(em, p, y, "Output [2, 5], row-major.")


def case_softmax(em):
    p = "SOFTMAX"
    x = gen_input((3, 7))
    x[1] = x[1] * np.float32(100.0)  # float32 multiply
    y = torch.softmax(t(x), dim=-1).numpy()
    y = check(p, y, ref_softmax(x))
    em.lines.append("// softmax over the last axis: x [3, 7] from the input formula,")
    em.lines.append("// then row 1 multiplied by 100.0 (in f32) to test stability.")
    emit_tensor_meta(em, p, "X", x)
    em.f32s("SOFTMAX_X_ROW1_HEAD", x[1, :3])
    emit_out(em, p, y, "Output [3, 7], row-major.")


def case_activations(em):
    lin = np.linspace(-5.0, 5.0, 11).astype(np.float32)
    em.lines.append("// Element-wise activations on linspace(-5, 5, 11) = -5, -4, ..., 5.")
    em.shape("LINSPACE_SHAPE", lin.shape)
    em.f32s("LINSPACE_X", lin)
    for name in ["gelu", "sigmoid", "tanh", "relu", "leaky_relu"]:
        y = TORCH_ACTS[name](t(lin)).numpy()
        p = "%s_LINSPACE" % name.upper()
        y = check(p, y, ref_elementwise(lin, REF_ACTS[name]))
        doc = "%s(LINSPACE_X), shape [11]." % name
        if name == "gelu":
            doc = "Exact (erf) " + doc
        if name == "leaky_relu":
            doc = doc[:-1] + ", negative slope 0.2."
        em.f32s("%s_OUT" % p, y, doc)
    em.blank()
    em.lines.append("// Exact (erf) GELU on x [2, 6] from the input formula.")
    x = gen_input((2, 6))
    y = TORCH_ACTS["gelu"](t(x)).numpy()
    y = check("GELU", y, ref_elementwise(x, REF_ACTS["gelu"]))
    emit_tensor_meta(em, "GELU", "X", x)
    emit_out(em, "GELU", y, "Output [2, 6], row-major.")


def main():
    em = Emitter()
    sections = [
        case_dense,
        lambda e: case_conv(e, "CONV2D_VALID", "conv2d valid", (2, 5, 6, 3), (3, 3), 4,
                            (1, 1), "valid"),
        lambda e: case_conv(e, "CONV2D_SAME", "conv2d same", (2, 5, 5, 2), (3, 3), 3,
                            (1, 1), "same"),
        lambda e: case_conv(e, "CONV2D_SAME_STRIDE2", "conv2d same stride 2 (asymmetric pad)",
                            (2, 7, 6, 3), (3, 3), 4, (2, 2), "same"),
        lambda e: case_conv(e, "CONV2D_VALID_STRIDE2_K2X3", "conv2d valid stride 2, kernel 2x3",
                            (1, 7, 8, 2), (2, 3), 3, (2, 2), "valid"),
        lambda e: case_pool(e, "MAXPOOL2D_VALID", "max", (2, 5, 5, 3), (2, 2), (2, 2), "valid"),
        lambda e: case_pool(e, "MAXPOOL2D_SAME", "max", (1, 5, 5, 2), (2, 2), (2, 2), "same"),
        lambda e: case_pool(e, "AVGPOOL2D_VALID", "avg", (2, 4, 6, 3), (2, 2), (2, 2), "valid"),
        lambda e: case_pool(e, "AVGPOOL2D_SAME", "avg", (1, 5, 5, 2), (3, 3), (2, 2), "same"),
        case_gap,
        case_softmax,
        case_activations,
    ]
    header = [
        "// Generated by pytorch_layers.py with torch %s; do not edit." % torch.__version__,
        "//",
        "// Expected forward outputs (float32, row-major, kiln layouts: NHWC activations,",
        "// conv kernels (kh, kw, in, out), dense kernels (in, units)).",
        "// Inputs/params are not stored; regenerate them (f64 math, then cast to f32)",
        "// with element i = flat row-major index from 0:",
        "//   input  (salt 1.0):             sin(0.37 * i + salt) * 0.9",
        "//   weight (salt 2.0), bias (3.0): cos(0.23 * i + salt) * 0.5",
        "// *_HEAD consts hold the first 3 values of each generated tensor as a check.",
        "// `same` padding is TensorFlow's (extra pad cell at bottom/right).",
    ]
    em.lines.extend(header)
    for sec in sections:
        em.blank()
        sec(em)
    text = "\n".join(em.lines) + "\n"
    out_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pytorch_layers.rs")
    with open(out_path, "w") as f:
        f.write(text)
    print("wrote %s (%d consts)" % (out_path, len(em.names)), file=sys.stderr)


if __name__ == "__main__":
    main()
