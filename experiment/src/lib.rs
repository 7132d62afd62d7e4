//! # ganfold-experiment: a paper's claim as one file and one command
//!
//! An experiment file (`experiments/<name>.toml`, see [`spec`]) states a claim, its source, the
//! data, steps and seeds, the arms (a method and its config overrides each) and the metrics of
//! the table. [`Experiment::run`] trains every (arm, seed) as an ordinary run directory,
//! evaluates it with the code of `ganfold eval` ([`evaluate`]), and writes the report
//! ([`report`]): `table.md` (mean ± std over seeds), `results.json` and `plot.png`.
//! Interrupted experiments continue where they stopped; finished runs are never redone.
//!
//! ```no_run
//! use ganfold_experiment::{Experiment, RunOptions};
//! # fn main() -> anyhow::Result<()> {
//! let exp = Experiment::load("experiments/dcgan-mnist.toml".as_ref(), "results".as_ref())?;
//! let report = exp.run(&RunOptions { progress: true, ..Default::default() })?;
//! println!("{}", report.markdown(&exp));
//! # Ok(()) }
//! ```

pub mod evaluate;
pub mod plot;
pub mod report;
pub mod runner;
pub mod spec;

pub use evaluate::{EvalOptions, evaluate_data, evaluate_run};
pub use report::{Report, Stat};
pub use runner::{Experiment, PlannedRun, RunOptions, RunState};
pub use spec::Spec;

impl Experiment {
    /// The report of what the run directories hold now; nothing is trained or written.
    pub fn report(&self) -> anyhow::Result<Report> {
        let plan = self.plan()?;
        // `build` reads every run's state (and rejects a changed definition); only the
        // directories that belong to no (arm, seed) are left to check here.
        self.check_foreign_dirs(&plan)?;
        report::build(self, &plan)
    }

    /// Writes `table.md`, `results.json` and `plot.png` of `report` into the results directory.
    pub fn write_report(&self, report: &Report) -> anyhow::Result<()> {
        report::write(self, report)
    }

    /// A rough training time for the whole experiment on this machine (seconds), and whether it
    /// comes from runs of this experiment that already trained (else from reference rates).
    pub fn estimate_seconds(&self) -> anyhow::Result<(Option<f64>, bool)> {
        let plan = self.plan()?;
        let mut total = 0.0;
        let mut measured = true;
        for (i, arm) in self.spec.arms.iter().enumerate() {
            let rates: Vec<f64> = plan
                .iter()
                .filter(|r| r.arm == i)
                .filter_map(|r| runner::read_summary(&r.dir))
                .filter(|s| s.steps_this_run > 0)
                .map(|s| s.wall_seconds / s.steps_this_run as f64)
                .collect();
            let per_step = if rates.is_empty() {
                measured = false;
                match reference_ms_per_step(&arm.method, &self.spec.data) {
                    Some(ms) => ms / 1000.0 * self.spec.batch_size as f64 / 64.0,
                    None => return Ok((None, false)),
                }
            } else {
                rates.iter().sum::<f64>() / rates.len() as f64
            };
            total += per_step * self.spec.steps as f64 * self.spec.seeds.list().len() as f64;
        }
        Ok((Some(total), measured))
    }
}

/// Milliseconds per training step at batch 64 on 1x28x28 digits with 2 threads, as
/// `ganfold bench --steps 20` measured them on the project's 2-core machine (docs/performance.md).
/// Other data gets no estimate until a run of the experiment has trained.
fn reference_ms_per_step(method: &str, data: &str) -> Option<f64> {
    if !matches!(data, "mnist" | "mnist-5k" | "fashion-mnist") {
        return None;
    }
    Some(match method {
        "dcgan" => 65.0,
        "lccgan" => 85.0,
        "lgan" => 155.0,
        "lsal" => 70.0,
        "mmgan" => 170.0,
        _ => return None,
    })
}
