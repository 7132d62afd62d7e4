//! Known-answer tests of the metrics (all in f64, no network involved).

use candle_core::{Device, Tensor};
use ganfold_eval::fid::{GaussianStats, fid_from_stats};
use ganfold_eval::kid::mmd2_unbiased;
use ganfold_eval::manifold::{jacobian_fd, singular_values};
use ganfold_eval::modes::{build_stacked_mnist, kl_to_uniform, mode_coverage, stacked_mnist_report};
use ganfold_eval::rng::SplitMix64;
use ganfold_eval::*;

fn gaussian(n: usize, d: usize, seed: u64) -> Matrix {
    let mut rng = SplitMix64::new(seed);
    Matrix::new(n, d, (0..n * d).map(|_| rng.normal()).collect()).unwrap()
}

// ---------------------------------------------------------------- FID

#[test]
fn fid_of_a_set_against_itself_is_zero() {
    let x = gaussian(500, 16, 1);
    let r = fid(&x, &x).unwrap();
    assert!(r.fid.abs() < 1e-6, "FID(x, x) = {}", r.fid);
    assert_eq!((r.n_real, r.n_fake, r.dim), (500, 500, 16));
}

#[test]
fn fid_against_a_shifted_copy_is_the_squared_shift() {
    // Equal covariances: the closed form reduces to |μ1 − μ2|².
    let x = gaussian(400, 8, 2);
    let shift: Vec<f64> = (0..8).map(|i| 0.25 * i as f64 - 0.5).collect();
    let mut y = x.clone();
    for i in 0..y.rows {
        for (j, s) in shift.iter().enumerate() {
            y.set(i, j, x.get(i, j) + s);
        }
    }
    let want: f64 = shift.iter().map(|s| s * s).sum();
    let got = fid(&x, &y).unwrap().fid;
    assert!((got - want).abs() < 1e-8, "FID {got}, want {want}");
}

/// Points ±a_i·e_i around `mean` have mean `mean` and covariance
/// diag(2a_i² / (n − 1)) exactly, with n = 2d samples.
fn cross_set(mean: &[f64], a: &[f64]) -> Matrix {
    let d = mean.len();
    let mut rows = Vec::new();
    for i in 0..d {
        for s in [1.0, -1.0] {
            let mut r = mean.to_vec();
            r[i] += s * a[i];
            rows.push(r);
        }
    }
    Matrix::from_rows(&rows).unwrap()
}

#[test]
fn fid_with_different_diagonal_covariances_matches_the_closed_form() {
    // For diagonal Σ: FID = |μ1 − μ2|² + Σ_i (σ1_i − σ2_i)².
    let (m1, a1) = ([0.0f64, 1.0, -2.0], [1.0f64, 2.0, 0.5]);
    let (m2, a2) = ([0.5f64, 0.0, -2.0], [3.0f64, 0.25, 0.5]);
    let n = 6.0;
    let sd = |a: f64| (2.0 * a * a / (n - 1.0)).sqrt();
    let want: f64 = (0..3).map(|i| (m1[i] - m2[i]).powi(2) + (sd(a1[i]) - sd(a2[i])).powi(2)).sum();
    let got = fid(&cross_set(&m1, &a1), &cross_set(&m2, &a2)).unwrap().fid;
    assert!((got - want).abs() < 1e-12, "FID {got}, want {want}");
}

#[test]
fn fid_from_stats_with_commuting_full_covariances() {
    // Σ1 = R diag(4, 1) Rᵀ, Σ2 = R diag(1, 9) Rᵀ share eigenvectors, so
    // tr((Σ1Σ2)^½) = 2·1 + 1·3 and FID = (4 + 1) + (1 + 9) − 2·5 = 5.
    let (c, s) = (0.6f64, 0.8f64);
    let rot = |l1: f64, l2: f64| {
        Matrix::new(2, 2, vec![c * c * l1 + s * s * l2, c * s * (l1 - l2), c * s * (l1 - l2), s * s * l1 + c * c * l2])
            .unwrap()
    };
    let a = GaussianStats { n: 10, mean: vec![0.0, 0.0], cov: rot(4.0, 1.0) };
    let b = GaussianStats { n: 10, mean: vec![0.0, 0.0], cov: rot(1.0, 9.0) };
    let got = fid_from_stats(&a, &b).unwrap();
    assert!((got - 5.0).abs() < 1e-12, "FID {got}");
}

#[test]
fn fid_rejects_bad_input() {
    let x = gaussian(10, 4, 3);
    assert!(fid(&x, &gaussian(10, 5, 4)).is_err(), "mismatched feature dims");
    assert!(fid(&x, &gaussian(1, 4, 5)).is_err(), "one sample has no covariance");
}

// ---------------------------------------------------------------- KID

#[test]
fn kid_matches_a_hand_computation() {
    // d = 2, k(x, y) = (xᵀy/2 + 1)³.
    // X = (0,0), (1,0), (0,1), (1,1): pair kernels 1,1,1, 1, 27/8, 27/8
    //   → mean over i≠j = 2·(43/4) / 12 = 43/24.
    // Y = (0,0), (2,0), (0,2), (2,1): mean over i≠j = 13/2; cross mean = 17/4.
    // MMD²_u = 43/24 + 13/2 − 2·17/4 = −5/24 (the unbiased estimate can be < 0).
    let x = Matrix::from_rows(&[vec![0., 0.], vec![1., 0.], vec![0., 1.], vec![1., 1.]]).unwrap();
    let y = Matrix::from_rows(&[vec![0., 0.], vec![2., 0.], vec![0., 2.], vec![2., 1.]]).unwrap();
    let all = [0, 1, 2, 3];
    let got = mmd2_unbiased(&x, &all, &y, &all).unwrap();
    assert!((got - (-5.0 / 24.0)).abs() < 1e-14, "MMD² {got}");
    // With one subset covering everything, kid() gives the same number.
    let r = kid(&x, &y, &KidOptions { subsets: 1, subset_size: 4, seed: 0 }).unwrap();
    assert!((r.mean - got).abs() < 1e-14 && r.std == 0.0);
    assert_eq!((r.n_real, r.n_fake, r.subset_size), (4, 4, 4));
}

#[test]
fn kid_is_unbiased_between_samples_of_one_distribution() {
    // R independent pairs of sets from the same N(0, I): the estimates are
    // i.i.d. with mean 0 (unbiasedness), so their average lies within
    // 4·sd/√R of 0 unless something is wrong (probability < 1e-4 by the CLT).
    // The biased V-statistic (diagonal terms kept) must fail the same bound,
    // which shows the test can tell the two apart.
    let (r, m, d) = (300, 20, 4);
    let (mut u, mut v) = (Vec::new(), Vec::new());
    for i in 0..r {
        let x = gaussian(m, d, 1000 + 2 * i as u64);
        let y = gaussian(m, d, 1001 + 2 * i as u64);
        let idx: Vec<usize> = (0..m).collect();
        let mu = mmd2_unbiased(&x, &idx, &y, &idx).unwrap();
        u.push(mu);
        // V-statistic: all pairs, diagonal k(xi, xi) included, divided by m².
        let mf = m as f64;
        let mean_kernel = |a: &Matrix, b: &Matrix| {
            let mut s = 0.0;
            for i in 0..m {
                for j in 0..m {
                    s += kid::polynomial_kernel(a.row(i), b.row(j));
                }
            }
            s / (mf * mf)
        };
        v.push(mean_kernel(&x, &x) + mean_kernel(&y, &y) - 2.0 * mean_kernel(&x, &y));
    }
    let stats = |xs: &[f64]| {
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
        (mean, var.sqrt() / (xs.len() as f64).sqrt())
    };
    let (mean_u, se_u) = stats(&u);
    let (mean_v, se_v) = stats(&v);
    assert!(mean_u.abs() < 4.0 * se_u, "unbiased mean {mean_u} ± {se_u}");
    assert!(mean_v > 4.0 * se_v, "biased mean {mean_v} ± {se_v} should be clearly positive");
}

#[test]
fn kid_rejects_too_few_samples() {
    let x = gaussian(1, 3, 1);
    assert!(kid(&x, &gaussian(10, 3, 2), &KidOptions::default()).is_err());
    assert!(kid(&gaussian(10, 2, 1), &gaussian(10, 3, 2), &KidOptions::default()).is_err());
}

// ---------------------------------------------------------------- IS

#[test]
fn inception_score_known_cases() {
    // The same prediction everywhere: p(y|x) = p(y), KL = 0, IS = 1.
    let constant = Matrix::from_rows(&vec![vec![0.2, 0.3, 0.5]; 30]).unwrap();
    let r = inception_score(&constant, 3).unwrap();
    assert!((r.mean - 1.0).abs() < 1e-12 && r.std < 1e-12);

    // Confident and evenly spread over K = 10 classes: IS = K in every split.
    let k = 10;
    let onehot: Vec<Vec<f64>> =
        (0..100).map(|i| (0..k).map(|c| if c == i % k { 1.0 } else { 0.0 }).collect()).collect();
    let r = inception_score(&Matrix::from_rows(&onehot).unwrap(), 10).unwrap();
    assert!((r.mean - k as f64).abs() < 1e-12 && r.std < 1e-12, "{r:?}");
    assert_eq!((r.n_fake, r.splits, r.classes), (100, 10, 10));
}

#[test]
fn inception_score_rejects_logits() {
    let logits = Matrix::from_rows(&[vec![2.0, -1.0], vec![0.5, 3.0]]).unwrap();
    assert!(inception_score(&logits, 1).is_err());
    assert!(inception_score(&inception_score::softmax_rows(&logits), 1).is_ok());
    assert!(inception_score(&inception_score::softmax_rows(&logits), 3).is_err(), "more splits than samples");
}

// ---------------------------------------------------------------- precision / recall

#[test]
fn precision_recall_identical_and_disjoint() {
    let x = gaussian(60, 5, 7);
    let r = precision_recall(&x, &x, 3).unwrap();
    assert_eq!((r.precision, r.recall), (1.0, 1.0));
    assert_eq!((r.n_real, r.n_fake, r.k), (60, 60, 3));

    let mut far = gaussian(50, 5, 8);
    far.data.iter_mut().for_each(|v| *v += 100.0);
    let r = precision_recall(&x, &far, 3).unwrap();
    assert_eq!((r.precision, r.recall), (0.0, 0.0));
}

#[test]
fn precision_recall_half_collapsed() {
    // Fakes copy only the first half of the reals (two well-separated clusters):
    // all fakes are realistic (precision 1) but only that cluster is recalled.
    let mut real = gaussian(40, 2, 9);
    for i in 20..40 {
        real.set(i, 0, real.get(i, 0) + 50.0);
    }
    let fake = Matrix::new(20, 2, real.data[..40].to_vec()).unwrap();
    let r = precision_recall(&real, &fake, 3).unwrap();
    assert_eq!((r.precision, r.recall), (1.0, 0.5));
}

// ---------------------------------------------------------------- modes

#[test]
fn ring8_mode_counter_counts_hand_placed_samples_exactly() {
    let ring = ModeSet::ring8();
    let s = ring.std;
    let at = |k: usize, dx: f64, dy: f64| vec![ring.centres[k][0] + dx, ring.centres[k][1] + dy];
    let samples = Matrix::from_rows(&[
        at(0, 0.0, 0.0),         // mode 0, exactly on the centre
        at(0, 2.0 * s, 0.0),     // mode 0, 2σ away
        at(0, 0.0, -2.9 * s),    // mode 0, 2.9σ away
        at(3, 2.0 * s, 2.0 * s), // mode 3, 2.83σ away
        at(5, 3.1 * s, 0.0),     // near mode 5 but outside 3σ: not counted
        vec![0.0, 0.0],          // the origin: far from every mode
    ])
    .unwrap();
    let r = mode_coverage(&samples, &ring, &ModeOptions::default()).unwrap();
    assert_eq!(r.per_mode_counts, vec![3, 0, 0, 1, 0, 0, 0, 0]);
    assert_eq!((r.modes_covered, r.high_quality, r.n_samples, r.n_modes), (2, 4, 6, 8));
    assert!((r.high_quality_fraction - 4.0 / 6.0).abs() < 1e-15);
    // A stricter per-mode threshold drops mode 3.
    let strict = mode_coverage(&samples, &ring, &ModeOptions { sigmas: 3.0, min_count: 2 }).unwrap();
    assert_eq!(strict.modes_covered, 1);
}

#[test]
fn grid25_every_centre_once_is_full_coverage_and_uniform() {
    let grid = ModeSet::grid25();
    assert_eq!(grid.centres.len(), 25);
    let r = mode_coverage(&Matrix::from_rows(&grid.centres).unwrap(), &grid, &ModeOptions::default()).unwrap();
    assert_eq!((r.modes_covered, r.high_quality), (25, 25));
    assert!(r.kl_to_uniform.unwrap().abs() < 1e-15);
    assert!(mode_coverage(&gaussian(3, 3, 1), &grid, &ModeOptions::default()).is_err(), "3-D samples");
}

#[test]
fn stacked_mnist_kl_known_cases() {
    // Every one of the 1000 digit triples once: uniform histogram, KL = 0.
    let all: Vec<[u8; 3]> = (0..1000).map(|m| [(m / 100) as u8, (m / 10 % 10) as u8, (m % 10) as u8]).collect();
    let r = stacked_mnist_report(&all).unwrap();
    assert_eq!((r.modes_covered, r.n_samples), (1000, 1000));
    assert!(r.kl_to_uniform.abs() < 1e-12);
    // Total collapse onto one mode: KL = ln 1000.
    let r = stacked_mnist_report(&[[4, 2, 7]; 50]).unwrap();
    assert_eq!(r.modes_covered, 1);
    assert_eq!(r.counts[427], 50);
    assert!((r.kl_to_uniform - 1000f64.ln()).abs() < 1e-12);
    // Two equally filled bins: KL = ln(1000/2); empty bins contribute 0.
    assert!((kl_to_uniform(&[5, 0, 5, 0]).unwrap() - 2f64.ln()).abs() < 1e-15);
}

#[test]
fn build_stacked_mnist_puts_the_chosen_digits_in_the_channels() {
    // Four constant "images" whose pixel value is their index.
    let data: Vec<f32> = (0..4).flat_map(|i| vec![i as f32; 4]).collect();
    let imgs = Tensor::from_vec(data, (4, 1, 2, 2), &Device::Cpu).unwrap();
    let stacked = build_stacked_mnist(&imgs, &[[0, 1, 2], [3, 3, 1]]).unwrap();
    assert_eq!(stacked.dims(), &[2, 3, 2, 2]);
    let firsts: Vec<f32> =
        stacked.flatten_from(2).unwrap().narrow(2, 0, 1).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(firsts, vec![0.0, 1.0, 2.0, 3.0, 3.0, 1.0]);
    assert!(build_stacked_mnist(&imgs, &[[0, 1, 4]]).is_err(), "index out of range");
}

// ---------------------------------------------------------------- manifold

/// A = R_out · [diag(3, 2, 0.5); 0] · R_in with plane rotations, so its
/// singular values are exactly 3, 2, 0.5.
fn known_linear_map() -> Matrix {
    let (d, big) = (3, 5);
    let mut core = Matrix::zeros(big, d);
    for (i, s) in [3.0, 2.0, 0.5].into_iter().enumerate() {
        core.set(i, i, s);
    }
    let rotation = |n: usize, p: usize, q: usize, angle: f64| {
        let mut r = Matrix::identity(n);
        let (c, s) = (angle.cos(), angle.sin());
        r.set(p, p, c);
        r.set(q, q, c);
        r.set(p, q, -s);
        r.set(q, p, s);
        r
    };
    let r_out =
        rotation(big, 0, 3, 0.7).matmul(&rotation(big, 1, 4, -1.1)).unwrap().matmul(&rotation(big, 2, 0, 0.3)).unwrap();
    let r_in = rotation(d, 0, 1, 0.4).matmul(&rotation(d, 1, 2, 1.3)).unwrap();
    r_out.matmul(&core).unwrap().matmul(&r_in).unwrap()
}

#[test]
fn finite_difference_jacobian_of_a_linear_map_is_the_map() {
    let a = known_linear_map(); // 5 x 3
    let at = a.transpose().to_tensor(&Device::Cpu).unwrap(); // 3 x 5
    let g = |z: &Tensor| z.matmul(&at);
    let z = Tensor::from_vec(vec![0.3f64, -1.2, 2.0], (1, 3), &Device::Cpu).unwrap();
    let j = jacobian_fd(&g, &z, 1e-5).unwrap();
    assert_eq!((j.rows, j.cols), (5, 3));
    assert!(j.max_abs_diff(&a) < 1e-8, "|J − A| = {}", j.max_abs_diff(&a));
    let sv = singular_values(&j).unwrap();
    for (got, want) in sv.iter().zip([3.0, 2.0, 0.5]) {
        assert!((got - want).abs() < 1e-8, "singular values {sv:?}");
    }
}

#[test]
fn jacobian_spectrum_summarises_local_dimension_and_conditioning() {
    let a = known_linear_map();
    let at = a.transpose().to_tensor(&Device::Cpu).unwrap();
    let g = |z: &Tensor| z.matmul(&at);
    let z = Tensor::from_vec(vec![0.0f64, 0.0, 0.0, 1.0, 2.0, 3.0], (2, 3), &Device::Cpu).unwrap();
    let opts = ManifoldOptions { step: 1e-5, rel_threshold: 1e-3 };
    let r = jacobian_spectrum(&g, &z, &opts).unwrap();
    assert_eq!((r.n_points, r.latent_dim, r.output_dim), (2, 3, 5));
    assert!((r.median_condition - 6.0).abs() < 1e-7);
    assert!((r.median_largest_sv - 3.0).abs() < 1e-8 && (r.median_smallest_sv - 0.5).abs() < 1e-8);
    assert_eq!(r.median_local_dim, 3.0);

    // A map that ignores the last latent coordinate has local dimension 2.
    let flat = |z: &Tensor| z.narrow(1, 0, 2)?.matmul(&at.narrow(0, 0, 2)?);
    let r = jacobian_spectrum(&flat, &z, &opts).unwrap();
    assert_eq!(r.median_local_dim, 2.0);
    assert!(r.median_condition.is_infinite() || r.median_condition > 1e6);

    // A wide map (output smaller than latent): min(D, d) singular values, from JJᵀ.
    let wide = |z: &Tensor| z.matmul(&at)?.narrow(1, 0, 2);
    let r = jacobian_spectrum(&wide, &z, &opts).unwrap();
    assert_eq!((r.output_dim, r.points[0].singular_values.len(), r.median_local_dim), (2, 2, 2.0));
    let j = jacobian_fd(&wide, &z.narrow(0, 0, 1).unwrap(), 1e-5).unwrap();
    let sv_wide = singular_values(&j).unwrap();
    let sv_tall = singular_values(&j.transpose()).unwrap();
    for (a, b) in sv_wide.iter().zip(&sv_tall) {
        assert!((a - b).abs() < 1e-10, "{sv_wide:?} vs {sv_tall:?}");
    }
}

// ---------------------------------------------------------------- JSON

#[test]
fn results_serialise_with_sample_counts() {
    let x = gaussian(20, 3, 11);
    let j = serde_json::to_value(fid(&x, &x).unwrap()).unwrap();
    assert_eq!((j["n_real"].as_u64(), j["n_fake"].as_u64()), (Some(20), Some(20)));
    let j = serde_json::to_value(precision_recall(&x, &x, 3).unwrap()).unwrap();
    assert_eq!(j["n_fake"].as_u64(), Some(20));
}
