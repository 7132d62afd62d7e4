//! A stand-in for `ganfold train` until the CLI lands: trains one run with the shared trainer.
//!
//! ```text
//! cargo build --release -p ganfold-lgan --example train
//! target/release/examples/train --data mnist-5k --steps 500 --batch 64 --seed 0 --out runs/x --set mode=ssl
//! ```
//! `--set key=value` as in the CLI (bare keys resolve to the method's table first).

use ganfold_core::RunConfig;
use ganfold_lgan as _;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cfg = RunConfig::defaults("lgan")?;
    let mut out = None;
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).ok_or_else(|| anyhow::anyhow!("{} needs a value", args[i]))?;
        match args[i].as_str() {
            "--data" => cfg.train.data = v.clone(),
            "--steps" => cfg.train.steps = v.parse()?,
            "--batch" => cfg.train.batch_size = v.parse()?,
            "--seed" => cfg.train.seed = v.parse()?,
            "--out" => out = Some(std::path::PathBuf::from(v)),
            "--set" => cfg.set(v)?,
            a => anyhow::bail!("unknown argument {a}"),
        }
        i += 2;
    }
    let s = ganfold_core::train::train(cfg, out, true)?;
    println!("{}", serde_json::to_string_pretty(&s)?);
    Ok(())
}
