//! Every metric that applies to a run's data, as one JSON object: the code behind
//! `ganfold eval` and behind every experiment's evaluation.
//!
//! Which metrics apply (docs/evaluation.md):
//! * MNIST-like 1x28x28 digits (`mnist-5k`, `mnist`, IDX digit sets): classifier FID, IS, KID,
//!   precision/recall on the pinned MNIST classifier's features, and the class histogram;
//! * `stacked-mnist`: modes covered (of 1000) and KL to uniform;
//! * `ring8`, `grid25`: modes covered, high-quality share, per-mode counts;
//! * any run whose method exposes a generator: the Jacobian spectrum.

use anyhow::{Context, Result, ensure};
use ganfold_core::candle_core::{DType, Device, Tensor};
use ganfold_core::{Dataset, Rng, SampleShape};
use ganfold_eval::modes::{mode_coverage, samples_2d, stacked_mnist_digits, stacked_mnist_report};
use ganfold_eval::{
    FeatureNet, KidOptions, LocalOptions, ManifoldOptions, Matrix, MnistClassifier, ModeOptions, ModeSet, extract, fid,
    inception_score, jacobian_spectrum, kid, local_report, precision_recall,
};
use serde_json::{Map, Value, json};
use std::path::Path;
use std::time::Instant;

/// How an evaluation samples.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalOptions {
    /// Samples per set (generated, and real reference).
    pub samples: usize,
    /// Seed of every random choice of the evaluation (latents, real subsets, KID subsets).
    pub seed: u64,
    /// Latent points of the Jacobian spectrum (0 skips it).
    pub manifold_points: usize,
    /// Real points at which a local generator's charts are measured (0 skips it).
    pub local_points: usize,
    /// Dataset those points come from (e.g. `mnist-val`); default: the run's test split, else
    /// its training data.
    pub local_data: Option<String>,
    /// Device override (`cpu`, `cuda:0`); default: the run's device.
    pub device: Option<String>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self { samples: 5000, seed: 0, manifold_points: 32, local_points: 1000, local_data: None, device: None }
    }
}

/// The report of a trained run (its last checkpoint) against its data.
pub fn evaluate_run(dir: &Path, opts: &EvalOptions) -> Result<Value> {
    ensure!(opts.samples >= 10, "the evaluation needs at least 10 samples (got {})", opts.samples);
    let t0 = Instant::now();
    let run = ganfold_core::train::load_run(dir, opts.device.as_deref())?;
    let m = &run.method;
    check_memory(opts, run.data.shape.numel(), m.generator().map(|g| g.latent_dim()), m.local_generator().is_some())?;
    let mut report = Map::new();
    report.insert("run".into(), json!(dir.display().to_string()));
    report.insert("method".into(), json!(run.config.train.method));
    report.insert("data".into(), json!(run.data.name));
    report.insert("checkpoint_step".into(), json!(run.step));
    report.insert("samples".into(), json!(opts.samples));
    report.insert("seed".into(), json!(opts.seed));
    let mut rng = Rng::derive(opts.seed, "eval-fake");
    let fake = sample_in_batches(run.method.as_ref(), opts.samples, &mut rng)?;
    let real = draw_real(&run.data, opts.samples, &mut Rng::derive(opts.seed, "eval-real"))?;
    data_metrics(&run.data, &real, &fake, opts.seed, &mut report)?;
    if let (Some(g), true) = (run.method.generator(), opts.manifold_points > 0) {
        let d = g.latent_dim();
        let mut zr = Rng::derive(opts.seed, "eval-manifold");
        let z: Vec<f32> = (0..opts.manifold_points * d).map(|_| zr.normal() as f32).collect();
        let z = Tensor::from_vec(z, (opts.manifold_points, d), &run.device)?;
        let mut m = jacobian_spectrum(&|z: &Tensor| g.generate(z), &z, &ManifoldOptions::default())?;
        m.points.clear(); // per-point spectra are too long for the report
        report.insert("manifold".into(), serde_json::to_value(m)?);
    }
    if let (Some(g), true) = (run.method.local_generator(), opts.local_points > 0) {
        let own;
        let (pts, name) = match &opts.local_data {
            Some(name) => {
                own = ganfold_core::data::load(name, opts.seed)?;
                ensure!(
                    own.shape == run.data.shape,
                    "--local-data {name} has samples of {}, the run's data {}",
                    own.shape,
                    run.data.shape
                );
                (&own, name.clone())
            }
            None => match &run.data.test {
                Some(t) => (t.as_ref(), format!("{} test split", run.data.name)),
                None => (&run.data, format!("{} (training data)", run.data.name)),
            },
        };
        let x = draw_real(pts, opts.local_points, &mut Rng::derive(opts.seed, "eval-local"))?.to_device(&run.device)?;
        let net =
            matches!(family(&run.data), Family::Digits).then(|| MnistClassifier::pinned(&Device::Cpu)).transpose()?;
        let fwd = |x: &Tensor, z: &Tensor| g.forward_local(x, z, false)?.to_device(&Device::Cpu);
        let r = local_report(&fwd, g.coord_dim(), &x, net.as_ref(), &LocalOptions::default())?;
        let mut v = serde_json::to_value(r)?;
        v["points_from"] = json!(name);
        report.insert("local".into(), v);
    }
    report.insert("wall_seconds".into(), json!(t0.elapsed().as_secs_f64()));
    Ok(Value::Object(report))
}

/// Refuses sizes whose tensors cannot fit before any is allocated: the fake and the real sets
/// (`samples` each, f32, with room for a copy of each on the way), a Jacobian of `numel` x
/// `latent_dim` per manifold point (f64, its Gram and spectrum alike), and each local point's
/// chart (its tangent vectors and their finite-difference passes, bounded by 64 images).
fn check_memory(opts: &EvalOptions, numel: usize, latent_dim: Option<usize>, local: bool) -> Result<()> {
    let numel = numel as u128;
    ganfold_core::limits::check_alloc("--samples", opts.samples as u128 * numel * 4 * 4)?;
    if let Some(d) = latent_dim {
        ganfold_core::limits::check_alloc(
            "--manifold-points",
            opts.manifold_points as u128 * numel * d as u128 * 8 * 3,
        )?;
    }
    if local {
        ganfold_core::limits::check_alloc("--local-points", opts.local_points as u128 * numel * 4 * 64)?;
    }
    Ok(())
}

/// Real data against itself, the ceiling: the held-out split against the training split where
/// the dataset has one (MNIST test vs train), else two disjoint random halves.
pub fn evaluate_data(name: &str, opts: &EvalOptions) -> Result<Value> {
    ensure!(opts.samples >= 10, "the evaluation needs at least 10 samples (got {})", opts.samples);
    let t0 = Instant::now();
    let data = ganfold_core::data::load(name, opts.seed)?;
    check_memory(opts, data.shape.numel(), None, false)?;
    let mut report = Map::new();
    report.insert("data".into(), json!(data.name));
    report.insert("real_vs_real".into(), json!(true));
    report.insert("seed".into(), json!(opts.seed));
    let mut rng = Rng::derive(opts.seed, "eval-real");
    let (a, b, how) = match &data.test {
        Some(test) => (
            draw_real(&data, opts.samples, &mut rng)?,
            draw_real(test, opts.samples, &mut rng)?,
            "train split vs test split",
        ),
        None => {
            let n = opts.samples.min(data.len() / 2);
            let perm = rng.choose_distinct(data.len(), (2 * n).min(data.len()));
            (
                data.batch(&perm[..n], &Device::Cpu)?.x,
                data.batch(&perm[n..], &Device::Cpu)?.x,
                "two disjoint random halves",
            )
        }
    };
    report.insert("reference".into(), json!(how));
    report.insert("samples".into(), json!(a.dim(0)?));
    data_metrics(&data, &a, &b, opts.seed, &mut report)?;
    report.insert("wall_seconds".into(), json!(t0.elapsed().as_secs_f64()));
    Ok(Value::Object(report))
}

/// Which family of metrics a dataset gets.
enum Family {
    /// 1x28x28 digits: classifier metrics.
    Digits,
    StackedMnist,
    Toy(ModeSet),
    /// No metric of ours applies (e.g. Fashion-MNIST: no pinned classifier).
    None,
}

fn family(data: &Dataset) -> Family {
    match data.shape {
        SampleShape::Image { c: 1, h: 28, w: 28 } if data.is_digits() => Family::Digits,
        SampleShape::Image { c: 3, h: 28, w: 28 } if data.name == "stacked-mnist" => Family::StackedMnist,
        SampleShape::Points { dim: 2 } => ModeSet::for_dataset(&data.name).map_or(Family::None, Family::Toy),
        _ => Family::None,
    }
}

/// The numeric keys (dotted paths) that [`evaluate_run`] reports for runs on `data`, so that an
/// experiment can reject a metric it would never find before training anything.
pub fn metric_keys(data: &Dataset, with_manifold: bool) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = match family(data) {
        Family::Digits => vec![
            "fid.fid",
            "inception_score.mean",
            "inception_score.std",
            "inception_score_real.mean",
            "kid.mean",
            "kid.std",
            "precision_recall.precision",
            "precision_recall.recall",
            "classes_covered",
            "class_kl",
        ],
        Family::StackedMnist => vec!["stacked_mnist.modes_covered", "stacked_mnist.kl_to_uniform"],
        Family::Toy(_) => {
            vec!["modes.modes_covered", "modes.high_quality", "modes.high_quality_fraction", "modes.kl_to_uniform"]
        }
        Family::None => vec![],
    };
    keys.extend(["checkpoint_step", "wall_seconds"]);
    if with_manifold {
        keys.extend(MANIFOLD_KEYS);
    }
    keys
}

/// The Jacobian-spectrum keys (present when the method exposes a generator).
pub const MANIFOLD_KEYS: [&str; 5] = [
    "manifold.median_local_dim",
    "manifold.mean_local_dim",
    "manifold.median_condition",
    "manifold.median_largest_sv",
    "manifold.median_smallest_sv",
];

/// The chart keys (present when the method has a local generator; `local.class_agreement` on
/// digits only).
pub const LOCAL_KEYS: [&str; 6] = [
    "local.class_agreement",
    "local.locality_rmse",
    "local.median_min_eig",
    "local.median_max_eig",
    "local.median_condition",
    "local.tangent_overlap",
];

/// A class counts as covered when it gets at least a tenth of its uniform share of the samples.
const COVERED_SHARE: f64 = 0.1;

/// Adds the metrics that apply to `data` for `fake` against the real reference `real`.
fn data_metrics(data: &Dataset, real: &Tensor, fake: &Tensor, seed: u64, out: &mut Map<String, Value>) -> Result<()> {
    let (real, fake) = (real.to_device(&Device::Cpu)?, fake.to_device(&Device::Cpu)?.to_dtype(DType::F32)?);
    match family(data) {
        Family::Digits => {
            let net = MnistClassifier::pinned(&Device::Cpu)?;
            out.insert("feature_net".into(), json!(net.name()));
            let r = extract(&net, &real, 500)?;
            let f = extract(&net, &fake, 500)?;
            out.insert("fid".into(), serde_json::to_value(fid(&r.features, &f.features)?)?);
            out.insert("inception_score".into(), serde_json::to_value(inception_score(&f.probs, 10)?)?);
            out.insert("inception_score_real".into(), serde_json::to_value(inception_score(&r.probs, 10)?)?);
            let kid_opts = KidOptions { subsets: 100, subset_size: 1000, seed };
            out.insert("kid".into(), serde_json::to_value(kid(&r.features, &f.features, &kid_opts)?)?);
            out.insert(
                "precision_recall".into(),
                serde_json::to_value(precision_recall(&r.features, &f.features, 3)?)?,
            );
            let hist = class_histogram(&f.probs);
            let (covered, kl) = class_coverage(&hist);
            out.insert("class_histogram".into(), json!(hist));
            out.insert("classes_covered".into(), json!(covered));
            out.insert("class_kl".into(), json!(kl));
        }
        Family::StackedMnist => {
            let net = MnistClassifier::pinned(&Device::Cpu)?;
            out.insert("feature_net".into(), json!(net.name()));
            let digits = stacked_mnist_digits(&net, &fake, 500)?;
            out.insert("stacked_mnist".into(), serde_json::to_value(stacked_mnist_report(&digits)?)?);
        }
        Family::Toy(modes) => {
            let report = mode_coverage(&samples_2d(&fake)?, &modes, &ModeOptions::default())?;
            out.insert("modes".into(), serde_json::to_value(report)?);
        }
        Family::None => {
            out.insert("note".into(), json!(format!("no sample-quality metric applies to {}", data.name)));
        }
    }
    Ok(())
}

/// How many samples the classifier puts in each class (arg-max).
fn class_histogram(probs: &Matrix) -> Vec<usize> {
    let mut h = vec![0; probs.cols];
    for i in 0..probs.rows {
        let row = probs.row(i);
        let best = (0..row.len()).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0);
        h[best] += 1;
    }
    h
}

/// Classes covered (at least [`COVERED_SHARE`] of the uniform share) and the KL divergence of the
/// class histogram to the uniform distribution (0 when every class is equally frequent).
pub fn class_coverage(hist: &[usize]) -> (usize, f64) {
    let n: usize = hist.iter().sum();
    if n == 0 || hist.is_empty() {
        return (0, 0.0);
    }
    let k = hist.len() as f64;
    let covered = hist.iter().filter(|&&c| c as f64 >= COVERED_SHARE * n as f64 / k).count();
    let kl = hist
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n as f64;
            p * (p * k).ln()
        })
        .sum();
    (covered, kl)
}

/// `n` real samples (all if fewer), chosen at random: stored data may be sorted by label.
fn draw_real(data: &Dataset, n: usize, rng: &mut Rng) -> Result<Tensor> {
    let idx = rng.choose_distinct(data.len(), n.min(data.len()));
    Ok(data.batch(&idx, &Device::Cpu)?.x)
}

/// `n` generated samples, drawn in batches to bound memory.
fn sample_in_batches(method: &dyn ganfold_core::Method, n: usize, rng: &mut Rng) -> Result<Tensor> {
    let mut parts = Vec::new();
    let mut left = n;
    while left > 0 {
        let b = left.min(500);
        parts.push(method.sample(b, rng)?.to_device(&Device::Cpu)?);
        left -= b;
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// The number at a dotted path of a JSON report (`fid.fid`, `precision_recall.recall`).
pub fn lookup(report: &Value, path: &str) -> Option<f64> {
    lookup_value(report, path)?.as_f64()
}

/// The value at dotted `path`, numeric or not: `null` is a metric the evaluation found undefined
/// (a KL to uniform with no high-quality sample), which is not the same as one never computed.
pub fn lookup_value<'a>(report: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = report;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    Some(cur)
}

/// Writes `report` as pretty JSON, atomically.
pub fn write_report(path: &Path, report: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(report)? + "\n";
    ganfold_core::checkpoint::atomic_write(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_coverage_by_hand() {
        assert_eq!(class_coverage(&[10, 10, 10, 10]), (4, 0.0));
        // 2 classes of 4 hold everything: KL = ln 2; a class with 1 of 80 (< 0.1 * 20) is not covered.
        let (c, kl) = class_coverage(&[20, 20, 0, 0]);
        assert_eq!(c, 2);
        assert!((kl - 2f64.ln()).abs() < 1e-12);
        assert_eq!(class_coverage(&[79, 1, 0, 0]).0, 1);
        assert_eq!(class_coverage(&[]), (0, 0.0));
    }
}
