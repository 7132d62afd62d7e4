//! Local Coordinate Coding (stage 2): learning `M` bases `V` on the autoencoder embeddings.
//!
//! Objective (the paper's Problem 2 / Alg. 1 line 2 with squared reconstruction):
//! ```text
//! J(V, Gamma) = sum_i [ 1/2 ||h_i - V^T gamma_i||^2 + mu sum_j |gamma_ij| ||v_j - h_i||^2 ] + lambda ||V||_F^2
//!               s.t. 1^T gamma_i = 1
//! ```
//! minimised by alternation: a per-point weighted LASSO with the affine constraint (ADMM, then an
//! exact least-squares polish on the support, so codes are sparse and sum exactly to one) and a closed-form basis solve. Everything is plain
//! host `f64` (our choice: the problems are small): `M <= 128`, `K <= 32`. Matrices are row-major `Vec<f64>`; `V` is `M x dB`
//! (one basis per row), `H` is `N x dB`.

use ganfold_core::Rng;

/// Settings of the LCC fit.
#[derive(Clone, Copy, Debug)]
pub struct LccParams {
    /// Locality weight mu (the paper's `L_G` relative to `2 L_h`).
    pub mu: f64,
    /// Basis-norm weight (off by default: paper eq. 2 has no such term).
    pub lambda: f64,
    /// Each point is coded on its `k` nearest bases only (independent of d: V is learned once, paper Alg. 1 line 2).
    pub k: usize,
    /// ADMM iteration cap per point.
    pub admm_iters: usize,
}

/// A sparse code: basis indices and their coefficients (sums to one).
#[derive(Clone, Debug, PartialEq)]
pub struct Code {
    pub idx: Vec<usize>,
    pub val: Vec<f64>,
}

pub fn sqdist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn row(m: &[f64], i: usize, dim: usize) -> &[f64] {
    &m[i * dim..(i + 1) * dim]
}

/// Indices of the `k` nearest rows of `v` (M x dim) to `h`, by distance then index.
pub fn nearest(v: &[f64], dim: usize, h: &[f64], k: usize) -> Vec<usize> {
    let m = v.len() / dim;
    let mut d: Vec<(f64, usize)> = (0..m).map(|j| (sqdist(row(v, j, dim), h), j)).collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    d.into_iter().take(k).map(|(_, j)| j).collect()
}

/// Cholesky factor (lower, row-major) of a symmetric positive definite `n x n` matrix.
pub fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                // Not positive (or NaN): not positive definite.
                if s <= 0.0 || s.is_nan() {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// Solves `L L^T x = b` in place.
pub fn chol_solve(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * n + k] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= l[k * n + i] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
}

/// Cholesky of `a + ridge I`, raising the ridge until it succeeds (a rank-deficient Gram
/// matrix happens when the support is larger than dB + 1).
fn robust_cholesky(a: &[f64], n: usize, ridge: f64) -> Vec<f64> {
    let tr = (0..n).map(|i| a[i * n + i]).sum::<f64>().abs() / n.max(1) as f64;
    let mut eps = ridge;
    loop {
        let mut b = a.to_vec();
        for i in 0..n {
            b[i * n + i] += eps;
        }
        if let Some(l) = cholesky(&b, n) {
            return l;
        }
        eps = if eps == 0.0 { 1e-12 * tr.max(1e-300) } else { eps * 10.0 };
    }
}

/// `argmin_g 1/2 g^T A g - c^T g  s.t. 1^T g = 1` for SPD `A` (given its factor):
/// `g = P c - nu P 1`, `nu = (1^T P c - 1) / (1^T P 1)` (exact affine projection).
fn affine_solve(l: &[f64], n: usize, c: &[f64]) -> Vec<f64> {
    let mut pc = c.to_vec();
    chol_solve(l, n, &mut pc);
    let mut p1 = vec![1.0; n];
    chol_solve(l, n, &mut p1);
    let nu = (pc.iter().sum::<f64>() - 1.0) / p1.iter().sum::<f64>();
    pc.iter().zip(&p1).map(|(a, b)| a - nu * b).collect()
}

/// The LCC code of one point `h` with bases `v` (paper Alg. 1 line 2): weighted LASSO on the `k`
/// nearest bases with `1^T gamma = 1`, solved by ADMM, then polished by the exact
/// equality-constrained solve on the support with the signs fixed, so the code is sparse and
/// sums to one exactly.
pub fn code_point(v: &[f64], dim: usize, h: &[f64], p: &LccParams) -> Code {
    let m = v.len() / dim;
    let nb = nearest(v, dim, h, p.k.min(m));
    let k = nb.len();
    let w: Vec<f64> = nb.iter().map(|&j| sqdist(row(v, j, dim), h)).collect();
    // With 1^T gamma = 1, h - V^T gamma = -(V - 1 h^T)^T gamma: code in coordinates centred on
    // h, so A = (V_K - h)(V_K - h)^T (diag(A) = w) and b0 = 0. Same solution as the direct form
    // A = V_K V_K^T, b0 = V_K h, but translation-invariant and far better conditioned.
    let cen: Vec<Vec<f64>> = nb.iter().map(|&j| row(v, j, dim).iter().zip(h).map(|(x, y)| x - y).collect()).collect();
    let mut a = vec![0.0; k * k];
    let b0 = vec![0.0; k];
    for r in 0..k {
        for c in 0..=r {
            let s: f64 = cen[r].iter().zip(&cen[c]).map(|(x, y)| x * y).sum();
            a[r * k + c] = s;
            a[c * k + r] = s;
        }
    }
    // Our choice: rho = mean w (translation-invariant, same units as A).
    let rho = w.iter().sum::<f64>() / k as f64 + 1e-12;
    let mut arho = a.clone();
    for i in 0..k {
        arho[i * k + i] += rho;
    }
    let l = robust_cholesky(&arho, k, 0.0);
    let mut u = vec![0.0; k];
    let mut y = vec![0.0; k];
    let mut gamma = vec![1.0 / k as f64; k];
    for _ in 0..p.admm_iters {
        let c: Vec<f64> = (0..k).map(|i| b0[i] + rho * (u[i] - y[i])).collect();
        gamma = affine_solve(&l, k, &c);
        let u_prev = u.clone();
        for i in 0..k {
            let a = gamma[i] + y[i];
            let t = p.mu * w[i] / rho;
            u[i] = a.signum() * (a.abs() - t).max(0.0);
            y[i] += gamma[i] - u[i];
        }
        // Stop on both the primal and the dual residual.
        let scale = 1.0 + gamma.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let primal = gamma.iter().zip(&u).map(|(g, u)| (g - u).powi(2)).sum::<f64>().sqrt();
        let dual = rho * u.iter().zip(&u_prev).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
        if primal < 1e-9 * scale && dual < 1e-9 * scale * rho {
            break;
        }
    }
    // Polish: support and signs of u; KKT of the LASSO restricted to them is an equality-
    // constrained least squares with a linear term: A_S g = b_S - mu w_S s - nu 1, 1^T g = 1.
    let mut support: Vec<usize> = (0..k).filter(|&i| u[i] != 0.0).collect();
    if support.is_empty() {
        // ADMM ended with u = 0 (cannot satisfy sum-to-one): use the largest |gamma|.
        let best = (0..k).max_by(|&x, &y| gamma[x].abs().total_cmp(&gamma[y].abs())).unwrap_or(0);
        support.push(best);
    }
    let mut signs: Vec<f64> = support.iter().map(|&i| if u[i] != 0.0 { u[i].signum() } else { 1.0 }).collect();
    // Drop entries whose sign flips and re-solve (a wrong support guess); stop at a consistent
    // support. The support is kept from ADMM: adding entries beyond it can make the sign-fixed
    // system singular (more than dB + 1 bases).
    let point_obj = |g: &[f64], idx: &[usize]| -> f64 {
        let mut q = 0.0;
        for (x, &i) in g.iter().zip(idx) {
            for (y, &j) in g.iter().zip(idx) {
                q += 0.5 * x * y * a[i * k + j];
            }
            q += p.mu * w[i] * x.abs();
        }
        q
    };
    let polished = loop {
        let s = support.len();
        let mut as_ = vec![0.0; s * s];
        let mut c = vec![0.0; s];
        for (r, &i) in support.iter().enumerate() {
            c[r] = b0[i] - p.mu * w[i] * signs[r];
            for (q, &j) in support.iter().enumerate() {
                as_[r * s + q] = a[i * k + j];
            }
        }
        let ls = robust_cholesky(&as_, s, 0.0);
        let mut g = affine_solve(&ls, s, &c);
        if s == 1 {
            g[0] = 1.0;
        }
        let flipped: Vec<usize> = (0..s).filter(|&r| g[r] * signs[r] <= 0.0).collect();
        if flipped.is_empty() || s == 1 {
            break g;
        }
        let keep: Vec<usize> = (0..s).filter(|r| !flipped.contains(r)).collect();
        if keep.is_empty() {
            let best = (0..s).max_by(|&x, &y| g[x].abs().total_cmp(&g[y].abs())).unwrap_or(0);
            support = vec![support[best]];
            signs = vec![1.0];
        } else {
            support = keep.iter().map(|&r| support[r]).collect();
            signs = keep.iter().map(|&r| signs[r]).collect();
        }
    };
    // Keep the polished sparse code unless ADMM's own (exactly affine) iterate is better.
    let all: Vec<usize> = (0..k).collect();
    let (sup, g) =
        if point_obj(&polished, &support) <= point_obj(&gamma, &all) + 1e-12 * (1.0 + point_obj(&gamma, &all).abs()) {
            (support, polished)
        } else {
            let nz: Vec<usize> = (0..k).filter(|&i| gamma[i] != 0.0).collect();
            let g = nz.iter().map(|&i| gamma[i]).collect();
            (nz, g)
        };
    let mut pairs: Vec<(usize, f64)> = sup.iter().zip(&g).map(|(&i, &x)| (nb[i], x)).collect();
    pairs.sort_by_key(|p| p.0);
    Code { idx: pairs.iter().map(|p| p.0).collect(), val: pairs.iter().map(|p| p.1).collect() }
}

/// `V^T gamma` for one code.
pub fn reconstruct(v: &[f64], dim: usize, c: &Code) -> Vec<f64> {
    let mut r = vec![0.0; dim];
    for (&j, &g) in c.idx.iter().zip(&c.val) {
        for (o, x) in r.iter_mut().zip(row(v, j, dim)) {
            *o += g * x;
        }
    }
    r
}

/// The objective J (paper eq. 2, squared reconstruction).
pub fn objective(h: &[f64], v: &[f64], dim: usize, codes: &[Code], p: &LccParams) -> f64 {
    let mut j = 0.0;
    for (i, c) in codes.iter().enumerate() {
        let hi = row(h, i, dim);
        j += 0.5 * sqdist(hi, &reconstruct(v, dim, c));
        for (&b, &g) in c.idx.iter().zip(&c.val) {
            j += p.mu * g.abs() * sqdist(row(v, b, dim), hi);
        }
    }
    j + p.lambda * v.iter().map(|x| x * x).sum::<f64>()
}

/// Codes of every row of `h`.
pub fn code_all(h: &[f64], v: &[f64], dim: usize, p: &LccParams) -> Vec<Code> {
    (0..h.len() / dim).map(|i| code_point(v, dim, row(h, i, dim), p)).collect()
}

/// Relative reconstruction error `sum ||h - V^T gamma||^2 / sum ||h - mean h||^2`.
pub fn relative_error(h: &[f64], v: &[f64], dim: usize, codes: &[Code]) -> f64 {
    let n = h.len() / dim;
    let mut mean = vec![0.0; dim];
    for i in 0..n {
        for (m, x) in mean.iter_mut().zip(row(h, i, dim)) {
            *m += x / n as f64;
        }
    }
    let num: f64 = (0..n).map(|i| sqdist(row(h, i, dim), &reconstruct(v, dim, &codes[i]))).sum();
    let den: f64 = (0..n).map(|i| sqdist(row(h, i, dim), &mean)).sum();
    num / den.max(1e-300)
}

/// The basis step, closed form with `Gamma` fixed:
/// `(Gamma^T Gamma + 2 mu diag(a) + 2 lambda I) V = Gamma^T H + 2 mu |Gamma|^T H`, `a_j = sum_i |gamma_ij|`.
/// A dead basis (`a_j < 1e-8`) is excluded from the solve and re-seeded at the embedding with
/// the largest reconstruction error (deterministic). Returns the new `V` and the dead indices.
pub fn basis_step(h: &[f64], v: &[f64], dim: usize, codes: &[Code], p: &LccParams) -> (Vec<f64>, Vec<usize>) {
    let m = v.len() / dim;
    let mut g = vec![0.0; m * m];
    let mut rhs = vec![0.0; m * dim];
    let mut a = vec![0.0; m];
    for (i, c) in codes.iter().enumerate() {
        let hi = row(h, i, dim);
        for (&j, &gj) in c.idx.iter().zip(&c.val) {
            a[j] += gj.abs();
            for (&q, &gq) in c.idx.iter().zip(&c.val) {
                g[j * m + q] += gj * gq;
            }
            let coef = gj + 2.0 * p.mu * gj.abs();
            for (r, x) in rhs[j * dim..(j + 1) * dim].iter_mut().zip(hi) {
                *r += coef * x;
            }
        }
    }
    let live: Vec<usize> = (0..m).filter(|&j| a[j] >= 1e-8).collect();
    let dead: Vec<usize> = (0..m).filter(|&j| a[j] < 1e-8).collect();
    let n = live.len();
    let mut sys = vec![0.0; n * n];
    for (r, &j) in live.iter().enumerate() {
        for (c, &q) in live.iter().enumerate() {
            sys[r * n + c] = g[j * m + q];
        }
        sys[r * n + r] += 2.0 * p.mu * a[j] + 2.0 * p.lambda;
    }
    let l = robust_cholesky(&sys, n, 0.0);
    let mut out = v.to_vec();
    for col in 0..dim {
        let mut b: Vec<f64> = live.iter().map(|&j| rhs[j * dim + col]).collect();
        chol_solve(&l, n, &mut b);
        for (r, &j) in live.iter().enumerate() {
            out[j * dim + col] = b[r];
        }
    }
    if !dead.is_empty() {
        let mut err: Vec<(f64, usize)> =
            codes.iter().enumerate().map(|(i, c)| (sqdist(row(h, i, dim), &reconstruct(v, dim, c)), i)).collect();
        err.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
        for (t, &j) in dead.iter().enumerate() {
            let i = err[t % err.len()].1;
            out[j * dim..(j + 1) * dim].copy_from_slice(row(h, i, dim));
        }
    }
    (out, dead)
}

/// k-means++ seeding then Lloyd iterations (initial bases), deterministic given `rng`.
pub fn kmeans_init(h: &[f64], dim: usize, m: usize, iters: usize, rng: &mut Rng) -> Vec<f64> {
    let n = h.len() / dim;
    let mut v = Vec::with_capacity(m * dim);
    let first = rng.below(n);
    v.extend_from_slice(row(h, first, dim));
    let mut d2: Vec<f64> = (0..n).map(|i| sqdist(row(h, i, dim), row(h, first, dim))).collect();
    for _ in 1..m {
        let total: f64 = d2.iter().sum();
        let pick = if total > 0.0 {
            let mut t = rng.uniform() * total;
            let mut pick = n - 1;
            for (i, &x) in d2.iter().enumerate() {
                if t < x {
                    pick = i;
                    break;
                }
                t -= x;
            }
            pick
        } else {
            rng.below(n)
        };
        let c = row(h, pick, dim).to_vec();
        for (i, d) in d2.iter_mut().enumerate() {
            *d = d.min(sqdist(row(h, i, dim), &c));
        }
        v.extend_from_slice(&c);
    }
    for _ in 0..iters {
        let mut sum = vec![0.0; m * dim];
        let mut cnt = vec![0usize; m];
        for i in 0..n {
            let j = nearest(&v, dim, row(h, i, dim), 1)[0];
            cnt[j] += 1;
            for (s, x) in sum[j * dim..(j + 1) * dim].iter_mut().zip(row(h, i, dim)) {
                *s += x;
            }
        }
        for j in 0..m {
            if cnt[j] > 0 {
                for t in 0..dim {
                    v[j * dim + t] = sum[j * dim + t] / cnt[j] as f64;
                }
            }
        }
    }
    v
}

/// The sampler's neighbour table (paper Sec. 4.3): for every basis `a`, the `d`
/// nearest bases with `a` itself first, the rest by distance then index. Flat `M x d`.
pub fn knn_table(v: &[f64], dim: usize, d: usize) -> Vec<u32> {
    let m = v.len() / dim;
    let mut out = Vec::with_capacity(m * d);
    for a in 0..m {
        let mut rest: Vec<(f64, usize)> =
            (0..m).filter(|&j| j != a).map(|j| (sqdist(row(v, j, dim), row(v, a, dim)), j)).collect();
        rest.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        out.push(a as u32);
        out.extend(rest.iter().take(d - 1).map(|p| p.1 as u32));
    }
    out
}

/// Random bases of matched norm, the control for the learned ones: basis `j` keeps its norm
/// `||v_j||` and gets a uniformly random direction (a normalised `N(0, I)` draw).
pub fn random_bases_like(v: &[f64], dim: usize, rng: &mut Rng) -> Vec<f64> {
    let mut out = Vec::with_capacity(v.len());
    for vj in v.chunks(dim) {
        let norm = vj.iter().map(|x| x * x).sum::<f64>().sqrt();
        let u: Vec<f64> = (0..dim).map(|_| rng.normal()).collect();
        let un = u.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
        out.extend(u.iter().map(|x| x * norm / un));
    }
    out
}

/// TwoNN intrinsic dimension (Facco, d'Errico, Rodriguez, Laio, Sci. Rep. 2017): with
/// `mu = r2 / r1` the ratio of each point's second to first neighbour distance,
/// `-ln(1 - F(mu)) = d ln(mu)`; `d` is the least-squares slope through the origin over the
/// smallest 90 % of the ratios (the paper discards the largest 10 %). Points with a duplicate
/// (`r1 = 0`) are skipped; `None` with fewer than 3 usable points.
pub fn two_nn_dimension(h: &[f64], dim: usize) -> Option<f64> {
    let n = h.len() / dim;
    let mut mu: Vec<f64> = (0..n)
        .filter_map(|i| {
            let (mut r1, mut r2) = (f64::INFINITY, f64::INFINITY);
            for j in (0..n).filter(|&j| j != i) {
                let d = sqdist(row(h, i, dim), row(h, j, dim));
                if d < r1 {
                    (r1, r2) = (d, r1);
                } else if d < r2 {
                    r2 = d;
                }
            }
            (r1 > 0.0 && r2.is_finite()).then(|| (r2 / r1).sqrt())
        })
        .collect();
    if mu.len() < 3 {
        return None;
    }
    mu.sort_by(f64::total_cmp);
    let total = mu.len() as f64;
    let keep = ((0.9 * total) as usize).max(2);
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, m) in mu[..keep].iter().enumerate() {
        let (x, y) = (m.ln(), -(1.0 - i as f64 / total).ln());
        sxy += x * y;
        sxx += x * x;
    }
    (sxx > 0.0).then(|| sxy / sxx)
}

/// One alternation: coding step then basis step. Returns (codes, J after coding, new V, J after
/// the basis step, dead bases re-seeded).
pub struct Round {
    pub codes: Vec<Code>,
    pub j_code: f64,
    pub v: Vec<f64>,
    pub j_basis: f64,
    pub dead: Vec<usize>,
}

pub fn round(h: &[f64], v: &[f64], dim: usize, p: &LccParams) -> Round {
    let codes = code_all(h, v, dim, p);
    let j_code = objective(h, v, dim, &codes, p);
    let (nv, dead) = basis_step(h, v, dim, &codes, p);
    let j_basis = objective(h, &nv, dim, &codes, p);
    Round { codes, j_code, v: nv, j_basis, dead }
}

/// Fits `V` from an initial `V` for at most `rounds` alternations (stops when the relative
/// decrease of J is below `tol`). Returns the final V, the final codes and the J history.
pub fn fit(
    h: &[f64],
    v0: &[f64],
    dim: usize,
    p: &LccParams,
    rounds: usize,
    tol: f64,
) -> (Vec<f64>, Vec<Code>, Vec<f64>) {
    let mut v = v0.to_vec();
    let mut hist = vec![];
    let mut prev = f64::INFINITY;
    for _ in 0..rounds {
        let r = round(h, &v, dim, p);
        hist.push(r.j_code);
        hist.push(r.j_basis);
        v = r.v;
        let done = prev.is_finite() && (prev - r.j_basis) <= tol * prev.abs();
        prev = r.j_basis;
        if done {
            break;
        }
    }
    let codes = code_all(h, &v, dim, p);
    (v, codes, hist)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TwoNN recovers the dimension of a uniform cube embedded by a random rotation-like map
    /// into 100 dimensions (within 15 %), and random bases keep each basis's norm.
    #[test]
    fn two_nn_finds_the_dimension_and_random_bases_keep_norms() {
        let mut rng = Rng::new(5);
        let dim = 100;
        for d in [2usize, 5] {
            let a: Vec<f64> = (0..d * dim).map(|_| rng.normal()).collect();
            let h: Vec<f64> = (0..2000)
                .flat_map(|_| {
                    let u: Vec<f64> = (0..d).map(|_| rng.uniform()).collect();
                    (0..dim).map(|k| (0..d).map(|j| u[j] * a[j * dim + k]).sum::<f64>()).collect::<Vec<_>>()
                })
                .collect();
            let est = two_nn_dimension(&h, dim).unwrap();
            assert!((est - d as f64).abs() < 0.15 * d as f64, "d = {d}: TwoNN says {est}");
        }
        assert_eq!(two_nn_dimension(&[0.0; 20], 10), None);
        let v: Vec<f64> = (0..8 * dim).map(|_| 3.0 * rng.normal()).collect();
        let r = random_bases_like(&v, dim, &mut rng);
        for (a, b) in v.chunks(dim).zip(r.chunks(dim)) {
            let (na, nb) = (sqdist(a, &[0.0; 100]), sqdist(b, &[0.0; 100]));
            assert!((na - nb).abs() < 1e-9 * na);
            let cos = a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>() / na;
            assert!(cos.abs() < 0.5, "a random direction is nearly orthogonal in 100-d: {cos}");
        }
    }

    fn circle(n: usize, rng: &mut Rng) -> Vec<f64> {
        (0..n)
            .flat_map(|_| {
                let a = std::f64::consts::TAU * rng.uniform();
                [a.cos(), a.sin()]
            })
            .collect()
    }

    fn swiss_roll(n: usize, rng: &mut Rng) -> Vec<f64> {
        (0..n)
            .flat_map(|_| {
                let t = 1.5 * std::f64::consts::PI * (1.0 + 2.0 * rng.uniform());
                let y = 10.0 * rng.uniform();
                [t * t.cos() / 4.0, y / 4.0, t * t.sin() / 4.0]
            })
            .collect()
    }

    fn params(m: usize, k: usize) -> LccParams {
        LccParams { mu: 2.0 / m as f64, lambda: 0.0, k, admm_iters: 3000 }
    }

    #[test]
    fn cholesky_solves_spd_system() {
        let a = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let l = cholesky(&a, 3).unwrap();
        let mut b = [1.0, -2.0, 0.5];
        chol_solve(&l, 3, &mut b);
        for i in 0..3 {
            let r: f64 = (0..3).map(|j| a[i * 3 + j] * b[j]).sum();
            assert!((r - [1.0, -2.0, 0.5][i]).abs() < 1e-12);
        }
        assert!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
    }

    /// LCC codes sum to one (paper Def. 2) and reconstruct points on a known manifold (a circle)
    /// to a small error; codes are zero outside the K nearest bases.
    #[test]
    fn codes_sum_to_one_and_reconstruct_a_circle() {
        let mut rng = Rng::new(1);
        let h = circle(400, &mut rng);
        let p = params(32, 8);
        let v0 = kmeans_init(&h, 2, 32, 10, &mut rng);
        let (v, codes, hist) = fit(&h, &v0, 2, &p, 10, 1e-6);
        assert!(hist.last().unwrap() < &hist[0], "J did not decrease: {hist:?}");
        for (i, c) in codes.iter().enumerate() {
            let s: f64 = c.val.iter().sum();
            assert!((s - 1.0).abs() < 1e-6, "point {i}: sum {s}");
            assert!(c.val.iter().all(|&x| x != 0.0));
            let nb = nearest(&v, 2, &h[2 * i..2 * i + 2], 8);
            assert!(c.idx.iter().all(|j| nb.contains(j)), "code outside the K nearest bases");
        }
        let rel = relative_error(&h, &v, 2, &codes);
        assert!(rel < 1e-3, "relative reconstruction error {rel}");
        // Locality: the points' codes are sparse (a 1-D manifold needs about 2 bases).
        let nnz = codes.iter().map(|c| c.idx.len()).sum::<usize>() as f64 / codes.len() as f64;
        assert!(nnz < 4.0, "mean non-zeros {nnz}");
    }

    /// With K = M, J is non-increasing after every coding and basis step
    /// (the coding step is exact only once ADMM has converged: 3000 iterations here; at the
    /// default cap of 200 it can overshoot J by ~1% on this roll).
    #[test]
    fn objective_is_monotone_on_a_swiss_roll() {
        let mut rng = Rng::new(2);
        let h = swiss_roll(300, &mut rng);
        let p = params(16, 16);
        let v0 = kmeans_init(&h, 3, 16, 10, &mut rng);
        let mut v = v0.clone();
        let mut prev = f64::INFINITY;
        for _ in 0..4 {
            let r = round(&h, &v, 3, &p);
            assert!(r.dead.is_empty());
            assert!(r.j_code <= prev * (1.0 + 1e-6), "coding step raised J: {} -> {}", prev, r.j_code);
            assert!(r.j_basis <= r.j_code * (1.0 + 1e-6), "basis step raised J: {} -> {}", r.j_code, r.j_basis);
            prev = r.j_basis;
            v = r.v;
        }
    }

    /// The closed-form basis step is a minimum of J in V.
    #[test]
    fn basis_step_is_a_minimum() {
        let mut rng = Rng::new(3);
        let h = swiss_roll(200, &mut rng);
        let p = LccParams { lambda: 0.01, ..params(12, 12) };
        let v0 = kmeans_init(&h, 3, 12, 5, &mut rng);
        let codes = code_all(&h, &v0, 3, &p);
        let (v, dead) = basis_step(&h, &v0, 3, &codes, &p);
        assert!(dead.is_empty());
        let j0 = objective(&h, &v, 3, &codes, &p);
        let eps = 1e-5;
        for t in [0, 7, 20, 35] {
            let mut vp = v.clone();
            vp[t] += eps;
            let mut vm = v.clone();
            vm[t] -= eps;
            let g = (objective(&h, &vp, 3, &codes, &p) - objective(&h, &vm, 3, &codes, &p)) / (2.0 * eps);
            assert!(g.abs() < 1e-5 * j0.max(1.0), "dJ/dV[{t}] = {g}");
        }
        for _ in 0..20 {
            let vp: Vec<f64> = v.iter().map(|x| x + 0.01 * rng.normal()).collect();
            assert!(objective(&h, &vp, 3, &codes, &p) >= j0);
        }
    }

    /// Shifting data and initial bases shifts the bases, codes unchanged
    /// (tolerance 1e-4: a tighter 1e-5 is at the level of the ADMM residual).
    #[test]
    fn translation_equivariance() {
        let mut rng = Rng::new(4);
        let h = swiss_roll(150, &mut rng);
        let p = params(10, 10);
        let v0 = kmeans_init(&h, 3, 10, 5, &mut rng);
        let c = [3.0, -1.5, 0.25];
        let shift = |m: &[f64]| m.chunks(3).flat_map(|r| [r[0] + c[0], r[1] + c[1], r[2] + c[2]]).collect::<Vec<_>>();
        let (v1, c1, _) = fit(&h, &v0, 3, &p, 3, 0.0);
        let (v2, c2, _) = fit(&shift(&h), &shift(&v0), 3, &p, 3, 0.0);
        for (a, b) in shift(&v1).iter().zip(&v2) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        let dense = |c: &Code| {
            let mut g = vec![0.0; 10];
            for (&j, &x) in c.idx.iter().zip(&c.val) {
                g[j] = x;
            }
            g
        };
        for (a, b) in c1.iter().zip(&c2) {
            for (x, y) in dense(a).iter().zip(&dense(b)) {
                assert!((x - y).abs() < 1e-4, "codes differ: {a:?} vs {b:?}");
            }
        }
    }

    /// A basis far from all data is re-seeded onto the data, not collapsed.
    #[test]
    fn dead_basis_is_reseeded() {
        let mut rng = Rng::new(5);
        let h = circle(100, &mut rng);
        let mut v0 = kmeans_init(&h, 2, 8, 5, &mut rng);
        v0[14] = 100.0;
        v0[15] = 100.0;
        let p = params(8, 4);
        let r = round(&h, &v0, 2, &p);
        assert_eq!(r.dead, vec![7]);
        let v7 = &r.v[14..16];
        let on_data = h.chunks(2).any(|x| sqdist(x, v7) < 1e-20);
        assert!(on_data, "dead basis re-seeded at {v7:?}");
    }

    /// Neighbour order: anchor first, then nearest by distance then index; equals brute force.
    #[test]
    fn knn_table_is_anchor_first_brute_force() {
        let mut rng = Rng::new(6);
        let v: Vec<f64> = (0..20 * 3).map(|_| rng.normal()).collect();
        let d = 5;
        let t = knn_table(&v, 3, d);
        for a in 0..20 {
            let row_ = &t[a * d..(a + 1) * d];
            assert_eq!(row_[0] as usize, a);
            let brute = nearest(&v, 3, &v[a * 3..a * 3 + 3], d);
            assert_eq!(row_.iter().map(|&x| x as usize).collect::<Vec<_>>(), brute);
        }
    }
}
