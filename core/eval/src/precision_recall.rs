//! Improved precision and recall with k-nearest-neighbour manifolds.
//!
//! Kynkäänniemi et al. 2019, "Improved precision and recall metric for
//! assessing generative models". Each set's manifold is approximated by the
//! union of balls around its samples, each ball's radius being the distance to
//! the sample's k-th nearest neighbour within the same set (k = 3 in the
//! paper). *Precision* is the share of fake samples inside the real manifold
//! (are samples realistic?); *recall* is the share of real samples inside the
//! fake manifold (is the data's variety covered?).

use crate::matrix::Matrix;
use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PrecisionRecall {
    pub precision: f64,
    pub recall: f64,
    /// Neighbour rank that sets the ball radii.
    pub k: usize,
    pub n_real: usize,
    pub n_fake: usize,
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Squared distance of each row to its k-th nearest other row in the same set.
fn knn_radii2(set: &Matrix, k: usize) -> Vec<f64> {
    let n = set.rows;
    let mut radii = Vec::with_capacity(n);
    let mut d = Vec::with_capacity(n);
    for i in 0..n {
        d.clear();
        d.extend((0..n).filter(|&j| j != i).map(|j| sq_dist(set.row(i), set.row(j))));
        // k-th smallest (1-based) without sorting everything.
        let (_, kth, _) = d.select_nth_unstable_by(k - 1, f64::total_cmp);
        radii.push(*kth);
    }
    radii
}

/// Share of `queries` rows that lie in at least one ball of `manifold`.
fn coverage(manifold: &Matrix, radii2: &[f64], queries: &Matrix) -> f64 {
    let inside = (0..queries.rows)
        .filter(|&q| (0..manifold.rows).any(|i| sq_dist(queries.row(q), manifold.row(i)) <= radii2[i]))
        .count();
    inside as f64 / queries.rows as f64
}

/// Improved precision and recall of `fake` against `real` (rows are samples).
pub fn precision_recall(real: &Matrix, fake: &Matrix, k: usize) -> Result<PrecisionRecall> {
    ensure!(
        real.cols == fake.cols,
        "precision/recall: feature dimensions differ ({} real vs {} fake)",
        real.cols,
        fake.cols
    );
    ensure!(k >= 1, "precision/recall: k must be at least 1");
    ensure!(
        real.rows > k && fake.rows > k,
        "precision/recall: need more than k={k} samples per set ({} real, {} fake)",
        real.rows,
        fake.rows
    );
    let (real_r, fake_r) = (knn_radii2(real, k), knn_radii2(fake, k));
    Ok(PrecisionRecall {
        precision: coverage(real, &real_r, fake),
        recall: coverage(fake, &fake_r, real),
        k,
        n_real: real.rows,
        n_fake: fake.rows,
    })
}
