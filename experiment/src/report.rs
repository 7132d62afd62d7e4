//! The report of an experiment, rebuilt from its run directories alone: `table.md` (mean ± std
//! and n of every arm and metric, the commands, the commits), `results.json` and `plot.png`.

use crate::evaluate;
use crate::runner::{Experiment, PlannedRun, RunState, read_summary, run_state};
use crate::spec::{self, Better, Metric, XAxis};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub experiment: String,
    pub file: String,
    pub claim: String,
    pub source: String,
    pub notes: String,
    pub data: String,
    pub steps: usize,
    pub batch_size: usize,
    pub seeds: Vec<u64>,
    pub eval_samples: usize,
    pub eval_seed: u64,
    pub metrics: Vec<Metric>,
    pub x_axis: Option<XAxis>,
    pub arms: Vec<ArmReport>,
    /// Real data against itself (`[eval] reference = true`), one value per metric (NaN where the
    /// metric does not apply to real data).
    pub reference: Option<Vec<f64>>,
    /// What the reference compares (`train split vs test split`, `two disjoint random halves`).
    pub reference_label: Option<String>,
    /// Commits that recorded the runs.
    pub commits: Vec<String>,
    /// Every run trained and evaluated (or diverged).
    pub complete: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct ArmReport {
    pub label: String,
    pub method: String,
    pub group: String,
    pub x: Option<f64>,
    /// The arm's overrides, as `--set` arguments.
    pub set: Vec<String>,
    pub runs: Vec<RunReport>,
    /// One per metric, in the file's order.
    pub stats: Vec<Stat>,
    /// Mean training time of a whole run, from the measured rate (seconds).
    pub train_seconds: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub seed: u64,
    /// `done`, `diverged`, `trained` (not evaluated), `partial` or `new`.
    pub status: String,
    pub dir: String,
    /// Metric values, in the file's order (only for `done` runs).
    pub values: Vec<f64>,
    pub train_seconds: Option<f64>,
    pub commit: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Stat {
    pub key: String,
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 for one run.
    pub std: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    pub fn of(key: &str, v: &[f64]) -> Stat {
        let n = v.len();
        let mean = if n == 0 { f64::NAN } else { v.iter().sum::<f64>() / n as f64 };
        let std = if n < 2 { 0.0 } else { (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() };
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Stat { key: key.into(), n, mean, std, min, max }
    }
}

/// Metric `j` of the finished runs where it is defined (an undefined one is NaN).
pub fn defined_values(runs: &[RunReport], j: usize) -> Vec<f64> {
    runs.iter().filter(|r| r.status == "done").map(|r| r.values[j]).filter(|x| !x.is_nan()).collect()
}

fn state_name(s: RunState) -> &'static str {
    match s {
        RunState::New => "new",
        RunState::Partial => "partial",
        RunState::Trained => "trained",
        RunState::Done => "done",
        RunState::Diverged => "diverged",
    }
}

/// Reads every run directory of `plan` and aggregates.
pub fn build(exp: &Experiment, plan: &[PlannedRun]) -> Result<Report> {
    let spec = &exp.spec;
    let metrics = spec.metrics();
    let eval = exp.eval_options();
    let keys = exp.eval_keys();
    let prepared = exp.prepare_suffixes();
    let mut commits: Vec<String> = vec![];
    let mut complete = true;
    let mut arms = vec![];
    for (i, arm) in spec.arms.iter().enumerate() {
        let mut runs = vec![];
        for r in plan.iter().filter(|r| r.arm == i) {
            let state = run_state(r, &eval, &keys, &prepared)?;
            complete &= matches!(state, RunState::Done | RunState::Diverged);
            let summary = read_summary(&r.dir);
            let train_seconds = summary
                .as_ref()
                .filter(|s| s.steps_this_run > 0)
                .map(|s| s.wall_seconds / s.steps_this_run as f64 * r.config.train.steps as f64);
            let commit = read_json(&r.dir.join("experiment.json")).and_then(|p| p["commit"].as_str().map(String::from));
            if let Some(c) = commit.as_ref().filter(|c| !commits.contains(c)) {
                commits.push(c.clone());
            }
            let mut values = vec![];
            if state == RunState::Done {
                let ev = read_json(&r.dir.join("eval.json"))
                    .with_context(|| format!("cannot read {}/eval.json", r.dir.display()))?;
                let sm = read_json(&r.dir.join("summary.json")).unwrap_or(Value::Null);
                for m in &metrics {
                    if !m.applies_to(&arm.method) {
                        values.push(f64::NAN);
                        continue;
                    }
                    let (src, key) = match m.key.strip_prefix("summary.") {
                        Some(k) => (&sm, k),
                        None => (&ev, m.key.as_str()),
                    };
                    let found = evaluate::lookup_value(src, key);
                    let undefined = found.is_some_and(Value::is_null);
                    let v = match found.and_then(Value::as_f64) {
                        None if exp.stand_in && m.key.starts_with("summary.") => Some(f64::NAN),
                        // Undefined for this run: left out of the arm's mean, counted in its cell.
                        None if undefined => Some(f64::NAN),
                        v => v,
                    };
                    let Some(v) = v else {
                        let file = if m.key.starts_with("summary.") { "summary.json" } else { "eval.json" };
                        bail!(
                            "metric `{}` is not in {}/{file} (arm `{}`, method {})",
                            m.key,
                            r.dir.display(),
                            arm.label,
                            arm.method
                        );
                    };
                    values.push(v);
                }
            }
            runs.push(RunReport {
                seed: r.seed,
                status: state_name(state).into(),
                dir: r.dir.display().to_string(),
                values,
                train_seconds,
                commit,
            });
        }
        let stats = metrics.iter().enumerate().map(|(j, m)| Stat::of(&m.key, &defined_values(&runs, j))).collect();
        let times: Vec<f64> = runs.iter().filter_map(|r| r.train_seconds).collect();
        arms.push(ArmReport {
            label: arm.label.clone(),
            method: arm.method.clone(),
            group: arm.group().to_string(),
            x: arm.x,
            set: crate::spec::assignments(&spec.set).into_iter().chain(crate::spec::assignments(&arm.set)).collect(),
            runs,
            stats,
            train_seconds: (!times.is_empty()).then(|| times.iter().sum::<f64>() / times.len() as f64),
        });
    }
    let ref_json = spec.eval.reference.then(|| read_json(&exp.dir.join("reference.json"))).flatten();
    let reference =
        ref_json.as_ref().map(|r| metrics.iter().map(|m| evaluate::lookup(r, &m.key).unwrap_or(f64::NAN)).collect());
    Ok(Report {
        reference,
        reference_label: ref_json.as_ref().and_then(|r| r["reference"].as_str().map(String::from)),
        experiment: exp.name.clone(),
        file: exp.file.display().to_string(),
        claim: spec.claim.clone(),
        source: spec.source.clone(),
        notes: spec.notes.clone(),
        data: spec.data.clone(),
        steps: spec.steps,
        batch_size: spec.batch_size,
        seeds: spec.seeds.list(),
        eval_samples: eval.samples,
        eval_seed: eval.seed,
        metrics,
        x_axis: spec.x_axis.clone(),
        arms,
        commits,
        complete,
    })
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Writes `table.md`, `results.json` and `plot.png` into the experiment's results directory.
pub fn write(exp: &Experiment, report: &Report) -> Result<()> {
    let w = |name: &str, bytes: &[u8]| ganfold_core::checkpoint::atomic_write(&exp.dir.join(name), bytes);
    w("table.md", report.markdown(exp).as_bytes())?;
    w("results.json", (serde_json::to_string_pretty(report)? + "\n").as_bytes())?;
    w("plot.png", &crate::plot::plot(report)?)
}

/// `42 s`, `10.2 min`, `3.1 h`.
pub fn fmt_seconds(t: f64) -> String {
    if t < 90.0 {
        format!("{t:.0} s")
    } else if t < 5400.0 {
        format!("{:.1} min", t / 60.0)
    } else {
        format!("{:.1} h", t / 3600.0)
    }
}

/// A value with the decimals its size needs, and its std with the same decimals.
pub fn fmt_mean_std(mean: f64, std: f64, n: usize) -> String {
    if n == 0 {
        return "—".into();
    }
    let a = mean.abs();
    let d = if a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else if a == 0.0 {
        0
    } else if a >= 0.01 {
        3
    } else {
        return if n > 1 { format!("{mean:.2e} ± {std:.1e}") } else { format!("{mean:.2e}") };
    };
    if n > 1 { format!("{mean:.d$} ± {std:.d$}") } else { format!("{mean:.d$}") }
}

impl Report {
    /// Whether some finished run has a metric its evaluation found undefined.
    fn has_undefined(&self) -> bool {
        self.arms
            .iter()
            .flat_map(|a| &a.runs)
            .filter(|r| r.status == "done")
            .any(|r| r.values.iter().any(|v| v.is_nan()))
    }

    /// The table as Markdown: claim, settings, one row per arm, commands, commits.
    pub fn markdown(&self, exp: &Experiment) -> String {
        let mut s = self.summary_markdown(exp);
        self.write_commands(&mut s, exp);
        s
    }

    /// The page's head: claim, settings and the table, without the plot and the commands (what a
    /// notebook shows beside [`crate::plot::plot`]).
    pub fn summary_markdown(&self, exp: &Experiment) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# {}\n", self.experiment);
        let _ = writeln!(s, "**Claim.** {}\n", self.claim.trim());
        let _ = writeln!(s, "**Source.** {}\n", self.source.trim());
        if !self.notes.trim().is_empty() {
            let _ = writeln!(s, "**Notes.** {}\n", self.notes.trim());
        }
        let seeds: Vec<String> = self.seeds.iter().map(u64::to_string).collect();
        let _ = writeln!(
            s,
            "Data `{}`, {} steps at batch {}, seeds {}; each run evaluated on {} samples (evaluation seed {}). \
             Cells: mean ± sample std over seeds (n).{}{}\n",
            self.data,
            self.steps,
            self.batch_size,
            seeds.join(", "),
            self.eval_samples,
            self.eval_seed,
            if self.has_undefined() {
                " A cell marked (k of n) averages the k runs where its metric is defined (a KL to uniform needs \
                 at least one high-quality sample)."
            } else {
                ""
            },
            if self.complete { "" } else { " **Incomplete: some runs have not finished (see `n`).**" }
        );
        for (p, (dir, _)) in exp.spec.prepares.iter().zip(exp.prepare_plan().unwrap_or_default()) {
            let set: Vec<String> =
                spec::assignments(&exp.spec.set).into_iter().chain(spec::assignments(&p.set)).collect();
            let _ = writeln!(
                s,
                "Trained once before the arms (`{{prepare.{}}}`): `{}`, {} steps, seed {}, `{}`; in `{}`.\n",
                p.name,
                p.method,
                p.steps,
                p.seed,
                set.join(" "),
                dir.display()
            );
        }
        let arrow = |m: &Metric| match m.better {
            Some(Better::Lower) => " ↓",
            Some(Better::Higher) => " ↑",
            None => "",
        };
        let mut head = "| arm | method |".to_string();
        let mut rule = "|---|---|".to_string();
        if let Some(ax) = &self.x_axis {
            head += &format!(" {} |", ax.label);
            rule += "---:|";
        }
        for m in &self.metrics {
            head += &format!(" {}{} |", m.label, arrow(m));
            rule += "---:|";
        }
        head += " n | train time/run |";
        rule += "---:|---:|";
        let _ = writeln!(s, "{head}\n{rule}");
        for a in &self.arms {
            let mut row = format!("| {} | `{}` |", a.label, a.method);
            if self.x_axis.is_some() {
                row += &format!(" {} |", a.x.map(|x| format!("{x}")).unwrap_or_default());
            }
            let done = a.runs.iter().filter(|r| r.status == "done").count();
            for (st, m) in a.stats.iter().zip(&self.metrics) {
                if !m.applies_to(&a.method) {
                    row += " n/a |";
                    continue;
                }
                // Fewer runs than the arm's: the metric was undefined for the others.
                let of = if st.n < done { format!(" ({} of {done})", st.n) } else { String::new() };
                row += &format!(" {}{of} |", fmt_mean_std(st.mean, st.std, st.n));
            }
            let diverged = a.runs.iter().filter(|r| r.status == "diverged").count();
            let n = if diverged > 0 { format!("{done} ({diverged} diverged)") } else { format!("{done}") };
            let t = a.train_seconds.map(fmt_seconds).unwrap_or_else(|| "—".into());
            row += &format!(" {n} of {} | {t} |", a.runs.len());
            let _ = writeln!(s, "{row}");
        }
        if let Some(r) = &self.reference {
            let how = if self.x_axis.is_some() { " |" } else { "" };
            let label = self.reference_label.as_deref().unwrap_or("real data");
            let mut row = format!("| real data ({label}) | — |{how}");
            for v in r {
                row += &format!(" {} |", if v.is_finite() { fmt_mean_std(*v, 0.0, 1) } else { "—".into() });
            }
            let _ = writeln!(s, "{row} — | — |");
        }
        s
    }

    fn write_commands(&self, s: &mut String, exp: &Experiment) {
        let seeds: Vec<String> = self.seeds.iter().map(u64::to_string).collect();
        let _ = writeln!(s, "\n![{}](plot.png)\n", self.experiment);
        let _ = writeln!(s, "## Commands\n\n```sh");
        let _ = writeln!(s, "ganfold experiment run {}     # every run below, then this table", self.file);
        for (i, a) in self.arms.iter().enumerate() {
            let arm = &exp.spec.arms[i];
            let dir = exp.runs_dir().join(arm.slug()).join("seed-SEED");
            let mut cmd = format!(
                "ganfold train {} --data {} --steps {} --batch-size {} --seed SEED",
                a.method, self.data, self.steps, self.batch_size
            );
            for kv in &a.set {
                cmd += &format!(" --set '{kv}'");
            }
            let _ = writeln!(s, "# {}, SEED in {}\n{cmd} --out {}", a.label, seeds.join(" "), dir.display());
        }
        let e = exp.eval_options();
        let local = e.local_data.as_ref().map(|d| format!(" --local-data {d}")).unwrap_or_default();
        let _ = writeln!(
            s,
            "ganfold eval --run RUN_DIR --samples {} --seed {} --manifold-points {} --local-points {}{local}   # eval.json of each run\n```\n",
            self.eval_samples, self.eval_seed, e.manifold_points, e.local_points
        );
        let commits = if self.commits.is_empty() { "none recorded".to_string() } else { self.commits.join(", ") };
        let _ = writeln!(
            s,
            "Runs recorded by commit {commits}. Regenerate this page from the run directories: `ganfold experiment report {}`.",
            self.file
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_by_hand() {
        let s = Stat::of("k", &[1.0, 2.0, 4.0]);
        assert_eq!((s.n, s.min, s.max), (3, 1.0, 4.0));
        assert!((s.mean - 7.0 / 3.0).abs() < 1e-12);
        // deviations -4/3, -1/3, 5/3: squares sum to 42/9; / (n-1) = 7/3
        assert!((s.std - (7.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(Stat::of("k", &[5.0]).std, 0.0);
        assert_eq!(Stat::of("k", &[]).n, 0);
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_mean_std(1063.4, 12.2, 3), "1063 ± 12");
        assert_eq!(fmt_mean_std(12.345, 0.5, 3), "12.3 ± 0.5");
        assert_eq!(fmt_mean_std(0.8123, 0.01, 3), "0.812 ± 0.010");
        assert_eq!(fmt_mean_std(0.8123, 0.0, 1), "0.812");
        assert_eq!(fmt_mean_std(0.0012, 0.0003, 2), "1.20e-3 ± 3.0e-4");
        assert_eq!(fmt_mean_std(f64::NAN, 0.0, 0), "—");
        assert_eq!(fmt_mean_std(0.0, 0.0, 3), "0 ± 0");
        assert_eq!(
            (fmt_seconds(42.0), fmt_seconds(612.0), fmt_seconds(7200.0)),
            ("42 s".into(), "10.2 min".into(), "2.0 h".into())
        );
    }
}
