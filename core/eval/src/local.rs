//! Metrics of a local generator G(x, z) (LGAN's charts, Qi, Zhang, Hu, CVPR 2018, Sec. 3):
//! does the chart centre G(x, 0) stay at x, and are its tangents ∂G/∂z at z = 0 orthonormal?
//!
//! * **class agreement**: the share of points whose chart centre G(x, 0) gets the same class as
//!   x from the pinned classifier (a collapsed chart, one blot for every x, scores about 0.1);
//! * **locality RMSE**: √mean (G(x, 0) − x)², over points and pixels;
//! * **JᵀJ spectrum** at z = 0, J = ∂G/∂z (D x N) by central differences over all N coordinates:
//!   the eigenvalues of JᵀJ (N x N) per point; orthonormal tangents give all ones. Summaries:
//!   medians over points of the smallest and largest eigenvalue and of the condition number
//!   (largest / smallest);
//! * **tangent overlap**: how much the tangent spaces at different points coincide, the mean
//!   over pairs of points of ||Q_iᵀ Q_j||²_F / N with Q an orthonormal basis of each point's
//!   tangents: 1 when every chart moves along the same directions whatever x is (tangents that
//!   ignore the data), about N / D for unrelated random subspaces.

use crate::linalg::sym_eigen;
use crate::{Matrix, MnistClassifier};
use anyhow::{Result, ensure};
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq)]
pub struct LocalOptions {
    /// Points of the spectrum (each costs 2N generator passes); the other metrics use all.
    pub spectrum_points: usize,
    /// Central-difference step in z (1e-2 suits f32 generators).
    pub delta: f64,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self { spectrum_points: 100, delta: 1e-2 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocalReport {
    pub n_points: usize,
    pub coords: usize,
    /// `None` without a classifier (2-D points).
    pub class_agreement: Option<f64>,
    pub locality_rmse: f64,
    pub spectrum_points: usize,
    pub median_min_eig: f64,
    pub median_max_eig: f64,
    pub median_condition: f64,
    /// Mean over pairs of spectrum points of ||Q_iᵀ Q_j||²_F / N (1: the same tangent space at
    /// every x).
    pub tangent_overlap: f64,
    /// The mean over points of the sorted eigenvalues (ascending).
    pub mean_spectrum: Vec<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

/// Eigenvalues (ascending) of the Gram matrix of the rows of `j` (N rows of length D).
fn spectrum(j: &[Vec<f64>]) -> Result<Vec<f64>> {
    let m = Matrix::from_rows(j)?;
    let mut e = sym_eigen(&m.gram(&m)?)?.values;
    e.sort_by(f64::total_cmp);
    Ok(e)
}

/// An orthonormal basis of the span of the rows (Gram-Schmidt twice; rows that vanish are dropped).
fn orthonormal_rows(j: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let mut q: Vec<Vec<f64>> = vec![];
    for row in j {
        let mut v = row.clone();
        for _ in 0..2 {
            for b in &q {
                let d: f64 = v.iter().zip(b).map(|(p, q)| p * q).sum();
                v.iter_mut().zip(b).for_each(|(p, q)| *p -= d * q);
            }
        }
        let norm = v.iter().map(|p| p * p).sum::<f64>().sqrt();
        if norm > 1e-12 {
            q.push(v.into_iter().map(|p| p / norm).collect());
        }
    }
    q
}

/// Mean over pairs of ||Q_iᵀ Q_j||²_F / N.
fn tangent_overlap(jacobians: &[Vec<Vec<f64>>], n: usize) -> f64 {
    let q: Vec<Vec<Vec<f64>>> = jacobians.iter().map(|j| orthonormal_rows(j)).collect();
    let (mut sum, mut pairs) = (0.0, 0usize);
    for i in 0..q.len() {
        for k in i + 1..q.len() {
            let mut f = 0.0;
            for a in &q[i] {
                for b in &q[k] {
                    let d: f64 = a.iter().zip(b).map(|(p, q)| p * q).sum();
                    f += d * d;
                }
            }
            sum += f / n as f64;
            pairs += 1;
        }
    }
    if pairs == 0 { f64::NAN } else { sum / pairs as f64 }
}

/// The Jacobian J (N rows of length D, ∂G/∂z_j at z = 0) of every row of `x`, by central
/// differences.
pub fn chart_jacobians<G>(g: &G, n: usize, x: &Tensor, delta: f64) -> Result<Vec<Vec<Vec<f64>>>>
where
    G: Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
{
    ensure!(n >= 1 && delta > 0.0, "chart_jacobians: need at least one coordinate and a positive step");
    let b = x.dim(0)?;
    let mut out = Vec::with_capacity(b);
    for start in (0..b).step_by(16) {
        let k = 16.min(b - start);
        let xb = x.narrow(0, start, k)?;
        // Rows (i, j, sign): point i moved by ±delta along coordinate j.
        let mut z = vec![0f64; 2 * k * n * n];
        for i in 0..k {
            for j in 0..n {
                z[((i * n + j) * 2) * n + j] = delta;
                z[((i * n + j) * 2 + 1) * n + j] = -delta;
            }
        }
        let z = Tensor::from_vec(z, (2 * k * n, n), x.device())?.to_dtype(x.dtype())?;
        let mut rep = vec![k, 2 * n];
        rep.extend_from_slice(&x.dims()[1..]);
        let mut flat = vec![k * 2 * n];
        flat.extend_from_slice(&x.dims()[1..]);
        let xr = xb.unsqueeze(1)?.broadcast_as(rep)?.reshape(flat)?;
        let y = g(&xr, &z)?.flatten_from(1)?.to_dtype(DType::F64)?;
        let d = y.dim(1)?;
        let y = y.reshape((k, n, 2, d))?;
        let j = ((y.narrow(2, 0, 1)? - y.narrow(2, 1, 1)?)? / (2.0 * delta))?.squeeze(2)?; // (k, n, D)
        out.extend(j.to_vec3::<f64>()?);
    }
    Ok(out)
}

/// The report at the real points `x` (B, ...); `g(x, z)` is the local generator in eval mode.
pub fn local_report<G>(
    g: &G,
    n: usize,
    x: &Tensor,
    classifier: Option<&MnistClassifier>,
    opts: &LocalOptions,
) -> Result<LocalReport>
where
    G: Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
{
    let b = x.dim(0)?;
    ensure!(b >= 1, "local_report: no points");
    let mut centres = vec![];
    for start in (0..b).step_by(250) {
        let k = 250.min(b - start);
        let xb = x.narrow(0, start, k)?;
        let z0 = Tensor::zeros((k, n), xb.dtype(), xb.device())?;
        centres.push(g(&xb, &z0)?);
    }
    let c = Tensor::cat(&centres, 0)?;
    // G may live on another device than the evaluation's points: compare where G's output is.
    let x = &x.to_device(c.device())?;
    let locality_rmse =
        (c.to_dtype(DType::F64)? - x.to_dtype(DType::F64)?)?.sqr()?.mean_all()?.sqrt()?.to_scalar::<f64>()?;
    let class_agreement = match classifier {
        Some(net) => {
            let (mut same, mut total) = (0usize, 0usize);
            for start in (0..b).step_by(500) {
                let k = 500.min(b - start);
                let a = net.predict(&x.narrow(0, start, k)?.to_dtype(DType::F32)?)?;
                let bb = net.predict(&c.narrow(0, start, k)?.to_dtype(DType::F32)?)?;
                same += a.iter().zip(&bb).filter(|(p, q)| p == q).count();
                total += k;
            }
            Some(same as f64 / total as f64)
        }
        None => None,
    };
    let s = opts.spectrum_points.min(b);
    let jac = if s > 0 { chart_jacobians(g, n, &x.narrow(0, 0, s)?, opts.delta)? } else { vec![] };
    let spectra = jac.iter().map(|j| spectrum(j)).collect::<Result<Vec<_>>>()?;
    let mut mean_spectrum = vec![0.0; n];
    for e in &spectra {
        for (m, v) in mean_spectrum.iter_mut().zip(e) {
            *m += v / spectra.len() as f64;
        }
    }
    Ok(LocalReport {
        n_points: b,
        coords: n,
        class_agreement,
        locality_rmse,
        spectrum_points: spectra.len(),
        median_min_eig: median(spectra.iter().map(|e| e[0]).collect()),
        median_max_eig: median(spectra.iter().map(|e| e[n - 1]).collect()),
        median_condition: median(spectra.iter().map(|e| e[n - 1] / e[0].max(1e-300)).collect()),
        tangent_overlap: tangent_overlap(&jac[..jac.len().min(50)], n),
        mean_spectrum,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// G(x, z) = x + A z: locality exact, JᵀJ = AᵀA, known eigenvalues.
    #[test]
    fn linear_chart_has_the_spectrum_of_its_matrix() -> Result<()> {
        let dev = Device::Cpu;
        let (n, d) = (2, 3);
        // Columns a1 = (2, 0, 0), a2 = (0, 1, 1): AᵀA = diag(4, 2).
        let a = Tensor::from_vec(vec![2f64, 0., 0., 0., 1., 1.], (n, d), &dev)?;
        let g = |x: &Tensor, z: &Tensor| x + z.matmul(&a)?;
        let x = Tensor::from_vec((0..12).map(|i| i as f64 * 0.1).collect::<Vec<_>>(), (4, d), &dev)?;
        let r = local_report(&g, n, &x, None, &LocalOptions { spectrum_points: 4, delta: 1e-3 })?;
        assert!(r.locality_rmse < 1e-12);
        assert!((r.median_min_eig - 2.0).abs() < 1e-9 && (r.median_max_eig - 4.0).abs() < 1e-9, "{r:?}");
        assert!((r.median_condition - 2.0).abs() < 1e-9);
        assert_eq!(r.class_agreement, None);
        // The same linear chart at every x: the tangent spaces coincide.
        assert!((r.tangent_overlap - 1.0).abs() < 1e-9, "{}", r.tangent_overlap);
        // A shifted centre: G(x, 0) = x + 0.5 everywhere -> RMSE 0.5.
        let g2 = |x: &Tensor, z: &Tensor| (x + z.matmul(&a)?)? + 0.5;
        let r2 = local_report(&g2, n, &x, None, &LocalOptions::default())?;
        assert!((r2.locality_rmse - 0.5).abs() < 1e-12);
        Ok(())
    }

    /// Tangent spaces that depend on x: G(x, z) = x + z_1 e_{k(x)} with k(x) the index of the
    /// largest coordinate of x. Points with different k have orthogonal tangents (overlap 0), the
    /// same k identical ones (overlap 1).
    #[test]
    fn tangent_overlap_counts_shared_directions() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[5f64, 0., 0.], [0., 5., 0.], [0., 0., 5.], [6., 0., 0.]], &dev)?;
        let g = |x: &Tensor, z: &Tensor| {
            let k = x.argmax_keepdim(1)?;
            let onehot = Tensor::arange(0u32, 3, x.device())?
                .unsqueeze(0)?
                .broadcast_as(x.shape())?
                .broadcast_eq(&k)?
                .to_dtype(DType::F64)?;
            x + onehot.broadcast_mul(&z.narrow(1, 0, 1)?)?
        };
        let r = local_report(&g, 1, &x, None, &LocalOptions { spectrum_points: 4, delta: 1e-3 })?;
        // 6 pairs: only (0, 3) share a direction.
        assert!((r.tangent_overlap - 1.0 / 6.0).abs() < 1e-9, "{}", r.tangent_overlap);
        Ok(())
    }
}
