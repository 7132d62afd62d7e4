//! Running an experiment: every (arm, seed) is an ordinary run directory under
//! `<results>/<name>/runs/<arm>/seed-<seed>`, trained by the shared trainer, evaluated by the
//! code of `ganfold eval`. A finished run is skipped, a partial one resumes from its checkpoint,
//! and a run directory made from another definition of the experiment is an error.

use crate::evaluate::{self, EvalOptions, LOCAL_KEYS, MANIFOLD_KEYS};
use crate::report::{self, Report};
use crate::spec::{self, Spec};
use anyhow::{Context, Result, bail, ensure};
use ganfold_core::train::{self, Options, Summary};
use ganfold_core::{BuildContext, RunConfig, registry};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Steps of every run under `--quick`.
pub const QUICK_STEPS: usize = 4;
/// Evaluation samples under `--quick` (at most).
pub const QUICK_SAMPLES: usize = 200;

/// An experiment file and where its results live.
#[derive(Clone, Debug)]
pub struct Experiment {
    /// The file's stem: `experiments/dcgan-mnist.toml` is `dcgan-mnist`.
    pub name: String,
    pub file: PathBuf,
    pub spec: Spec,
    /// `<results>/<name>`.
    pub dir: PathBuf,
    /// Set by `--quick` when it trains on a stand-in dataset: a metric the stand-in cannot give
    /// (a test error on data without a test split) is reported as missing instead of failing.
    pub stand_in: bool,
}

/// One (arm, seed) of an experiment.
#[derive(Clone, Debug)]
pub struct PlannedRun {
    pub arm: usize,
    pub seed: u64,
    pub dir: PathBuf,
    pub config: RunConfig,
}

/// What a run directory holds, measured against the experiment's definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Nothing yet.
    New,
    /// Trained part of the way: resumes from its checkpoint.
    Partial,
    /// Trained to the end, not yet evaluated with the file's settings.
    Trained,
    /// Trained and evaluated.
    Done,
    /// Stopped by the trainer's NaN guard; counted, never retried (the same seed diverges again).
    Diverged,
}

/// How `run` runs.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Runs at once; the cores are split between them (0 or 1: one at a time, all cores).
    pub jobs: usize,
    /// Every arm for [`QUICK_STEPS`] steps in a temporary directory (a smoke test of the file).
    pub quick: bool,
    /// Only the arms with these labels (all when empty).
    pub only: Vec<String>,
    /// An overall progress bar (a line every 30 s when stderr is not a terminal).
    pub progress: bool,
}

impl Experiment {
    /// Reads `file`; results go to `<results_root>/<file stem>`.
    pub fn load(file: &Path, results_root: &Path) -> Result<Experiment> {
        let spec = Spec::read(file)?;
        let name = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        ensure!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{}: name experiment files with letters, digits, `-` and `_` only",
            file.display()
        );
        Ok(Experiment { dir: results_root.join(&name), name, file: file.to_path_buf(), spec, stand_in: false })
    }

    /// Every experiment file (`*.toml`) in `dir`, by name.
    pub fn all(dir: &Path, results_root: &Path) -> Result<Vec<Experiment>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read experiment directory {}", dir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        files.iter().map(|f| Experiment::load(f, results_root)).collect()
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.dir.join("runs")
    }

    /// Where the `[[prepare]]` run `name` lives: `<results>/<name>/prepare/<name>`.
    pub fn prepare_dir(&self, name: &str) -> PathBuf {
        self.dir.join("prepare").join(name)
    }

    /// `<experiment>/prepare/<name>` of every `[[prepare]]` run: the part of a substituted
    /// `{prepare.NAME}` path that does not depend on where the results directory is, so runs made
    /// with `--results results` still match a definition loaded with an absolute results root.
    pub fn prepare_suffixes(&self) -> Vec<String> {
        self.spec.prepares.iter().map(|p| format!("{}/prepare/{}", self.name, p.name)).collect()
    }

    /// The resolved configuration of every `[[prepare]]` run, with its directory.
    pub fn prepare_plan(&self) -> Result<Vec<(PathBuf, RunConfig)>> {
        let s = &self.spec;
        s.prepares
            .iter()
            .map(|p| {
                let what = format!("{}: [[prepare]] `{}`", self.file.display(), p.name);
                let mut c = RunConfig::defaults(&p.method).with_context(|| what.clone())?;
                c.train.data = s.data.clone();
                c.train.steps = p.steps;
                c.train.batch_size = s.batch_size;
                c.train.seed = p.seed;
                for kv in spec::assignments(&s.set).iter().chain(&spec::assignments(&p.set)) {
                    c.set(kv).with_context(|| what.clone())?;
                }
                c.train.validate().with_context(|| what.clone())?;
                Ok((self.prepare_dir(&p.name), c))
            })
            .collect()
    }

    /// An arm's `key=value` with every `{prepare.NAME}` replaced by that run's directory.
    fn substitute(&self, kv: &str) -> Result<String> {
        let mut out = kv.to_string();
        for p in &self.spec.prepares {
            if out.contains(&p.placeholder()) {
                let dir = self.prepare_dir(&p.name).display().to_string();
                ensure!(
                    !dir.contains(['"', '\\']),
                    "the results directory {dir} holds a quote or a backslash, which a setting cannot name"
                );
                out = out.replace(&p.placeholder(), &dir);
            }
        }
        ensure!(!out.contains("{prepare."), "`{kv}` names a [[prepare]] run the file does not have");
        Ok(out)
    }

    /// The resolved configuration of every (arm, seed): method defaults, then data, steps, batch
    /// and seed, then the file's `set`, then the arm's. Unknown methods and keys are errors here.
    pub fn plan(&self) -> Result<Vec<PlannedRun>> {
        let s = &self.spec;
        let mut out = vec![];
        for (i, arm) in s.arms.iter().enumerate() {
            let what = format!("{}: arm `{}`", self.file.display(), arm.label);
            let mut base = RunConfig::defaults(&arm.method).with_context(|| what.clone())?;
            base.train.data = s.data.clone();
            base.train.steps = s.steps;
            base.train.batch_size = s.batch_size;
            for kv in spec::assignments(&s.set).iter().chain(&spec::assignments(&arm.set)) {
                base.set(&self.substitute(kv)?).with_context(|| what.clone())?;
            }
            for seed in s.seeds.list() {
                let mut config = base.clone();
                config.train.seed = seed;
                config.train.validate().with_context(|| what.clone())?;
                let dir = self.runs_dir().join(arm.slug()).join(format!("seed-{seed}"));
                out.push(PlannedRun { arm: i, seed, dir, config });
            }
        }
        Ok(out)
    }

    /// Evaluation settings of every run; the Jacobian spectrum and the local charts only when a
    /// metric asks for them.
    pub fn eval_options(&self) -> EvalOptions {
        let wants = |p: &str| self.spec.metrics().iter().any(|m| m.key.starts_with(p));
        let d = EvalOptions::default();
        EvalOptions {
            samples: self.spec.eval.samples,
            seed: self.spec.eval.seed,
            manifold_points: if wants("manifold.") { d.manifold_points } else { 0 },
            local_points: if wants("local.") { self.spec.eval.local_points.unwrap_or(d.local_points) } else { 0 },
            local_data: self.spec.eval.local_data.clone(),
            device: None,
        }
    }

    /// The metric keys that `eval.json` must hold.
    pub fn eval_keys(&self) -> Vec<String> {
        self.spec.metrics().into_iter().map(|m| m.key).filter(|k| !k.starts_with("summary.")).collect()
    }

    /// Checks what needs the registry and the data before anything trains: every arm's method
    /// builds with its configuration, and every `eval.json` metric is one the data gets.
    pub fn check(&self, plan: &[PlannedRun]) -> Result<()> {
        let data =
            ganfold_core::data::load(&self.spec.data, 0).with_context(|| format!("{}: data", self.file.display()))?;
        let keys = evaluate::metric_keys(&data, true);
        for m in self.spec.metrics() {
            if m.key.starts_with("summary.") {
                continue;
            }
            if MANIFOLD_KEYS.contains(&m.key.as_str()) || LOCAL_KEYS.contains(&m.key.as_str()) {
                continue;
            }
            if !keys.contains(&m.key.as_str()) {
                bail!(
                    "{}: unknown metric `{}` for data `{}` (eval.json has: {}; summary.json keys start with `summary.`)",
                    self.file.display(),
                    m.key,
                    self.spec.data,
                    keys.join(", ")
                );
            }
        }
        let device = ganfold_core::candle_core::Device::Cpu;
        for (i, arm) in self.spec.arms.iter().enumerate() {
            let Some(run) = plan.iter().find(|r| r.arm == i) else { continue };
            let entry = registry::method(&arm.method)?;
            let cx = BuildContext {
                config: &run.config.method,
                data: &data,
                device: &device,
                seed: run.seed,
                batch_size: run.config.train.batch_size,
                total_steps: run.config.train.steps,
                purpose: ganfold_core::Purpose::Train,
            };
            let method = (entry.build)(&cx).with_context(|| format!("{}: arm `{}`", self.file.display(), arm.label))?;
            if self.eval_options().manifold_points > 0 && method.generator().is_none() {
                bail!(
                    "{}: arm `{}`: method `{}` exposes no generator, so it has no manifold metrics",
                    self.file.display(),
                    arm.label,
                    arm.method
                );
            }
            if self.eval_options().local_points > 0 && method.local_generator().is_none() {
                bail!(
                    "{}: arm `{}`: method `{}` has no local generator, so it has no `local.*` metrics",
                    self.file.display(),
                    arm.label,
                    arm.method
                );
            }
        }
        Ok(())
    }

    /// Where each run stands. Run directories that belong to no (arm, seed) of the file, or whose
    /// configuration differs from the file's, are errors: the results were made from another
    /// definition of the experiment, and nothing is overwritten.
    pub fn states(&self, plan: &[PlannedRun]) -> Result<Vec<RunState>> {
        self.check_foreign_dirs(plan)?;
        let eval = self.eval_options();
        let keys = self.eval_keys();
        let prepared = self.prepare_suffixes();
        plan.iter().map(|r| run_state(r, &eval, &keys, &prepared)).collect()
    }

    pub(crate) fn check_foreign_dirs(&self, plan: &[PlannedRun]) -> Result<()> {
        let runs = self.runs_dir();
        let Ok(arms) = std::fs::read_dir(&runs) else { return Ok(()) };
        for arm in arms.flatten().filter(|e| e.path().is_dir()) {
            let seeds: Vec<_> = std::fs::read_dir(arm.path())?.flatten().filter(|e| e.path().is_dir()).collect();
            for seed in seeds {
                let p = seed.path();
                if !plan.iter().any(|r| r.dir == p) {
                    bail!(
                        "{} holds {}, which is no (arm, seed) of {}: the arms or seeds changed. Move {} away (or restore the file) to run this definition",
                        self.dir.display(),
                        p.display(),
                        self.file.display(),
                        self.dir.display()
                    );
                }
            }
        }
        Ok(())
    }

    /// Trains and evaluates what is missing, then writes the report (see [`Experiment::report`]).
    pub fn run(&self, opts: &RunOptions) -> Result<Report> {
        if opts.quick {
            return self.run_quick(opts);
        }
        for label in &opts.only {
            ensure!(
                self.spec.arms.iter().any(|a| &a.label == label),
                "{}: no arm is labelled `{label}`",
                self.file.display()
            );
        }
        let plan = self.plan()?;
        let states = self.states(&plan)?;
        let todo: Vec<usize> = (0..plan.len())
            .filter(|&i| !matches!(states[i], RunState::Done | RunState::Diverged))
            .filter(|&i| opts.only.is_empty() || opts.only.contains(&self.spec.arms[plan[i].arm].label))
            .collect();
        // Building every arm's method needs the data; with nothing to train the report checks
        // the metrics against the runs' own eval.json.
        if !todo.is_empty() {
            self.check(&plan)?;
            self.run_prepared(opts)?;
        }
        let mut result = self.execute(&plan, &states, &todo, opts);
        if result.is_ok() && self.spec.eval.reference {
            result = self.write_reference();
        }
        // The report covers whatever finished, also when a run failed.
        let report = report::build(self, &plan)?;
        report::write(self, &report)?;
        result?;
        Ok(report)
    }

    /// Trains (or resumes) every `[[prepare]]` run that has not finished, one after the other
    /// with all cores. A directory made from another definition is an error, as for the arms.
    fn run_prepared(&self, opts: &RunOptions) -> Result<()> {
        for (dir, config) in self.prepare_plan()? {
            let what = || format!("[[prepare]] run {}", dir.display());
            let topts = Options { progress: opts.progress, on_step: None };
            let cfg_path = dir.join("config.toml");
            if !cfg_path.exists() {
                clear_empty_dirs(&dir)?;
                ensure!(!dir.exists(), "{} holds files but no config.toml; move it away", dir.display());
                eprintln!("{}: training {}", self.name, what());
                train::train_with(config, Some(dir.clone()), topts).with_context(what)?;
                continue;
            }
            let text =
                std::fs::read_to_string(&cfg_path).with_context(|| format!("cannot read {}", cfg_path.display()))?;
            let found = RunConfig::from_toml(&text, None).with_context(|| format!("invalid {}", cfg_path.display()))?;
            let diff = config_diff(&found, &config, &self.prepare_suffixes())?;
            ensure!(
                diff.is_empty(),
                "{} was made from another definition of the experiment ({}); move it away to run this one",
                dir.display(),
                diff.join("; ")
            );
            match read_summary(&dir) {
                Some(s) if s.status == "completed" && s.steps == config.train.steps => {}
                _ => {
                    eprintln!("{}: resuming {}", self.name, what());
                    train::resume_with_options(&dir, config, None, topts).with_context(what)?;
                }
            }
        }
        Ok(())
    }

    /// `reference.json`: the data against itself, evaluated once with the file's settings.
    fn write_reference(&self) -> Result<()> {
        let path = self.dir.join("reference.json");
        let eval = self.eval_options();
        let fresh = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|r| r["requested_samples"] == json!(eval.samples) && r["seed"] == json!(eval.seed));
        if !fresh {
            let mut r = evaluate::evaluate_data(&self.spec.data, &eval)?;
            r["requested_samples"] = json!(eval.samples);
            evaluate::write_report(&path, &r)?;
        }
        Ok(())
    }

    fn run_quick(&self, opts: &RunOptions) -> Result<Report> {
        let tmp = tempfile::Builder::new().prefix("ganfold-quick-").tempdir()?;
        let mut quick = self.clone();
        quick.dir = tmp.path().join(&self.name);
        quick.spec.steps = self.spec.steps.min(QUICK_STEPS);
        quick.spec.eval.samples = self.spec.eval.samples.min(QUICK_SAMPLES);
        quick.spec.eval.local_points = Some(self.spec.eval.local_points.unwrap_or(QUICK_SAMPLES).min(QUICK_SAMPLES));
        quick.spec.seeds = spec::Seeds::List(self.spec.seeds.list().into_iter().take(1).collect());
        for p in &mut quick.spec.prepares {
            p.steps = p.steps.min(QUICK_STEPS);
            p.set.extend(std::mem::take(&mut p.quick_set));
        }
        if let Some(stand_in) = quick_stand_in(&self.spec.data) {
            eprintln!("{}: `{}` is not installed; --quick uses `{stand_in}` (same shape)", self.name, self.spec.data);
            quick.spec.data = stand_in.to_string();
            quick.stand_in = true;
        }
        if let Some(stand_in) = self.spec.eval.local_data.as_deref().and_then(quick_stand_in) {
            eprintln!(
                "{}: `{}` is not installed; --quick measures the charts on `{stand_in}`",
                self.name,
                self.spec.eval.local_data.as_deref().unwrap_or_default()
            );
            quick.spec.eval.local_data = Some(stand_in.to_string());
        }
        let opts = RunOptions { quick: false, ..opts.clone() };
        quick.run(&opts).with_context(|| format!("{} (--quick)", self.file.display()))
    }

    fn execute(&self, plan: &[PlannedRun], states: &[RunState], todo: &[usize], opts: &RunOptions) -> Result<()> {
        if todo.is_empty() {
            return Ok(());
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let jobs = opts.jobs.max(1).min(todo.len());
        let threads = (cores / jobs).max(1);
        let steps_left: usize = todo
            .iter()
            .map(|&i| match states[i] {
                RunState::New => plan[i].config.train.steps,
                RunState::Partial => plan[i].config.train.steps.saturating_sub(checkpointed_steps(&plan[i])),
                _ => 0,
            })
            .sum();
        let progress = Progress::new(opts.progress, steps_left as u64, todo.len(), &self.name);
        let queue = Mutex::new(todo.iter().copied().collect::<VecDeque<usize>>());
        let failed = AtomicBool::new(false);
        let errors = Mutex::new(Vec::<anyhow::Error>::new());
        let eval = self.eval_options();
        let all_done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            // Without a terminal, a line every 30 s.
            scope.spawn(|| {
                let mut last = Instant::now();
                while !all_done.load(Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    if last.elapsed().as_secs() >= 30 {
                        progress.line();
                        last = Instant::now();
                    }
                }
            });
            let workers: Vec<_> = (0..jobs)
                .map(|_| {
                    scope.spawn(|| {
                        let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
                            Ok(p) => p,
                            Err(e) => return errors.lock().unwrap_or_else(|p| p.into_inner()).push(e.into()),
                        };
                        loop {
                            if failed.load(Ordering::SeqCst) {
                                return;
                            }
                            let Some(i) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front() else { return };
                            let r = &plan[i];
                            let label = format!("{} seed {}", self.spec.arms[r.arm].label, r.seed);
                            progress.started(&label);
                            let out = pool.install(|| self.finish_run(r, states[i], &eval, &progress));
                            progress.finished(&label);
                            if let Err(e) = out {
                                failed.store(true, Ordering::SeqCst);
                                errors
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .push(e.context(format!("run {}", r.dir.display())));
                            }
                        }
                    })
                })
                .collect();
            for w in workers {
                let _ = w.join();
            }
            all_done.store(true, Ordering::SeqCst);
        });
        progress.done();
        match errors.into_inner().unwrap_or_else(|p| p.into_inner()).into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Trains (or resumes) one run to its end, records its provenance and evaluates it.
    fn finish_run(&self, r: &PlannedRun, state: RunState, eval: &EvalOptions, progress: &Progress) -> Result<()> {
        let hook = progress.hook();
        let opts = Options { progress: false, on_step: Some(hook) };
        let trained = match state {
            RunState::New => {
                clear_empty_dirs(&r.dir)?;
                Some(train::train_with(r.config.clone(), Some(r.dir.clone()), opts))
            }
            RunState::Partial => Some(train::resume_with_options(&r.dir, r.config.clone(), None, opts)),
            _ => None,
        };
        if let Some(Err(e)) = trained {
            if read_summary(&r.dir).is_some_and(|s| s.status == "diverged") {
                progress.note(&format!("{}: {e:#} (counted as diverged)", r.dir.display()));
                return Ok(());
            }
            return Err(e);
        }
        let provenance = r.dir.join("experiment.json");
        if !provenance.exists() {
            let p = json!({
                "experiment": self.name,
                "file": self.file.display().to_string(),
                "arm": self.spec.arms[r.arm].label,
                "seed": r.seed,
                "commit": git_commit(),
            });
            evaluate::write_report(&provenance, &p)?;
        }
        let report = evaluate::evaluate_run(&r.dir, eval)?;
        evaluate::write_report(&r.dir.join("eval.json"), &report)
    }
}

/// A same-shaped embedded dataset for `--quick` when `data` is not installed.
fn quick_stand_in(data: &str) -> Option<&'static str> {
    let installed = |name: &str| ganfold_core::data::data_dir().join(name).exists();
    match data {
        "mnist" | "fashion-mnist" if !installed(data) => Some("mnist-5k"),
        "mnist-val" | "mnist-5k+val" if !installed("mnist") => Some("mnist-5k"),
        _ => None,
    }
}

/// The state of one planned run's directory.
/// A trained run counts as evaluated when its `eval.json` was made with the file's settings and
/// holds every metric in `keys` (a metric added to the file re-evaluates the runs, never retrains).
/// `prepared` are the experiment's [`Experiment::prepare_suffixes`].
pub fn run_state(r: &PlannedRun, eval: &EvalOptions, keys: &[String], prepared: &[String]) -> Result<RunState> {
    let cfg_path = r.dir.join("config.toml");
    if !cfg_path.exists() {
        if r.dir.exists() && !only_empty_dirs(&r.dir) {
            bail!(
                "{} holds files but no config.toml: it is not a run of this experiment; move it away",
                r.dir.display()
            );
        }
        return Ok(RunState::New);
    }
    let text = std::fs::read_to_string(&cfg_path).with_context(|| format!("cannot read {}", cfg_path.display()))?;
    let found = RunConfig::from_toml(&text, None).with_context(|| format!("invalid {}", cfg_path.display()))?;
    let diff = config_diff(&found, &r.config, prepared)?;
    if !diff.is_empty() {
        bail!(
            "{} was made from another definition of the experiment ({}); move the results directory away (or restore the file) to run this one",
            r.dir.display(),
            diff.join("; ")
        );
    }
    match read_summary(&r.dir) {
        Some(s) if s.status == "diverged" => return Ok(RunState::Diverged),
        Some(s) if s.status == "completed" && s.steps == r.config.train.steps => {}
        _ => return Ok(RunState::Partial),
    }
    let evaluated = std::fs::read_to_string(r.dir.join("eval.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .is_some_and(|e| {
            e["samples"] == json!(eval.samples)
                && e["seed"] == json!(eval.seed)
                && e["checkpoint_step"] == json!(r.config.train.steps)
                && (eval.manifold_points == 0 || e.get("manifold").is_some())
                && (eval.local_points == 0 || e.get("local").is_some())
                && keys.iter().all(|k| evaluate::lookup_value(&e, k).is_some())
        });
    Ok(if evaluated { RunState::Done } else { RunState::Trained })
}

/// `key: found -> expected` for every setting that differs. The device does not count, nor where
/// the results directory was: two paths to the same `[[prepare]]` run (`prepared`) are equal.
fn config_diff(found: &RunConfig, expected: &RunConfig, prepared: &[String]) -> Result<Vec<String>> {
    let flat = |c: &RunConfig| -> Result<Vec<(String, String)>> {
        let mut c = c.clone();
        c.train.device = String::new();
        let t: toml::Table = toml::from_str(&c.to_toml()?)?;
        let mut out = vec![];
        flat_into("", &t, &mut out);
        Ok(out)
    };
    let (f, e) = (flat(found)?, flat(expected)?);
    let mut diff = vec![];
    for (k, v) in &e {
        match f.iter().find(|(fk, _)| fk == k) {
            Some((_, fv)) if fv == v || same_prepared_run(fv, v, prepared) => {}
            Some((_, fv)) => diff.push(format!("{k} is {fv} there, {v} in the file")),
            None => diff.push(format!("{k} is missing there")),
        }
    }
    for (k, v) in &f {
        if !e.iter().any(|(ek, _)| ek == k) {
            diff.push(format!("{k} = {v} there is not in the file"));
        }
    }
    Ok(diff)
}

/// Whether two TOML string values name the same `[[prepare]]` run under different results roots.
fn same_prepared_run(a: &str, b: &str, prepared: &[String]) -> bool {
    let run = |v: &str| -> Option<usize> {
        let path = v.strip_prefix('"')?.strip_suffix('"')?;
        prepared.iter().position(|s| path == s || path.ends_with(&format!("/{s}")))
    };
    let ra = run(a);
    ra.is_some() && ra == run(b)
}

fn flat_into(prefix: &str, t: &toml::Table, out: &mut Vec<(String, String)>) {
    for (k, v) in t {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(sub) => flat_into(&key, sub, out),
            v => out.push((key, v.to_string())),
        }
    }
}

pub(crate) fn read_summary(dir: &Path) -> Option<Summary> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).ok()?).ok()
}

fn only_empty_dirs(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().all(|e| e.path().is_dir() && only_empty_dirs(&e.path())))
        .unwrap_or(false)
}

/// A run killed before it wrote its config leaves only empty folders; the trainer wants none.
fn clear_empty_dirs(dir: &Path) -> Result<()> {
    if dir.exists() && only_empty_dirs(dir) {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    Ok(())
}

/// Steps of a partial run's last checkpoint, read from its log (only for the progress bar).
fn checkpointed_steps(r: &PlannedRun) -> usize {
    let every = r.config.train.checkpoint_every.max(1);
    let text = std::fs::read_to_string(r.dir.join("metrics.jsonl")).unwrap_or_default();
    let last =
        text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()?["step"].as_u64()).next_back().unwrap_or(0);
    last as usize / every * every
}

/// The commit of the working tree the experiment runs from (`+dirty` with uncommitted changes
/// to tracked files), or `unknown` outside a git checkout.
pub fn git_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(c) if !c.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty { format!("{c}+dirty") } else { c }
        }
        _ => "unknown".into(),
    }
}

/// The experiment's overall progress: steps of all runs, runs done, ETA.
struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    name: String,
    total_runs: usize,
    runs_done: AtomicUsize,
    steps_done: Arc<AtomicUsize>,
    total_steps: u64,
    running: Mutex<Vec<String>>,
    started: Instant,
}

impl Progress {
    fn new(show: bool, total_steps: u64, total_runs: usize, name: &str) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let bar = (show && terminal).then(|| {
            let pb = ProgressBar::new(total_steps.max(1));
            pb.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:28.cyan/blue}] {percent}% {elapsed_precise}<{eta_precise} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            pb.set_prefix(name.to_string());
            pb
        });
        Progress {
            bar,
            plain: show && !terminal,
            name: name.into(),
            total_runs,
            runs_done: AtomicUsize::new(0),
            steps_done: Arc::new(AtomicUsize::new(0)),
            total_steps,
            running: Mutex::new(vec![]),
            started: Instant::now(),
        }
    }

    fn hook(&self) -> train::StepHook {
        let steps = self.steps_done.clone();
        let bar = self.bar.clone();
        Arc::new(move |_| {
            steps.fetch_add(1, Ordering::Relaxed);
            if let Some(b) = &bar {
                b.inc(1);
            }
        })
    }

    fn message(&self) -> String {
        let running = self.running.lock().map(|r| r.join(", ")).unwrap_or_default();
        format!("runs {}/{} done | {running}", self.runs_done.load(Ordering::SeqCst), self.total_runs)
    }

    fn started(&self, label: &str) {
        if let Ok(mut r) = self.running.lock() {
            r.push(label.to_string());
        }
        self.update();
        self.line();
    }

    fn finished(&self, label: &str) {
        if let Ok(mut r) = self.running.lock() {
            r.retain(|l| l != label);
        }
        self.runs_done.fetch_add(1, Ordering::SeqCst);
        self.update();
    }

    fn update(&self) {
        if let Some(b) = &self.bar {
            b.set_message(self.message());
        }
    }

    /// One plain progress line (when stderr is not a terminal).
    fn line(&self) {
        if self.plain {
            let done = self.steps_done.load(Ordering::Relaxed) as f64;
            let el = self.started.elapsed().as_secs_f64();
            let eta = if done > 0.0 {
                format!("{:.0} min", el / done * (self.total_steps as f64 - done) / 60.0)
            } else {
                "?".into()
            };
            eprintln!("{}: {:.0}/{} steps, ETA {eta}, {}", self.name, done, self.total_steps, self.message());
        }
    }

    fn note(&self, text: &str) {
        match &self.bar {
            Some(b) => b.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::same_prepared_run;

    #[test]
    fn prepared_runs_match_across_results_roots_only() {
        let p = ["dsweep/prepare/stages".to_string(), "dsweep/prepare/other".to_string()];
        let rel = "\"results/dsweep/prepare/stages\"";
        assert!(same_prepared_run(rel, "\"/work/main/results/dsweep/prepare/stages\"", &p));
        assert!(same_prepared_run(rel, "\"dsweep/prepare/stages\"", &p));
        // Another prepared run, another experiment, a name that only ends the same way.
        assert!(!same_prepared_run(rel, "\"/r/dsweep/prepare/other\"", &p));
        assert!(!same_prepared_run(rel, "\"/r/xsweep/prepare/stages\"", &p));
        assert!(!same_prepared_run("\"/r/my-dsweep/prepare/stages\"", rel, &p));
        assert!(!same_prepared_run("3", "3", &p));
    }
}
