//! `ganfold experiment`: a paper's claim as one file and one command (ganfold-experiment).
//!
//! ```text
//! ganfold experiment list                          every experiments/*.toml: claim, arms x seeds, time
//! ganfold experiment run FILE [--jobs N] [--quick] [--only ARM]
//! ganfold experiment report FILE                   the table again, from the run directories
//! ```

use anyhow::Result;
use ganfold_experiment::{Experiment, RunOptions};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ExperimentArgs {
    #[command(subcommand)]
    cmd: Sub,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    /// Every experiment file of a directory: name, claim, arms x seeds, an estimate of the time.
    List {
        #[arg(long, default_value = "experiments")]
        dir: PathBuf,
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// Train and evaluate what is missing, then write RESULTS/<name>/table.md, results.json, plot.png.
    Run {
        /// Experiment files (several: one after the other).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Runs at once, the cores split between them.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Every arm for a few steps in a temporary directory: checks the file end to end.
        #[arg(long)]
        quick: bool,
        /// Only the arm with this label (repeatable).
        #[arg(long = "only", value_name = "ARM")]
        only: Vec<String>,
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// No progress output.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Rebuild the report from the run directories alone (nothing is trained).
    Report {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
}

pub fn main(args: &ExperimentArgs) -> Result<()> {
    match &args.cmd {
        Sub::List { dir, results } => {
            println!("{:<22} {:>10} {:>12}  claim", "name", "arms x seeds", "train time");
            for e in Experiment::all(dir, results)? {
                let (t, measured) = e.estimate_seconds()?;
                let time = match t {
                    Some(s) if measured => format!("{:.0} min", s / 60.0),
                    Some(s) => format!("~{:.0} min", s / 60.0),
                    None => "unknown".into(),
                };
                let grid = format!("{} x {}", e.spec.arms.len(), e.spec.seeds.list().len());
                let claim: String = e.spec.claim.split_whitespace().collect::<Vec<_>>().join(" ");
                let claim =
                    if claim.chars().count() > 90 { claim.chars().take(87).collect::<String>() + "..." } else { claim };
                println!("{:<22} {grid:>12} {time:>12}  {claim}", e.name);
            }
            println!("(train time on this machine's cores: measured from finished runs, ~ from reference step times)");
            Ok(())
        }
        Sub::Run { files, jobs, quick, only, results, quiet } => {
            for f in files {
                let e = Experiment::load(f, results)?;
                let opts = RunOptions { jobs: *jobs, quick: *quick, only: only.clone(), progress: !quiet };
                let report = e.run(&opts)?;
                if *quick {
                    eprintln!("{}: --quick passed ({} arms)", e.name, report.arms.len());
                } else {
                    print!("{}", report.markdown(&e));
                    eprintln!("wrote {}/table.md, results.json, plot.png", e.dir.display());
                }
            }
            Ok(())
        }
        Sub::Report { files, results } => {
            for f in files {
                let e = Experiment::load(f, results)?;
                let report = e.report()?;
                e.write_report(&report)?;
                print!("{}", report.markdown(&e));
            }
            Ok(())
        }
    }
}
