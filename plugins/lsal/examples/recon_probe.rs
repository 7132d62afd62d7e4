//! Diagnoses G(Q(x)) on held-out digits of an LSAL run: reconstruction error with BatchNorm in
//! eval mode (running statistics, what `evaluate` reports) and in train mode (batch statistics),
//! and how spread out Q(x) is against the prior N(0, I).
//! `recon_probe RUN_DIR` (with GANFOLD_DATA_DIR for full MNIST).
use anyhow::Context;
use candle_core::{DType, Tensor};
use ganfold_core::{BuildContext, Method, config::RunConfig};
use ganfold_lsal::Lsal;
use std::path::Path;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).context("usage: recon_probe RUN_DIR")?;
    let dir = Path::new(&dir);
    let cfg = RunConfig::from_toml(&std::fs::read_to_string(dir.join("config.toml"))?, None)?;
    let device = candle_core::Device::Cpu;
    let data = ganfold_core::data::load(&cfg.train.data, cfg.train.seed)?;
    let ck = ganfold_core::checkpoint::load(&dir.join("checkpoint/state.safetensors"), &device)?;
    let lcfg = ganfold_core::config::parse(&cfg.method, "lsal")?;
    let cx = BuildContext {
        config: &cfg.method,
        data: &data,
        device: &device,
        seed: cfg.train.seed,
        batch_size: cfg.train.batch_size,
        total_steps: cfg.train.steps,
        purpose: ganfold_core::Purpose::Train,
    };
    let mut m = Lsal::new(lcfg, &cx, DType::F32)?;
    m.load(&ck.state)?;
    let held = data.test.as_deref().unwrap_or(&data);
    let idx: Vec<usize> = (0..500.min(held.len())).collect();
    let x = held.batch(&idx, &device)?.x;
    let pair = {
        let rolled = Tensor::cat(&[x.narrow(0, 1, idx.len() - 1)?, x.narrow(0, 0, 1)?], 0)?;
        (&rolled - &x)?.sqr()?.flatten_from(1)?.sum(1)?.sqrt()?.mean_all()?.to_scalar::<f32>()?
    };
    for (name, qt, gt) in [("eval/eval", false, false), ("train/train", true, true), ("train Q/eval G", true, false)] {
        let z = m.q.forward(&x, qt, None)?;
        let r = m.g.forward(&z, gt)?;
        let d = (&r - &x)?.sqr()?.flatten_from(1)?.sum(1)?.sqrt()?.mean_all()?.to_scalar::<f32>()?;
        // Spread of the reconstructions themselves: mean distance between rolled pairs.
        let rr = Tensor::cat(&[r.narrow(0, 1, idx.len() - 1)?, r.narrow(0, 0, 1)?], 0)?;
        let spread = (&rr - &r)?.sqr()?.flatten_from(1)?.sum(1)?.sqrt()?.mean_all()?.to_scalar::<f32>()?;
        let zstd = z.var(0)?.sqrt()?.mean_all()?.to_scalar::<f32>()?;
        let zmean = z.mean(0)?.sqr()?.mean_all()?.sqrt()?.to_scalar::<f32>()?;
        println!(
            "{name:>15}: |G(Q(x))-x| / |x-x'| = {:.3}, spread of G(Q(x)) / |x-x'| = {:.3}, Q(x) per-dim std {zstd:.3}, rms mean {zmean:.3}",
            d / pair,
            spread / pair
        );
    }
    Ok(())
}
