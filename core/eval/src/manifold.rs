//! A manifold metric for any generator: the singular values of its Jacobian.
//!
//! A generator `G: R^d → R^D` maps the latent space onto (a piece of) a
//! d-dimensional manifold. At a latent point `z`, the singular values of the
//! Jacobian `J = ∂G/∂z` (the square roots of the eigenvalues of `JᵀJ`) tell
//! how the generator stretches each latent direction:
//!
//! * **local dimension**: how many singular values are non-negligible, i.e.
//!   above `rel_threshold` (default 1e-3) times the largest one;
//! * **conditioning**: largest / smallest singular value; a large ratio means
//!   some latent directions barely change the output (a degenerate, folded or
//!   collapsing manifold).
//!
//! J is estimated by central finite differences, so any generator given as a
//! closure works, with no autodiff needed. All statistics are in `f64`.

use crate::linalg::sym_eigen;
use crate::matrix::Matrix;
use anyhow::{Result, ensure};
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ManifoldOptions {
    /// Finite-difference step in latent units. For an `f32` generator use
    /// about 1e-2 to 1e-3 (rounding error grows as the step shrinks); for `f64`, 1e-5.
    pub step: f64,
    /// Singular values above `rel_threshold · largest` count towards the local dimension.
    pub rel_threshold: f64,
}

impl Default for ManifoldOptions {
    fn default() -> Self {
        Self { step: 1e-2, rel_threshold: 1e-3 }
    }
}

/// The spectrum at one latent point.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PointSpectrum {
    /// The min(D, d) singular values of J, largest first.
    pub singular_values: Vec<f64>,
    pub local_dim: usize,
    /// largest / smallest singular value (infinite when J is rank deficient;
    /// serialised as `null` in JSON).
    pub condition: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ManifoldResult {
    /// Latent points the Jacobian was evaluated at.
    pub n_points: usize,
    pub latent_dim: usize,
    pub output_dim: usize,
    pub step: f64,
    pub rel_threshold: f64,
    pub median_smallest_sv: f64,
    pub median_largest_sv: f64,
    pub median_condition: f64,
    pub median_local_dim: f64,
    pub mean_local_dim: f64,
    pub points: Vec<PointSpectrum>,
}

/// Central finite-difference Jacobian (D × d) of `g` at one latent point `z`
/// (shape (d,) or (1, d)). All 2d perturbed codes go through `g` in one batch.
pub fn jacobian_fd<G>(g: &G, z: &Tensor, step: f64) -> Result<Matrix>
where
    G: Fn(&Tensor) -> candle_core::Result<Tensor>,
{
    ensure!(step > 0.0, "finite-difference step must be positive");
    let z0 = z.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let d = z0.len();
    ensure!(d >= 1, "empty latent code");
    // Rows 2j and 2j+1 are z + h·e_j and z − h·e_j.
    let mut codes = Vec::with_capacity(2 * d * d);
    for j in 0..d {
        for sign in [1.0, -1.0] {
            codes.extend(z0.iter().enumerate().map(|(i, &v)| if i == j { v + sign * step } else { v }));
        }
    }
    let codes = Tensor::from_vec(codes, (2 * d, d), z.device())?.to_dtype(z.dtype())?;
    // The step actually taken after rounding to the generator's dtype.
    let taken = Matrix::from_tensor(&codes)?;
    let out = Matrix::from_tensor(&g(&codes)?)?;
    ensure!(out.rows == 2 * d, "generator returned {} samples for {} codes", out.rows, 2 * d);
    let mut jac = Matrix::zeros(out.cols, d);
    for j in 0..d {
        let h2 = taken.get(2 * j, j) - taken.get(2 * j + 1, j);
        ensure!(h2 > 0.0, "finite-difference step {step} vanishes in the latent dtype");
        let (plus, minus) = (out.row(2 * j), out.row(2 * j + 1));
        for r in 0..out.cols {
            jac.set(r, j, (plus[r] - minus[r]) / h2);
        }
    }
    Ok(jac)
}

/// The min(D, d) singular values of `j` (largest first), as √ of the
/// eigenvalues of JᵀJ (or of JJᵀ when J has fewer rows than columns, e.g. a
/// 2-D toy generator with a 100-d latent space: same non-zero spectrum, smaller matrix).
///
/// Squaring limits the relative accuracy of tiny singular values to about
/// 1e-8 of the largest, far below the 1e-3 local-dimension threshold.
pub fn singular_values(j: &Matrix) -> Result<Vec<f64>> {
    let jt = j.transpose();
    let gram = if j.rows < j.cols { j.matmul(&jt)? } else { jt.matmul(j)? };
    let mut sv: Vec<f64> = sym_eigen(&gram)?.values.iter().map(|&l| l.max(0.0).sqrt()).collect();
    sv.reverse();
    Ok(sv)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 { xs[n / 2] } else { 0.5 * (xs[n / 2 - 1] + xs[n / 2]) }
}

/// Jacobian spectra of `g` at each row of `z` (B, d), with summaries.
pub fn jacobian_spectrum<G>(g: &G, z: &Tensor, opts: &ManifoldOptions) -> Result<ManifoldResult>
where
    G: Fn(&Tensor) -> candle_core::Result<Tensor>,
{
    let (b, d) = z.dims2()?;
    ensure!(b >= 1, "no latent points given");
    ensure!(opts.rel_threshold > 0.0, "rel_threshold must be positive");
    let mut points = Vec::with_capacity(b);
    let mut output_dim = 0;
    for i in 0..b {
        let jac = jacobian_fd(g, &z.narrow(0, i, 1)?, opts.step)?;
        output_dim = jac.rows;
        let sv = singular_values(&jac)?;
        let (largest, smallest) = (sv[0], *sv.last().unwrap());
        let local_dim = sv.iter().filter(|&&s| s > opts.rel_threshold * largest).count();
        let condition = if smallest > 0.0 { largest / smallest } else { f64::INFINITY };
        points.push(PointSpectrum { singular_values: sv, local_dim, condition });
    }
    let local_dims: Vec<f64> = points.iter().map(|p| p.local_dim as f64).collect();
    Ok(ManifoldResult {
        n_points: b,
        latent_dim: d,
        output_dim,
        step: opts.step,
        rel_threshold: opts.rel_threshold,
        median_smallest_sv: median(points.iter().map(|p| *p.singular_values.last().unwrap()).collect()),
        median_largest_sv: median(points.iter().map(|p| p.singular_values[0]).collect()),
        median_condition: median(points.iter().map(|p| p.condition).collect()),
        median_local_dim: median(local_dims.clone()),
        mean_local_dim: local_dims.iter().sum::<f64>() / b as f64,
        points,
    })
}
