//! Gradients of gradients through ganfold's ops and layers. Candle drops second-order terms
//! unless CANDLE_GRAD_DO_NOT_DETACH is set before its backward pass first runs on a thread, so
//! these checks live in their own test binary, in one test that switches second order on
//! (`nn::enable_second_order`) before any tensor work.

use candle_core::{DType, Device, Module, Tensor, Var};
use ganfold_core::Rng;
use ganfold_core::nn::{self, ConvCfg, Init, VarStore};
use ganfold_kernels as ops;

#[test]
fn second_order_through_every_fused_layer() -> anyhow::Result<()> {
    // SAFETY: the first thing this binary's only test does, before any other thread exists.
    unsafe { nn::enable_second_order() };
    assert!(nn::second_order_enabled());
    nn::require_second_order("this test")?;
    double_backward_matches_finite_differences()?;
    gradient_penalty_matches_finite_differences()
}

/// L(x) = <r2, d<r, conv(x, w)²>/dx>: its gradient in x needs the backward of the backward
/// (conv_t of conv). Checked against central differences of the first-order gradient (f64).
fn double_backward_matches_finite_differences() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let mut rng = Rng::new(7);
    let cfg = ConvCfg::new(2, 1);
    let w = rng.randn((3, 2, 4, 4), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
    let x0 = rng.randn((2, 2, 6, 6), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
    let r = rng.randn((2, 3, 3, 3), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
    let r2 = rng.randn((2, 2, 6, 6), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
    // First-order gradient g(x) = d<r, conv(x,w)^2>/dx, kept differentiable.
    let grad_of = |x: &Var| -> anyhow::Result<Tensor> {
        let y = ops::conv2d(x.as_tensor(), &w, cfg)?;
        let l = (y.sqr()? * &r)?.sum_all()?;
        Ok(l.backward()?.get(x.as_tensor()).unwrap().clone())
    };
    let x = Var::from_tensor(&x0)?;
    let h = (grad_of(&x)? * &r2)?.sum_all()?;
    let an =
        h.backward()?.get(x.as_tensor()).expect("second-order gradient dropped").flatten_all()?.to_vec1::<f64>()?;
    let base = x0.flatten_all()?.to_vec1::<f64>()?;
    let eps = 1e-5;
    for i in (0..base.len()).step_by(7) {
        let at = |d: f64| -> anyhow::Result<f64> {
            let mut v = base.clone();
            v[i] += d;
            let xv = Var::from_tensor(&Tensor::from_vec(v, x0.dims(), &dev)?)?;
            Ok((grad_of(&xv)? * &r2)?.sum_all()?.to_scalar::<f64>()?)
        };
        let fd = (at(eps)? - at(-eps)?) / (2.0 * eps);
        assert!((fd - an[i]).abs() < 1e-6 * (1.0 + fd.abs()), "element {i}: fd {fd} vs analytic {}", an[i]);
    }
    Ok(())
}

/// A WGAN-GP critic built from every fused layer (conv + bias + leaky ReLU in one op, conv + bias,
/// batch norm + ReLU, transposed conv + bias, leaky ReLU, ReLU, linear) and its gradient penalty
/// mean_b (|dD/dx_b| - 1)^2 (Gulrajani et al. 2017, Eq. 3): the penalty's gradient in every
/// parameter, which runs backward through each layer's backward, against central differences.
fn gradient_penalty_matches_finite_differences() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let vs = VarStore::new(DType::F64, &dev, Rng::new(3));
    let init = Init::Normal { mean: 0.0, std: 0.3 };
    let c1 = nn::conv2d(1, 4, 4, ConvCfg::new(2, 1), true, init, vs.pp("c1"))?;
    let c2 = nn::conv2d(4, 4, 3, ConvCfg::new(1, 1), true, init, vs.pp("c2"))?;
    let bn = nn::batch_norm(4, vs.pp("bn"))?;
    let t3 = nn::conv_transpose2d(4, 2, 4, ConvCfg::new(2, 1), true, init, vs.pp("t3"))?;
    let fc = nn::linear_with(2 * 8 * 8, 1, true, init, vs.pp("fc"))?;
    let critic = |x: &Tensor| -> anyhow::Result<Tensor> {
        let h = c1.forward_act(x, 0.2)?;
        let h = bn.forward_act(&c2.forward(&h)?, true, 0.0)?;
        let h = nn::relu(&nn::leaky_relu(&t3.forward(&h)?, 0.2)?)?;
        Ok(fc.forward(&h.flatten_from(1)?)?)
    };
    let x = Rng::new(11).randn((3, 1, 8, 8), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
    let penalty = || -> anyhow::Result<Tensor> {
        let xv = Var::from_tensor(&x)?;
        let d = critic(xv.as_tensor())?.sum_all()?;
        let g = d.backward()?.get(xv.as_tensor()).expect("dD/dx").clone();
        let norm = g.sqr()?.flatten_from(1)?.sum(1)?.sqrt()?;
        Ok((norm - 1.0)?.sqr()?.mean_all()?)
    };
    let grads = penalty()?.backward()?;
    let eps = 1e-5;
    for (name, var) in vs.trainable_vars() {
        // None where the penalty cannot depend on the parameter (the last bias leaves dD/dx
        // alone): then the differences must be zero too.
        let an = match grads.get(var.as_tensor()) {
            Some(g) => g.flatten_all()?.to_vec1::<f64>()?,
            None => vec![0.0; var.elem_count()],
        };
        let base = var.as_tensor().flatten_all()?.to_vec1::<f64>()?;
        for i in (0..base.len()).step_by(base.len().div_ceil(4)) {
            let at = |d: f64| -> anyhow::Result<f64> {
                let mut v = base.clone();
                v[i] += d;
                var.set(&Tensor::from_vec(v, var.dims(), &dev)?)?;
                Ok(penalty()?.to_scalar::<f64>()?)
            };
            let fd = (at(eps)? - at(-eps)?) / (2.0 * eps);
            var.set(&Tensor::from_vec(base.clone(), var.dims(), &dev)?)?;
            assert!((fd - an[i]).abs() < 1e-6 * (1.0 + fd.abs()), "{name}[{i}]: fd {fd} vs analytic {}", an[i]);
        }
    }
    Ok(())
}
