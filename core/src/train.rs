//! The trainer every method shares: batches, progress bar, `metrics.jsonl`, sample grids,
//! loss curve, checkpoints, resume and the NaN guard.
//!
//! Run directory layout:
//! ```text
//! config.toml            the resolved configuration (defaults <- file <- --set)
//! metrics.jsonl          one JSON object per logged step: {"step": N, "<loss>": value, ...}
//! samples/step_NNNNNN.png, samples/final.png
//! loss.png               loss curves
//! checkpoint/state.safetensors   weights, optimizer moments, method state, step, RNG state
//! figures/               the paper's pictures (method-specific)
//! summary.json           what happened: steps, images/s, final losses, evaluation
//! ```

use crate::checkpoint::{self, CheckpointMeta};
use crate::config::RunConfig;
use crate::data::{Dataset, EpochSampler};
use crate::method::{BuildContext, Method, Purpose, StepStats};
use crate::rng::Rng;
use crate::viz;
use anyhow::{Context, bail};
use candle_core::Device;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Parses `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(s: &str) -> anyhow::Result<Device> {
    let ordinal = match s {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => bail!("unknown device `{s}` (expected cpu, cuda or cuda:N)"),
        },
    };
    if !cfg!(feature = "cuda") {
        bail!(
            "device `{s}` requested, but this ganfold was built without CUDA support (rebuild with `--features cuda`)"
        );
    }
    Device::new_cuda(ordinal).with_context(|| format!("cannot open CUDA device {ordinal}"))
}

/// What `summary.json` holds.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub method: String,
    pub data: String,
    pub seed: u64,
    pub status: String,
    pub steps: usize,
    pub batch_size: usize,
    /// Steps run by this invocation (fewer than `steps` after a resume).
    pub steps_this_run: usize,
    pub wall_seconds: f64,
    pub images_per_second: f64,
    pub final_stats: serde_json::Map<String, serde_json::Value>,
    pub evaluation: serde_json::Map<String, serde_json::Value>,
    pub checkpoint_step: usize,
    pub run_dir: PathBuf,
}

/// A run rebuilt from its directory: configuration, data, the method at its last checkpoint.
pub struct LoadedRun {
    pub dir: PathBuf,
    pub config: RunConfig,
    pub data: Dataset,
    pub method: Box<dyn Method>,
    pub device: Device,
    /// Steps completed at the checkpoint.
    pub step: usize,
    pub rng: Rng,
}

/// Where a run directory keeps its checkpoint.
pub fn checkpoint_file(dir: &Path) -> PathBuf {
    dir.join("checkpoint").join("state.safetensors")
}

/// Training adds to each parameter its gradient and Adam's two moments; a checkpoint holds the
/// three serialised while they live; a step's activations come on top. Six times the parameters'
/// bytes is refused before the first step when it cannot fit, instead of an abort or an
/// out-of-memory kill inside it (activations beyond that, from a large batch, are not estimated).
fn check_training_memory(method: &dyn Method, cfg: &RunConfig) -> anyhow::Result<()> {
    let params: u128 = method
        .players()
        .iter()
        .flat_map(|p| p.vs().trainable_vars())
        .map(|(_, v)| v.elem_count() as u128 * v.dtype().size_in_bytes() as u128)
        .sum();
    crate::limits::check_alloc(
        &format!(
            "training method `{}` (its parameters' gradients, Adam moments and a step's activations)",
            cfg.train.method
        ),
        params * 6,
    )
    .map_err(|e| anyhow::anyhow!("{e}; choose smaller widths in the config"))
}

fn build_method(cfg: &RunConfig, data: &Dataset, device: &Device, purpose: Purpose) -> anyhow::Result<Box<dyn Method>> {
    let entry = crate::registry::method(&cfg.train.method)?;
    let cx = BuildContext {
        config: &cfg.method,
        data,
        device,
        seed: cfg.train.seed,
        batch_size: cfg.train.batch_size,
        total_steps: cfg.train.steps,
        purpose,
    };
    (entry.build)(&cx)
}

/// The text of a run directory's `config.toml` (bounded: it is untrusted input).
pub fn read_run_config(dir: &Path) -> anyhow::Result<String> {
    let p = dir.join("config.toml");
    if !p.is_file() {
        bail!("{} is not a ganfold run directory (cannot read config.toml)", dir.display());
    }
    crate::limits::read_text(&p, "run config")
}

/// Loads a run directory at its last checkpoint. `device` overrides the run's device.
pub fn load_run(dir: &Path, device: Option<&str>) -> anyhow::Result<LoadedRun> {
    let cfg_path = dir.join("config.toml");
    let text = read_run_config(dir)?;
    let mut config = RunConfig::from_toml(&text, None).with_context(|| format!("invalid {}", cfg_path.display()))?;
    if let Some(d) = device {
        config.train.device = d.to_string();
    }
    load_run_with(dir, config, Purpose::Load)
}

fn load_run_with(dir: &Path, config: RunConfig, purpose: Purpose) -> anyhow::Result<LoadedRun> {
    let ck_path = checkpoint_file(dir);
    config.train.validate()?;
    if !ck_path.exists() {
        bail!("{} has no checkpoint yet ({} is missing)", dir.display(), ck_path.display());
    }
    let device = parse_device(&config.train.device)?;
    let ck = checkpoint::load(&ck_path, &device)?;
    load_checkpoint_for(dir, config, ck, purpose)
}

/// Rebuilds a method from a configuration and a checkpoint that need not come from a run
/// directory (e.g. a model resolved from the Hub cache, already checksummed); `dir` is recorded
/// as the run's home and named in errors.
pub fn load_checkpoint(dir: &Path, config: RunConfig, ck: checkpoint::Checkpoint) -> anyhow::Result<LoadedRun> {
    load_checkpoint_for(dir, config, ck, Purpose::Load)
}

fn load_checkpoint_for(
    dir: &Path,
    config: RunConfig,
    ck: checkpoint::Checkpoint,
    purpose: Purpose,
) -> anyhow::Result<LoadedRun> {
    config.train.validate()?;
    let device = parse_device(&config.train.device)?;
    let data = crate::data::load(&config.train.data, config.train.seed)?;
    let mut method = build_method(&config, &data, &device, purpose)?;
    if ck.meta.method != config.train.method {
        bail!("the checkpoint in {} is of method `{}`, not `{}`", dir.display(), ck.meta.method, config.train.method);
    }
    if ck.meta.data_shape != data.shape {
        bail!("the checkpoint was trained on {}, but dataset `{}` holds {}", ck.meta.data_shape, data.name, data.shape);
    }
    method.load(&ck.state).with_context(|| {
        format!(
            "the checkpoint in {} does not fit method `{}` with this configuration",
            dir.display(),
            config.train.method
        )
    })?;
    Ok(LoadedRun {
        dir: dir.to_path_buf(),
        config,
        data,
        method,
        device,
        step: ck.meta.step,
        rng: Rng::from_state(ck.meta.rng),
    })
}

/// Picks `runs/<method>-<data>`, adding `-2`, `-3`, ... if it exists.
fn default_run_dir(cfg: &RunConfig) -> PathBuf {
    let data: String =
        cfg.train.data.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    let base = format!("{}-{}", cfg.train.method, data.trim_matches('_'));
    let mut p = PathBuf::from("runs").join(&base);
    let mut i = 2;
    while p.exists() {
        p = PathBuf::from("runs").join(format!("{base}-{i}"));
        i += 1;
    }
    p
}

/// Called after every training step with the number of steps the run has completed.
pub type StepHook = std::sync::Arc<dyn Fn(usize) + Send + Sync>;

/// How a run reports its progress.
#[derive(Clone, Default)]
pub struct Options {
    /// A progress bar on a terminal, else a line every 10 s on stderr.
    pub progress: bool,
    /// Told of every step (e.g. an experiment's overall progress bar).
    pub on_step: Option<StepHook>,
}

impl Options {
    pub fn progress(progress: bool) -> Self {
        Self { progress, on_step: None }
    }
}

/// Trains a new run. `out`: the run directory (must not exist or be empty).
pub fn train(cfg: RunConfig, out: Option<PathBuf>, progress: bool) -> anyhow::Result<Summary> {
    train_with(cfg, out, Options::progress(progress))
}

/// [`train`] with a step hook. Runs under the kernels' process settings
/// ([`ganfold_kernels::runtime`]), so a notebook trains at the CLI's speed.
pub fn train_with(cfg: RunConfig, out: Option<PathBuf>, opts: Options) -> anyhow::Result<Summary> {
    ganfold_kernels::runtime::install(|| train_here(cfg, out, opts))
}

fn train_here(cfg: RunConfig, out: Option<PathBuf>, opts: Options) -> anyhow::Result<Summary> {
    cfg.train.validate()?;
    if let Some(dir) = &out {
        check_utf8(dir)?;
    }
    let device = parse_device(&cfg.train.device)?;
    let data = crate::data::load(&cfg.train.data, cfg.train.seed)?;
    let method = build_method(&cfg, &data, &device, Purpose::Train)?;
    check_training_memory(method.as_ref(), &cfg)?;
    let sampler = EpochSampler::new(data.len(), cfg.train.batch_size, cfg.train.seed)
        .with_context(|| format!("dataset `{}`", data.name))?;
    let dir = out.unwrap_or_else(|| default_run_dir(&cfg));
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!(
            "run directory {} already exists and is not empty (continue it with --resume {0}, or choose another --out)",
            dir.display()
        );
    }
    let lock = create_run_dir(&dir, &cfg)?;
    let rng = Rng::derive(cfg.train.seed, "train");
    let session =
        Session { dir, cfg, data, method, rng, step: 0, sampler, history: vec![], checkpoint_step: None, opts };
    session.run(lock)
}

/// The run directory is written into `summary.json`, so a name that is not UTF-8 is refused
/// before any training instead of failing at the end of it.
fn check_utf8(dir: &Path) -> anyhow::Result<()> {
    if dir.to_str().is_none() {
        bail!("run directory {} is not valid UTF-8; choose a UTF-8 name", dir.display());
    }
    Ok(())
}

/// Builds the run directory in a hidden sibling (`config.toml`, empty `metrics.jsonl`, the
/// subfolders, the lock) and renames it into place, so a kill during setup leaves no half-made
/// run directory, and of two processes creating the same one, one gets a clear error.
fn create_run_dir(dir: &Path, cfg: &RunConfig) -> anyhow::Result<checkpoint::RunLock> {
    let name = dir.file_name().with_context(|| format!("--out {} has no directory name", dir.display()))?;
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| {
        format!("cannot create run directory {}: cannot create {}", dir.display(), parent.display())
    })?;
    let tmp = parent.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let built = (|| -> anyhow::Result<checkpoint::RunLock> {
        std::fs::create_dir_all(tmp.join("samples"))?;
        std::fs::create_dir_all(tmp.join("checkpoint"))?;
        checkpoint::atomic_write(&tmp.join("config.toml"), cfg.to_toml()?.as_bytes())?;
        checkpoint::atomic_write(&tmp.join("metrics.jsonl"), b"")?;
        let lock = checkpoint::RunLock::acquire(&tmp)?;
        // An empty directory the user made is replaced; a non-empty one (another process won
        // the race) makes the rename fail.
        if dir.is_dir() {
            let _ = std::fs::remove_dir(dir);
        }
        std::fs::rename(&tmp, dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create run directory {}: {e} (another process may have created it first; choose another --out)",
                dir.display()
            )
        })?;
        Ok(lock)
    })();
    if built.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    built.with_context(|| format!("cannot create run directory {}", dir.display()))
}

/// Continues the run in `dir` up to `steps` total (the run's own `train.steps` if `None`).
pub fn resume(dir: &Path, steps: Option<usize>, progress: bool) -> anyhow::Result<Summary> {
    let cfg = RunConfig::from_toml(&read_run_config(dir)?, None)?;
    resume_with(dir, cfg, steps, progress)
}

/// Like [`resume`], with a configuration the caller may have changed (e.g. `--set`); a change
/// that does not fit the checkpoint (another method, other shapes) is a clear error.
pub fn resume_with(dir: &Path, cfg: RunConfig, steps: Option<usize>, progress: bool) -> anyhow::Result<Summary> {
    resume_with_options(dir, cfg, steps, Options::progress(progress))
}

/// [`resume_with`] with a step hook, under the same process settings as [`train_with`].
pub fn resume_with_options(dir: &Path, cfg: RunConfig, steps: Option<usize>, opts: Options) -> anyhow::Result<Summary> {
    ganfold_kernels::runtime::install(|| resume_here(dir, cfg, steps, opts))
}

fn resume_here(dir: &Path, mut cfg: RunConfig, steps: Option<usize>, opts: Options) -> anyhow::Result<Summary> {
    if let Some(s) = steps {
        cfg.train.steps = s;
    }
    check_utf8(dir)?;
    // Every run directory `train` makes has checkpoint/ from its first moment; a folder without
    // it (a published model's, a copy of its files) is no run, and resuming would retrain from
    // step 0 over its files.
    if !dir.join("checkpoint").is_dir() {
        bail!(
            "{} is not a run directory ganfold can resume (it has no checkpoint/ folder; a published model's folder is not a run): train a new run with --out, or sample from it with `ganfold sample`",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir.join("checkpoint"))
        .with_context(|| format!("cannot create {}", dir.join("checkpoint").display()))?;
    // Before anything is touched: the temp files below may be another live process's.
    let lock = checkpoint::RunLock::acquire(dir)?;
    // Temp files of writes a kill interrupted are never read; drop them.
    for sub in ["", "checkpoint", "samples", "figures"] {
        checkpoint::remove_stale_temps(&dir.join(sub));
    }
    let has_checkpoint = checkpoint_file(dir).exists();
    let (data, method, rng, step) = if has_checkpoint {
        let run = load_run_with(dir, cfg.clone(), Purpose::Train)?;
        (run.data, run.method, run.rng, run.step)
    } else {
        // Stopped before its first checkpoint: nothing trained can be kept, so the run starts
        // over from step 0 (same seed, so the same result as an uninterrupted run).
        cfg.train.validate()?;
        let device = parse_device(&cfg.train.device)?;
        let data = crate::data::load(&cfg.train.data, cfg.train.seed)?;
        let method = build_method(&cfg, &data, &device, Purpose::Train)?;
        (data, method, Rng::derive(cfg.train.seed, "train"), 0)
    };
    check_training_memory(method.as_ref(), &cfg)?;
    // A run killed after its last checkpoint but before its summary is finished, not retrained.
    if step >= cfg.train.steps && completed_at(dir) == Some(step) {
        bail!(
            "the run in {} has already completed {} of {} steps (raise --steps to continue)",
            dir.display(),
            step,
            cfg.train.steps
        );
    }
    let sampler = EpochSampler::new(data.len(), cfg.train.batch_size, cfg.train.seed)?;
    std::fs::create_dir_all(dir.join("samples"))
        .with_context(|| format!("cannot create {}", dir.join("samples").display()))?;
    // Keep metrics up to the checkpoint so the resumed log equals an uninterrupted one (a
    // line cut by a kill is past the checkpoint, or unparsable, and is dropped).
    let (history, text) = read_metrics(&dir.join("metrics.jsonl"), step)?;
    checkpoint::atomic_write(&dir.join("metrics.jsonl"), text.as_bytes())?;
    checkpoint::atomic_write(&dir.join("config.toml"), cfg.to_toml()?.as_bytes())?;
    let session = Session {
        dir: dir.to_path_buf(),
        cfg,
        data,
        method,
        rng,
        step,
        sampler,
        history,
        checkpoint_step: has_checkpoint.then_some(step),
        opts,
    };
    session.run(lock)
}

/// The step count of `summary.json` if it says the run completed.
fn completed_at(dir: &Path) -> Option<usize> {
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("summary.json")).ok()?).ok()?;
    (s.get("status")?.as_str()? == "completed").then(|| s.get("steps")?.as_u64()).flatten().map(|v| v as usize)
}

fn metrics_line(step: usize, st: &StepStats) -> String {
    let mut m = serde_json::Map::new();
    m.insert("step".into(), step.into());
    for (k, v) in &st.0 {
        m.insert(k.clone(), serde_json::Value::from(*v));
    }
    format!("{}\n", serde_json::Value::Object(m))
}

/// Logged lines with `step <= upto`: parsed, and their original text (floats are not re-printed,
/// so the kept log is byte-identical).
fn read_metrics(path: &Path, upto: usize) -> anyhow::Result<(Vec<(usize, StepStats)>, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = vec![];
    let mut kept = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let Some(step) = m.get("step").and_then(|s| s.as_u64()) else { continue };
        if step as usize > upto {
            break;
        }
        let st = StepStats(
            m.iter().filter(|(k, _)| *k != "step").filter_map(|(k, v)| Some((k.clone(), v.as_f64()?))).collect(),
            false,
        );
        out.push((step as usize, st));
        kept.push_str(line);
        kept.push('\n');
    }
    Ok((out, kept))
}

struct Session {
    dir: PathBuf,
    cfg: RunConfig,
    data: Dataset,
    method: Box<dyn Method>,
    rng: Rng,
    /// Steps completed.
    step: usize,
    sampler: EpochSampler,
    history: Vec<(usize, StepStats)>,
    checkpoint_step: Option<usize>,
    opts: Options,
}

impl Session {
    /// Trains to `train.steps`, then writes the final samples, figures, evaluation and summary
    /// (only those when a resumed run had already trained every step). `_lock` is held throughout.
    fn run(mut self, _lock: checkpoint::RunLock) -> anyhow::Result<Summary> {
        let t = self.cfg.train.clone();
        let device = self.method_device()?;
        let start_step = self.step;
        let bar = self.progress_bar(start_step);
        let mut metrics = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("metrics.jsonl"))
            .context("cannot open metrics.jsonl")?;
        let started = Instant::now();
        let mut last: StepStats = self.history.last().map(|h| h.1.clone()).unwrap_or_default();
        let mut last_plain = Instant::now();
        let per_step = self.method.batches_per_step();
        if per_step == 0 {
            bail!("method `{}` asks for 0 batches per step", t.method);
        }
        while self.step < t.steps {
            // Batch j of step s is the (s·k + j)-th of the epoch order: a function of the step
            // alone, so a resumed run draws what the uninterrupted one drew.
            let batches = (0..per_step)
                .map(|j| self.data.batch(&self.sampler.indices(self.step * per_step + j), &device))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let stats = self
                .method
                .step_batches(&batches, self.step, &mut self.rng)
                .with_context(|| format!("step {}", self.step + 1))?;
            self.step += 1;
            if let Some(hook) = &self.opts.on_step {
                hook(self.step);
            }
            if let Some((name, v)) = stats.non_finite() {
                let msg = format!("loss `{name}` is {v}");
                return self.diverged(&msg, started, start_step);
            }
            let done = self.step;
            let rate =
                ((done - start_step) * t.batch_size * per_step) as f64 / started.elapsed().as_secs_f64().max(1e-9);
            if done.is_multiple_of(t.log_every) || done == t.steps || stats.has_periodic() {
                metrics
                    .write_all(metrics_line(done, &stats).as_bytes())
                    .with_context(|| format!("cannot append to {}", self.dir.join("metrics.jsonl").display()))?;
                self.history.push((done, stats.clone()));
            }
            if let Some(pb) = &bar {
                if done.is_multiple_of(5) || done == t.steps {
                    let phase = self.method.phase().map(|p| format!("[{p}] ")).unwrap_or_default();
                    pb.set_message(format!("{phase}{} | {rate:.0} img/s", fmt_stats(&stats)));
                }
                pb.set_position(done as u64);
            } else if self.opts.progress && (last_plain.elapsed().as_secs() >= 10 || done == t.steps) {
                eprintln!("step {done}/{} {} | {rate:.0} img/s", t.steps, fmt_stats(&stats));
                last_plain = Instant::now();
            }
            if done.is_multiple_of(t.sample_every) || done == t.steps {
                self.write_samples(&format!("step_{done:06}.png"))?;
            }
            if done.is_multiple_of(t.checkpoint_every) || done == t.steps {
                if let Some(name) = self.save_checkpoint()? {
                    return self.diverged(&format!("parameter `{name}` is not finite"), started, start_step);
                }
                self.write_loss_plot()?;
            }
            last = stats;
        }
        let wall = started.elapsed().as_secs_f64();
        if let Some(pb) = &bar {
            pb.finish();
        }
        metrics.flush()?;
        self.write_samples("final.png")?;
        let mut rng = Rng::derive(t.seed, "figures");
        self.method.figures(&self.dir.join("figures"), &self.data, &mut rng).context("writing figures")?;
        let evaluation = self.method.evaluate(&self.data).context("evaluating")?;
        let s = self.summary("completed", wall, start_step, &last, evaluation);
        checkpoint::atomic_write(&self.dir.join("summary.json"), serde_json::to_string_pretty(&s)?.as_bytes())?;
        Ok(s)
    }

    fn method_device(&self) -> anyhow::Result<Device> {
        parse_device(&self.cfg.train.device)
    }

    fn progress_bar(&self, start: usize) -> Option<indicatif::ProgressBar> {
        if !self.opts.progress || !std::io::stderr().is_terminal() {
            return None;
        }
        let pb = indicatif::ProgressBar::new(self.cfg.train.steps as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:28.cyan/blue}] {pos}/{len} {elapsed_precise}<{eta_precise} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_prefix(self.cfg.train.method.clone());
        pb.set_position(start as u64);
        Some(pb)
    }

    /// Saves the checkpoint unless some parameter is not finite (then returns its name and
    /// keeps the previous checkpoint).
    fn save_checkpoint(&mut self) -> anyhow::Result<Option<String>> {
        let state = self.method.save()?;
        if let Some(bad) = checkpoint::all_finite(&state.tensors)? {
            return Ok(Some(bad));
        }
        let meta = CheckpointMeta {
            format: checkpoint::FORMAT,
            method: self.cfg.train.method.clone(),
            step: self.step,
            rng: self.rng.state(),
            data_shape: self.data.shape,
            method_meta: state.meta.clone(),
        };
        checkpoint::save(&checkpoint_file(&self.dir), &meta, &state.tensors)?;
        self.checkpoint_step = Some(self.step);
        Ok(None)
    }

    fn write_samples(&self, name: &str) -> anyhow::Result<()> {
        let t = &self.cfg.train;
        // Fixed noise, independent of the training stream, so grids are comparable over time.
        let mut rng = Rng::derive(t.seed, "sample-noise");
        let x = self.method.sample(t.sample_count, &mut rng)?;
        let png = render_samples(&x, &self.data, &format!("{} samples, step {}", t.method, self.step))?;
        checkpoint::atomic_write(&self.dir.join("samples").join(name), &png)
    }

    fn write_loss_plot(&self) -> anyhow::Result<()> {
        let mut names: Vec<&str> = vec![];
        for (_, st) in &self.history {
            for (k, _) in &st.0 {
                if !names.contains(&k.as_str()) {
                    names.push(k);
                }
            }
        }
        let series: Vec<viz::Series> = names
            .iter()
            .map(|n| viz::Series {
                name: n,
                points: self.history.iter().filter_map(|(s, st)| Some((*s as f64, st.get(n)?))).collect(),
            })
            .collect();
        let png = viz::line_plot(&format!("{}: training curves", self.cfg.train.method), "step", &series, (900, 500))?;
        checkpoint::atomic_write(&self.dir.join("loss.png"), &png)
    }

    fn summary(&self, status: &str, wall: f64, start: usize, last: &StepStats, eval: Vec<(String, f64)>) -> Summary {
        let t = &self.cfg.train;
        let ran = self.step - start;
        let obj = |v: &[(String, f64)]| v.iter().map(|(k, x)| (k.clone(), serde_json::Value::from(*x))).collect();
        Summary {
            method: t.method.clone(),
            data: t.data.clone(),
            seed: t.seed,
            status: status.into(),
            steps: self.step,
            batch_size: t.batch_size,
            steps_this_run: ran,
            wall_seconds: wall,
            images_per_second: (ran * t.batch_size * self.method.batches_per_step()) as f64 / wall.max(1e-9),
            final_stats: obj(&last.0),
            evaluation: obj(&eval),
            checkpoint_step: self.checkpoint_step.unwrap_or(0),
            run_dir: self.dir.clone(),
        }
    }

    fn diverged(&self, what: &str, started: Instant, start: usize) -> anyhow::Result<Summary> {
        let s = self.summary("diverged", started.elapsed().as_secs_f64(), start, &StepStats::default(), vec![]);
        let _ = checkpoint::atomic_write(
            &self.dir.join("summary.json"),
            serde_json::to_string_pretty(&s).unwrap_or_default().as_bytes(),
        );
        let kept = match self.checkpoint_step {
            Some(c) => {
                format!("the last good checkpoint (step {c}) is kept in {}", checkpoint_file(&self.dir).display())
            }
            None => "no checkpoint had been written yet".into(),
        };
        bail!("training diverged at step {}: {what}; stopped, {kept}", self.step)
    }
}

fn fmt_stats(st: &StepStats) -> String {
    st.0.iter().take(4).map(|(k, v)| format!("{k} {v:.3}")).collect::<Vec<_>>().join(" ")
}

/// A PNG of generated samples: an image grid, or for 2-D points a scatter over the real data.
pub fn render_samples(x: &candle_core::Tensor, data: &Dataset, title: &str) -> anyhow::Result<Vec<u8>> {
    if data.shape.is_image() {
        let n = x.dim(0)?;
        let cols = (n as f64).sqrt().ceil() as usize;
        viz::image_grid(x, cols, 2)
    } else {
        let real = viz::points(&data.head(2000, &Device::Cpu)?)?;
        let fake = viz::points(&x.to_device(&Device::Cpu)?)?;
        viz::scatter(
            title,
            &[
                ("real", real, plotters::style::RGBColor(80, 120, 230)),
                ("generated", fake, plotters::style::RGBColor(230, 60, 50)),
            ],
            (600, 600),
        )
    }
}
