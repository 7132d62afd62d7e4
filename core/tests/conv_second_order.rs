//! Gradients of gradients through ganfold's convolution ops. Candle drops second-order terms
//! unless CANDLE_GRAD_DO_NOT_DETACH is set before its backward pass first runs on a thread, so
//! this check lives in its own test binary and sets the variable before any tensor work.

use candle_core::{DType, Device, Tensor, Var};
use ganfold_core::Rng;
use ganfold_kernels::{self as ops, ConvCfg};

/// L(x) = <r2, d<r, conv(x, w)²>/dx>: its gradient in x needs the backward of the backward
/// (conv_t of conv). Checked against central differences of the first-order gradient (f64).
#[test]
fn double_backward_matches_finite_differences() -> anyhow::Result<()> {
    // SAFETY: set before any other thread of this binary exists (the only test here).
    unsafe { std::env::set_var("CANDLE_GRAD_DO_NOT_DETACH", "1") };
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
