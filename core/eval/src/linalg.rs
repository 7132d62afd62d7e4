//! Symmetric eigen-decomposition (cyclic Jacobi) and the PSD matrix square root.
//!
//! FID needs `sqrt(Σ)` of covariance matrices and the manifold metric needs the
//! eigenvalues of `JᵀJ`. Both are symmetric, so the Jacobi method is enough:
//! it is short, needs no dependency and is accurate to a few ulps for the
//! sizes used here (up to a few hundred).

use crate::matrix::Matrix;
use anyhow::{Result, ensure};

/// Eigenvalues (ascending) and eigenvectors (as the columns of a matrix) of a
/// symmetric matrix, so that `A = V diag(values) Vᵀ`.
#[derive(Clone, Debug)]
pub struct SymEigen {
    pub values: Vec<f64>,
    pub vectors: Matrix,
}

/// Cyclic Jacobi: repeatedly rotate away each off-diagonal entry until the
/// off-diagonal part is negligible relative to the whole matrix.
pub fn sym_eigen(a: &Matrix) -> Result<SymEigen> {
    ensure!(a.rows == a.cols, "eigen-decomposition needs a square matrix, got {}x{}", a.rows, a.cols);
    let n = a.rows;
    for i in 0..n {
        for j in 0..i {
            let (x, y) = (a.get(i, j), a.get(j, i));
            ensure!(
                (x - y).abs() <= 1e-9 * (x.abs() + y.abs()).max(1e-300),
                "matrix is not symmetric at ({i},{j}): {x} vs {y}"
            );
        }
    }
    ensure!(a.data.iter().all(|x| x.is_finite()), "matrix has non-finite entries");
    let mut m = a.data.clone();
    let mut v = Matrix::identity(n).data;
    let frob2: f64 = m.iter().map(|x| x * x).sum();

    for _sweep in 0..100 {
        let off2: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j] * m[i * n + j])
            .sum();
        if off2 <= 1e-30 * frob2 || off2 == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let (app, aqq) = (m[p * n + p], m[q * n + q]);
                // Choose the rotation angle φ with cot(2φ) = θ; t = tan φ is
                // the smaller root of t² + 2tθ − 1 = 0 (stable for large θ).
                let theta = (aqq - app) / (2.0 * apq);
                // (signum(0.0) = 1, so θ = 0 gives t = 1, a 45° rotation.)
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // A ← Jᵀ A J, where J rotates the (p, q) plane.
                for k in 0..n {
                    let (akp, akq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * akp - s * akq;
                    m[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * apk - s * aqk;
                    m[q * n + k] = s * apk + c * aqk;
                }
                // V ← V J accumulates the eigenvectors.
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }

    // Sort ascending, permuting the eigenvector columns with the values.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| m[i * n + i].total_cmp(&m[j * n + j]));
    let values = order.iter().map(|&i| m[i * n + i]).collect();
    let mut vectors = Matrix::zeros(n, n);
    for (new_col, &old_col) in order.iter().enumerate() {
        for k in 0..n {
            vectors.data[k * n + new_col] = v[k * n + old_col];
        }
    }
    Ok(SymEigen { values, vectors })
}

/// Square root of a symmetric positive semi-definite matrix: `V diag(√λ) Vᵀ`.
///
/// Covariances estimated from data can have eigenvalues that are slightly
/// negative through rounding; those are clamped to 0 (the true matrix is PSD).
pub fn sqrtm_psd(a: &Matrix) -> Result<Matrix> {
    let SymEigen { values, vectors } = sym_eigen(a)?;
    let n = a.rows;
    let sqrt_l: Vec<f64> = values.iter().map(|&l| l.max(0.0).sqrt()).collect();
    let mut out = Matrix::zeros(n, n);
    for i in 0..n {
        for j in i..n {
            let s: f64 = (0..n).map(|k| vectors.get(i, k) * sqrt_l[k] * vectors.get(j, k)).sum();
            out.set(i, j, s);
            out.set(j, i, s);
        }
    }
    Ok(out)
}

/// Trace of the square root of a symmetric PSD matrix: `Σ √max(λ, 0)`.
pub fn trace_sqrtm_psd(a: &Matrix) -> Result<f64> {
    Ok(sym_eigen(a)?.values.iter().map(|&l| l.max(0.0).sqrt()).sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn random_psd(n: usize, seed: u64) -> Matrix {
        let mut rng = SplitMix64::new(seed);
        let b = Matrix::new(n, n, (0..n * n).map(|_| rng.normal()).collect()).unwrap();
        b.matmul(&b.transpose()).unwrap()
    }

    #[test]
    fn eigen_reconstructs_the_matrix() {
        let a = random_psd(12, 1);
        let e = sym_eigen(&a).unwrap();
        let mut d = Matrix::zeros(12, 12);
        for i in 0..12 {
            d.set(i, i, e.values[i]);
        }
        let back = e.vectors.matmul(&d).unwrap().matmul(&e.vectors.transpose()).unwrap();
        assert!(back.max_abs_diff(&a) < 1e-10, "error {}", back.max_abs_diff(&a));
        assert!(e.values.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn sqrtm_squared_gives_back_a() {
        for (n, seed) in [(1, 3), (5, 4), (40, 5)] {
            let a = random_psd(n, seed);
            let s = sqrtm_psd(&a).unwrap();
            let err = s.matmul(&s).unwrap().max_abs_diff(&a);
            let scale = a.data.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            assert!(err < 1e-11 * scale, "n={n}: |S·S − A| = {err}");
            // The root of a PSD matrix is itself symmetric PSD.
            assert!(sym_eigen(&s).unwrap().values[0] > -1e-10 * scale);
        }
    }

    #[test]
    fn sqrtm_of_diagonal_and_rank_deficient() {
        let a = Matrix::new(3, 3, vec![4.0, 0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 0.0]).unwrap();
        let s = sqrtm_psd(&a).unwrap();
        let want = Matrix::new(3, 3, vec![2.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0]).unwrap();
        assert!(s.max_abs_diff(&want) < 1e-14);
    }

    #[test]
    fn rejects_non_symmetric() {
        let a = Matrix::new(2, 2, vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!(sym_eigen(&a).is_err());
    }
}
