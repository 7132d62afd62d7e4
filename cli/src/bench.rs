//! `ganfold bench`: training throughput of every registered method at a fixed configuration,
//! the machine's large-SGEMM rate, and (with `--reference`) PyTorch running the same DCGAN-28
//! and LGAN steps in the same invocation, in alternating blocks of steps, with the ratio.

use anyhow::{Context, bail};
use candle_core::Device;
use clap::Args;
use ganfold_core::{BuildContext, Rng, RunConfig, data, registry};
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
    /// Device of the timed steps, ganfold's and PyTorch's alike: `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// First compare every layer kind on the CPU and on `--device` (forward, gradients, an Adam
    /// step; cli/src/parity.rs); a mismatch fails the bench.
    #[arg(long)]
    parity: bool,
}

struct Row {
    method: String,
    phase: String,
    ms: f64,
    img_s: f64,
    torch: Option<Reference>,
}

#[derive(Clone, Debug)]
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
    println!(
        "config: data mnist-5k (28x28), batch {}, each method's default config, {} warm-up + {} timed steps (median)\n",
        a.batch_size, a.warmup, a.steps
    );

    let device = ganfold_core::train::parse_device(&a.device)?;
    if a.parity {
        crate::parity::check(&device)?;
    }
    println!("device: {} (each timed step ends with a device synchronisation)", a.device);
    let data = data::load("mnist-5k", 0)?;
    let names: Vec<String> = if a.methods.is_empty() {
        registry::methods()?.iter().map(|e| e.name.to_string()).collect()
    } else {
        a.methods.clone()
    };
    let mut rows = vec![];
    for name in &names {
        let server = match (&python, name.as_str()) {
            (Some(py), "dcgan" | "lgan") => Some(TorchServer::start(py, &format!("{name}28"), threads, a)?),
            _ => None,
        };
        let (phase, ms, torch) = time_method(name, &data, &device, a, server)?;
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
        println!(
            "{:<8} {:<14} {:>9.1} {:>9.0} {:>11} {:>7} {:>10} {:>9} {:>10}",
            r.method, r.phase, r.ms, r.img_s, t, ratio, gf, util, tutil
        );
    }
    if let Some(t) = rows.iter().find_map(|r| r.torch.as_ref()) {
        println!(
            "\nreference: PyTorch {} (scripts/bench/reference.py), {threads} threads; GFLOP/step from PyTorch's FLOP counter",
            t.torch
        );
        println!("ratio = ganfold img/s / PyTorch img/s (> 1: ganfold faster); util = GFLOP/s / SGEMM GFLOP/s");
    }
    Ok(())
}

/// Blocks each side runs in turn when compared with PyTorch (see `time_method`).
const ROUNDS: usize = 4;

/// The median milliseconds per training step of `name` at its defaults, the phase it was in, and
/// PyTorch's figures when a reference server is given. With a reference the timed steps run in
/// `ROUNDS` blocks alternating with PyTorch's blocks of the same size, so that a slow spell of a
/// shared machine (±20 % over minutes here) falls on both sides instead of on one.
fn time_method(
    name: &str,
    data: &data::Dataset,
    device: &Device,
    a: &BenchArgs,
    mut torch: Option<TorchServer>,
) -> anyhow::Result<(String, f64, Option<Reference>)> {
    let cfg = RunConfig::defaults(name)?;
    let entry = registry::method(name)?;
    let total = a.warmup + a.steps;
    // The run length the method plans its schedule for is its default one (staged methods such as
    // LCC-GAN need room for their stages); the bench times the first steps of it.
    let cx = BuildContext {
        config: &cfg.method,
        data,
        device,
        seed: 0,
        batch_size: a.batch_size,
        total_steps: cfg.train.steps.max(total),
        purpose: ganfold_core::Purpose::Train,
    };
    let mut m = (entry.build)(&cx).with_context(|| format!("building {name}"))?;
    let mut rng = Rng::new(1);
    let (mut times, mut torch_times) = (vec![], vec![]);
    let block = if torch.is_some() { a.steps.div_ceil(ROUNDS) } else { a.steps };
    for step in 0..total {
        let batches = (0..m.batches_per_step())
            .map(|_| {
                let idx: Vec<usize> = (0..a.batch_size).map(|_| rng.below(data.len())).collect();
                data.batch(&idx, device)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let t = Instant::now();
        m.step_batches(&batches, step, &mut rng).with_context(|| format!("{name} step {step}"))?;
        // GPU kernels run asynchronously: a step is done when the device is.
        device.synchronize()?;
        if step >= a.warmup {
            times.push(t.elapsed().as_secs_f64() * 1e3);
            let done = step + 1 - a.warmup;
            if let Some(server) = torch.as_mut().filter(|_| done.is_multiple_of(block) || done == a.steps) {
                torch_times.extend(server.run(done - (done - 1) / block * block)?);
            }
        }
    }
    if ganfold_kernels::profile::enabled() {
        let prof = ganfold_kernels::profile::take();
        let total: f64 = times.iter().sum::<f64>() / 1e3;
        println!("profile of {name} ({} steps incl. warm-up; timed steps took {total:.2} s):", total_steps_label(a));
        for (k, n, secs) in prof {
            println!("  {k:<32} {n:>6} calls {:>9.1} ms/step", secs * 1e3 / (a.warmup + a.steps) as f64);
        }
    }
    // The median step: robust to the odd step slowed by another process on a shared machine.
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let reference = match torch {
        Some(server) => {
            let ms = median(torch_times);
            Some(Reference {
                img_per_s: a.batch_size as f64 * 1e3 / ms,
                gflop_per_step: server.meta.gflop_per_step,
                torch: server.meta.torch.clone(),
            })
        }
        None => None,
    };
    Ok((m.phase().unwrap_or_else(|| "train".into()), median(times), reference))
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
    let has_torch =
        |py: &PathBuf| Command::new(py).args(["-c", "import torch"]).output().is_ok_and(|o| o.status.success());
    if py.exists() && has_torch(&py) {
        return Ok(py);
    }
    eprintln!("installing the PyTorch reference into {} ({TORCH}; about two minutes) ...", venv.display());
    let ok = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(venv)
        .status()
        .context("cannot run python3 (needed for --reference)")?;
    if !ok.success() {
        bail!("python3 -m venv {} failed", venv.display());
    }
    let ok = Command::new(&py).args(["-m", "pip", "install", "--quiet", TORCH, "numpy"]).status()?;
    if !ok.success() || !has_torch(&py) {
        bail!("could not install {TORCH} into {} (pip failed; is PyPI reachable?)", venv.display());
    }
    Ok(py)
}

/// The PyTorch reference as a child process that runs blocks of steps on request
/// (`reference.py --serve`): built and warmed up once, then idle (blocked on its stdin) while
/// ganfold's blocks run.
struct TorchServer {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
    meta: Meta,
    script: PathBuf,
}

#[derive(serde::Deserialize)]
struct Meta {
    gflop_per_step: f64,
    torch: String,
}

#[derive(serde::Deserialize)]
struct Block {
    times_ms: Vec<f64>,
}

impl TorchServer {
    fn start(py: &PathBuf, model: &str, threads: usize, a: &BenchArgs) -> anyhow::Result<Self> {
        use std::process::Stdio;
        let script = std::env::temp_dir().join(format!("ganfold-bench-reference-{}-{model}.py", std::process::id()));
        std::fs::write(&script, REFERENCE_PY)?;
        let mut child = Command::new(py)
            .arg(&script)
            .arg(model)
            .args([
                "--threads",
                &threads.to_string(),
                "--batch",
                &a.batch_size.to_string(),
                "--warmup",
                &a.warmup.to_string(),
                "--device",
                &a.device,
                "--serve",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot run the PyTorch reference")?;
        let (input, output) =
            (child.stdin.take().context("reference stdin")?, child.stdout.take().context("reference stdout")?);
        let mut server = Self {
            child,
            input,
            output: std::io::BufReader::new(output),
            meta: Meta { gflop_per_step: 0.0, torch: String::new() },
            script,
        };
        server.meta =
            serde_json::from_str(&server.line()?).context("unexpected first line from the PyTorch reference")?;
        Ok(server)
    }

    fn line(&mut self) -> anyhow::Result<String> {
        use std::io::BufRead;
        let mut line = String::new();
        if self.output.read_line(&mut line)? == 0 {
            bail!("the PyTorch reference stopped (its error output is above)");
        }
        Ok(line)
    }

    /// Runs `n` reference steps; their times in milliseconds.
    fn run(&mut self, n: usize) -> anyhow::Result<Vec<f64>> {
        use std::io::Write;
        writeln!(self.input, "{n}")?;
        self.input.flush()?;
        let block: Block =
            serde_json::from_str(&self.line()?).context("unexpected output from the PyTorch reference")?;
        Ok(block.times_ms)
    }
}

impl Drop for TorchServer {
    fn drop(&mut self) {
        // Closing stdin ends the server's loop; kill it if it is stuck.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.script);
    }
}
