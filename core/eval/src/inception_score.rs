//! Inception Score (IS), computed from any classifier's class probabilities.
//!
//! Salimans et al. 2016, "Improved techniques for training GANs":
//! `IS = exp( E_x KL( p(y|x) ‖ p(y) ) )`, where `p(y)` is the mean prediction.
//! It is high when each sample is classified confidently (low entropy of
//! `p(y|x)`) and the classes are spread evenly (high entropy of `p(y)`); it
//! ranges from 1 to the number of classes K. As in the reference
//! implementation the samples are cut into `splits` consecutive parts and the
//! mean and (population) standard deviation over the parts are reported.

use crate::matrix::Matrix;
use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IsResult {
    pub mean: f64,
    pub std: f64,
    pub splits: usize,
    /// Number of samples scored.
    pub n_fake: usize,
    pub classes: usize,
}

/// Row-wise softmax in `f64`, for turning logits into probabilities.
pub fn softmax_rows(logits: &Matrix) -> Matrix {
    let mut out = logits.clone();
    for i in 0..out.rows {
        let row = &mut out.data[i * out.cols..(i + 1) * out.cols];
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        for x in row.iter_mut() {
            *x = (*x - max).exp();
            sum += *x;
        }
        row.iter_mut().for_each(|x| *x /= sum);
    }
    out
}

/// Inception score of class probabilities `probs` (N x K, rows sum to 1).
pub fn inception_score(probs: &Matrix, splits: usize) -> Result<IsResult> {
    let (n, k) = (probs.rows, probs.cols);
    ensure!(splits >= 1, "IS needs at least one split");
    ensure!(n >= splits, "IS: {n} samples cannot be cut into {splits} splits");
    ensure!(k >= 1, "IS: no classes");
    for i in 0..n {
        let row = probs.row(i);
        let sum: f64 = row.iter().sum();
        ensure!(
            row.iter().all(|&p| (0.0..=1.0 + 1e-9).contains(&p)) && (sum - 1.0).abs() < 1e-4,
            "IS: row {i} is not a probability vector (sum {sum}); pass softmax outputs, not logits"
        );
    }
    let mut scores = Vec::with_capacity(splits);
    for s in 0..splits {
        let (lo, hi) = (s * n / splits, (s + 1) * n / splits);
        let mut marginal = vec![0.0; k];
        for i in lo..hi {
            for (m, p) in marginal.iter_mut().zip(probs.row(i)) {
                *m += p;
            }
        }
        marginal.iter_mut().for_each(|m| *m /= (hi - lo) as f64);
        // Mean KL(p(y|x) ‖ p(y)); 0·log 0 = 0.
        let mut kl = 0.0;
        for i in lo..hi {
            for (p, m) in probs.row(i).iter().zip(&marginal) {
                if *p > 0.0 {
                    kl += p * (p / m).ln();
                }
            }
        }
        scores.push((kl / (hi - lo) as f64).exp());
    }
    let (mean, std) = mean_std(&scores);
    Ok(IsResult { mean, std, splits, n_fake: n, classes: k })
}

/// Mean and population standard deviation.
pub(crate) fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}
