//! Measurement harness for the MMGAN README's toy and nearest-neighbour tables (classifier-FID
//! comes from `ganfold eval`). Trains one run with the shared trainer, then scores samples of
//! the final model.
//!
//! ```text
//! cargo build --release -p ganfold-mmgan --example mmgan_measure
//! target/release/examples/mmgan_measure --data ring8 --steps 5000 --seed 0 --out runs/x [--set key=value ...]
//! ```
//! 2-D toys (2,500 samples): a sample is high quality if it lies within 3 std of its nearest
//! centre; a mode is covered if it has >= 1 high-quality sample (the project's definition;
//! a stricter ">= 20" is reported too), and the KL of the high-quality mode histogram
//! to uniform. Images (2,000 samples; a documented proxy, not classifier-FID): each sample's
//! nearest real training image (L2, pixels): mean NN distance (quality), the NN labels'
//! class histogram (classes with >= 2% of samples, KL to uniform).

use anyhow::{Context, bail};
use candle_core::{DType, Device};
use ganfold_core::data::Toy;
use ganfold_core::{Rng, RunConfig, train};
use ganfold_mmgan as _;
// The DCGAN baseline (`--method dcgan`), measured with the same harness.
use ganfold_dcgan as _;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut data, mut steps, mut seed, mut out, mut sets, mut method) =
        ("ring8".to_string(), 5000, 0u64, None, vec![], "mmgan".to_string());
    let mut batch = 64;
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().context("missing value")?;
        match args[i].as_str() {
            "--data" => data = v,
            "--steps" => steps = v.parse()?,
            "--seed" => seed = v.parse()?,
            "--batch" => batch = v.parse()?,
            "--out" => out = Some(PathBuf::from(v)),
            "--set" => sets.push(v),
            "--method" => method = v,
            a => bail!("unknown argument {a}"),
        }
        i += 2;
    }
    let mut cfg = RunConfig::defaults(&method)?;
    cfg.train.data = data.clone();
    cfg.train.steps = steps;
    cfg.train.seed = seed;
    cfg.train.batch_size = batch;
    cfg.train.log_every = 25;
    cfg.train.sample_every = steps;
    cfg.train.checkpoint_every = steps;
    cfg.train.sample_count = if data == "ring8" || data == "grid25" { 1000 } else { 64 };
    for s in &sets {
        cfg.set(s)?;
    }
    let out = out.context("--out DIR is required")?;
    let summary = train::train(cfg, Some(out.clone()), true)?;
    let run = train::load_run(&out, None)?;
    let mut rng = Rng::derive(seed, "measure");
    let mut res = serde_json::Map::new();
    res.insert("wall_seconds".into(), summary.wall_seconds.into());
    let toy = match data.as_str() {
        "ring8" => Some(Toy::Ring8),
        "grid25" => Some(Toy::Grid25),
        _ => None,
    };
    if let Some(toy) = toy {
        let x = run.method.sample(2500, &mut rng)?.to_dtype(DType::F64)?.to_vec2::<f64>()?;
        let (centres, std) = toy.modes();
        let mut hist = vec![0usize; centres.len()];
        let mut hq = 0;
        for p in &x {
            let (k, d) = centres
                .iter()
                .enumerate()
                .map(|(k, c)| (k, ((p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2)).sqrt()))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            if d <= 3.0 * std {
                hist[k] += 1;
                hq += 1;
            }
        }
        let kl = kl_uniform(&hist);
        res.insert("modes_covered".into(), hist.iter().filter(|&&h| h >= 1).count().into());
        res.insert("modes_covered_20".into(), hist.iter().filter(|&&h| h >= 20).count().into());
        res.insert("high_quality".into(), (hq as f64 / x.len() as f64).into());
        res.insert("kl_modes".into(), kl.into());
    } else {
        let n = 2000;
        let dev = Device::Cpu;
        let x = run.method.sample(n, &mut rng)?.flatten_from(1)?.to_dtype(DType::F32)?.to_device(&dev)?;
        let real = run.data.head(run.data.len(), &dev)?.flatten_from(1)?.to_dtype(DType::F32)?;
        let labels = run.data.labels.clone().context("image proxy needs a labelled dataset")?;
        let rn = real.sqr()?.sum_keepdim(1)?.t()?;
        let xn = x.sqr()?.sum_keepdim(1)?;
        let d2 = (xn.broadcast_add(&rn)? - (x.matmul(&real.t()?)? * 2.0)?)?.relu()?;
        let idx = d2.argmin(1)?.to_vec1::<u32>()?;
        let mind = d2.min(1)?.sqrt()?.mean_all()?.to_scalar::<f32>()?;
        let mut hist = vec![0usize; run.data.num_classes];
        for i in idx {
            hist[labels[i as usize] as usize] += 1;
        }
        res.insert("nn_dist".into(), (mind as f64).into());
        res.insert("classes_2pct".into(), hist.iter().filter(|&&h| h as f64 >= 0.02 * n as f64).count().into());
        res.insert("kl_classes".into(), kl_uniform(&hist).into());
    }
    let text = serde_json::to_string(&serde_json::Value::Object(res))?;
    println!("RESULT {text}");
    std::fs::write(out.join("measure.json"), text)?;
    Ok(())
}

/// KL(histogram || uniform); infinite-free: empty histogram gives ln K.
fn kl_uniform(h: &[usize]) -> f64 {
    let tot: usize = h.iter().sum();
    let k = h.len() as f64;
    if tot == 0 {
        return k.ln();
    }
    h.iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / tot as f64;
            p * (p * k).ln()
        })
        .sum()
}
