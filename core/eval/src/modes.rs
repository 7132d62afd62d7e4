//! Mode metrics from the mode-collapse literature.
//!
//! * Toy mixtures (`ring8`, `grid25`): as in Metz et al. 2017 ("Unrolled
//!   generative adversarial networks"), Srivastava et al. 2017 ("VEEGAN") and
//!   Lin et al. 2018 ("PacGAN"), each sample is assigned to its nearest mode
//!   centre; it is **high quality** if it lies within `sigmas` (default 3)
//!   standard deviations of that centre, and a mode is **covered** when at
//!   least `min_count` (default 1) high-quality samples are assigned to it.
//!   PacGAN used a stricter per-mode count; pass `min_count` to match it.
//! * Stacked MNIST (Metz et al. 2017; Srivastava et al. 2017): three MNIST
//!   digits form the three channels of one image, giving 10³ = 1000 modes.
//!   Each channel is classified by a digit classifier, the mode is
//!   `100·d0 + 10·d1 + d2`, and we report the number of modes hit and the KL
//!   divergence of the mode histogram to the uniform distribution over 1000.

use crate::features::FeatureNet;
use crate::matrix::Matrix;
use anyhow::{Result, ensure};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// ganfold's `ring8`: 8 Gaussians on a circle of this radius ...
pub const RING8_RADIUS: f64 = 2.0;
/// ... with this standard deviation per coordinate.
pub const RING8_STD: f64 = 0.02;
/// ganfold's `grid25`: 25 Gaussians at {−4, −2, 0, 2, 4}² ...
pub const GRID25_COORDS: [f64; 5] = [-4.0, -2.0, 0.0, 2.0, 4.0];
/// ... with this standard deviation per coordinate.
pub const GRID25_STD: f64 = 0.05;
/// Number of modes of stacked MNIST.
pub const STACKED_MNIST_MODES: usize = 1000;

/// A mixture of isotropic Gaussians with a common standard deviation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModeSet {
    pub centres: Vec<Vec<f64>>,
    pub std: f64,
}

impl ModeSet {
    /// 8 modes at radius 2, angles 2πk/8 (k = 0..7), std 0.02.
    pub fn ring8() -> Self {
        let centres = (0..8)
            .map(|k| {
                let a = 2.0 * std::f64::consts::PI * k as f64 / 8.0;
                vec![RING8_RADIUS * a.cos(), RING8_RADIUS * a.sin()]
            })
            .collect();
        Self { centres, std: RING8_STD }
    }

    /// 25 modes on the grid {−4, −2, 0, 2, 4}², std 0.05 (row-major: x outer, y inner).
    pub fn grid25() -> Self {
        let centres = GRID25_COORDS.iter().flat_map(|&x| GRID25_COORDS.iter().map(move |&y| vec![x, y])).collect();
        Self { centres, std: GRID25_STD }
    }

    /// The mode set of a ganfold toy dataset by name, if it has one.
    pub fn for_dataset(name: &str) -> Option<Self> {
        match name {
            "ring8" => Some(Self::ring8()),
            "grid25" => Some(Self::grid25()),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModeOptions {
    /// A sample is high quality within this many standard deviations of its
    /// nearest centre (3 in the papers above).
    pub sigmas: f64,
    /// High-quality samples a mode needs to count as covered.
    pub min_count: usize,
}

impl Default for ModeOptions {
    fn default() -> Self {
        Self { sigmas: 3.0, min_count: 1 }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModeReport {
    pub n_samples: usize,
    pub n_modes: usize,
    pub modes_covered: usize,
    /// Samples within `sigmas`·std of their nearest centre.
    pub high_quality: usize,
    pub high_quality_fraction: f64,
    /// High-quality samples assigned to each mode, in the order of the centres.
    pub per_mode_counts: Vec<usize>,
    /// KL(histogram of high-quality samples ‖ uniform over modes); empty
    /// modes contribute 0; `None` when there is no high-quality sample.
    pub kl_to_uniform: Option<f64>,
    pub sigmas: f64,
    pub min_count: usize,
}

/// Mode coverage and sample quality of 2-D (or any-D) samples against a mixture.
pub fn mode_coverage(samples: &Matrix, modes: &ModeSet, opts: &ModeOptions) -> Result<ModeReport> {
    ensure!(!modes.centres.is_empty(), "mode set has no centres");
    let dim = modes.centres[0].len();
    ensure!(samples.cols == dim, "samples have {} coordinates but the modes have {dim}", samples.cols);
    ensure!(samples.rows >= 1, "no samples to count modes of");
    ensure!(modes.std > 0.0 && opts.sigmas > 0.0, "mode std and sigmas must be positive");
    let radius2 = (opts.sigmas * modes.std).powi(2);
    let mut counts = vec![0usize; modes.centres.len()];
    let mut high_quality = 0;
    for i in 0..samples.rows {
        let x = samples.row(i);
        let (best, d2) = modes
            .centres
            .iter()
            .map(|c| c.iter().zip(x).map(|(a, b)| (a - b) * (a - b)).sum::<f64>())
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        if d2 <= radius2 {
            counts[best] += 1;
            high_quality += 1;
        }
    }
    Ok(ModeReport {
        n_samples: samples.rows,
        n_modes: counts.len(),
        modes_covered: counts.iter().filter(|&&c| c >= opts.min_count.max(1)).count(),
        high_quality,
        high_quality_fraction: high_quality as f64 / samples.rows as f64,
        kl_to_uniform: kl_to_uniform(&counts),
        per_mode_counts: counts,
        sigmas: opts.sigmas,
        min_count: opts.min_count,
    })
}

/// KL(p ‖ uniform) of the histogram `counts` = Σ p_i ln(p_i · K), with
/// `0 · ln 0 = 0` for empty bins. `None` if the histogram is empty.
pub fn kl_to_uniform(counts: &[usize]) -> Option<f64> {
    let total: usize = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let k = counts.len() as f64;
    Some(
        counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| {
                let p = c as f64 / total as f64;
                p * (p * k).ln()
            })
            .sum(),
    )
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StackedMnistReport {
    pub n_samples: usize,
    pub n_modes: usize,
    /// Modes (of 1000) with at least one sample.
    pub modes_covered: usize,
    /// KL(mode histogram ‖ uniform over 1000), natural log, empty bins → 0.
    pub kl_to_uniform: f64,
    /// Samples per mode `100·d0 + 10·d1 + d2` (not written to JSON).
    #[serde(skip)]
    pub counts: Vec<usize>,
}

/// Digit of each channel of stacked-MNIST images (B, 3, 28, 28) in [-1, 1],
/// using any 10-class digit classifier (the pinned one in practice).
pub fn stacked_mnist_digits(net: &dyn FeatureNet, images: &Tensor, batch: usize) -> Result<Vec<[u8; 3]>> {
    let (b, c, h, w) = images.dims4()?;
    ensure!(c == 3, "stacked MNIST images need 3 channels, got shape {:?}", images.dims());
    ensure!(batch >= 1, "batch size must be at least 1");
    // Each channel becomes one grayscale image: (B, 3, H, W) → (3B, 1, H, W).
    let flat = images.reshape((b * 3, 1, h, w))?;
    let mut digits = Vec::with_capacity(b * 3);
    let mut start = 0;
    while start < b * 3 {
        let len = (batch * 3).min(b * 3 - start);
        let logits = net.logits(&flat.narrow(0, start, len)?)?;
        ensure!(logits.dim(1)? == 10, "stacked MNIST needs a 10-class classifier");
        digits.extend(logits.argmax(1)?.to_vec1::<u32>()?);
        start += len;
    }
    Ok(digits.chunks(3).map(|d| [d[0] as u8, d[1] as u8, d[2] as u8]).collect())
}

/// The stacked-MNIST mode of three digits.
pub fn stacked_mode(d: [u8; 3]) -> usize {
    100 * d[0] as usize + 10 * d[1] as usize + d[2] as usize
}

/// Modes covered and KL to uniform from per-image channel digits.
pub fn stacked_mnist_report(digits: &[[u8; 3]]) -> Result<StackedMnistReport> {
    ensure!(!digits.is_empty(), "no stacked MNIST samples to count modes of");
    let mut counts = vec![0usize; STACKED_MNIST_MODES];
    for &d in digits {
        ensure!(d.iter().all(|&x| x < 10), "digit out of range in {d:?}");
        counts[stacked_mode(d)] += 1;
    }
    Ok(StackedMnistReport {
        n_samples: digits.len(),
        n_modes: STACKED_MNIST_MODES,
        modes_covered: counts.iter().filter(|&&c| c > 0).count(),
        kl_to_uniform: kl_to_uniform(&counts).unwrap_or(0.0),
        counts,
    })
}

/// Builds real stacked-MNIST images: for each triple `[i, j, k]` of indices
/// into `mnist` (N, 1, 28, 28), the image whose channels are mnist[i],
/// mnist[j], mnist[k]. The caller draws the indices (with its own seeded
/// sampler), so this function has no randomness.
pub fn build_stacked_mnist(mnist: &Tensor, triples: &[[usize; 3]]) -> Result<Tensor> {
    let (n, c, _, _) = mnist.dims4()?;
    ensure!(c == 1, "build_stacked_mnist expects grayscale images (N, 1, H, W), got {:?}", mnist.dims());
    ensure!(!triples.is_empty(), "no index triples given");
    let mut channels = Vec::with_capacity(3);
    for ch in 0..3 {
        let idx: Vec<u32> = triples
            .iter()
            .map(|t| {
                ensure!(t[ch] < n, "index {} out of range for {n} images", t[ch]);
                Ok(t[ch] as u32)
            })
            .collect::<Result<_>>()?;
        let idx = Tensor::from_vec(idx, triples.len(), mnist.device())?;
        channels.push(mnist.index_select(&idx, 0)?);
    }
    Ok(Tensor::cat(&channels, 1)?)
}

/// Convenience: a mode matrix of 2-D samples from a tensor on any device.
pub fn samples_2d(t: &Tensor) -> Result<Matrix> {
    let m = Matrix::from_tensor(&t.to_device(&Device::Cpu)?)?;
    ensure!(m.cols == 2, "expected 2-D samples, got {} coordinates", m.cols);
    Ok(m)
}
