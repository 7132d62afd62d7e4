//! Trains `lsal` through the shared trainer (`ganfold_core::train`), with the same keys
//! as `ganfold train lsal`: `lsal_train [--out DIR] [--set key=value]...`
//! (`--set data=mnist --set steps=2000 --set mode=ssl ...`).

use ganfold_core::RunConfig;
use ganfold_lsal as _;

fn main() -> anyhow::Result<()> {
    let mut cfg = RunConfig::defaults("lsal")?;
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = Some(args.next().ok_or_else(|| anyhow::anyhow!("--out needs a directory"))?.into()),
            "--set" => cfg.set(&args.next().ok_or_else(|| anyhow::anyhow!("--set needs key=value"))?)?,
            _ => anyhow::bail!("unknown argument `{a}` (use --out DIR and --set key=value)"),
        }
    }
    let s = ganfold_core::train::train(cfg, out, true)?;
    println!("{}", serde_json::to_string_pretty(&s)?);
    Ok(())
}
