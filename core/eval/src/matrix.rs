//! A minimal row-major `f64` matrix: the common currency of all metrics.
//!
//! Metrics take a [`Matrix`] rather than a network or a `Tensor`, so they work
//! the same for any feature extractor and always compute in `f64`.

use anyhow::{Result, bail, ensure};
use candle_core::{DType, Tensor};

/// `rows` samples of `cols` values each, stored row by row.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Matrix {
    /// Wraps row-major data; fails if the length does not match.
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Result<Self> {
        ensure!(
            data.len() == rows * cols,
            "matrix data has {} values, expected {rows}x{cols} = {}",
            data.len(),
            rows * cols
        );
        Ok(Self { rows, cols, data })
    }

    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self { rows, cols, data: vec![0.0; rows * cols] }
    }

    pub fn identity(n: usize) -> Self {
        let mut m = Self::zeros(n, n);
        for i in 0..n {
            m.data[i * n + i] = 1.0;
        }
        m
    }

    /// Builds a matrix from equally long rows.
    pub fn from_rows(rows: &[Vec<f64>]) -> Result<Self> {
        let cols = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(rows.len() * cols);
        for (i, r) in rows.iter().enumerate() {
            ensure!(r.len() == cols, "row {i} has {} values, expected {cols}", r.len());
            data.extend_from_slice(r);
        }
        Ok(Self { rows: rows.len(), cols, data })
    }

    /// Copies a tensor of shape (N, ...) into an N x (product of the rest)
    /// matrix, converting to `f64` (on the CPU).
    pub fn from_tensor(t: &Tensor) -> Result<Self> {
        let dims = t.dims();
        if dims.is_empty() {
            bail!("cannot make a matrix from a scalar tensor");
        }
        let rows = dims[0];
        let cols = dims[1..].iter().product();
        let data = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        Self::new(rows, cols, data)
    }

    /// Copies the matrix into an `f64` tensor of shape (rows, cols).
    pub fn to_tensor(&self, device: &candle_core::Device) -> Result<Tensor> {
        Ok(Tensor::from_slice(&self.data, (self.rows, self.cols), device)?)
    }

    /// The rows `idx` as a new matrix.
    pub fn select_rows(&self, idx: &[usize]) -> Self {
        let mut data = Vec::with_capacity(idx.len() * self.cols);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Self { rows: idx.len(), cols: self.cols, data }
    }

    /// Rows `start..start + len` as a new matrix.
    pub fn slice_rows(&self, start: usize, len: usize) -> Self {
        Self { rows: len, cols: self.cols, data: self.data[start * self.cols..(start + len) * self.cols].to_vec() }
    }

    /// Inner products of every row of `self` with every row of `other`
    /// (`self · otherᵀ`), using Candle's optimised `f64` matrix product: the
    /// O(n²d) kernels of KID and precision/recall spend their time here.
    pub fn gram(&self, other: &Self) -> Result<Self> {
        ensure!(self.cols == other.cols, "gram: dimensions differ ({} vs {})", self.cols, other.cols);
        let dev = candle_core::Device::Cpu;
        let a = self.to_tensor(&dev)?;
        let b = other.to_tensor(&dev)?;
        let g = a.matmul(&b.t()?)?;
        Self::new(self.rows, other.rows, g.flatten_all()?.to_vec1::<f64>()?)
    }

    /// Squared norm of each row.
    pub fn row_sq_norms(&self) -> Vec<f64> {
        (0..self.rows).map(|i| self.row(i).iter().map(|x| x * x).sum()).collect()
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.cols + j]
    }

    pub fn set(&mut self, i: usize, j: usize, v: f64) {
        self.data[i * self.cols + j] = v;
    }

    pub fn transpose(&self) -> Self {
        let mut t = Self::zeros(self.cols, self.rows);
        for i in 0..self.rows {
            for j in 0..self.cols {
                t.data[j * self.rows + i] = self.data[i * self.cols + j];
            }
        }
        t
    }

    /// Plain triple-loop product (the matrices here are at most a few hundred wide).
    pub fn matmul(&self, other: &Self) -> Result<Self> {
        ensure!(
            self.cols == other.rows,
            "matmul shape mismatch: {}x{} times {}x{}",
            self.rows,
            self.cols,
            other.rows,
            other.cols
        );
        let mut out = Self::zeros(self.rows, other.cols);
        for i in 0..self.rows {
            let orow = &mut out.data[i * other.cols..(i + 1) * other.cols];
            for k in 0..self.cols {
                let a = self.data[i * self.cols + k];
                if a == 0.0 {
                    continue;
                }
                let brow = &other.data[k * other.cols..(k + 1) * other.cols];
                for (o, b) in orow.iter_mut().zip(brow) {
                    *o += a * b;
                }
            }
        }
        Ok(out)
    }

    pub fn trace(&self) -> f64 {
        (0..self.rows.min(self.cols)).map(|i| self.get(i, i)).sum()
    }

    /// Largest absolute difference to another matrix of the same shape.
    pub fn max_abs_diff(&self, other: &Self) -> f64 {
        assert_eq!((self.rows, self.cols), (other.rows, other.cols));
        self.data.iter().zip(&other.data).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)
    }

    /// Column means (the sample mean of the rows).
    pub fn column_means(&self) -> Vec<f64> {
        let mut mu = vec![0.0; self.cols];
        for i in 0..self.rows {
            for (m, x) in mu.iter_mut().zip(self.row(i)) {
                *m += x;
            }
        }
        let n = self.rows.max(1) as f64;
        mu.iter_mut().for_each(|m| *m /= n);
        mu
    }

    /// Unbiased sample covariance of the rows (divides by N-1, like `numpy.cov`).
    pub fn covariance(&self) -> Result<Self> {
        ensure!(self.rows >= 2, "covariance needs at least 2 samples, got {}", self.rows);
        let mu = self.column_means();
        let d = self.cols;
        let mut cov = Self::zeros(d, d);
        let mut centred = vec![0.0; d];
        for i in 0..self.rows {
            for ((c, x), m) in centred.iter_mut().zip(self.row(i)).zip(&mu) {
                *c = x - m;
            }
            for a in 0..d {
                let ca = centred[a];
                if ca == 0.0 {
                    continue;
                }
                // Fill the upper triangle only; mirrored below.
                let row = &mut cov.data[a * d..(a + 1) * d];
                for b in a..d {
                    row[b] += ca * centred[b];
                }
            }
        }
        let scale = 1.0 / (self.rows as f64 - 1.0);
        for a in 0..d {
            for b in a..d {
                let v = cov.data[a * d + b] * scale;
                cov.data[a * d + b] = v;
                cov.data[b * d + a] = v;
            }
        }
        Ok(cov)
    }
}
