//! A tiny reader for gzip'd IDX files (the MNIST format), for tests and examples.

use candle_core::{Device, Tensor};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

fn read_gz(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    GzDecoder::new(std::fs::File::open(path)?).read_to_end(&mut out)?;
    Ok(out)
}

fn be_u32(b: &[u8], at: usize) -> usize {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// Images as an f32 tensor (N, 1, rows, cols) in ganfold's [-1, 1] convention.
pub fn read_images(path: &Path) -> anyhow::Result<Tensor> {
    let b = read_gz(path)?;
    anyhow::ensure!(b.len() >= 16 && be_u32(&b, 0) == 2051, "{}: not an IDX image file", path.display());
    let (n, rows, cols) = (be_u32(&b, 4), be_u32(&b, 8), be_u32(&b, 12));
    let pixels = &b[16..];
    anyhow::ensure!(pixels.len() == n * rows * cols, "{}: truncated", path.display());
    let data: Vec<f32> = pixels.iter().map(|&p| p as f32 / 127.5 - 1.0).collect();
    Ok(Tensor::from_vec(data, (n, 1, rows, cols), &Device::Cpu)?)
}

/// Labels as bytes.
pub fn read_labels(path: &Path) -> anyhow::Result<Vec<u8>> {
    let b = read_gz(path)?;
    anyhow::ensure!(b.len() >= 8 && be_u32(&b, 0) == 2049, "{}: not an IDX label file", path.display());
    let n = be_u32(&b, 4);
    anyhow::ensure!(b.len() == 8 + n, "{}: truncated", path.display());
    Ok(b[8..].to_vec())
}
