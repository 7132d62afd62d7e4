//! LCC-GAN's end-of-run evaluation (nearest-neighbour and class-histogram proxies: no
//! Inception network is available offline) and its pictures: samples, the embeddings with the
//! bases and LCC samples (paper Fig. 3 analogue), one fixed anchor (Table 3 analogue) and the
//! decoded bases.

use super::Lccgan;
use crate::sampler::{self, SamplerMode};
use candle_core::{DType, Tensor};
use ganfold_core::{Dataset, Method, Rng, viz};
use plotters::style::RGBColor;
use std::path::{Path, PathBuf};

impl Lccgan {
    /// Proxy sample-quality metrics (no classifier-FID is available yet; README explains):
    /// nearest-neighbour L2 distances in pixel space between generated and real images, and the
    /// class histogram of the generated samples under a 1-nearest-neighbour classifier.
    /// Also the stage-2 diagnostics: `lcc_nnz` (mean code size, the paper's proxy for the local
    /// dimension) and `twonn_dim` (TwoNN intrinsic dimension of the embeddings).
    pub(crate) fn evaluate_run(&self, data: &Dataset) -> anyhow::Result<Vec<(String, f64)>> {
        // Without LCC (the `gaussian` and `mog` baselines) they are undefined: NaN, null in summary.json.
        let lcc = self.mode.is_some();
        let mut out: Vec<(String, f64)> = [("lcc_nnz", self.lcc_nnz), ("twonn_dim", self.twonn_dim)]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), if lcc { v? } else { f64::NAN })))
            .collect();
        // A run that only fitted the bases (for `init_from`) has an untrained G: nothing to measure.
        let gan_steps = self.steps_done.saturating_sub(self.cfg.pre_gan_steps());
        if !self.ready() || self.cfg.eval_samples == 0 || gan_steps == 0 {
            return Ok(out);
        }
        let n = self.cfg.eval_samples;
        let mut rng = Rng::derive(self.seed, "lccgan-eval");
        let dev = &self.device;
        let mut fake = Vec::new();
        for s in (0..n).step_by(500) {
            fake.push(self.g.forward_t(&self.latent(500.min(n - s), None, &mut rng)?, false)?.flatten_from(1)?);
        }
        let fake = Tensor::cat(&fake, 0)?;
        // Reference B (labelled, from the training data) and held-out real set A (the test split
        // if there is one, else training samples disjoint from B).
        let held = if data.test.is_some() { 0 } else { n.min(data.len() / 2) };
        let nb = 5000.min(data.len() - held);
        let pick = Rng::derive(self.seed, "lccgan-eval-ref").choose_distinct(data.len(), data.len());
        let b = data.batch(&pick[..nb], dev)?;
        let a = match &data.test {
            Some(t) => t.batch(&(0..n.min(t.len())).collect::<Vec<_>>(), dev)?.x,
            None => data.batch(&pick[nb..(nb + n).min(data.len())], dev)?.x,
        };
        let bx = b.x.flatten_from(1)?;
        let (d_fb, i_fb) = nn_dist(&fake, &bx)?;
        out.push(("proxy_nn_fake_to_real".to_string(), mean(&d_fb)));
        if a.dim(0)? > 0 {
            let a = a.flatten_from(1)?;
            out.push(("proxy_nn_real_to_fake".into(), mean(&nn_dist(&a, &fake)?.0)));
            out.push(("proxy_nn_real_to_real".into(), mean(&nn_dist(&a, &bx)?.0)));
        }
        if let (Some(y), true) = (&b.y, data.num_classes > 0) {
            let y = y.to_vec1::<u32>()?;
            let mut hist = vec![0f64; data.num_classes];
            for &i in &i_fb {
                hist[y[i] as usize] += 1.0 / n as f64;
            }
            let ent: f64 = hist.iter().filter(|&&p| p > 0.0).map(|p| -p * p.ln()).sum();
            out.push(("proxy_class_entropy".into(), ent));
            out.push(("proxy_classes_over_5pct".into(), hist.iter().filter(|&&p| p >= 0.05).count() as f64));
        }
        Ok(out)
    }

    pub(crate) fn write_figures(&self, dir: &Path, data: &Dataset, rng: &mut Rng) -> anyhow::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut files = vec![];
        let mut write = |name: String, png: Vec<u8>| -> anyhow::Result<()> {
            let p = dir.join(name);
            ganfold_core::checkpoint::atomic_write(&p, &png)?;
            files.push(p);
            Ok(())
        };
        if !self.ready() {
            return Ok(files);
        }
        let tag = match self.mode {
            Some(_) => format!("lccgan_{}_d{}", self.cfg.sampler, self.cfg.latent_dim),
            None => format!("{}_nz{}", self.cfg.sampler, self.cfg.latent_dim),
        };
        let x = self.sample(64, rng)?;
        write(format!("samples_{tag}.png"), ganfold_core::train::render_samples(&x, data, &tag)?)?;
        if self.mode.is_none() {
            return Ok(files);
        }
        // Fig. 3 analogue: embeddings, bases and LCC samples in the top-2 PCA plane of H.
        let dim = self.cfg.ae_latent_dim;
        let (mean, axes) = pca2(&self.h, dim);
        let proj = |p: &[f64]| -> (f64, f64) {
            let c: Vec<f64> = p.iter().zip(&mean).map(|(x, m)| x - m).collect();
            (dot(&c, &axes[0]), dot(&c, &axes[1]))
        };
        let emb: Vec<(f64, f64)> = self.h.chunks(dim).take(2000).map(proj).collect();
        let bases: Vec<(f64, f64)> = self.v.chunks(dim).map(proj).collect();
        let s = sampler::sample(
            &self.v,
            dim,
            &self.knn,
            self.cfg.latent_dim,
            500,
            self.mode.unwrap_or(SamplerMode::Paper),
            None,
            rng,
        );
        let samp: Vec<(f64, f64)> =
            s.h.chunks(dim).map(|r| proj(&r.iter().map(|&x| x as f64).collect::<Vec<_>>())).collect();
        // Paper-mode samples are unnormalised (|h| grows with |z|): keep the view on the data by
        // dropping samples beyond 3x the embeddings' extent, and say how many were dropped.
        let ext = emb.iter().chain(&bases).fold(1e-12f64, |m, p| m.max(p.0.abs()).max(p.1.abs())) * 3.0;
        let n_all = samp.len();
        let samp: Vec<(f64, f64)> = samp.into_iter().filter(|p| p.0.abs() <= ext && p.1.abs() <= ext).collect();
        let dropped = n_all - samp.len();
        let title =
            if dim == 2 { "LCC: latent space".to_string() } else { format!("LCC: PCA of the {dim}-d latent space") };
        let png = viz::scatter(
            &format!("{title}, M={}, d={} ({dropped}/{n_all} samples off view)", self.cfg.bases, self.cfg.latent_dim),
            &[
                ("embeddings H", emb, RGBColor(170, 170, 170)),
                ("LCC samples", samp, RGBColor(230, 60, 50)),
                ("bases V", bases, RGBColor(30, 60, 200)),
            ],
            (700, 700),
        )?;
        write("lcc_embedding.png".into(), png)?;
        if data.shape.is_image() {
            // Table 3 analogue: one anchor (a fixed set of d bases), varying weights.
            let h = self.latent(64, Some(0), rng)?;
            let x = self.g.forward_t(&h, false)?;
            write(format!("fixed_anchor_{tag}.png"), viz::image_grid(&x, 8, 2)?)?;
            let dec = self.decoded_bases()?;
            write("lcc_bases_decoded.png".into(), viz::image_grid(&dec, 16, 2)?)?;
        }
        Ok(files)
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// For each row of `a`, the L2 distance to and index of its nearest row of `b` (chunked).
pub fn nn_dist(a: &Tensor, b: &Tensor) -> anyhow::Result<(Vec<f64>, Vec<usize>)> {
    let a = a.to_dtype(DType::F32)?;
    let b = b.to_dtype(DType::F32)?;
    let bn = b.sqr()?.sum(1)?;
    let (mut dist, mut idx) = (vec![], vec![]);
    for s in (0..a.dim(0)?).step_by(256) {
        let ac = a.narrow(0, s, 256.min(a.dim(0)? - s))?;
        let an = ac.sqr()?.sum_keepdim(1)?;
        let d2 = (ac.matmul(&b.t()?)? * -2.0)?.broadcast_add(&an)?.broadcast_add(&bn.unsqueeze(0)?)?;
        let rows = d2.to_vec2::<f32>()?;
        for r in rows {
            let (j, m) =
                r.iter().enumerate().fold((0, f32::INFINITY), |acc, (j, &x)| if x < acc.1 { (j, x) } else { acc });
            dist.push((m.max(0.0) as f64).sqrt());
            idx.push(j);
        }
    }
    Ok((dist, idx))
}

/// Mean and the top-2 principal axes of the rows of `h` (power iteration with deflation).
pub fn pca2(h: &[f64], dim: usize) -> (Vec<f64>, [Vec<f64>; 2]) {
    let n = (h.len() / dim).max(1);
    let mut mean = vec![0.0; dim];
    for r in h.chunks(dim) {
        for (m, x) in mean.iter_mut().zip(r) {
            *m += x / n as f64;
        }
    }
    let mut cov = vec![0.0; dim * dim];
    for r in h.chunks(dim) {
        let c: Vec<f64> = r.iter().zip(&mean).map(|(x, m)| x - m).collect();
        for i in 0..dim {
            for j in 0..dim {
                cov[i * dim + j] += c[i] * c[j] / n as f64;
            }
        }
    }
    let mut axes: [Vec<f64>; 2] = [vec![0.0; dim], vec![0.0; dim]];
    for k in 0..2.min(dim) {
        let mut x: Vec<f64> = (0..dim).map(|i| 1.0 + 0.1 * i as f64).collect();
        for _ in 0..300 {
            let mut y: Vec<f64> = (0..dim).map(|i| (0..dim).map(|j| cov[i * dim + j] * x[j]).sum()).collect();
            if k == 1 {
                let p = dot(&y, &axes[0]);
                for (yi, a) in y.iter_mut().zip(&axes[0]) {
                    *yi -= p * a;
                }
            }
            let nrm = dot(&y, &y).sqrt();
            if nrm == 0.0 {
                break;
            }
            x = y.iter().map(|v| v / nrm).collect();
        }
        axes[k] = x;
    }
    (mean, axes)
}
