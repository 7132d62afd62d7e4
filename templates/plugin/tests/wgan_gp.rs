//! The template's own tests: what a plugin author checks before publishing. Second order is
//! switched on for this binary (one test, first thing), as the plugin's `wgan-gp` binary does.

use candle_core::{DType, Device, Tensor};
use ganfold_core::{BuildContext, Method, Purpose, Rng};
use wgan_gp::{WganGp, WganGpConfig};

fn tiny() -> WganGpConfig {
    WganGpConfig { latent_dim: 8, ngf: 4, ndf: 4, hidden: 16, n_critic: 3, ..Default::default() }
}

#[test]
fn wgan_gp() -> anyhow::Result<()> {
    let data = ganfold_core::data::load("mnist-5k", 0)?;
    let table = ganfold_core::config::table_of::<WganGpConfig>();
    let cx = |purpose| BuildContext {
        config: &table,
        data: &data,
        device: &Device::Cpu,
        seed: 0,
        batch_size: 8,
        total_steps: 10,
        purpose,
    };
    // Before second order is on: training is refused with the fix in the message, loading works.
    let err = (ganfold_core::registry::method("wgan-gp")?.build)(&cx(Purpose::Train)).err().expect("refused");
    assert!(err.to_string().contains("CANDLE_GRAD_DO_NOT_DETACH=1"), "{err}");
    assert!((ganfold_core::registry::method("wgan-gp")?.build)(&cx(Purpose::Load)).is_ok());

    // SAFETY: this binary's only test, and no other thread runs yet. This thread has already
    // read the variable (the probe above), and Candle reads it once per thread, so the checks
    // run on a new thread, which reads it at its first backward pass.
    unsafe { ganfold_core::nn::enable_second_order() };
    std::thread::spawn(move || -> anyhow::Result<()> {
        assert!(ganfold_core::nn::second_order_enabled());
        penalty_gradient_matches_finite_differences()?;
        n_critic_batches_train_the_critic_n_times(&data)
    })
    .join()
    .expect("no panic")
}

/// The penalty's gradient in the critic's parameters (which runs backward through the fused
/// conv + bias + leaky ReLU backward) against central differences, in f64.
fn penalty_gradient_matches_finite_differences() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let shape = ganfold_core::SampleShape::Image { c: 1, h: 28, w: 28 };
    let m = WganGp::with_dtype(tiny(), shape, &dev, 3, DType::F64)?;
    // The penalty of a leaky-ReLU critic is smooth between the kinks of its masks; weights ten
    // times DCGAN's keep pre-activations far from 0 against the step, so no difference crosses one.
    for (_, var) in m.players[1].vs().trainable_vars() {
        var.set(&(var.as_tensor() * 10.0)?)?;
    }
    let mut rng = Rng::new(5);
    let real = rng.randn((4, 1, 28, 28), 0.0, 0.5, &dev)?.to_dtype(DType::F64)?;
    let fake = rng.randn((4, 1, 28, 28), 0.0, 0.5, &dev)?.to_dtype(DType::F64)?;
    // The same interpolation every time: the penalty is then a function of the parameters alone.
    let gp = || -> anyhow::Result<Tensor> { m.gradient_penalty(&real, &fake, &mut Rng::new(9)) };
    let grads = gp()?.backward()?;
    let eps = 1e-6;
    for (name, var) in m.players[1].vs().trainable_vars() {
        let Some(an) = grads.get(var.as_tensor()) else {
            assert_eq!(name, "fc.bias", "only the last bias leaves dD/dx alone");
            continue;
        };
        let an = an.flatten_all()?.to_vec1::<f64>()?;
        let base = var.as_tensor().flatten_all()?.to_vec1::<f64>()?;
        for i in (0..base.len()).step_by(base.len().div_ceil(5)) {
            let at = |dx: f64| -> anyhow::Result<f64> {
                let mut v = base.clone();
                v[i] += dx;
                var.set(&Tensor::from_vec(v, var.dims(), &dev)?)?;
                Ok(gp()?.to_scalar::<f64>()?)
            };
            let fd = (at(eps)? - at(-eps)?) / (2.0 * eps);
            var.set(&Tensor::from_vec(base.clone(), var.dims(), &dev)?)?;
            assert!((fd - an[i]).abs() < 1e-6 * (1.0 + fd.abs()), "{name}[{i}]: fd {fd} vs analytic {}", an[i]);
        }
    }
    Ok(())
}

/// `n_critic` batches per step: the critic's optimizer steps n_critic times, the generator's once.
fn n_critic_batches_train_the_critic_n_times(data: &ganfold_core::Dataset) -> anyhow::Result<()> {
    let mut m = WganGp::new(tiny(), data.shape, &Device::Cpu, 1)?;
    assert_eq!(m.batches_per_step(), 3);
    let batches = (0..3)
        .map(|k| data.batch(&(k * 8..k * 8 + 8).collect::<Vec<_>>(), &Device::Cpu))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let st = m.step_batches(&batches, 0, &mut Rng::new(0))?;
    assert!(st.non_finite().is_none() && st.get("gp").is_some_and(|g| g > 0.0));
    assert_eq!((m.players[0].optimizer().steps(), m.players[1].optimizer().steps()), (1, 3));
    Ok(())
}
