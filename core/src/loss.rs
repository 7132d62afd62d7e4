//! Numerically stable loss pieces.
//!
//! `candle_nn::loss::binary_cross_entropy_with_logit` computes sigmoid then log and returns
//! inf/NaN once a discriminator saturates (a logit of 40 gives inf against target 0 and NaN
//! against target 1), so ganfold uses these.

use candle_core::{Result, Tensor};

/// softplus(x) = ln(1 + e^x) = relu(x) + ln(1 + e^{-|x|}), finite for every finite x.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// Mean binary cross-entropy of logits `x` against targets `t` in [0, 1]:
/// mean(relu(x) - x t + ln(1 + e^{-|x|})).
pub fn bce_with_logits(x: &Tensor, t: &Tensor) -> Result<Tensor> {
    ((x.relu()? - (x * t)?)? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?.mean_all()
}

/// Mean BCE against a constant target: `real = true` is -log sigmoid(x) = softplus(-x),
/// `real = false` is -log(1 - sigmoid(x)) = softplus(x).
pub fn bce_const(x: &Tensor, real: bool) -> Result<Tensor> {
    if real { softplus(&x.neg()?)?.mean_all() } else { softplus(x)?.mean_all() }
}

/// Mean K-way negative log-likelihood of labels `y` (B,) u32 under logits (B, K):
/// mean(lse(l) - l_y).
pub fn cross_entropy(logits: &Tensor, y: &Tensor) -> Result<Tensor> {
    (log_sum_exp(logits)? - logits.gather(&y.unsqueeze(1)?, 1)?.squeeze(1)?)?.mean_all()
}

/// log(sum_k exp(x_k)) over the last dimension, stable (max-shifted).
pub fn log_sum_exp(x: &Tensor) -> Result<Tensor> {
    let d = x.rank() - 1;
    let m = x.max_keepdim(d)?.detach();
    (x.broadcast_sub(&m)?.exp()?.sum_keepdim(d)?.log()? + m)?.squeeze(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn bce_matches_hand_values_and_stays_finite() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::new(&[0.0f64, 2.0, -3.0], &dev)?;
        let t = Tensor::new(&[1.0f64, 0.0, 1.0], &dev)?;
        // ln 2, -ln(1 - s(2)) = ln(1 + e^2), -ln s(-3) = ln(1 + e^3)
        let want = ((2f64).ln() + (1.0 + 2f64.exp()).ln() + (1.0 + 3f64.exp()).ln()) / 3.0;
        let got = bce_with_logits(&x, &t)?.to_scalar::<f64>()?;
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        let big = Tensor::new(&[80.0f32, -80.0], &dev)?;
        for real in [true, false] {
            let v = bce_const(&big, real)?.to_scalar::<f32>()?;
            assert!(v.is_finite() && (v - 40.0).abs() < 1e-3, "{v}");
        }
        let sp = softplus(&Tensor::new(&[-1000.0f32, 0.0, 1000.0], &dev)?)?.to_vec1::<f32>()?;
        assert_eq!(sp[0], 0.0);
        assert!((sp[1] - 2f32.ln()).abs() < 1e-6);
        assert_eq!(sp[2], 1000.0);
        Ok(())
    }

    #[test]
    fn cross_entropy_by_hand() -> Result<()> {
        let dev = Device::Cpu;
        let l = Tensor::new(&[[0.0f64, 0.0], [1.0, 3.0]], &dev)?;
        let y = Tensor::new(&[1u32, 0], &dev)?;
        // ln 2, and ln(e + e^3) - 1 = ln(1 + e^2)
        let want = ((2f64).ln() + (1.0 + 2f64.exp()).ln()) / 2.0;
        let got = cross_entropy(&l, &y)?.to_scalar::<f64>()?;
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        Ok(())
    }

    #[test]
    fn lse_is_stable() -> Result<()> {
        let x = Tensor::new(&[[1000.0f64, 1000.0], [0.0, 0.0]], &Device::Cpu)?;
        let v = log_sum_exp(&x)?.to_vec1::<f64>()?;
        assert!((v[0] - (1000.0 + 2f64.ln())).abs() < 1e-9);
        assert!((v[1] - 2f64.ln()).abs() < 1e-12);
        Ok(())
    }
}
