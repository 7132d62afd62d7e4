//! Fréchet distance between two feature distributions (FID).
//!
//! Heusel et al. 2017, "GANs trained by a two time-scale update rule converge
//! to a local Nash equilibrium". Both sets are summarised by a Gaussian (mean,
//! covariance) and the squared 2-Wasserstein distance between the Gaussians is
//!
//! ```text
//! FID = |μ1 − μ2|² + tr(Σ1) + tr(Σ2) − 2 tr( (Σ1^½ Σ2 Σ1^½)^½ )
//! ```
//!
//! `tr((Σ1 Σ2)^½)` equals `tr((Σ1^½ Σ2 Σ1^½)^½)`, and the latter only involves
//! symmetric PSD matrices, so it is computed with two symmetric
//! eigen-decompositions in `f64` (no general, possibly complex `sqrtm`).
//! With a classifier's features instead of Inception's it is often called
//! "classifier FID"; values are only comparable for the same feature network.

use crate::linalg::{sqrtm_psd, trace_sqrtm_psd};
use crate::matrix::Matrix;
use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};

/// Mean and covariance of a feature set, with the count they came from.
#[derive(Clone, Debug)]
pub struct GaussianStats {
    pub n: usize,
    pub mean: Vec<f64>,
    pub cov: Matrix,
}

impl GaussianStats {
    /// Sample mean and unbiased covariance of the rows of `features`.
    pub fn of(features: &Matrix) -> Result<Self> {
        ensure!(features.rows >= 2, "FID needs at least 2 samples per set, got {}", features.rows);
        Ok(Self { n: features.rows, mean: features.column_means(), cov: features.covariance()? })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FidResult {
    pub fid: f64,
    /// Samples in the first ("real") set.
    pub n_real: usize,
    /// Samples in the second ("fake") set.
    pub n_fake: usize,
    /// Feature dimension.
    pub dim: usize,
}

/// FID between two feature sets (rows are samples).
pub fn fid(real: &Matrix, fake: &Matrix) -> Result<FidResult> {
    ensure!(real.cols == fake.cols, "FID: feature dimensions differ ({} real vs {} fake)", real.cols, fake.cols);
    let (a, b) = (GaussianStats::of(real)?, GaussianStats::of(fake)?);
    Ok(FidResult { fid: fid_from_stats(&a, &b)?, n_real: a.n, n_fake: b.n, dim: real.cols })
}

/// The Fréchet distance between two Gaussians given by their statistics.
pub fn fid_from_stats(a: &GaussianStats, b: &GaussianStats) -> Result<f64> {
    let d = a.mean.len();
    ensure!(b.mean.len() == d && a.cov.rows == d && b.cov.rows == d, "FID: statistics have mismatched dimensions");
    let mean_term: f64 = a.mean.iter().zip(&b.mean).map(|(x, y)| (x - y) * (x - y)).sum();
    let s = sqrtm_psd(&a.cov)?;
    let mut middle = s.matmul(&b.cov)?.matmul(&s)?;
    // S Σ2 S is symmetric in exact arithmetic; symmetrise away the rounding.
    for i in 0..d {
        for j in 0..i {
            let avg = 0.5 * (middle.get(i, j) + middle.get(j, i));
            middle.set(i, j, avg);
            middle.set(j, i, avg);
        }
    }
    let cross = trace_sqrtm_psd(&middle)?;
    Ok(mean_term + a.cov.trace() + b.cov.trace() - 2.0 * cross)
}
