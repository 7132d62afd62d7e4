//! `ganfold bench`: training throughput of every registered method at a fixed configuration,
//! the machine's large-SGEMM rate, and (with `--reference`) PyTorch running the same DCGAN-28
//! and LGAN steps in the same invocation, with the ratio.

use anyhow::{Context, bail};
use candle_core::Device;
use clap::Args;
use ganfold_core::{BuildContext, RunConfig, Rng, data, registry};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// The PyTorch reference steps (written for ganfold; shapes match the plugins' defaults).
const REFERENCE_PY: &str = include_str!("../../scripts/bench/reference.py");
/// Pinned so that figures from different machines compare.
const TORCH: &str = "torch==2.15.0";

#[derive(Args)]
pub struct BenchArgs {
    /// Methods to time (default: every registered method).
    #[arg(long, value_delimiter = ',')]
    methods: Vec<String>,
    /// Timed steps per method (after the warm-up).
    #[arg(long, default_value_t = 20)]
    steps: usize,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Worker threads for ganfold and PyTorch alike (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Also run the PyTorch reference of the DCGAN-28 and LGAN steps and print the ratio.
    #[arg(long)]
    reference: bool,
    /// Python environment with torch (created with pip when missing).
    #[arg(long, default_value = ".venv-bench")]
    venv: PathBuf,
}

struct Row {
    method: String,
    phase: String,
    ms: f64,
    img_s: f64,
    torch: Option<Reference>,
}

#[derive(Clone, Debug, serde::Deserialize)]
struct Reference {
    img_per_s: f64,
    gflop_per_step: f64,
    torch: String,
}

pub fn main(a: &BenchArgs) -> anyhow::Result<()> {
    if a.steps == 0 || a.batch_size == 0 {
        bail!("--steps and --batch-size must be at least 1");
    }
    let threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        bail!("--threads must be at least 1");
    }
    // Our kernels use the rayon pool they run in; the bench runs inside one of `threads` threads.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().context("cannot set up the thread pool")?;
    pool.install(|| bench(a, threads))
}

fn bench(a: &BenchArgs, threads: usize) -> anyhow::Result<()> {
    let python = if a.reference { Some(ensure_venv(&a.venv)?) } else { None };

    let gflops = sgemm_gflops()?;
    println!("machine: {threads} threads; large SGEMM (2048³, f32, Candle/gemm): {gflops:.0} GFLOP/s");
    println!("config: data mnist-5k (28x28), batch {}, each method's default config, {} warm-up + {} timed steps (median)\n", a.batch_size, a.warmup, a.steps);

    let data = data::load("mnist-5k", 0)?;
    let names: Vec<String> = if a.methods.is_empty() {
        registry::methods()?.iter().map(|e| e.name.to_string()).collect()
    } else {
        a.methods.clone()
    };
    let mut rows = vec![];
    for name in &names {
        let (phase, ms) = time_method(name, &data, a)?;
        let torch = match (&python, name.as_str()) {
            (Some(py), "dcgan" | "lgan") => Some(reference(py, &format!("{name}28"), threads, a)?),
            _ => None,
        };
        rows.push(Row { method: name.clone(), phase, ms, img_s: a.batch_size as f64 * 1e3 / ms, torch });
    }

    println!(
        "{:<8} {:<14} {:>9} {:>9} {:>11} {:>7} {:>10} {:>9} {:>10}",
        "method", "phase", "ms/step", "img/s", "torch img/s", "ratio", "GFLOP/step", "util", "torch util"
    );
    for r in &rows {
        let (t, ratio, gf, util, tutil) = match &r.torch {
            Some(t) => (
                format!("{:.0}", t.img_per_s),
                format!("{:.2}x", r.img_s / t.img_per_s),
                format!("{:.2}", t.gflop_per_step),
                format!("{:.0}%", 100.0 * t.gflop_per_step * r.img_s / a.batch_size as f64 / gflops),
                format!("{:.0}%", 100.0 * t.gflop_per_step * t.img_per_s / a.batch_size as f64 / gflops),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into(), "-".into()),
        };
        println!("{:<8} {:<14} {:>9.1} {:>9.0} {:>11} {:>7} {:>10} {:>9} {:>10}", r.method, r.phase, r.ms, r.img_s, t, ratio, gf, util, tutil);
    }
    if let Some(t) = rows.iter().find_map(|r| r.torch.as_ref()) {
        println!("\nreference: PyTorch {} (scripts/bench/reference.py), {threads} threads; GFLOP/step from PyTorch's FLOP counter", t.torch);
        println!("ratio = ganfold img/s / PyTorch img/s (> 1: ganfold faster); util = GFLOP/s / SGEMM GFLOP/s");
    }
    Ok(())
}

/// Mean milliseconds per training step of `name` at its defaults, and the phase it was in.
fn time_method(name: &str, data: &data::Dataset, a: &BenchArgs) -> anyhow::Result<(String, f64)> {
    let cfg = RunConfig::defaults(name)?;
    let entry = registry::method(name)?;
    let device = Device::Cpu;
    let total = a.warmup + a.steps;
    // The run length the method plans its schedule for is its default one (staged methods such as
    // LCC-GAN need room for their stages); the bench times the first steps of it.
    let cx = BuildContext { config: &cfg.method, data, device: &device, seed: 0, batch_size: a.batch_size, total_steps: cfg.train.steps.max(total) };
    let mut m = (entry.build)(&cx).with_context(|| format!("building {name}"))?;
    let mut rng = Rng::new(1);
    let mut times = vec![];
    for step in 0..total {
        let idx: Vec<usize> = (0..a.batch_size).map(|_| rng.below(data.len())).collect();
        let batch = data.batch(&idx, &device)?;
        let t = Instant::now();
        m.step(&batch, step, &mut rng).with_context(|| format!("{name} step {step}"))?;
        if step >= a.warmup {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    if ganfold_core::ops::profile::enabled() {
        let prof = ganfold_core::ops::profile::take();
        let total: f64 = times.iter().sum::<f64>() / 1e3;
        println!("profile of {name} ({} steps incl. warm-up; timed steps took {total:.2} s):", total_steps_label(a));
        for (k, n, secs) in prof {
            println!("  {k:<32} {n:>6} calls {:>9.1} ms/step", secs * 1e3 / (a.warmup + a.steps) as f64);
        }
    }
    // The median step: robust to the odd step slowed by another process on a shared machine.
    times.sort_by(f64::total_cmp);
    Ok((m.phase().unwrap_or_else(|| "train".into()), times[times.len() / 2]))
}

fn total_steps_label(a: &BenchArgs) -> usize {
    a.warmup + a.steps
}

/// Best of four 2048x2048 f32 products.
fn sgemm_gflops() -> anyhow::Result<f64> {
    let n = 2048;
    // GEMM time does not depend on the values (no denormals here), so skip drawing 8M normals.
    let a = candle_core::Tensor::full(0.5f32, (n, n), &Device::Cpu)?;
    let b = candle_core::Tensor::full(0.25f32, (n, n), &Device::Cpu)?;
    let mut best = f64::INFINITY;
    for _ in 0..4 {
        let t = Instant::now();
        a.matmul(&b)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(2.0 * (n as f64).powi(3) / best / 1e9)
}

/// Python with torch in `venv`, installed from PyPI when missing.
fn ensure_venv(venv: &PathBuf) -> anyhow::Result<PathBuf> {
    let py = venv.join("bin").join("python");
    let has_torch = |py: &PathBuf| Command::new(py).args(["-c", "import torch"]).output().is_ok_and(|o| o.status.success());
    if py.exists() && has_torch(&py) {
        return Ok(py);
    }
    eprintln!("installing the PyTorch reference into {} ({TORCH}; about two minutes) ...", venv.display());
    let ok = Command::new("python3").arg("-m").arg("venv").arg(venv).status().context("cannot run python3 (needed for --reference)")?;
    if !ok.success() {
        bail!("python3 -m venv {} failed", venv.display());
    }
    let ok = Command::new(&py).args(["-m", "pip", "install", "--quiet", TORCH, "numpy"]).status()?;
    if !ok.success() || !has_torch(&py) {
        bail!("could not install {TORCH} into {} (pip failed; is PyPI reachable?)", venv.display());
    }
    Ok(py)
}

fn reference(py: &PathBuf, model: &str, threads: usize, a: &BenchArgs) -> anyhow::Result<Reference> {
    let script = std::env::temp_dir().join(format!("ganfold-bench-reference-{}.py", std::process::id()));
    std::fs::write(&script, REFERENCE_PY)?;
    let out = Command::new(py)
        .arg(&script)
        .arg(model)
        .args(["--threads", &threads.to_string(), "--batch", &a.batch_size.to_string()])
        .args(["--steps", &a.steps.to_string(), "--warmup", &a.warmup.to_string()])
        .output()
        .context("cannot run the PyTorch reference")?;
    let _ = std::fs::remove_file(&script);
    if !out.status.success() {
        bail!("PyTorch reference {model} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.trim()).with_context(|| format!("unexpected reference output: {line}"))
}
