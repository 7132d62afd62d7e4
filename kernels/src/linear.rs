//! The fully connected layer y = x Wᵀ + b as one op: one GEMM with the bias added to its output
//! (no separate bias node and gradient accumulation), and a backward that computes only the
//! gradients that are wanted (Candle's matmul backward always forms both products, e.g. the
//! gradient of the generator's noise input).

use super::{fast, slice, uninit};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, WithDType, bail};

/// x (B, F) times w (O, F) transposed, plus b (O).
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let ((bsz, f), (o, wf)) = (x.dims2()?, w.dims2()?);
    if wf != f || b.dims() != [o] {
        bail!("linear: input {:?}, weight {:?} and bias {:?} do not match", x.dims(), w.dims(), b.dims());
    }
    if !fast(&[x, w, b]) {
        // Candle's CUDA GEMM rejects a strided row slice (a column narrow): make it dense first.
        return super::bias_add(&x.contiguous()?.matmul(&w.t()?)?, b);
    }
    x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, Linear { bsz, f, o })
}

struct Linear {
    bsz: usize,
    f: usize,
    o: usize,
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "ganfold-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _t = super::profile::enabled().then(|| super::Timer::new("ganfold-linear"));
        fn run<T: WithDType>(op: &Linear, x: &[T], w: &[T], b: &[T]) -> Vec<T> {
            let mut y = uninit(op.bsz * op.o);
            if op.bsz * op.o > 0 {
                if op.f > 0 {
                    // y (B, O) = x (B, F) · Wᵀ (F, O); Wᵀ is W read with swapped strides.
                    super::gemm_into(&mut y, op.o, op.bsz, op.o, op.f, x, (op.f, 1), w, (1, op.f), false);
                } else {
                    y.fill(T::zero());
                }
            }
            for row in y.chunks_exact_mut(op.o.max(1)) {
                row.iter_mut().zip(b).for_each(|(y, &b)| *y += b);
            }
            y
        }
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => {
                CpuStorage::F32(run(self, slice(x, l1)?, slice(w, l2)?, slice(b, l3)?))
            }
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => {
                CpuStorage::F64(run(self, slice(x, l1)?, slice(w, l2)?, slice(b, l3)?))
            }
            _ => bail!("ganfold-linear: only f32 and f64, alike"),
        };
        Ok((out, Shape::from((self.bsz, self.o))))
    }

    /// Differentiable again: the products are Candle matmuls and the bias gradient a channel sum.
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dx = if x.track_op() { Some(grad.matmul(w)?) } else { None };
        let dw = if w.track_op() { Some(grad.t()?.matmul(x)?) } else { None };
        let db = if b.track_op() { Some(super::pointwise::channel_sum_of(grad)?) } else { None };
        Ok((dx, dw, db))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;
    use candle_core::{DType, Device, Var};

    /// Values and the three gradients against Candle's matmul plus broadcast bias (f64), only
    /// the wanted gradients formed, and the bias gradient against central differences.
    #[test]
    fn matches_candle_and_differences() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = Rng::new(7);
        let v = |rng: &mut Rng, s: &[usize]| -> Result<Var> {
            Var::from_tensor(&rng.randn(s, 0.0, 1.0, &dev)?.to_dtype(DType::F64)?)
        };
        let (x, w, b) = (v(&mut rng, &[5, 7])?, v(&mut rng, &[3, 7])?, v(&mut rng, &[3])?);
        let ours = linear(&x, &w, &b)?;
        let theirs = x.matmul(&w.t()?)?.broadcast_add(&b.reshape((1, 3))?)?;
        let diff =
            |a: &Tensor, b: &Tensor| -> Result<f64> { (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>() };
        assert!(diff(&ours, &theirs)? < 1e-12);
        let r = rng.randn((5, 3), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
        let (go, gt) = ((&ours * &r)?.sum_all()?.backward()?, (&theirs * &r)?.sum_all()?.backward()?);
        for p in [&x, &w, &b] {
            assert!(diff(go.get(p.as_tensor()).unwrap(), gt.get(p.as_tensor()).unwrap())? < 1e-12);
        }
        let db = go.get(b.as_tensor()).unwrap().to_vec1::<f64>()?;
        for (i, &an) in db.iter().enumerate() {
            let at = |d: f64| -> Result<f64> {
                let mut bv = b.as_tensor().to_vec1::<f64>()?;
                bv[i] += d;
                (linear(&x, &w, &Tensor::new(bv, &dev)?)? * &r)?.sum_all()?.to_scalar::<f64>()
            };
            let fd = (at(1e-5)? - at(-1e-5)?) / 2e-5;
            assert!((fd - an).abs() < 1e-6 * (1.0 + fd.abs()), "bias {i}: fd {fd} vs {an}");
        }
        // A constant input gets no gradient; the weight still does.
        let g = (linear(&x.as_tensor().detach(), &w, &b)? * &r)?.sum_all()?.backward()?;
        assert!(g.get(x.as_tensor()).is_none() && g.get(w.as_tensor()).is_some());
        assert!(linear(&x, &w, &Tensor::zeros(4, DType::F64, &dev)?).is_err());
        Ok(())
    }
}
