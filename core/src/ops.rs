//! Tensor operations whose implementation ganfold controls.
//!
//! Layers call these instead of Candle's methods directly, so that a faster CPU kernel can be
//! swapped in here without touching any plugin. Today they forward to Candle.

use crate::nn::ConvCfg;
use candle_core::{Result, Tensor};

/// 2-D convolution of x (B, Cin, H, W) with w (Cout, Cin, k, k).
pub fn conv2d(x: &Tensor, w: &Tensor, cfg: ConvCfg) -> Result<Tensor> {
    x.conv2d(w, cfg.padding, cfg.stride, 1, 1)
}

/// Transposed 2-D convolution of x (B, Cin, H, W) with w (Cin, Cout, k, k).
pub fn conv_transpose2d(x: &Tensor, w: &Tensor, cfg: ConvCfg) -> Result<Tensor> {
    x.conv_transpose2d(w, cfg.padding, cfg.output_padding, cfg.stride, 1)
}
