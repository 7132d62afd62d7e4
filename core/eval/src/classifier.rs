//! The pinned MNIST feature network: `MNISTNet` of PyPI `ccexam` 1.0.0 (MIT).
//!
//! Architecture (the padding follows from the weight shapes: 3136 = 64·7·7
//! needs 28 → 14 → 7, i.e. "same" 3x3 convolutions with padding 1):
//!
//! ```text
//! conv3x3(1→32, pad 1) → ReLU → maxpool 2   (28 → 14)
//! conv3x3(32→64, pad 1) → ReLU → maxpool 2  (14 → 7)
//! flatten (C,H,W) → fc 3136→128 → ReLU      ← features (128-d)
//! fc 128→10                                 ← logits
//! ```
//!
//! The weights were converted once by `scripts/convert-mnist-classifier.py`
//! and are embedded in the binary; their sha256 is checked at load so that a
//! corrupted asset is a clear error rather than silently wrong metrics.

use crate::features::FeatureNet;
use anyhow::{Context, Result, bail, ensure};
use candle_core::{DType, Device, Tensor};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

/// The converted weights (see `core/eval/assets/README.md`).
static PINNED_WEIGHTS: &[u8] = include_bytes!("../assets/mnist_classifier.safetensors");
/// sha256 of [`PINNED_WEIGHTS`], as printed by the conversion script.
pub const PINNED_SHA256: &str = "162052562f0b3314a9dab9edd3f2a924211d1bcea523028ab577d759aa1fc995";

/// Normalisation the network was trained with, on pixels in [0, 1].
const MNIST_MEAN: f64 = 0.1307;
const MNIST_STD: f64 = 0.3081;

/// Expected tensors and shapes of the classifier's safetensors file.
pub const LAYOUT: [(&str, &[usize]); 8] = [
    ("features.0.weight", &[32, 1, 3, 3]),
    ("features.0.bias", &[32]),
    ("features.3.weight", &[64, 32, 3, 3]),
    ("features.3.bias", &[64]),
    ("classifier.0.weight", &[128, 3136]),
    ("classifier.0.bias", &[128]),
    ("classifier.2.weight", &[10, 128]),
    ("classifier.2.bias", &[10]),
];

/// The MNIST digit classifier, used as feature network for MNIST-like data.
///
/// Input: images in ganfold's convention, `f32` in [-1, 1], shape (B, 1, 28, 28).
pub struct MnistClassifier {
    conv1_w: Tensor,
    conv1_b: Tensor,
    conv2_w: Tensor,
    conv2_b: Tensor,
    fc1_w: Tensor,
    fc1_b: Tensor,
    fc2_w: Tensor,
    fc2_b: Tensor,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl MnistClassifier {
    /// The pinned, embedded weights (checked against [`PINNED_SHA256`]).
    pub fn pinned(device: &Device) -> Result<Self> {
        let digest = sha256_hex(PINNED_WEIGHTS);
        ensure!(
            digest == PINNED_SHA256,
            "embedded MNIST classifier weights are corrupted: sha256 {digest}, expected {PINNED_SHA256} \
             (regenerate with scripts/convert-mnist-classifier.py)"
        );
        Self::from_buffer(PINNED_WEIGHTS, device)
    }

    /// Weights from a safetensors file with the same layout.
    pub fn from_safetensors(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_buffer(&bytes, device).with_context(|| format!("loading {}", path.display()))
    }

    /// Weights from safetensors bytes (a pickle or any other format is an error, never unpickled).
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self> {
        Self::from_buffer(bytes, device)
    }

    fn from_buffer(bytes: &[u8], device: &Device) -> Result<Self> {
        if matches!(bytes, [0x80, 2..=5, ..] | [b'P', b'K', 3, 4, ..]) {
            bail!(
                "not a safetensors file: this is a Python pickle or a PyTorch zip archive; weights are loaded only from safetensors (never unpickled)"
            );
        }
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| anyhow::anyhow!("not a valid safetensors file: {e}"))?;
        for (name, shape) in LAYOUT {
            match st.tensor(name) {
                Err(_) => bail!("MNIST classifier weights lack tensor {name}"),
                Ok(x) if x.shape() != shape => {
                    bail!("MNIST classifier tensor {name} has shape {:?}, expected {shape:?}", x.shape())
                }
                Ok(x) if x.dtype() != safetensors::Dtype::F32 => {
                    bail!("MNIST classifier tensor {name} has dtype {:?}, expected F32", x.dtype())
                }
                Ok(_) => {}
            }
        }
        let mut t: HashMap<String, Tensor> = LAYOUT
            .iter()
            .map(|(name, _)| {
                let view = st.tensor(name)?;
                Ok((
                    name.to_string(),
                    candle_core::safetensors::Load::load(&view, device).with_context(|| format!("tensor {name}"))?,
                ))
            })
            .collect::<Result<_>>()?;
        let mut take = |name: &str| -> Result<Tensor> { Ok(t.remove(name).unwrap().to_dtype(DType::F32)?) };
        Ok(Self {
            conv1_w: take("features.0.weight")?,
            conv1_b: take("features.0.bias")?.reshape((1, 32, 1, 1))?,
            conv2_w: take("features.3.weight")?,
            conv2_b: take("features.3.bias")?.reshape((1, 64, 1, 1))?,
            fc1_w: take("classifier.0.weight")?.t()?.contiguous()?,
            fc1_b: take("classifier.0.bias")?,
            fc2_w: take("classifier.2.weight")?.t()?.contiguous()?,
            fc2_b: take("classifier.2.bias")?,
        })
    }

    /// Maps [-1, 1] images to the network's normalised input.
    fn normalise(x: &Tensor) -> candle_core::Result<Tensor> {
        let (_, c, h, w) = x.dims4()?;
        if (c, h, w) != (1, 28, 28) {
            return Err(candle_core::Error::Msg(format!(
                "MNIST classifier expects (B, 1, 28, 28) images, got {:?}",
                x.dims()
            )));
        }
        // [-1, 1] → [0, 1] → (x − mean) / std, folded into one affine map.
        let x01 = ((x.to_dtype(DType::F32)? + 1.0)? * 0.5)?;
        (x01 - MNIST_MEAN)? / MNIST_STD
    }

    fn penultimate(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        // Samples may come from a generator on another device than the classifier's weights.
        let x = Self::normalise(&x.to_device(self.conv1_w.device())?)?;
        let x = x.conv2d(&self.conv1_w, 1, 1, 1, 1)?.broadcast_add(&self.conv1_b)?.relu()?;
        let x = x.max_pool2d(2)?;
        let x = x.conv2d(&self.conv2_w, 1, 1, 1, 1)?.broadcast_add(&self.conv2_b)?.relu()?;
        let x = x.max_pool2d(2)?.flatten_from(1)?;
        x.matmul(&self.fc1_w)?.broadcast_add(&self.fc1_b)?.relu()
    }

    fn head(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        features.matmul(&self.fc2_w)?.broadcast_add(&self.fc2_b)
    }

    /// Predicted digit for each image.
    pub fn predict(&self, x: &Tensor) -> Result<Vec<u32>> {
        Ok(self.logits(x)?.argmax(1)?.to_vec1::<u32>()?)
    }
}

impl FeatureNet for MnistClassifier {
    fn name(&self) -> &str {
        "ccexam-mnist-classifier-128d"
    }

    fn features(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.penultimate(x)
    }

    fn logits(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.head(&self.penultimate(x)?)
    }

    fn features_and_logits(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let f = self.penultimate(x)?;
        let l = self.head(&f)?;
        Ok((f, l))
    }
}
