//! `ganfold eval`: every metric that applies to a run's data, as one JSON object.
//!
//! ```text
//! ganfold eval --run DIR [--samples N]   a trained run (its last checkpoint) against its data
//! ganfold eval --data D  [--samples N]   real data against itself: the ceiling
//! ```
//!
//! The evaluation itself is `ganfold_experiment::evaluate` (experiments use the same code).

use anyhow::{Result, bail};
use ganfold_experiment::evaluate::{self, EvalOptions};
use serde_json::Value;
use std::path::PathBuf;

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
    /// Real points at which a local generator's charts are measured (0 skips it).
    #[arg(long, default_value_t = 1000)]
    pub local_points: usize,
    /// Dataset of those points (default: the run's test split, else its training data).
    #[arg(long)]
    pub local_data: Option<String>,
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
    print!("{}", serde_json::to_string_pretty(&report)? + "\n");
    let mut targets: Vec<PathBuf> = args.out.iter().cloned().collect();
    if let Some(dir) = &args.run {
        targets.push(dir.join("eval.json"));
    }
    for path in targets {
        evaluate::write_report(&path, &report)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Builds the report without printing it.
pub fn evaluate(args: &EvalArgs) -> Result<Value> {
    let opts = EvalOptions {
        samples: args.samples,
        seed: args.seed,
        manifold_points: args.manifold_points,
        local_points: args.local_points,
        local_data: args.local_data.clone(),
        device: args.device.clone(),
    };
    match (&args.run, &args.data) {
        (Some(dir), None) => evaluate::evaluate_run(dir, &opts),
        (None, Some(name)) => evaluate::evaluate_data(name, &opts),
        _ => bail!("give exactly one of --run DIR or --data NAME"),
    }
}
