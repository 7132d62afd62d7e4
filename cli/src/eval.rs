//! `ganfold eval`: every metric that applies to a run's data, as one JSON object.
//!
//! ```text
//! ganfold eval --run DIR [--samples N]   a trained run (its last checkpoint) against its data
//! ganfold eval --data D  [--samples N]   real data against itself: the ceiling
//! ```
//!
//! Which metrics apply (see docs/evaluation.md):
//! * MNIST-like 1x28x28 digits (`mnist-5k`, `mnist`, IDX digit sets): classifier
//!   FID, IS, KID and precision/recall on the pinned MNIST classifier's features;
//! * `stacked-mnist`: modes covered (of 1000) and KL to uniform;
//! * `ring8`, `grid25`: modes covered, high-quality share, per-mode counts;
//! * any run whose method exposes a generator: the Jacobian spectrum.
//!
//! The metric code lives in `ganfold-eval`; this file only draws the samples.

use anyhow::{Context, Result, bail, ensure};
use ganfold_core::candle_core::{DType, Device, Tensor};
use ganfold_core::{Dataset, Rng, SampleShape};
use ganfold_eval::modes::{mode_coverage, samples_2d, stacked_mnist_digits, stacked_mnist_report};
use ganfold_eval::{
    FeatureNet, KidOptions, ManifoldOptions, Matrix, MnistClassifier, ModeOptions, ModeSet, extract, fid,
    inception_score, jacobian_spectrum, kid, precision_recall,
};
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    /// Run directory to evaluate (its last checkpoint); the report is also written to DIR/eval.json.
    #[arg(long, required_unless_present = "data", conflicts_with = "data")]
    pub run: Option<PathBuf>,
    /// Dataset to evaluate against itself (the real-data ceiling), e.g. mnist-5k, mnist, ring8.
    #[arg(long)]
    pub data: Option<String>,
    /// Samples per set (generated, and real reference).
    #[arg(long, default_value_t = 5000)]
    pub samples: usize,
    /// Seed of every random choice of the evaluation (latents, real subsets, KID subsets).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Latent points of the Jacobian spectrum (0 skips it).
    #[arg(long, default_value_t = 32)]
    pub manifold_points: usize,
    /// Device override (`cpu`, `cuda:0`); default: the run's device, or cpu.
    #[arg(long)]
    pub device: Option<String>,
    /// Also write the JSON to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Entry point of the subcommand: prints the report and writes it.
pub fn main(args: &EvalArgs) -> Result<()> {
    let report = evaluate(args)?;
    let text = serde_json::to_string_pretty(&report)? + "\n";
    print!("{text}");
    let mut targets: Vec<PathBuf> = args.out.iter().cloned().collect();
    if let Some(dir) = &args.run {
        targets.push(dir.join("eval.json"));
    }
    for path in targets {
        ganfold_core::checkpoint::atomic_write(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Builds the report without printing it.
pub fn evaluate(args: &EvalArgs) -> Result<Value> {
    ensure!(args.samples >= 10, "--samples must be at least 10 (got {})", args.samples);
    let t0 = Instant::now();
    let mut report = Map::new();
    match (&args.run, &args.data) {
        (Some(dir), None) => {
            let run = ganfold_core::train::load_run(dir, args.device.as_deref())?;
            report.insert("run".into(), json!(dir.display().to_string()));
            report.insert("method".into(), json!(run.config.train.method));
            report.insert("data".into(), json!(run.data.name));
            report.insert("checkpoint_step".into(), json!(run.step));
            report.insert("samples".into(), json!(args.samples));
            report.insert("seed".into(), json!(args.seed));
            let mut rng = Rng::derive(args.seed, "eval-fake");
            let fake = sample_in_batches(run.method.as_ref(), args.samples, &mut rng)?;
            let real = draw_real(&run.data, args.samples, &mut Rng::derive(args.seed, "eval-real"), &Device::Cpu)?;
            data_metrics(&run.data, &real, &fake, args.seed, &mut report)?;
            if let (Some(g), true) = (run.method.generator(), args.manifold_points > 0) {
                let d = g.latent_dim();
                let mut zr = Rng::derive(args.seed, "eval-manifold");
                let z: Vec<f32> = (0..args.manifold_points * d).map(|_| zr.normal() as f32).collect();
                let z = Tensor::from_vec(z, (args.manifold_points, d), &run.device)?;
                let mut m = jacobian_spectrum(&|z: &Tensor| g.generate(z), &z, &ManifoldOptions::default())?;
                m.points.clear(); // per-point spectra are too long for the report
                report.insert("manifold".into(), serde_json::to_value(m)?);
            }
        }
        (None, Some(name)) => {
            let data = ganfold_core::data::load(name, args.seed)?;
            report.insert("data".into(), json!(data.name));
            report.insert("real_vs_real".into(), json!(true));
            report.insert("seed".into(), json!(args.seed));
            let mut rng = Rng::derive(args.seed, "eval-real");
            // The ceiling: the held-out split against the training split where the
            // dataset has one (MNIST test vs train), else two disjoint random halves.
            let (a, b, how) = match &data.test {
                Some(test) => (
                    draw_real(&data, args.samples, &mut rng, &Device::Cpu)?,
                    draw_real(test, args.samples, &mut rng, &Device::Cpu)?,
                    "train split vs test split",
                ),
                None => {
                    let n = args.samples.min(data.len() / 2);
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
            data_metrics(&data, &a, &b, args.seed, &mut report)?;
        }
        _ => bail!("give exactly one of --run DIR or --data NAME"),
    }
    report.insert("wall_seconds".into(), json!(t0.elapsed().as_secs_f64()));
    Ok(Value::Object(report))
}

/// Which family of metrics a dataset gets.
enum Family {
    /// 1x28x28 digits: classifier metrics.
    Digits,
    StackedMnist,
    Toy(ModeSet),
    /// No metric of ours applies (e.g. Fashion-MNIST: no pinned classifier yet).
    None,
}

fn family(data: &Dataset) -> Family {
    match data.shape {
        SampleShape::Image { c: 1, h: 28, w: 28 } if !data.name.contains("fashion") => Family::Digits,
        SampleShape::Image { c: 3, h: 28, w: 28 } if data.name == "stacked-mnist" => Family::StackedMnist,
        SampleShape::Points { dim: 2 } => ModeSet::for_dataset(&data.name).map_or(Family::None, Family::Toy),
        _ => Family::None,
    }
}

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
            out.insert("precision_recall".into(), serde_json::to_value(precision_recall(&r.features, &f.features, 3)?)?);
            out.insert("class_histogram".into(), json!(class_histogram(&f.probs)));
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

/// `n` real samples (all if fewer), chosen at random: stored data may be sorted by label.
fn draw_real(data: &Dataset, n: usize, rng: &mut Rng, device: &Device) -> Result<Tensor> {
    let idx = rng.choose_distinct(data.len(), n.min(data.len()));
    Ok(data.batch(&idx, device)?.x)
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
