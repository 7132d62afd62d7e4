//! Kernel Inception Distance (KID).
//!
//! Bińkowski et al. 2018, "Demystifying MMD GANs": the squared maximum mean
//! discrepancy between real and generated features with the cubic polynomial
//! kernel `k(x, y) = (xᵀy / d + 1)³`, estimated with the *unbiased* U-statistic
//! (diagonal terms left out). Unlike FID it has an unbiased estimator, so its
//! value does not drift with the sample count and it can be slightly negative.
//! As in the paper, it is averaged over random subsets (mean ± std).

use crate::inception_score::mean_std;
use crate::matrix::Matrix;
use crate::rng::SplitMix64;
use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KidOptions {
    /// How many random subset pairs to average over.
    pub subsets: usize,
    /// Samples per subset (taken from each set without replacement).
    pub subset_size: usize,
    /// Seed of the subset sampler, for reproducible figures.
    pub seed: u64,
}

impl Default for KidOptions {
    /// The paper's reference implementation uses 100 subsets of 1000.
    fn default() -> Self {
        Self { subsets: 100, subset_size: 1000, seed: 0 }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KidResult {
    pub mean: f64,
    pub std: f64,
    pub subsets: usize,
    pub subset_size: usize,
    pub n_real: usize,
    pub n_fake: usize,
}

/// The cubic polynomial kernel `(xᵀy / d + 1)³`.
pub fn polynomial_kernel(x: &[f64], y: &[f64]) -> f64 {
    let dot: f64 = x.iter().zip(y).map(|(a, b)| a * b).sum();
    (dot / x.len() as f64 + 1.0).powi(3)
}

/// Unbiased MMD² between the rows `xs` of `x` and `ys` of `y`:
///
/// ```text
/// 1/(m(m−1)) Σ_{i≠j} k(xi,xj) + 1/(n(n−1)) Σ_{i≠j} k(yi,yj) − 2/(mn) Σ_{i,j} k(xi,yj)
/// ```
pub fn mmd2_unbiased(x: &Matrix, xs: &[usize], y: &Matrix, ys: &[usize]) -> Result<f64> {
    ensure!(x.cols == y.cols, "KID: feature dimensions differ ({} vs {})", x.cols, y.cols);
    let (m, n) = (xs.len(), ys.len());
    ensure!(m >= 2 && n >= 2, "KID: each set needs at least 2 samples (got {m} and {n})");
    let (a, b) = (x.select_rows(xs), y.select_rows(ys));
    let d = x.cols as f64;
    let kernel_sum = |g: &Matrix| g.data.iter().map(|&dot| (dot / d + 1.0).powi(3)).sum::<f64>();
    // Σ_{i≠j} = Σ_{all} − Σ_{i=j}.
    let within = |s: &Matrix| -> Result<f64> {
        let g = s.gram(s)?;
        let diag: f64 = (0..s.rows).map(|i| (g.get(i, i) / d + 1.0).powi(3)).sum();
        Ok((kernel_sum(&g) - diag) / (s.rows * (s.rows - 1)) as f64)
    };
    let cross = kernel_sum(&a.gram(&b)?) / (m * n) as f64;
    Ok(within(&a)? + within(&b)? - 2.0 * cross)
}

/// KID between real and fake features, averaged over random subsets.
///
/// If a set is smaller than `subset_size`, the subset size is reduced to the
/// smaller set's size (the result records the size actually used).
pub fn kid(real: &Matrix, fake: &Matrix, opts: &KidOptions) -> Result<KidResult> {
    ensure!(opts.subsets >= 1, "KID: need at least one subset");
    let size = opts.subset_size.min(real.rows).min(fake.rows);
    ensure!(
        size >= 2,
        "KID: too few samples for subsets ({} real, {} fake; need at least 2 each)",
        real.rows,
        fake.rows
    );
    let mut rng = SplitMix64::new(opts.seed);
    let mut values = Vec::with_capacity(opts.subsets);
    for _ in 0..opts.subsets {
        let xs = rng.choose(real.rows, size);
        let ys = rng.choose(fake.rows, size);
        values.push(mmd2_unbiased(real, &xs, fake, &ys)?);
    }
    let (mean, std) = mean_std(&values);
    Ok(KidResult { mean, std, subsets: opts.subsets, subset_size: size, n_real: real.rows, n_fake: fake.rows })
}
