//! Sanity probe: G trained on the locality term alone (no D, eta = 0) leaves the mean-image level.
use candle_core::{DType, Device, Tensor};
use ganfold_core::nn::VarStore;
use ganfold_core::optim::{Adam, AdamConfig};
use ganfold_core::{LocalGenerator, Rng};
use ganfold_lgan::model::LocalGen;

fn main() -> anyhow::Result<()> {
    let data = ganfold_core::data::mnist_5k()?;
    let dev = Device::Cpu;
    let vs = VarStore::new(DType::F32, &dev, Rng::new(0));
    let g = LocalGen::new(
        data.shape,
        10,
        8,
        ganfold_lgan::model::GenOptions { code_gain: None, exact_locality: false },
        &vs,
    )?;
    let mut opt = Adam::new(vs.trainable_vars(), AdamConfig::dcgan(1e-3))?;
    let mut rng = Rng::new(1);
    for step in 0..300 {
        let idx: Vec<usize> = (0..16).map(|_| rng.below(data.len())).collect();
        let x = data.batch(&idx, &dev)?.x;
        let z0 = Tensor::zeros((16, 10), DType::F32, &dev)?;
        let loss = (g.forward_local(&x, &z0, true)? - &x)?.sqr()?.mean_all()?;
        opt.backward_step(&loss)?;
        if step % 25 == 0 {
            println!("{step} {}", loss.to_scalar::<f32>()?);
        }
    }
    Ok(())
}
