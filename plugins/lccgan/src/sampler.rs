//! LCC sampling (paper Sec. 4.3): pick a random basis (the anchor), take its `d`
//! nearest bases `B`, draw `z ~ N(0, I_d)` and form `h = sum_{j in B} z_j v_j = V^T gamma`, where
//! `gamma` (M-dim) has exactly `d` non-zeros.

use ganfold_core::Rng;

/// How the `d` coefficients are formed from `z ~ N(0, I_d)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SamplerMode {
    /// The paper (and the authors' code): `gamma_B = z`, raw, not normalised. Samples lie in the
    /// linear span of the `d` bases (a subspace through the origin), not in their convex hull.
    Paper,
    /// Deviation (our ablation, not in the paper): `gamma_B = 1/d + s (z - mean z)`, which sums to
    /// one like the learned codes of Def. 2 (the paper's samples do not).
    Affine { scale: f64 },
    /// Deviation (our ablation, not in the paper): `gamma_B = softmax(z / tau)`, so samples lie
    /// inside the convex hull of the `d` bases.
    Convex { tau: f64 },
}

/// A batch of LCC samples.
#[derive(Clone, Debug)]
pub struct LccSample {
    /// The anchor basis of each sample.
    pub anchors: Vec<usize>,
    /// `n x d` selected basis indices (row `i` = `knn[anchors[i]]`).
    pub idx: Vec<usize>,
    /// `n x d` coefficients on those bases.
    pub coef: Vec<f64>,
    /// `n x dB` latent points `V^T gamma`, f32 for the generator.
    pub h: Vec<f32>,
}

/// The coefficients for one `z` under `mode`.
pub fn coefficients(z: &[f64], mode: SamplerMode) -> Vec<f64> {
    let d = z.len() as f64;
    match mode {
        SamplerMode::Paper => z.to_vec(),
        SamplerMode::Affine { scale } => {
            let m = z.iter().sum::<f64>() / d;
            z.iter().map(|x| 1.0 / d + scale * (x - m)).collect()
        }
        SamplerMode::Convex { tau } => {
            let mx = z.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b / tau));
            let e: Vec<f64> = z.iter().map(|x| (x / tau - mx).exp()).collect();
            let s: f64 = e.iter().sum();
            e.iter().map(|x| x / s).collect()
        }
    }
}

/// Draws `n` LCC samples. `v` is `M x dim` (row per basis), `knn` the flat `M x d` table from
/// [`crate::lcc::knn_table`]. Randomness: the `n` anchors first, then the `n x d` normals.
/// `anchor = Some(a)` fixes the anchor (the Table-3 visualisation).
pub fn sample(
    v: &[f64],
    dim: usize,
    knn: &[u32],
    d: usize,
    n: usize,
    mode: SamplerMode,
    anchor: Option<usize>,
    rng: &mut Rng,
) -> LccSample {
    let m = v.len() / dim;
    let anchors: Vec<usize> = (0..n).map(|_| anchor.unwrap_or_else(|| rng.below(m))).collect();
    let mut idx = Vec::with_capacity(n * d);
    let mut coef = Vec::with_capacity(n * d);
    let mut h = vec![0f32; n * dim];
    for (i, &a) in anchors.iter().enumerate() {
        let z: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
        let c = coefficients(&z, mode);
        let mut acc = vec![0f64; dim];
        for (t, &cj) in c.iter().enumerate() {
            let j = knn[a * d + t] as usize;
            idx.push(j);
            for (o, x) in acc.iter_mut().zip(&v[j * dim..(j + 1) * dim]) {
                *o += cj * x;
            }
        }
        coef.extend_from_slice(&c);
        for (o, x) in h[i * dim..(i + 1) * dim].iter_mut().zip(&acc) {
            *o = *x as f32;
        }
    }
    LccSample { anchors, idx, coef, h }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lcc::{knn_table, nearest};

    fn bases(m: usize, dim: usize, seed: u64) -> Vec<f64> {
        let mut r = Rng::new(seed);
        (0..m * dim).map(|_| r.normal()).collect()
    }

    /// The sampler picks exactly the d bases nearest to the chosen one:
    /// d distinct non-zeros, equal to a brute-force d-NN of the anchor,
    /// anchor included; and h == sum_j z_j v_j.
    #[test]
    fn picks_exactly_the_d_nearest_bases_of_the_anchor() {
        let (m, dim) = (24, 4);
        let v = bases(m, dim, 1);
        let mut rng = Rng::new(2);
        for d in [1, 3, 5, 10] {
            let knn = knn_table(&v, dim, d);
            let s = sample(&v, dim, &knn, d, 200, SamplerMode::Paper, None, &mut rng);
            for i in 0..200 {
                let sel = &s.idx[i * d..(i + 1) * d];
                let mut uniq = sel.to_vec();
                uniq.sort();
                uniq.dedup();
                assert_eq!(uniq.len(), d, "selected bases are not distinct");
                let a = s.anchors[i];
                assert_eq!(sel[0], a, "anchor is not first");
                let mut brute = nearest(&v, dim, &v[a * dim..(a + 1) * dim], d);
                brute.sort();
                assert_eq!(uniq, brute, "not the d nearest bases of anchor {a}");
                // Dense gamma: exactly d non-zeros (z != 0 almost surely).
                let mut gamma = vec![0.0; m];
                for t in 0..d {
                    gamma[sel[t]] = s.coef[i * d + t];
                }
                assert_eq!(gamma.iter().filter(|&&g| g != 0.0).count(), d);
                for c in 0..dim {
                    let want: f64 = (0..m).map(|j| gamma[j] * v[j * dim + c]).sum();
                    assert!((s.h[i * dim + c] as f64 - want).abs() < 1e-5);
                }
            }
        }
    }

    /// The paper's coefficients are raw N(0, 1) (no normalisation);
    /// anchors are uniform.
    #[test]
    fn paper_coefficients_are_standard_normal_and_anchors_uniform() {
        let (m, dim, d) = (10, 3, 4);
        let v = bases(m, dim, 3);
        let knn = knn_table(&v, dim, d);
        let mut rng = Rng::new(4);
        let n = 25_000;
        let s = sample(&v, dim, &knn, d, n, SamplerMode::Paper, None, &mut rng);
        let k = s.coef.len() as f64;
        let mean = s.coef.iter().sum::<f64>() / k;
        let var = s.coef.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / k;
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.02, "mean {mean} var {var}");
        let sums: Vec<f64> = s.coef.chunks(d).map(|c| c.iter().sum()).collect();
        let sv = sums.iter().map(|x| x * x).sum::<f64>() / n as f64;
        assert!((sv - d as f64).abs() < 0.15, "Var(sum gamma) {sv}, expected {d}");
        let mut counts = vec![0f64; m];
        for &a in &s.anchors {
            counts[a] += 1.0;
        }
        let e = n as f64 / m as f64;
        let chi2: f64 = counts.iter().map(|c| (c - e).powi(2) / e).sum();
        assert!(chi2 < 27.9, "chi-square {chi2} (9 dof, p = 0.001 at 27.9)");
    }

    /// The ablation modes sum to one; convex is non-negative.
    #[test]
    fn affine_and_convex_variants() {
        let mut rng = Rng::new(5);
        for _ in 0..100 {
            let z: Vec<f64> = (0..5).map(|_| 3.0 * rng.normal()).collect();
            let a = coefficients(&z, SamplerMode::Affine { scale: 1.0 });
            assert!((a.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            let c = coefficients(&z, SamplerMode::Convex { tau: 1.0 });
            assert!((c.iter().sum::<f64>() - 1.0).abs() < 1e-12 && c.iter().all(|&x| x >= 0.0));
        }
    }

    #[test]
    fn fixed_anchor_uses_only_its_bases() {
        let v = bases(12, 2, 6);
        let knn = knn_table(&v, 2, 3);
        let s = sample(&v, 2, &knn, 3, 50, SamplerMode::Paper, Some(7), &mut Rng::new(1));
        assert!(s.anchors.iter().all(|&a| a == 7));
        assert!(s.idx.chunks(3).all(|c| c == [knn[21] as usize, knn[22] as usize, knn[23] as usize]));
    }
}
