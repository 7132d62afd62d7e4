//! LGAN's end-of-run evaluation (chart metrics of the local generator, the SSL error) and its
//! pictures: tangents (paper Fig. 6) and dense samples around real points (Fig. 4) for images,
//! charts for 2-D points.

use super::Lgan;
use crate::reg;
use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use ganfold_core::checkpoint;
use ganfold_core::{Dataset, LocalGenerator, Rng, SampleShape};
use std::path::{Path, PathBuf};

impl Lgan {
    pub(crate) fn write_figures(&self, dir: &Path, data: &Dataset, rng: &mut Rng) -> anyhow::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut files = if self.shape.is_image() {
            self.image_figures(dir, data, rng)?
        } else {
            self.point_figures(dir, data, rng)?
        };
        // SSL: the validation error against epochs.
        if let Some(f) = self.classifier().map(|c| c.figure(dir)).transpose()?.flatten() {
            files.push(f);
        }
        Ok(files)
    }

    /// The chart metrics ([`Lgan::chart_report`]) at up to 1,000 test digits (the pool of
    /// training points when the data has no test split): `local_class_agreement` (digits),
    /// `local_locality_rmse`, `local_median_min_eig`, `local_median_max_eig`,
    /// `local_median_condition`, `local_tangent_overlap`. In SSL mode also the classification errors of
    /// [`SslClassifier::evaluate`](ganfold_core::ssl::SslClassifier::evaluate): `ssl_test_error` (the
    /// averaged weights) and `ssl_test_error_raw` on a labelled test split, `ssl_val_error(_raw)`.
    pub(crate) fn evaluate_run(&self, data: &Dataset) -> anyhow::Result<Vec<(String, f64)>> {
        let x = match &data.test {
            Some(t) => t.head(1000, &self.device)?,
            None => self.pool.narrow(0, 0, 1000.min(self.pool.dim(0)?))?,
        };
        let r = self.chart_report(&x, data.is_digits())?;
        let mut out = vec![
            ("local_locality_rmse".to_string(), r.locality_rmse),
            ("local_median_min_eig".to_string(), r.median_min_eig),
            ("local_median_max_eig".to_string(), r.median_max_eig),
            ("local_median_condition".to_string(), r.median_condition),
            ("local_tangent_overlap".to_string(), r.tangent_overlap),
        ];
        if let Some(a) = r.class_agreement {
            out.insert(0, ("local_class_agreement".to_string(), a));
        }
        if let Some(clf) = self.classifier() {
            out.extend(clf.evaluate(data)?);
        }
        Ok(out)
    }

    /// The chart metrics of `ganfold_eval::local` at real points `x`: class agreement of
    /// G(x, 0) with x under the pinned classifier (digits only), locality RMSE and the
    /// spectrum of J_x^T J_x over all N coordinates (small eigenvalues = collapsed tangents).
    /// `digits`: whether the pinned classifier can judge the points ([`Dataset::is_digits`]).
    pub fn chart_report(&self, x: &Tensor, digits: bool) -> anyhow::Result<ganfold_eval::LocalReport> {
        let net = digits.then(|| ganfold_eval::MnistClassifier::pinned(&Device::Cpu)).transpose()?;
        let fwd = |x: &Tensor, z: &Tensor| self.g.forward_local(x, z, false)?.to_device(&Device::Cpu);
        let opts = ganfold_eval::LocalOptions { spectrum_points: 256, delta: self.reg.delta };
        ganfold_eval::local_report(&fwd, self.g.coord_dim(), x, net.as_ref(), &opts)
    }

    /// Tangent images of `x` for coordinates `coords`: (B, s, C, H, W) rows of J.
    pub fn tangents(&self, x: &Tensor, coords: &[usize]) -> anyhow::Result<Tensor> {
        let j = reg::fd_jacobian(&self.g, x, coords, self.reg.delta, false)?;
        let mut dims = vec![x.dim(0)?, coords.len()];
        dims.extend_from_slice(&x.dims()[1..]);
        Ok(j.reshape(dims)?)
    }

    /// Charts at 8 digits: test digits when the data has a test split, else training points.
    fn image_figures(&self, dir: &Path, data: &Dataset, rng: &mut Rng) -> anyhow::Result<Vec<PathBuf>> {
        let n = self.g.coord_dim();
        let src = match &data.test {
            Some(t) => t.head(1000, &self.device)?,
            None => self.pool.clone(),
        };
        let npts = 8.min(src.dim(0)?);
        let idx: Vec<u32> = rng.choose_distinct(src.dim(0)?, npts).into_iter().map(|i| i as u32).collect();
        let x = src.index_select(&Tensor::new(idx.as_slice(), &self.device)?, 0)?;
        let (c, h, w) = match self.shape {
            SampleShape::Image { c, h, w } => (c, h, w),
            _ => unreachable!("image figures for image data only"),
        };
        let s = n.min(10);
        let coords: Vec<usize> = (0..s).collect();
        let z0 = Tensor::zeros((npts, n), DType::F32, &self.device)?;
        let g0 = self.g.forward_local(&x, &z0, false)?;
        // Tangent images (Fig. 6): each tau_j stretched to [-1, 1] by its own max |.|.
        let tan = self.tangents(&x, &coords)?.flatten_from(2)?;
        let scale = (tan.abs()?.max_keepdim(2)? + 1e-8)?;
        let tan = tan.broadcast_div(&scale)?.reshape((npts, s, c, h, w))?;
        let mut rows = vec![];
        for i in 0..npts {
            rows.push(x.narrow(0, i, 1)?);
            rows.push(g0.narrow(0, i, 1)?);
            rows.push(tan.get(i)?);
        }
        let grid = Tensor::cat(&rows, 0)?;
        let mut out = vec![];
        let p = dir.join("tangents.png");
        checkpoint::atomic_write(&p, &ganfold_core::viz::image_grid(&grid, s + 2, 2)?)?;
        out.push(p);
        // Dense samples (Fig. 4): per point, rows = coordinates, columns z_j from -k sigma to
        // +k sigma (k = 3, 11 columns), centre column G(x, 0); a first column with x itself.
        let k = 3.0 * self.cfg.z_std;
        let cols = 11usize;
        let pts = 2.min(npts);
        let mut imgs = vec![];
        for i in 0..pts {
            let xi = x.narrow(0, i, 1)?;
            let mut zs = vec![0f32; s * cols * n];
            for j in 0..s {
                for cc in 0..cols {
                    zs[(j * cols + cc) * n + j] = (-k + 2.0 * k * cc as f64 / (cols - 1) as f64) as f32;
                }
            }
            let z = Tensor::from_vec(zs, (s * cols, n), &self.device)?;
            let xr = xi.broadcast_as((s * cols, c, h, w))?.contiguous()?;
            let out = self.g.forward_local(&xr, &z, false)?.reshape((s, cols, c, h, w))?;
            for j in 0..s {
                imgs.push(xi.clone());
                imgs.push(out.get(j)?);
            }
        }
        let grid = Tensor::cat(&imgs, 0)?;
        let p = dir.join("dense_samples.png");
        checkpoint::atomic_write(&p, &ganfold_core::viz::image_grid(&grid, cols + 1, 2)?)?;
        out.push(p);
        Ok(out)
    }

    fn point_figures(&self, dir: &Path, data: &Dataset, rng: &mut Rng) -> anyhow::Result<Vec<PathBuf>> {
        use ganfold_core::viz;
        let n = self.g.coord_dim();
        let npts = 24.min(self.pool.dim(0)?);
        let idx: Vec<u32> = rng.choose_distinct(self.pool.dim(0)?, npts).into_iter().map(|i| i as u32).collect();
        let x = self.pool.index_select(&Tensor::new(idx.as_slice(), &self.device)?, 0)?;
        // Each chart: G(x, t e_j) for t on a grid in [-3 sigma, 3 sigma], every coordinate j.
        let steps = 41usize;
        let k = 3.0 * self.cfg.z_std;
        let mut zs = vec![0f32; n * steps * n];
        for j in 0..n {
            for t in 0..steps {
                zs[(j * steps + t) * n + j] = (-k + 2.0 * k * t as f64 / (steps - 1) as f64) as f32;
            }
        }
        let z = Tensor::from_vec(zs, (n * steps, n), &self.device)?;
        let mut curves = vec![];
        let mut centres = vec![];
        for i in 0..npts {
            let xi = x.narrow(0, i, 1)?;
            let xr = xi.broadcast_as((n * steps, xi.dim(1)?))?.contiguous()?;
            curves.extend(viz::points(
                &self.g.forward_local(&xr, &z, false)?.narrow(1, 0, 2.min(xi.dim(1)?))?.to_device(&Device::Cpu)?,
            )?);
            let z0 = Tensor::zeros((1, n), DType::F32, &self.device)?;
            centres.extend(viz::points(
                &self.g.forward_local(&xi, &z0, false)?.narrow(1, 0, 2.min(xi.dim(1)?))?.to_device(&Device::Cpu)?,
            )?);
        }
        let real = viz::points(&data.head(2000, &Device::Cpu)?.narrow(1, 0, 2.min(data.shape.numel()))?)?;
        use plotters::style::RGBColor;
        let png = viz::scatter(
            "LGAN charts G(x, t e_j), |t| <= 3 sigma",
            &[
                ("real", real, RGBColor(80, 120, 230)),
                ("charts", curves, RGBColor(230, 60, 50)),
                ("G(x,0)", centres, RGBColor(20, 20, 20)),
            ],
            (600, 600),
        )?;
        let p = dir.join("charts.png");
        checkpoint::atomic_write(&p, &png)?;
        Ok(vec![p])
    }
}
