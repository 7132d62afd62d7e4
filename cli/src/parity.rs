//! `ganfold bench --parity --device cuda`: every layer kind a method's step uses, run from the
//! same weights and inputs on the CPU (ganfold's fused kernels) and on the device (Candle's
//! kernels), forward pass and one Adam step, compared element by element. This is the check of
//! the CUDA paths that only a GPU machine can run (`scripts/gpu-check.sh`).

use anyhow::{Result, bail};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Module, Tensor, Var};
use ganfold_core::nn::{self, ConvCfg, Init, VarStore};
use ganfold_core::optim::AdamConfig;
use ganfold_core::{Player, Rng};

/// Largest |a - b| over max(1, max |a|): f32 kernels that sum in different orders agree to ~1e-5.
const TOL: f64 = 1e-3;

type Net = Box<dyn Fn(&Tensor) -> candle_core::Result<Tensor>>;

/// One case: builds its layer on a device (weights from `Rng::new(seed)`, so identical on
/// every device) and returns the forward function.
struct Case {
    name: &'static str,
    input: &'static [usize],
    build: fn(&VarStore) -> Result<Net>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "linear + bias",
            input: &[16, 24],
            build: |vs| {
                let l = nn::linear(24, 10, vs.root().pp("l"))?;
                Ok(Box::new(move |x| l.forward(x)))
            },
        },
        Case {
            name: "conv2d k4 s2 + bias + leaky ReLU",
            input: &[8, 3, 14, 14],
            build: |vs| {
                let c = nn::conv2d(3, 6, 4, ConvCfg::new(2, 1), true, Init::torch_default(48), vs.root().pp("c"))?;
                Ok(Box::new(move |x| c.forward_act(x, 0.2)))
            },
        },
        Case {
            name: "conv_transpose2d k4 s2 + bias",
            input: &[8, 6, 7, 7],
            build: |vs| {
                let c = nn::conv_transpose2d(
                    6,
                    3,
                    4,
                    ConvCfg::new(2, 1),
                    true,
                    Init::torch_default(96),
                    vs.root().pp("c"),
                )?;
                Ok(Box::new(move |x| c.forward(x)))
            },
        },
        Case {
            name: "conv2d k7 (no bias) + tanh",
            input: &[8, 4, 7, 7],
            build: |vs| {
                let c = nn::conv2d(4, 2, 7, ConvCfg::new(1, 0), false, Init::torch_default(196), vs.root().pp("c"))?;
                Ok(Box::new(move |x| c.forward(x)?.tanh()))
            },
        },
        Case {
            name: "batch norm (train) + ReLU",
            input: &[8, 5, 6, 6],
            build: |vs| {
                let b = nn::batch_norm(5, vs.root().pp("bn"))?;
                Ok(Box::new(move |x| b.forward_act(x, true, 0.0)))
            },
        },
        Case {
            name: "ReLU, leaky ReLU, bias add (alone)",
            input: &[8, 4, 5, 5],
            build: |vs| {
                let b = vs.root().var("bias", 4, Init::Uniform { lo: -1.0, hi: 1.0 })?;
                Ok(Box::new(move |x| {
                    let y = ganfold_kernels::leaky_relu(&ganfold_kernels::relu(x)?, 0.2)?;
                    ganfold_kernels::bias_add(&(y - 0.5)?, &b)?.tanh()
                }))
            },
        },
        Case {
            name: "batch norm 1-d (train) + leaky ReLU",
            input: &[16, 12],
            build: |vs| {
                let b = nn::batch_norm(12, vs.root().pp("bn"))?;
                Ok(Box::new(move |x| b.forward_act(x, true, 0.2)))
            },
        },
    ]
}

fn max_rel_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    let a = a.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let b = b.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    if a.len() != b.len() {
        bail!("shapes differ: {} and {} elements", a.len(), b.len());
    }
    let scale = a.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    Ok(a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / scale)
}

/// The layer on `dev`, its input, its output for `x` and the gradients of `sum(y * r)`.
fn forward(case: &Case, dev: &Device, x: &[f32], r: &[f32]) -> Result<(VarStore, Var, Tensor, GradStore)> {
    let vs = VarStore::new(DType::F32, dev, Rng::new(7));
    let net = (case.build)(&vs)?;
    let x = Var::from_tensor(&Tensor::from_vec(x.to_vec(), case.input, dev)?)?;
    let y = net(x.as_tensor())?;
    let r = Tensor::from_vec(r.to_vec(), y.dims(), dev)?;
    let grads = (&y * &r)?.sum_all()?.backward()?;
    Ok((vs, x, y, grads))
}

/// Compares every case on CPU and on `device`: the forward pass, every weight's gradient, and
/// the weights after one Adam step fed the CPU's gradients on both sides (so that a gradient
/// near zero whose sign differs by rounding cannot flip Adam's first, sign-like step).
pub fn check(device: &Device) -> Result<()> {
    if device.is_cpu() {
        bail!("--parity compares the CPU with another device: give --device cuda (or cuda:N)");
    }
    println!("parity: CPU (ganfold kernels) against {device:?} (Candle kernels), f32, tolerance {TOL:.0e}");
    let mut failed = vec![];
    for (name, [dy, dg, dw]) in compare(device)? {
        let ok = dy <= TOL && dg <= TOL && dw <= TOL;
        println!(
            "  {name:<36} forward {dy:8.1e}  gradients {dg:8.1e}  after Adam {dw:8.1e}  {}",
            if ok { "ok" } else { "MISMATCH" }
        );
        if !ok {
            failed.push(name);
        }
    }
    if !failed.is_empty() {
        bail!("the device disagrees with the CPU on: {}", failed.join(", "));
    }
    Ok(())
}

/// Per case: the largest relative difference of the output, the gradients and the weights
/// after one Adam step, CPU against `device`.
fn compare(device: &Device) -> Result<Vec<(&'static str, [f64; 3])>> {
    let mut out = vec![];
    for case in cases() {
        let mut rng = Rng::new(11);
        let x = rng.normal_vec_f32(case.input.iter().product(), 0.0, 1.0);
        let n_out = {
            let vs = VarStore::new(DType::F32, &Device::Cpu, Rng::new(7));
            (case.build)(&vs)?(&Tensor::from_vec(x.clone(), case.input, &Device::Cpu)?)?.elem_count()
        };
        let r = rng.normal_vec_f32(n_out, 0.0, 1.0);
        let (vs0, x0, y0, g0) = forward(&case, &Device::Cpu, &x, &r)?;
        let (vs1, x1, y1, mut g1) = forward(&case, device, &x, &r)?;
        let dy = max_rel_diff(&y0, &y1)?;
        // The input's gradient is what flows from D back into G.
        let (Some(a), Some(b)) = (g0.get(x0.as_tensor()), g1.get(x1.as_tensor())) else {
            bail!("{}: the input got no gradient on one side", case.name)
        };
        let (mut dg, mut dw) = (max_rel_diff(a, b)?, 0.0f64);
        let vars1 = vs1.trainable_vars();
        for (name, v0) in vs0.trainable_vars() {
            let Some((_, v1)) = vars1.iter().find(|(n, _)| *n == name) else {
                bail!("{}: no `{name}` on the device", case.name)
            };
            let (Some(a), Some(b)) = (g0.get(v0.as_tensor()), g1.get(v1.as_tensor())) else {
                bail!("{}: `{name}` got no gradient on one side", case.name)
            };
            dg = dg.max(max_rel_diff(a, b)?);
            let a = a.to_device(device)?;
            g1.insert(v1.as_tensor(), a);
        }
        let cfg = AdamConfig::dcgan(1e-2);
        let (mut p0, mut p1) = (Player::new("p", vs0, cfg)?, Player::new("p", vs1, cfg)?);
        p0.step(&g0)?;
        p1.step(&g1)?;
        let w1 = p1.vs().tensors();
        for (k, a) in p0.vs().tensors() {
            dw = dw.max(max_rel_diff(&a, &w1[&k])?);
        }
        out.push((case.name, [dy, dg, dw]));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cases build, run forward, backward and an Adam step, and the same device twice gives
    /// identical numbers (what makes a CPU-against-GPU difference mean something).
    #[test]
    fn cases_run_and_are_deterministic() -> Result<()> {
        let rows = compare(&Device::Cpu)?;
        assert_eq!(rows.len(), 7);
        for (name, d) in rows {
            assert_eq!(d, [0.0; 3], "{name}");
        }
        assert!(check(&Device::Cpu).unwrap_err().to_string().contains("--device cuda"));
        Ok(())
    }
}
