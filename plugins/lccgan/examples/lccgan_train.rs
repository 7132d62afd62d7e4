//! Trains one run through the shared trainer until the `ganfold` CLI lands on this branch:
//! `cargo run --release -p ganfold-lccgan --example lccgan_train -- OUT_DIR key=value ...`
//! (the same `key=value` assignments as `ganfold train lccgan --set key=value`; `train.*` keys
//! set the trainer, e.g. `train.steps=3000 train.data=mnist-5k`).

use ganfold_lccgan as _;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = args.next().ok_or_else(|| anyhow::anyhow!("usage: lccgan_train OUT_DIR [key=value ...]"))?;
    let mut cfg = ganfold_core::RunConfig::defaults("lccgan")?;
    for a in args {
        cfg.set(&a)?;
    }
    let s = ganfold_core::train::train(cfg, Some(out.into()), true)?;
    println!("{}", serde_json::to_string_pretty(&s)?);
    Ok(())
}
