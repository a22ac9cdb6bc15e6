//! Batch normalisation against direct loops in `f64`, its backward pass against
//! central finite differences of the direct forward, and the GPU against the CPU.

use super::*;
use crate::Cpu;
use crate::rng::Rng;

const KINDS: [ActivationKind; 5] = [
    ActivationKind::Linear,
    ActivationKind::Relu,
    ActivationKind::LeakyRelu,
    ActivationKind::Sigmoid,
    ActivationKind::Tanh,
];

/// `(rows, channels)`: two and three rows, 64 * 7 rows, one to 64 channels, odd sizes,
/// and batches large enough that the sums run in several bands.
const SHAPES: [(usize, usize); 9] = [
    (2, 1),
    (2, 3),
    (3, 32),
    (3, 64),
    (448, 1),
    (448, 32),
    (448, 64),
    (2, 37),
    (3000, 7),
];

fn random(rng: &mut Rng, len: usize, low: f32, high: f32) -> Vec<f32> {
    (0..len).map(|_| rng.uniform_in(low, high)).collect()
}

/// `act(v)` in `f64`.
fn act(kind: ActivationKind, slope: f64, v: f64) -> f64 {
    match kind {
        ActivationKind::Relu => v.max(0.0),
        ActivationKind::LeakyRelu if v < 0.0 => slope * v,
        ActivationKind::Sigmoid => 1.0 / (1.0 + (-v).exp()),
        ActivationKind::Tanh => v.tanh(),
        _ => v,
    }
}

/// The batch's per-channel mean and biased variance, two passes in `f64`.
fn batch_stats(rows: usize, channels: usize, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0.0; channels];
    let mut var = vec![0.0; channels];
    for (c, (m, v)) in mean.iter_mut().zip(&mut var).enumerate() {
        let column = || x.iter().skip(c).step_by(channels).take(rows);
        *m = column().sum::<f64>() / rows as f64;
        *v = column().map(|x| (x - *m) * (x - *m)).sum::<f64>() / rows as f64;
    }
    (mean, var)
}

/// `gamma * (x - mean) / sqrt(var + epsilon) + beta`, before the activation, with the
/// batch's statistics (`running` is `None`) or the running ones.
fn direct(
    p: &BatchNormParams,
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
    running: Option<&[f32]>,
) -> Vec<f64> {
    let (rows, c) = (us(p.rows), us(p.channels));
    let (mean, var) = match running {
        None => batch_stats(rows, c, x),
        Some(r) => (
            r[..c].iter().map(|&v| f64::from(v)).collect(),
            r[c..2 * c].iter().map(|&v| f64::from(v)).collect(),
        ),
    };
    let eps = f64::from(p.epsilon);
    x.iter()
        .enumerate()
        .map(|(i, &x)| {
            let k = i % c;
            gamma[k] * (x - mean[k]) / (var[k] + eps).sqrt() + beta[k]
        })
        .collect()
}

fn wide(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&v| f64::from(v)).collect()
}

/// Asserts `|got - want| <= tol * (1 + |want|)` everywhere.
fn assert_near(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

/// The inputs of one case: `x` (offset from zero, so that the mean matters), `gamma`,
/// `beta` and running statistics (positive variances).
struct Case {
    p: BatchNormParams,
    x: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    running: Vec<f32>,
}

impl Case {
    fn new(rng: &mut Rng, p: BatchNormParams) -> Self {
        let c = us(p.channels);
        let mut running = random(rng, c, -1.0, 1.0);
        running.extend(random(rng, c, 0.2, 2.0));
        Self {
            x: random(rng, p.len(), 1.0, 4.0),
            gamma: random(rng, c, -1.5, 1.5),
            beta: random(rng, c, -1.0, 1.0),
            running,
            p,
        }
    }
}

/// A case's buffers on a backend after a forward pass.
struct Forwarded<B: Storage> {
    x: B::Buffer,
    gamma: B::Buffer,
    running_mean: B::Buffer,
    running_var: B::Buffer,
    saved: B::Buffer,
    y: B::Buffer,
    ws: B::Buffer,
}

impl<B: BatchNormKernel> Forwarded<B> {
    /// The forward pass of `case` on `backend`, `training` or not (the outputs start
    /// as NaN, so that what is not written shows).
    fn new(backend: &B, case: &Case, training: bool) -> Self {
        let (p, c) = (&case.p, us(case.p.channels));
        let x = backend.alloc_from(&case.x).unwrap();
        let gamma = backend.alloc_from(&case.gamma).unwrap();
        let beta = backend.alloc_from(&case.beta).unwrap();
        let mut running_mean = backend.alloc_from(&case.running[..c]).unwrap();
        let mut running_var = backend.alloc_from(&case.running[c..]).unwrap();
        let mut saved = backend.alloc_from(&vec![f32::NAN; 2 * c]).unwrap();
        let mut y = backend.alloc_from(&vec![f32::NAN; p.len()]).unwrap();
        let mut ws = backend.alloc(backend.batch_norm_workspace_len(p)).unwrap();
        let (rm, rv, s) = (&mut running_mean, &mut running_var, &mut saved);
        if training {
            backend
                .batch_norm_fwd_train(p, &x, &gamma, &beta, rm, rv, s, &mut y, &mut ws)
                .unwrap();
        } else {
            backend
                .batch_norm_fwd_eval(p, &x, &gamma, &beta, rm, rv, s, &mut y)
                .unwrap();
        }
        Self {
            x,
            gamma,
            running_mean,
            running_var,
            saved,
            y,
            ws,
        }
    }

    /// The backward pass from `dy` into `dgamma`, `dbeta` and `dx`.
    fn backward(
        &mut self,
        backend: &B,
        p: &BatchNormParams,
        training: bool,
        dy: &[f32],
        [dgamma, dbeta]: [&mut B::Buffer; 2],
        dx: Option<InputGrad<'_, B::Buffer>>,
    ) {
        let (x, gamma, saved) = (&self.x, &self.gamma, &self.saved);
        let dy = backend.alloc_from(dy).unwrap();
        backend
            .batch_norm_bwd(
                p,
                training,
                x,
                &dy,
                saved,
                gamma,
                dgamma,
                dbeta,
                dx,
                &mut self.ws,
            )
            .unwrap();
    }
}

/// The outputs of a forward pass on `backend`: `(y, saved, running)`.
fn forward<B: BatchNormKernel>(backend: &B, case: &Case, training: bool) -> [Vec<f32>; 3] {
    let (p, c) = (&case.p, 2 * us(case.p.channels));
    let f = Forwarded::new(backend, case, training);
    [
        backend.to_host(&f.y, p.len()).unwrap(),
        backend.to_host(&f.saved, c).unwrap(),
        {
            let half = c / 2;
            let mut running = backend.to_host(&f.running_mean, half).unwrap();
            running.extend(backend.to_host(&f.running_var, half).unwrap());
            running
        },
    ]
}

fn check_forward<B: BatchNormKernel>(backend: &B) {
    let mut rng = Rng::new(11);
    for (rows, channels) in SHAPES {
        for unbiased in [false, true] {
            for activation in KINDS {
                let p = BatchNormParams {
                    momentum: 0.8,
                    unbiased,
                    activation,
                    negative_slope: 0.1,
                    ..BatchNormParams::new(rows, channels).unwrap()
                };
                let case = Case::new(&mut rng, p);
                let what = format!("{rows}x{channels} {activation:?} unbiased {unbiased}");
                let (x, gamma, beta) = (wide(&case.x), wide(&case.gamma), wide(&case.beta));
                let act = |v: Vec<f64>| -> Vec<f64> {
                    v.into_iter().map(|v| act(activation, 0.1, v)).collect()
                };

                let [y, saved, running] = forward(backend, &case, true);
                let want = act(direct(&p, &x, &gamma, &beta, None));
                assert_near(&format!("{what}: training y"), &y, &want, 2e-5);
                let (mean, var) = batch_stats(rows, channels, &x);
                let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + 1e-3).sqrt()).collect();
                assert_near(&format!("{what}: mean"), &saved[..channels], &mean, 1e-6);
                assert_near(
                    &format!("{what}: invstd"),
                    &saved[channels..],
                    &invstd,
                    1e-6,
                );
                let n = rows as f64;
                let correction = if unbiased { n / (n - 1.0) } else { 1.0 };
                let old = wide(&case.running);
                let batch = mean.iter().chain(&var).enumerate();
                let moved: Vec<f64> = batch
                    .map(|(i, &b)| {
                        let b = if i < channels { b } else { b * correction };
                        0.8 * old[i] + 0.2 * b
                    })
                    .collect();
                assert_near(&format!("{what}: running"), &running, &moved, 1e-6);

                let [y, saved, running] = forward(backend, &case, false);
                let want = act(direct(&p, &x, &gamma, &beta, Some(&case.running)));
                assert_near(&format!("{what}: inference y"), &y, &want, 2e-5);
                let r = &case.running;
                let invstd: Vec<f64> = r[channels..]
                    .iter()
                    .map(|&v| 1.0 / (f64::from(v) + 1e-3).sqrt())
                    .collect();
                assert_eq!(saved[..channels], r[..channels], "{what}: inference mean");
                assert_near(
                    &format!("{what}: inference invstd"),
                    &saved[channels..],
                    &invstd,
                    1e-6,
                );
                assert_eq!(
                    &running, r,
                    "{what}: inference leaves the running statistics"
                );
            }
        }
    }
}

/// A mean a hundred thousand times the spread, and no epsilon to hide the variance:
/// sums of the raw values and their squares would lose it to cancellation.
fn check_large_mean<B: BatchNormKernel>(backend: &B) {
    let mut rng = Rng::new(3);
    let (rows, channels) = (5000, 3);
    let p = BatchNormParams {
        epsilon: 0.0,
        ..BatchNormParams::new(rows, channels).unwrap()
    };
    let mut case = Case::new(&mut rng, p);
    case.x = (0..p.len())
        .map(|i| 1000.0 * (i % 3) as f32 + 1000.0 + rng.uniform_in(-0.01, 0.01))
        .collect();
    let [_, saved, _] = forward(backend, &case, true);
    let (mean, var) = batch_stats(rows, channels, &wide(&case.x));
    let invstd: Vec<f64> = var.iter().map(|v| 1.0 / v.sqrt()).collect();
    assert_near("mean", &saved[..channels], &mean, 1e-7);
    assert_near("invstd", &saved[channels..], &invstd, 1e-5);
}

/// The same inputs give the same bits, forward and backward.
fn check_reproducible<B: BatchNormKernel>(backend: &B) {
    let mut rng = Rng::new(5);
    let p = BatchNormParams::new(20_000, 37).unwrap();
    let case = Case::new(&mut rng, p);
    let dy = random(&mut rng, p.len(), -1.0, 1.0);
    let first = (
        forward(backend, &case, true),
        backward(backend, &case, true, &dy),
    );
    for _ in 0..3 {
        let again = (
            forward(backend, &case, true),
            backward(backend, &case, true, &dy),
        );
        assert!(first == again, "the same inputs must give the same bits");
    }
}

/// Starting values of the gradients: the backward pass adds to `dgamma` and `dbeta`.
const BEFORE: f32 = 0.5;

/// `(dx, dgamma, dbeta)` after a forward pass (`training` or not) and the backward
/// from `dy`, with the input gradient written.
fn backward<B: BatchNormKernel>(
    backend: &B,
    case: &Case,
    training: bool,
    dy: &[f32],
) -> [Vec<f32>; 3] {
    let (p, c) = (&case.p, us(case.p.channels));
    let mut f = Forwarded::new(backend, case, training);
    let mut dgamma = backend.alloc_from(&vec![BEFORE; c]).unwrap();
    let mut dbeta = backend.alloc_from(&vec![BEFORE; c]).unwrap();
    let mut dx = backend.alloc_from(&vec![f32::NAN; p.len()]).unwrap();
    let grads = [&mut dgamma, &mut dbeta];
    f.backward(
        backend,
        p,
        training,
        dy,
        grads,
        Some(InputGrad::write(&mut dx)),
    );
    [
        backend.to_host(&dx, p.len()).unwrap(),
        backend.to_host(&dgamma, c).unwrap(),
        backend.to_host(&dbeta, c).unwrap(),
    ]
}

/// Central differences of `sum(u * f(v))` for each element of `v`.
fn finite_differences(v: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    const H: f64 = 1e-4;
    let mut v = v.to_vec();
    (0..v.len())
        .map(|i| {
            let keep = v[i];
            v[i] = keep + H;
            let up = f(&v);
            v[i] = keep - H;
            let down = f(&v);
            v[i] = keep;
            (up - down) / (2.0 * H)
        })
        .collect()
}

fn check_backward<B: BatchNormKernel>(backend: &B) {
    let mut rng = Rng::new(7);
    for (rows, channels) in [(2, 1), (2, 3), (3, 5), (7, 4), (64, 3), (33, 17)] {
        for training in [true, false] {
            let p = BatchNormParams {
                // The gradient starts at the pre-activation: the activation is the
                // layer's to differentiate.
                activation: ActivationKind::Tanh,
                ..BatchNormParams::new(rows, channels).unwrap()
            };
            let case = Case::new(&mut rng, p);
            let u = random(&mut rng, p.len(), -1.0, 1.0);
            let what = format!("{rows}x{channels} training {training}");
            let (x, gamma, beta, uw) =
                (wide(&case.x), wide(&case.gamma), wide(&case.beta), wide(&u));
            let running = (!training).then_some(&case.running[..]);
            let loss = |x: &[f64], gamma: &[f64], beta: &[f64]| -> f64 {
                let y = direct(&p, x, gamma, beta, running);
                y.iter().zip(&uw).map(|(y, u)| y * u).sum()
            };
            let want_dx = finite_differences(&x, |x| loss(x, &gamma, &beta));
            let want_dgamma = finite_differences(&gamma, |g| loss(&x, g, &beta));
            let want_dbeta = finite_differences(&beta, |b| loss(&x, &gamma, b));
            let shifted = |v: Vec<f64>| -> Vec<f64> {
                v.into_iter().map(|v| v + f64::from(BEFORE)).collect()
            };

            let [dx, dgamma, dbeta] = backward(backend, &case, training, &u);
            assert_near(&format!("{what}: dx"), &dx, &want_dx, 1e-4);
            assert_near(
                &format!("{what}: dgamma"),
                &dgamma,
                &shifted(want_dgamma),
                1e-4,
            );
            assert_near(
                &format!("{what}: dbeta"),
                &dbeta,
                &shifted(want_dbeta),
                1e-4,
            );
            check_input_grad_modes(backend, &case, training, &u, &dx, &dgamma);
        }
    }
}

/// The input gradient added to what `dx` holds, and left alone (`None`) while the
/// parameter gradients are still summed.
fn check_input_grad_modes<B: BatchNormKernel>(
    backend: &B,
    case: &Case,
    training: bool,
    dy: &[f32],
    written: &[f32],
    dgamma_written: &[f32],
) {
    let (p, c) = (&case.p, us(case.p.channels));
    let mut f = Forwarded::new(backend, case, training);
    let before: Vec<f32> = (0..p.len()).map(|i| i as f32 * 0.25 - 3.0).collect();
    let mut dx = backend.alloc_from(&before).unwrap();
    let mut dgamma = backend.alloc_from(&vec![BEFORE; c]).unwrap();
    let mut dbeta = backend.alloc_from(&vec![BEFORE; c]).unwrap();
    let grads = [&mut dgamma, &mut dbeta];
    f.backward(
        backend,
        p,
        training,
        dy,
        grads,
        Some(InputGrad::add_to(&mut dx)),
    );
    let added = backend.to_host(&dx, p.len()).unwrap();
    for (i, ((&a, &w), &b)) in added.iter().zip(written).zip(&before).enumerate() {
        assert_eq!(a, b + w, "accumulated dx[{i}]");
    }
    f.backward(backend, p, training, dy, [&mut dgamma, &mut dbeta], None);
    let dgamma = backend.to_host(&dgamma, c).unwrap();
    for (k, (&twice, &once)) in dgamma.iter().zip(dgamma_written).enumerate() {
        let want = 2.0 * f64::from(once) - f64::from(BEFORE);
        assert!(
            (f64::from(twice) - want).abs() <= 1e-5 * (1.0 + want.abs()),
            "dgamma[{k}] summed twice: {twice} vs {want}"
        );
    }
}

/// One case through `torch.nn.functional.batch_norm` (torch 2.15.0, CPU), which also
/// pins the conventions: PyTorch's `momentum=0.1` is kiln's 0.9, and its running
/// variance is the unbiased one:
///
/// ```python
/// x = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5], [-0.75, 1.0, 3.0],
///                   [2.0, -0.5, 0.0]], requires_grad=True)
/// gamma = torch.tensor([1.5, -0.5, 0.75], requires_grad=True)
/// beta = torch.tensor([0.1, 0.2, -0.3], requires_grad=True)
/// rm = torch.tensor([0.2, -0.1, 0.5]); rv = torch.tensor([1.0, 0.5, 2.0])
/// u = torch.tensor([[1.0, -2.0, 0.5], [0.25, 1.0, -1.0], [-0.5, 0.5, 2.0],
///                   [1.5, -1.0, 0.0]])
/// y = F.batch_norm(x, rm, rv, gamma, beta, training=True, momentum=0.1, eps=1e-5)
/// (y * u).sum().backward()  # y, rm and rv, x.grad, gamma.grad, beta.grad below
/// ```
fn check_pytorch<B: BatchNormKernel>(backend: &B) {
    let p = BatchNormParams {
        epsilon: 1e-5,
        momentum: 0.9,
        unbiased: true,
        ..BatchNormParams::new(4, 3).unwrap()
    };
    let case = Case {
        p,
        x: vec![
            0.5, -1.0, 2.0, 1.5, 0.25, -0.5, -0.75, 1.0, 3.0, 2.0, -0.5, 0.0,
        ],
        gamma: vec![1.5, -0.5, 0.75],
        beta: vec![0.1, 0.2, -0.3],
        running: vec![0.2, -0.1, 0.5, 1.0, 0.5, 2.0],
    };
    let u = [
        1.0, -2.0, 0.5, 0.25, 1.0, -1.0, -0.5, 0.5, 2.0, 1.5, -1.0, 0.0,
    ];
    let [y, _, running] = forward(backend, &case, true);
    let want_y = [
        -0.345826685,
        0.818584204,
        0.158693552,
        1.08081865,
        -0.00619472563,
        -1.1518594,
        -2.12913346,
        -0.501062036,
        0.682914734,
        1.79414141,
        0.488672614,
        -0.889748812,
    ];
    let want_running = [
        0.261249989,
        -0.0962499976,
        0.5625,
        1.04739583,
        0.526562512,
        2.07291675,
    ];
    assert_near("pytorch y", &y, &want_y, 1e-6);
    assert_near("pytorch running", &running, &want_running, 1e-6);
    let [dx, dgamma, dbeta] = backward(backend, &case, true, &u);
    let want_dx = [
        0.868335843,
        0.22220017,
        -0.260108173,
        -0.983019352,
        -0.623919308,
        -0.116051897,
        -0.294918329,
        0.386002213,
        0.154068351,
        0.409601837,
        0.0157169756,
        0.22209169,
    ];
    let b = f64::from(BEFORE);
    let want_dgamma = [2.30343795 + b, 4.16513348 + b, 4.0627141 + b];
    let want_dbeta = [2.25 + b, -1.5 + b, 1.5 + b];
    assert_near("pytorch dx", &dx, &want_dx, 1e-5);
    assert_near("pytorch dgamma", &dgamma, &want_dgamma, 1e-6);
    assert_near("pytorch dbeta", &dbeta, &want_dbeta, 1e-6);
}

fn check_errors<B: BatchNormKernel>(backend: &B) {
    let alloc = |n: usize| backend.alloc(n).unwrap();
    let (rows, c) = (4, 3);
    let p = BatchNormParams::new(rows, c).unwrap();
    let n = p.len();
    let (x, gamma, beta) = (alloc(n), alloc(c), alloc(c));
    let (mut running_mean, mut running_var) = (alloc(c), alloc(c));
    let (mut saved, mut y) = (alloc(2 * c), alloc(n));
    let mut ws = alloc(backend.batch_norm_workspace_len(&p));

    // One row a channel has no variance: an error in training, fine in inference.
    let one = BatchNormParams::new(1, c).unwrap();
    let err = backend
        .batch_norm_fwd_train(
            &one,
            &x,
            &gamma,
            &beta,
            &mut running_mean,
            &mut running_var,
            &mut saved,
            &mut y,
            &mut ws,
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidParams { .. }), "{err}");
    assert!(err.to_string().contains("at least 2 rows"), "{err}");
    backend
        .batch_norm_fwd_eval(&one, &x, &gamma, &beta, &running_mean, &running_var, &mut saved, &mut y)
        .unwrap();
    let (mut dgamma, mut dbeta, mut dx) = (alloc(c), alloc(c), alloc(n));
    let err = backend
        .batch_norm_bwd(
            &one,
            true,
            &x,
            &y,
            &saved,
            &gamma,
            &mut dgamma,
            &mut dbeta,
            None,
            &mut ws,
        )
        .unwrap_err();
    assert!(err.to_string().contains("at least 2 rows"), "{err}");

    // An activation that does not fuse.
    let softmax = BatchNormParams {
        activation: ActivationKind::Softmax,
        ..p
    };
    let err = backend
        .batch_norm_fwd_eval(
            &softmax,
            &x,
            &gamma,
            &beta,
            &running_mean,
            &running_var,
            &mut saved,
            &mut y,
        )
        .unwrap_err();
    assert!(err.to_string().contains("Softmax"), "{err}");

    // Each operand one value short.
    let short = |err: Error, operand: &str| match err {
        Error::BufferTooSmall { operand: o, .. } => assert_eq!(o, operand),
        other => panic!("{operand}: {other}"),
    };
    let (sx, sc, ss) = (alloc(n - 1), alloc(c - 1), alloc(2 * c - 1));
    let mut sws = alloc(backend.batch_norm_workspace_len(&p) - 1);
    let (mut sy, mut ssaved, mut srunning) = (alloc(n - 1), alloc(2 * c - 1), alloc(c - 1));
    let (rm, rv, s, w) = (&mut running_mean, &mut running_var, &mut saved, &mut ws);
    short(
        backend
            .batch_norm_fwd_train(&p, &sx, &gamma, &beta, rm, rv, s, &mut y, w)
            .unwrap_err(),
        "x",
    );
    short(
        backend
            .batch_norm_fwd_train(&p, &x, &sc, &beta, rm, rv, s, &mut y, w)
            .unwrap_err(),
        "gamma",
    );
    short(
        backend
            .batch_norm_fwd_train(&p, &x, &gamma, &sc, rm, rv, s, &mut y, w)
            .unwrap_err(),
        "beta",
    );
    let err =
        backend.batch_norm_fwd_train(&p, &x, &gamma, &beta, &mut srunning, rv, s, &mut y, w);
    short(err.unwrap_err(), "running_mean");
    let err =
        backend.batch_norm_fwd_train(&p, &x, &gamma, &beta, rm, &mut srunning, s, &mut y, w);
    short(err.unwrap_err(), "running_var");
    let err =
        backend.batch_norm_fwd_train(&p, &x, &gamma, &beta, rm, rv, &mut ssaved, &mut y, w);
    short(err.unwrap_err(), "saved");
    short(
        backend
            .batch_norm_fwd_train(&p, &x, &gamma, &beta, rm, rv, s, &mut sy, w)
            .unwrap_err(),
        "y",
    );
    let err = backend.batch_norm_fwd_train(&p, &x, &gamma, &beta, rm, rv, s, &mut y, &mut sws);
    short(err.unwrap_err(), "ws");
    short(
        backend
            .batch_norm_fwd_eval(&p, &x, &gamma, &beta, &sc, rv, s, &mut y)
            .unwrap_err(),
        "running_mean",
    );
    let (dg, db) = (&mut dgamma, &mut dbeta);
    let err = backend.batch_norm_bwd(&p, true, &x, &sx, s, &gamma, dg, db, None, w);
    short(err.unwrap_err(), "dy");
    let err = backend.batch_norm_bwd(&p, false, &x, &y, &ss, &gamma, dg, db, None, w);
    short(err.unwrap_err(), "saved");
    let mut sdg = alloc(c - 1);
    let err = backend.batch_norm_bwd(&p, true, &x, &y, s, &gamma, &mut sdg, db, None, w);
    short(err.unwrap_err(), "dgamma");
    let mut sdx = alloc(n - 1);
    let grad = Some(InputGrad::add_to(&mut sdx));
    let err = backend.batch_norm_bwd(&p, true, &x, &y, s, &gamma, dg, db, grad, w);
    short(err.unwrap_err(), "dx");
    let grad = Some(InputGrad::write(&mut dx));
    let err = backend.batch_norm_bwd(&p, true, &x, &y, s, &gamma, dg, db, grad, &mut sws);
    short(err.unwrap_err(), "ws");
}

#[test]
fn forward_matches_direct_loops_on_cpu() {
    check_forward(&Cpu::with_threads(2).unwrap());
    check_large_mean(&Cpu::with_threads(2).unwrap());
}

#[test]
fn matches_pytorch_on_cpu() {
    check_pytorch(&Cpu::with_threads(2).unwrap());
}

#[test]
fn backward_matches_finite_differences_on_cpu() {
    check_backward(&Cpu::with_threads(2).unwrap());
}

#[test]
fn is_reproducible_on_cpu() {
    check_reproducible(&Cpu::with_threads(2).unwrap());
}

#[test]
fn refuses_one_row_and_short_buffers_on_cpu() {
    check_errors(&Cpu::with_threads(2).unwrap());
}

#[cfg(feature = "cuda")]
#[test]
fn normalises_and_differentiates_on_cuda() {
    if let Some(gpu) = crate::cuda::test_device() {
        check_forward(&gpu);
        check_large_mean(&gpu);
        check_pytorch(&gpu);
        check_backward(&gpu);
        check_reproducible(&gpu);
        check_errors(&gpu);
    }
}

/// The GPU against the CPU, up to a 64 x 32 x 32 x 32 batch, every fusable
/// activation, both passes in both modes. The sums over rows run in different bands
/// on each, so the statistics agree to rounding; the element-wise maps round alike.
#[cfg(feature = "cuda")]
#[test]
fn cuda_matches_cpu() {
    use crate::cuda::parity::assert_close;
    let Some(gpu) = crate::cuda::test_device() else {
        return;
    };
    let cpu = Cpu::with_threads(2).unwrap();
    let mut rng = Rng::new(13);
    let shapes = [
        (2, 1),
        (3, 3),
        (448, 64),
        (1000, 5),
        (4000, 300),
        (65_536, 32),
    ];
    for (case_index, (rows, channels)) in shapes.into_iter().enumerate() {
        for (k, activation) in KINDS.into_iter().enumerate() {
            let p = BatchNormParams {
                unbiased: k % 2 == 0,
                activation,
                negative_slope: 0.1,
                ..BatchNormParams::new(rows, channels).unwrap()
            };
            let case = Case::new(&mut rng, p);
            let dy = random(&mut rng, p.len(), -1.0, 1.0);
            for training in [true, false] {
                let what = format!("{rows}x{channels} {activation:?} training {training}");
                let (c, g) = (
                    forward(&cpu, &case, training),
                    forward(&gpu, &case, training),
                );
                for (name, c, g) in [
                    ("y", &c[0], &g[0]),
                    ("saved", &c[1], &g[1]),
                    ("running", &c[2], &g[2]),
                ] {
                    assert_close(&format!("{what}: {name}"), c, g, 1e-5, 1e-5);
                }
                let (c, g) = (
                    backward(&cpu, &case, training, &dy),
                    backward(&gpu, &case, training, &dy),
                );
                for (name, c, g) in [
                    ("dx", &c[0], &g[0]),
                    ("dgamma", &c[1], &g[1]),
                    ("dbeta", &c[2], &g[2]),
                ] {
                    assert_close(&format!("{what}: {name}"), c, g, 1e-4, 1e-4);
                }
            }
            if case_index == shapes.len() - 1 {
                break;
            }
        }
    }
}
