//! The `ganfold` command line (list methods, train, resume, sample, evaluate, experiments, the
//! Hub) as a library, so that a binary of a third-party plugin is three lines and gets every
//! subcommand with its method:
//!
//! ```ignore
//! use my_plugin as _; // links the plugin, so its `inventory` registration is seen
//! fn main() -> std::process::ExitCode {
//!     ganfold_cli::main()
//! }
//! ```
//!
//! The built-in methods are always linked. The library also brings the allocator and the
//! process tuning the stock binary runs with.

mod bench;
mod eval;
mod experiment;
mod hub;
mod parity;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use ganfold_core::{RunConfig, registry, train};
use std::path::PathBuf;
use std::process::ExitCode;

// Linking the facade registers every plugin (inventory only sees linked crates).
use ganfold_plugins as _;

// Candle allocates large temporaries every step; glibc malloc makes that several times slower.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keeps freed memory committed instead of returning it to the OS after 10 ms (mimalloc's
/// `purge_delay`, option 15 in v2's mimalloc.h, not named by libmimalloc-sys): a training step
/// frees and re-allocates the same multi-MB conv buffers, and every purge made the next step
/// fault them in again, page by page (the DCGAN-28 step measured 4 % faster without purging).
/// The process keeps its peak footprint, which a training run reaches every step anyway.
/// `MIMALLOC_PURGE_DELAY` still overrides it.
fn keep_freed_memory() {
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets an allocator option to a documented value; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, -1) };
}

#[derive(Parser)]
#[command(name = "ganfold", version, about = "Manifold-aware GANs: LGAN, LCC-GAN, LSAL, MMGAN and a DCGAN baseline")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the registered methods (name, paper, summary), or regularizers / datasets.
    List {
        /// List regularizers instead of methods.
        #[arg(long)]
        regularizers: bool,
        /// List the named datasets instead of methods.
        #[arg(long)]
        datasets: bool,
    },
    /// Train a method (or continue a run with --resume).
    Train {
        /// Method name (see `ganfold list`); optional with --resume.
        method: Option<String>,
        /// Dataset name (mnist-5k, ring8, grid25, stacked-mnist, mnist, fashion-mnist) or a path to IDX files.
        #[arg(long)]
        data: Option<String>,
        /// Total training steps of the run.
        #[arg(long)]
        steps: Option<usize>,
        #[arg(long)]
        batch_size: Option<usize>,
        #[arg(long)]
        seed: Option<u64>,
        /// Run directory (default: runs/<method>-<data>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// A TOML file with [train] and [method] sections.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override a config key: --set lr_g=1e-4 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// cpu, cuda or cuda:N.
        #[arg(long)]
        device: Option<String>,
        /// Continue the run in this directory from its last checkpoint.
        #[arg(long, value_name = "RUN_DIR")]
        resume: Option<PathBuf>,
        /// No progress output.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Draw samples from a trained run or a pretrained --model into a PNG (and the method's figures).
    Sample {
        #[arg(long, value_name = "RUN_DIR", required_unless_present = "model", conflicts_with = "model")]
        run: Option<PathBuf>,
        /// A pretrained model `org/name` resolved through the Hugging Face Hub cache (see `ganfold hub`).
        #[arg(long, value_name = "ORG/NAME")]
        model: Option<String>,
        /// With --model: use the local cache only, never the network (also HF_HUB_OFFLINE=1).
        #[arg(long, requires = "model")]
        offline: bool,
        /// With --model: the Hub cache directory (default: HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub).
        #[arg(long, requires = "model")]
        cache_dir: Option<PathBuf>,
        /// Number of samples.
        #[arg(short, default_value_t = 64)]
        n: usize,
        /// Output PNG (default: RUN_DIR/samples/sample.png); with it, the figures go to <OUT stem>-figures/ beside it.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seed of the sampling noise (default: the run's seed).
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long)]
        device: Option<String>,
    },
    /// Evaluate a run (or real data against itself) and print a JSON report (cli/src/eval.rs).
    Eval(eval::EvalArgs),
    /// Training throughput of every method, the machine's SGEMM rate, and with --reference the
    /// PyTorch reference of the DCGAN-28 and LGAN steps side by side (cli/src/bench.rs).
    Bench(bench::BenchArgs),
    /// Experiments: a paper's claim as one file, run over seeds, aggregated (cli/src/experiment.rs).
    Experiment(experiment::ExperimentArgs),
    /// Pretrained models: pack a run for the Hub, verify, install into the local cache (cli/src/hub.rs).
    Hub(hub::HubArgs),
}

/// Runs the command line of this process's arguments: the whole `ganfold` binary.
pub fn main() -> ExitCode {
    // The library's process settings (Candle's thread count, a worker pool to run on); the
    // allocator above applies to every binary that links this library.
    ganfold_kernels::runtime::tune();
    keep_freed_memory();
    let cli = Cli::parse();
    match ganfold_kernels::runtime::install(|| run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::List { regularizers, datasets } => list(regularizers, datasets),
        Cmd::Eval(args) => eval::main(&args),
        Cmd::Bench(args) => bench::main(&args),
        Cmd::Hub(args) => hub::main(&args),
        Cmd::Experiment(args) => experiment::main(&args),
        Cmd::Train { method, data, steps, batch_size, seed, out, config, set, device, resume, quiet } => {
            if let Some(dir) = resume {
                if out.is_some() || config.is_some() {
                    bail!("--resume continues a run in place; --out and --config cannot be used with it");
                }
                let mut cfg = RunConfig::from_toml(&train::read_run_config(&dir)?, None)?;
                if let Some(m) = &method
                    && *m != cfg.train.method
                {
                    bail!("the run in {} is of method `{}`, not `{m}`", dir.display(), cfg.train.method);
                }
                apply(&mut cfg, data, None, batch_size, seed, device, &set)?;
                let s = train::resume_with(&dir, cfg, steps, !quiet)?;
                report(&s, quiet);
                return Ok(());
            }
            let Some(method) = method else {
                bail!("name a method to train (see `ganfold list`), or --resume RUN_DIR")
            };
            registry::method(&method)?;
            let mut cfg = match config {
                Some(f) => {
                    let text = ganfold_core::limits::read_text(&f, "config file")?;
                    RunConfig::from_toml(&text, Some(&method))
                        .with_context(|| format!("config file {}", f.display()))?
                }
                None => RunConfig::defaults(&method)?,
            };
            apply(&mut cfg, data, steps, batch_size, seed, device, &set)?;
            if !quiet {
                eprintln!(
                    "training {} on {} for {} steps (batch {}, seed {})",
                    method, cfg.train.data, cfg.train.steps, cfg.train.batch_size, cfg.train.seed
                );
            }
            let s = train::train(cfg, out, !quiet)?;
            report(&s, quiet);
            Ok(())
        }
        Cmd::Sample { run, model, offline, cache_dir, n, out, seed, device } => {
            if n == 0 || n > 10_000 {
                bail!("-n must be between 1 and 10000");
            }
            let (loaded, run) = match (run, model) {
                (Some(run), _) => (train::load_run(&run, device.as_deref())?, run),
                (None, Some(id)) => {
                    let hub = ganfold_hub::Hub::new(ganfold_hub::HubOptions { cache_dir, offline, endpoint: None })?;
                    let loaded = hub.load(&id, device.as_deref())?;
                    // Outputs go next to --out (or into ./<name>-samples), never into the cache.
                    let home = match &out {
                        Some(o) => o
                            .parent()
                            .filter(|p| !p.as_os_str().is_empty())
                            .map(PathBuf::from)
                            .unwrap_or_else(|| PathBuf::from(".")),
                        None => PathBuf::from(format!("{}-samples", id.rsplit('/').next().unwrap_or("model"))),
                    };
                    if out.is_none() {
                        std::fs::create_dir_all(home.join("samples"))
                            .with_context(|| format!("cannot create {}", home.display()))?;
                    }
                    (loaded, home)
                }
                (None, None) => bail!("name a run (--run RUN_DIR) or a model (--model org/name)"),
            };
            let seed = seed.unwrap_or(loaded.config.train.seed);
            let mut rng = ganfold_core::Rng::derive(seed, "sample-command");
            let x = loaded.method.sample(n, &mut rng)?;
            let title = format!("{} samples (step {})", loaded.config.train.method, loaded.step);
            let png = train::render_samples(&x, &loaded.data, &title)?;
            // With --out, the figures go beside it in `<stem>-figures/`, never into a folder of
            // the user's that merely shares the output's parent.
            let figures = match &out {
                Some(o) => figures_beside(o),
                None => run.join("figures"),
            };
            let out = out.unwrap_or_else(|| run.join("samples").join("sample.png"));
            ganfold_core::checkpoint::atomic_write(&out, &png)?;
            println!("{}", out.display());
            let mut frng = ganfold_core::Rng::derive(seed, "figures");
            for f in loaded.method.figures(&figures, &loaded.data, &mut frng)? {
                println!("{}", f.display());
            }
            Ok(())
        }
    }
}

/// `DIR/name.png` -> `DIR/name-figures`: where `sample --out` puts the method's figures.
fn figures_beside(out: &std::path::Path) -> PathBuf {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "sample".into());
    out.with_file_name(format!("{stem}-figures"))
}

fn apply(
    cfg: &mut RunConfig,
    data: Option<String>,
    steps: Option<usize>,
    batch_size: Option<usize>,
    seed: Option<u64>,
    device: Option<String>,
    set: &[String],
) -> anyhow::Result<()> {
    if let Some(d) = data {
        cfg.train.data = d;
    }
    if let Some(s) = steps {
        cfg.train.steps = s;
    }
    if let Some(b) = batch_size {
        cfg.train.batch_size = b;
    }
    if let Some(s) = seed {
        cfg.train.seed = s;
    }
    if let Some(d) = device {
        cfg.train.device = d;
    }
    for kv in set {
        cfg.set(kv)?;
    }
    cfg.train.validate()
}

fn report(s: &train::Summary, quiet: bool) {
    if !quiet {
        eprintln!(
            "done: {} steps in {:.1} s ({:.0} images/s); run directory {}",
            s.steps_this_run,
            s.wall_seconds,
            s.images_per_second,
            s.run_dir.display()
        );
    }
}

fn list(regularizers: bool, datasets: bool) -> anyhow::Result<()> {
    if datasets {
        for (name, what) in ganfold_core::data::NAMED {
            println!("{name:<14} {what}");
        }
    } else if regularizers {
        for e in registry::regularizers()? {
            println!("{:<20}  {}  —  {}", e.name, e.paper, e.summary);
        }
    } else {
        for e in registry::methods()? {
            println!("{:<8}  {}  —  {}", e.name, e.paper, e.summary);
        }
    }
    Ok(())
}
