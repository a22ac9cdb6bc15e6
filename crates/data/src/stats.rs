//! The statistics that table cleaning fits, each as scikit-learn and NumPy compute
//! it, so that a fitted pipeline gives their numbers: means, medians, the most
//! frequent value, quantiles (NumPy's linear interpolation) and the Yeo-Johnson
//! and Box-Cox power transforms with their maximum-likelihood exponents
//! (scikit-learn's `PowerTransformer`).

/// The mean of `x` (not empty).
pub(crate) fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// The population variance of `x` (not empty).
pub(crate) fn variance(x: &[f64]) -> f64 {
    let m = mean(x);
    x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / x.len() as f64
}

/// The `p` quantile (0 to 1) of sorted, non-empty `x`, interpolated linearly between
/// the closest ranks (NumPy's default, pandas' too).
pub(crate) fn quantile_sorted(x: &[f64], p: f64) -> f64 {
    let pos = p.clamp(0.0, 1.0) * (x.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(x.len() - 1);
    let t = pos - lo as f64;
    let (a, b) = (x[lo], x[hi]);
    // NumPy's `_lerp`: from the nearer end, so that t = 1 gives b exactly.
    if t >= 0.5 {
        b - (b - a) * (1.0 - t)
    } else {
        a + (b - a) * t
    }
}

/// The `p` quantile of non-empty `x`.
pub(crate) fn quantile(x: &[f64], p: f64) -> f64 {
    let mut sorted = x.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile_sorted(&sorted, p)
}

/// The median of non-empty `x` (the mean of the two middle values of an even count).
pub(crate) fn median(x: &[f64]) -> f64 {
    let mut sorted = x.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The most frequent value of non-empty `x`; the smallest among equally frequent
/// ones (scikit-learn's `SimpleImputer(strategy="most_frequent")`).
pub(crate) fn most_frequent<T: PartialOrd + Clone>(x: &[T]) -> T {
    let mut sorted = x.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let (mut best, mut best_n) = (0, 0);
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i + 1;
        while j < sorted.len() && sorted[j] == sorted[i] {
            j += 1;
        }
        if j - i > best_n {
            (best, best_n) = (i, j - i);
        }
        i = j;
    }
    sorted[best].clone()
}

/// The Yeo-Johnson transform of `x` with exponent `lambda`.
pub(crate) fn yeo_johnson(x: f64, lambda: f64) -> f64 {
    let eps = f64::EPSILON;
    if x >= 0.0 {
        if lambda.abs() < eps {
            x.ln_1p()
        } else {
            ((x + 1.0).powf(lambda) - 1.0) / lambda
        }
    } else if (lambda - 2.0).abs() > eps {
        -((-x + 1.0).powf(2.0 - lambda) - 1.0) / (2.0 - lambda)
    } else {
        -(-x).ln_1p()
    }
}

/// The negative log-likelihood that scikit-learn minimises over `lambda`.
fn yeo_johnson_nll(x: &[f64], lambda: f64) -> f64 {
    let transformed: Vec<f64> = x.iter().map(|&v| yeo_johnson(v, lambda)).collect();
    let var = variance(&transformed);
    if var.is_nan() || var <= f64::MIN_POSITIVE || var == f64::INFINITY {
        return f64::INFINITY;
    }
    let n = x.len() as f64;
    let log_jacobian: f64 = x.iter().map(|v| v.signum() * v.abs().ln_1p()).sum();
    n / 2.0 * var.ln() - (lambda - 1.0) * log_jacobian
}

/// The exponent of the Yeo-Johnson transform that makes `x` (at least two distinct
/// values) most nearly normal: the maximum-likelihood estimate, bracketed from (-2,
/// 2) outwards and refined by golden-section search, as scikit-learn's
/// `PowerTransformer` does with SciPy's `brent`.
pub(crate) fn yeo_johnson_lambda(x: &[f64]) -> f64 {
    if x.iter().all(|&v| v == x[0]) {
        // Every exponent gives a constant, and the likelihood has no maximum.
        return 1.0;
    }
    let f = |l: f64| yeo_johnson_nll(x, l);
    let (a, _, c) = bracket(&f, -2.0, 2.0);
    golden_section(&f, a.min(c), a.max(c))
}

/// The Box-Cox transform of positive `x` with exponent `lambda`.
pub(crate) fn box_cox(x: f64, lambda: f64) -> f64 {
    if lambda == 0.0 {
        x.ln()
    } else {
        (x.powf(lambda) - 1.0) / lambda
    }
}

/// The negative Box-Cox log-likelihood of positive `x` (SciPy's `boxcox_llf`,
/// negated).
fn box_cox_nll(x: &[f64], log_sum: f64, lambda: f64) -> f64 {
    let transformed: Vec<f64> = x.iter().map(|&v| box_cox(v, lambda)).collect();
    let var = variance(&transformed);
    if var.is_nan() || var <= f64::MIN_POSITIVE || var == f64::INFINITY {
        return f64::INFINITY;
    }
    let n = x.len() as f64;
    n / 2.0 * var.ln() - (lambda - 1.0) * log_sum
}

/// The exponent of the Box-Cox transform that makes positive `x` (at least two
/// distinct values) most nearly normal: the maximum-likelihood estimate, searched
/// as for [`yeo_johnson_lambda`] (scikit-learn's `PowerTransformer(method="box-cox")`,
/// through SciPy's `boxcox`).
pub(crate) fn box_cox_lambda(x: &[f64]) -> f64 {
    if x.iter().all(|&v| v == x[0]) {
        return 1.0;
    }
    let log_sum: f64 = x.iter().map(|v| v.ln()).sum();
    let f = |l: f64| box_cox_nll(x, log_sum, l);
    let (a, _, c) = bracket(&f, -2.0, 2.0);
    golden_section(&f, a.min(c), a.max(c))
}

/// A bracket `(a, b, c)` with `f(b)` below `f(a)` and `f(c)`, grown from `(xa, xb)`
/// in golden-ratio steps (SciPy's `bracket`, without its parabolic steps).
fn bracket(f: &impl Fn(f64) -> f64, xa: f64, xb: f64) -> (f64, f64, f64) {
    const GOLD: f64 = 1.618_034;
    let (mut a, mut b) = (xa, xb);
    let (mut fa, mut fb) = (f(a), f(b));
    if fa < fb {
        std::mem::swap(&mut a, &mut b);
        std::mem::swap(&mut fa, &mut fb);
    }
    let mut c = b + GOLD * (b - a);
    let mut fc = f(c);
    let mut steps = 0;
    while fc < fb && steps < 200 {
        (a, b, fb) = (b, c, fc);
        c = b + GOLD * (b - a);
        fc = f(c);
        steps += 1;
    }
    (a, b, c)
}

/// The minimum of unimodal `f` on `[lo, hi]`, to the precision of `f64`.
fn golden_section(f: &impl Fn(f64) -> f64, mut lo: f64, mut hi: f64) -> f64 {
    let r = (5f64.sqrt() - 1.0) / 2.0;
    let mut x1 = hi - r * (hi - lo);
    let mut x2 = lo + r * (hi - lo);
    let (mut f1, mut f2) = (f(x1), f(x2));
    for _ in 0..200 {
        if (hi - lo).abs() <= 1e-12 * (1.0 + lo.abs() + hi.abs()) {
            break;
        }
        if f1 <= f2 {
            hi = x2;
            (x2, f2) = (x1, f1);
            x1 = hi - r * (hi - lo);
            f1 = f(x1);
        } else {
            lo = x1;
            (x1, f1) = (x2, f2);
            x2 = lo + r * (hi - lo);
            f2 = f(x2);
        }
    }
    if f1 <= f2 { x1 } else { x2 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_medians_as_numpy() {
        let x = [4.0, 1.0, 3.0, 2.0];
        // np.quantile([4, 1, 3, 2], [0, 0.1, 0.25, 0.5, 0.99, 1]) =
        // [1.0, 1.3, 1.75, 2.5, 3.97, 4.0]
        for (p, want) in [
            (0.0, 1.0),
            (0.1, 1.3),
            (0.25, 1.75),
            (0.5, 2.5),
            (0.99, 3.97),
            (1.0, 4.0),
        ] {
            assert!((quantile(&x, p) - want).abs() < 1e-12, "{p}");
        }
        assert_eq!(median(&x), 2.5);
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(most_frequent(&[3.0, 1.0, 3.0, 1.0, 2.0]), 1.0);
        assert_eq!(most_frequent(&["b", "a", "b"]), "b");
    }

    #[test]
    fn yeo_johnson_as_scikit_learn() {
        // from sklearn.preprocessing import PowerTransformer
        // x = np.array([[0.5], [1.0], [2.0], [4.0], [8.0], [30.0], [-1.0]])
        // PowerTransformer(standardize=False).fit(x).lambdas_[0]
        // -> 0.09685709293988208 (scikit-learn 1.9.1, SciPy 1.17.1)
        let x = [0.5, 1.0, 2.0, 4.0, 8.0, 30.0, -1.0];
        let lambda = yeo_johnson_lambda(&x);
        assert!((lambda - 0.096_857_092_939_882_08).abs() < 1e-7, "{lambda}");
        assert_eq!(
            yeo_johnson_lambda(&[2.0, 2.0]),
            1.0,
            "a constant stays as it is"
        );
        assert!((yeo_johnson(3.0, 0.0) - 4f64.ln()).abs() < 1e-15);
        assert!((yeo_johnson(-3.0, 2.0) + 4f64.ln()).abs() < 1e-15);
        assert!((yeo_johnson(3.0, 0.5) - 2.0).abs() < 1e-15);
    }

    #[test]
    fn box_cox_as_scikit_learn() {
        // from sklearn.preprocessing import PowerTransformer
        // x = np.array([[0.5], [1.0], [2.0], [4.0], [8.0], [30.0], [0.1]])
        // PowerTransformer(method="box-cox", standardize=False).fit(x).lambdas_[0]
        // -> 0.033545202468055535 (scikit-learn 1.9.1, SciPy 1.17.1)
        let x = [0.5, 1.0, 2.0, 4.0, 8.0, 30.0, 0.1];
        let lambda = box_cox_lambda(&x);
        assert!(
            (lambda - 0.033_545_202_468_055_535).abs() < 1e-7,
            "{lambda}"
        );
        assert_eq!(
            box_cox_lambda(&[2.0, 2.0]),
            1.0,
            "a constant stays as it is"
        );
        assert!((box_cox(4.0, 0.0) - 4f64.ln()).abs() < 1e-15);
        assert!((box_cox(4.0, 0.5) - 2.0).abs() < 1e-15);
    }
}
