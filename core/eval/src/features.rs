//! The feature-network abstraction: metrics never see the network itself.

use crate::inception_score::softmax_rows;
use crate::matrix::Matrix;
use anyhow::{Result, ensure};
use candle_core::Tensor;

/// A network that maps images to features (for FID, KID, precision/recall)
/// and to class logits (for IS and mode counting).
pub trait FeatureNet {
    /// A short identifier recorded next to every figure (features from
    /// different networks are not comparable).
    fn name(&self) -> &str;
    /// Penultimate-layer features, shape (B, F).
    fn features(&self, x: &Tensor) -> candle_core::Result<Tensor>;
    /// Class logits, shape (B, K).
    fn logits(&self, x: &Tensor) -> candle_core::Result<Tensor>;
    /// Features and logits from one forward pass; override when cheaper.
    fn features_and_logits(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        Ok((self.features(x)?, self.logits(x)?))
    }
}

/// Features and class probabilities of a sample set, as `f64` matrices.
#[derive(Clone, Debug)]
pub struct Extracted {
    pub features: Matrix,
    pub probs: Matrix,
}

/// Runs `net` over `images` (N, ...) in batches of `batch` and collects the
/// features and softmax probabilities in `f64`.
pub fn extract(net: &dyn FeatureNet, images: &Tensor, batch: usize) -> Result<Extracted> {
    ensure!(batch >= 1, "batch size must be at least 1");
    let n = images.dim(0)?;
    ensure!(n >= 1, "no images to extract features from");
    let (mut feats, mut logits) = (Vec::new(), Vec::new());
    let (mut f_dim, mut k) = (0, 0);
    let mut start = 0;
    while start < n {
        let len = batch.min(n - start);
        let (f, l) = net.features_and_logits(&images.narrow(0, start, len)?)?;
        let (f, l) = (Matrix::from_tensor(&f)?, Matrix::from_tensor(&l)?);
        f_dim = f.cols;
        k = l.cols;
        feats.extend(f.data);
        logits.extend(l.data);
        start += len;
    }
    let logits = Matrix::new(n, k, logits)?;
    Ok(Extracted { features: Matrix::new(n, f_dim, feats)?, probs: softmax_rows(&logits) })
}
