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

/// Rows per block of the distance computations (bounds memory to
/// `BLOCK × n` distances at a time).
const BLOCK: usize = 512;

/// Calls `f(i, squared distances from row i of a to every row of b)`, with the
/// distances computed blockwise as |a|² + |b|² − 2 a·b (clamped at 0).
fn for_each_distance_row(a: &Matrix, b: &Matrix, mut f: impl FnMut(usize, &[f64])) -> Result<()> {
    let (na, nb) = (a.row_sq_norms(), b.row_sq_norms());
    let mut start = 0;
    while start < a.rows {
        let len = BLOCK.min(a.rows - start);
        let g = a.slice_rows(start, len).gram(b)?;
        let mut row = vec![0.0; b.rows];
        for r in 0..len {
            let i = start + r;
            for (j, d) in row.iter_mut().enumerate() {
                *d = (na[i] + nb[j] - 2.0 * g.get(r, j)).max(0.0);
            }
            f(i, &row);
        }
        start += len;
    }
    Ok(())
}

/// Squared distance of each row to its k-th nearest other row in the same set.
fn knn_radii2(set: &Matrix, k: usize) -> Result<Vec<f64>> {
    let mut radii = vec![0.0; set.rows];
    for_each_distance_row(set, set, |i, d| {
        // Leave the point itself out, then take the k-th smallest (1-based).
        let mut others: Vec<f64> = d.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, &v)| v).collect();
        let (_, kth, _) = others.select_nth_unstable_by(k - 1, f64::total_cmp);
        radii[i] = *kth;
    })?;
    Ok(radii)
}

/// Share of `queries` rows that lie in at least one ball of `manifold`.
fn coverage(manifold: &Matrix, radii2: &[f64], queries: &Matrix) -> Result<f64> {
    let mut inside = 0usize;
    for_each_distance_row(queries, manifold, |_, d| {
        if d.iter().zip(radii2).any(|(dist, r)| dist <= r) {
            inside += 1;
        }
    })?;
    Ok(inside as f64 / queries.rows as f64)
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
    let (real_r, fake_r) = (knn_radii2(real, k)?, knn_radii2(fake, k)?);
    Ok(PrecisionRecall {
        precision: coverage(real, &real_r, fake)?,
        recall: coverage(fake, &fake_r, real)?,
        k,
        n_real: real.rows,
        n_fake: fake.rows,
    })
}
