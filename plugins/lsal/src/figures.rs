//! LSAL's end-of-run evaluation and pictures: reconstruction error and code statistics of the
//! pullback encoder Q, the SSL error, reconstructions, interpolations (paper Fig. 4) and the
//! margins over training (the Fig. 5 analogue).

use crate::config::Mode;
use crate::method::Lsal;
use crate::model::Arch;
use crate::objective;
use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use ganfold_core::checkpoint::atomic_write;
use ganfold_core::{Dataset, Rng, viz};
use std::path::{Path, PathBuf};

impl Lsal {
    /// Reconstruction error of G(Q(x)) on up to `n` samples of `data` (in chunks): the mean squared
    /// error per element, and the ratio E||G(Q(x)) - x||_2 / E||x - x'||_2 against random real
    /// pairs (~1 means Q has not learned G^-1, which Corollary 1 predicts at the optimum).
    pub fn reconstruction_error(&self, data: &Dataset, n: usize) -> anyhow::Result<(f64, f64)> {
        let n = n.min(data.len());
        let (mut se, mut dist, mut pair, mut cnt) = (0.0, 0.0, 0.0, 0usize);
        for start in (0..n).step_by(500) {
            let idx: Vec<usize> = (start..(start + 500).min(n)).collect();
            let x = data.batch(&idx, &self.device)?.x.to_dtype(self.dtype)?;
            let r = self.reconstruct(&x)?;
            let d2 = (&r - &x)?.sqr()?.flatten_from(1)?.sum(1)?.to_dtype(DType::F64)?;
            se += d2.sum_all()?.to_scalar::<f64>()?;
            dist += d2.sqrt()?.sum_all()?.to_scalar::<f64>()?;
            // x' = the batch rolled by one: independent real pairs.
            let k = idx.len();
            if k > 1 {
                let rolled = Tensor::cat(&[x.narrow(0, 1, k - 1)?, x.narrow(0, 0, 1)?], 0)?;
                let p = (&rolled - &x)?.sqr()?.flatten_from(1)?.sum(1)?.to_dtype(DType::F64)?.sqrt()?;
                pair += p.sum_all()?.to_scalar::<f64>()?;
            }
            cnt += k;
        }
        let numel = self.arch_numel() as f64;
        Ok((se / (cnt as f64 * numel), dist / pair.max(1e-12)))
    }

    /// The share of up to `n` digits of `data` whose reconstruction G(Q(x)) the pinned MNIST
    /// classifier puts in the class it puts x in; `None` unless the data are 1x28x28 digits.
    pub fn reconstruction_class_agreement(&self, data: &Dataset, n: usize) -> anyhow::Result<Option<f64>> {
        if !data.is_digits() {
            return Ok(None);
        }
        let net = ganfold_eval::MnistClassifier::pinned(&Device::Cpu)?;
        let n = n.min(data.len());
        let mut same = 0usize;
        for start in (0..n).step_by(500) {
            let idx: Vec<usize> = (start..(start + 500).min(n)).collect();
            let x = data.batch(&idx, &self.device)?.x;
            let r = self.reconstruct(&x)?.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
            let (a, b) = (net.predict(&x.to_device(&Device::Cpu)?)?, net.predict(&r)?);
            same += a.iter().zip(&b).filter(|(a, b)| a == b).count();
        }
        Ok(Some(same as f64 / n.max(1) as f64))
    }

    /// How Q(x) (eval mode) is spread over up to `n` samples: the per-dimension standard deviation
    /// averaged over dimensions, and the root mean square of the per-dimension means. Under the
    /// prior N(0, I) they are 1 and 0 (our own tolerance: std in [0.8, 1.2], means within 0.2); a small
    /// std means Q maps every x to one region, so G(Q(x)) is nearly the same image for all x.
    pub fn code_stats(&self, data: &Dataset, n: usize) -> anyhow::Result<(f64, f64)> {
        let n = n.min(data.len());
        let mut codes = vec![];
        for start in (0..n).step_by(500) {
            let idx: Vec<usize> = (start..(start + 500).min(n)).collect();
            let x = data.batch(&idx, &self.device)?.x.to_dtype(self.dtype)?;
            codes.push(self.q.forward(&x, false, None)?.to_dtype(DType::F64)?);
        }
        let z = Tensor::cat(&codes, 0)?;
        let mean = z.mean_keepdim(0)?;
        let std = z.broadcast_sub(&mean)?.sqr()?.mean(0)?.sqrt()?.mean_all()?.to_scalar::<f64>()?;
        Ok((std, mean.sqr()?.mean_all()?.sqrt()?.to_scalar::<f64>()?))
    }

    /// How far Q is from G^-1 on G's own samples (Corollary 1 asks Q = G^-1): mean |Q(G(z)) - z|
    /// over `n` prior draws and the code's dimensions, both networks in eval mode. The draws come
    /// from a fixed seed, so the measure is the same for the same weights. 2/sqrt(pi) = 1.13 for a
    /// code independent of z, sqrt(2/pi) = 0.80 for Q(G(z)) = 0, and 0 for an exact inverse.
    pub fn code_recovery_error(&self, n: usize) -> anyhow::Result<f64> {
        let mut rng = Rng::new(0x15a1);
        let (mut sum, mut cnt) = (0.0, 0usize);
        for start in (0..n).step_by(500) {
            let k = (start + 500).min(n) - start;
            let z = self.prior(k, &mut rng)?;
            let z_rec = self.q.forward(&self.g.forward(&z, false)?, false, None)?;
            sum += objective::mean_abs_error(&z_rec.to_dtype(DType::F64)?, &z.to_dtype(DType::F64)?)?
                .to_scalar::<f64>()?
                * k as f64;
            cnt += k;
        }
        Ok(sum / cnt.max(1) as f64)
    }

    /// Classification error of argmax_k a_k(x, Q(x)) on `data` (which must be labelled).
    pub fn classification_error(&self, data: &Dataset) -> anyhow::Result<f64> {
        let labels = data.labels.as_ref().context("classification needs labels")?;
        let mut wrong = 0usize;
        for start in (0..data.len()).step_by(500) {
            let idx: Vec<usize> = (start..(start + 500).min(data.len())).collect();
            let x = data.batch(&idx, &self.device)?.x;
            let pred = objective::predict(&self.class_scores(&x)?)?.to_vec1::<u32>()?;
            wrong += idx.iter().zip(pred).filter(|(i, p)| labels[**i] != *p).count();
        }
        Ok(wrong as f64 / data.len() as f64)
    }

    /// Reconstruction error of G(Q(x)) on held-out data (the test split, else training data,
    /// named in the key) and, in SSL mode, the classification error.
    pub(crate) fn evaluate_run(&self, data: &Dataset) -> anyhow::Result<Vec<(String, f64)>> {
        // A held-out split that is a validation set (`mnist-5k+val`) is named so in the keys.
        let (held, split) = match &data.test {
            Some(t) if t.name.ends_with("-val") => (t.as_ref(), "val"),
            Some(t) => (t.as_ref(), "test"),
            None => (data, "train"),
        };
        let (mse, ratio) = self.reconstruction_error(held, 2000)?;
        let (q_std, q_mean) = self.code_stats(held, 2000)?;
        let mut out = vec![
            (format!("recon_mse_{split}"), mse),
            (format!("recon_l2_ratio_{split}"), ratio),
            (format!("q_std_{split}"), q_std),
            (format!("q_mean_rms_{split}"), q_mean),
            ("code_recovery_error".into(), self.code_recovery_error(2000)?),
        ];
        if let Some(a) = self.reconstruction_class_agreement(held, 2000)? {
            out.push((format!("recon_class_agreement_{split}"), a));
        }
        if self.mode == Mode::SemiSupervised {
            match &data.test {
                Some(t) => out.push((format!("ssl_{split}_error"), self.classification_error(t)?)),
                None => {
                    // No test split (e.g. mnist-5k): score the training images outside the labelled set.
                    let lab = self.labelled.as_ref().context("no labelled set")?;
                    let labels = data.labels.as_ref().context("labels")?;
                    let rest: Vec<usize> = (0..data.len()).filter(|i| lab.index.binary_search(i).is_err()).collect();
                    let mut wrong = 0;
                    for ch in rest.chunks(500) {
                        let x = data.batch(ch, &self.device)?.x;
                        let p = objective::predict(&self.class_scores(&x)?)?.to_vec1::<u32>()?;
                        wrong += ch.iter().zip(p).filter(|(i, p)| labels[**i] != *p).count();
                    }
                    out.push(("ssl_error_unlabelled_train".into(), wrong as f64 / rest.len().max(1) as f64));
                }
            }
            // The final model on the validation images of the shared split (unless the held-out
            // split is itself a validation set, reported above under the same key).
            if !out.iter().any(|(k, _)| k == "ssl_val_error")
                && let Some(err) = self.validation_error()?
            {
                out.push(("ssl_val_error".into(), err));
            }
        }
        Ok(out)
    }

    pub(crate) fn write_figures(&self, dir: &Path, data: &Dataset, rng: &mut Rng) -> anyhow::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let held = data.test.as_deref().unwrap_or(data);
        let mut files = vec![];
        files.extend(self.curve_figures(dir)?);
        if let Some(p) = self.val_error_figure(dir)? {
            files.push(p);
        }
        match self.arch {
            Arch::Conv { .. } => {
                // Reconstructions: rows of 12 held-out images, each followed by a row of G(Q(x)).
                let pick = rng.choose_distinct(held.len(), 48);
                let x = held.batch(&pick, &self.device)?.x;
                let r = self.reconstruct(&x)?.to_dtype(DType::F32)?;
                let mut rows = vec![];
                for k in 0..4 {
                    rows.push(x.narrow(0, 12 * k, 12)?);
                    rows.push(r.narrow(0, 12 * k, 12)?);
                }
                let p = dir.join("reconstructions.png");
                atomic_write(&p, &viz::image_grid(&Tensor::cat(&rows, 0)?, 12, 2)?)?;
                files.push(p);
                // Interpolations (Fig. 4): x_a, G((1-t) Q(x_a) + t Q(x_b)) for 8 t in [0, 1], x_b.
                let pick = rng.choose_distinct(held.len(), 16);
                let x = held.batch(&pick, &self.device)?.x;
                let zq = self.q.forward(&x.to_dtype(self.dtype)?, false, None)?;
                let mut rows = vec![];
                for k in 0..8 {
                    let (za, zb) = (zq.narrow(0, 2 * k, 1)?, zq.narrow(0, 2 * k + 1, 1)?);
                    let mut zs = vec![];
                    for i in 0..8 {
                        let t = i as f64 / 7.0;
                        zs.push(((&za * (1.0 - t))? + (&zb * t)?)?);
                    }
                    let xs = self.g.forward(&Tensor::cat(&zs, 0)?, false)?.to_dtype(DType::F32)?;
                    rows.push(x.narrow(0, 2 * k, 1)?);
                    rows.push(xs);
                    rows.push(x.narrow(0, 2 * k + 1, 1)?);
                }
                let p = dir.join("interpolations.png");
                atomic_write(&p, &viz::image_grid(&Tensor::cat(&rows, 0)?, 10, 2)?)?;
                files.push(p);
            }
            Arch::Mlp { .. } => {
                let pick = rng.choose_distinct(held.len(), 500.min(held.len()));
                let x = held.batch(&pick, &self.device)?.x;
                let r = self.reconstruct(&x)?.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
                let png = viz::scatter(
                    "x (blue) and G(Q(x)) (red)",
                    &[
                        ("x", viz::points(&x.to_device(&Device::Cpu)?)?, plotters_rgb(80, 120, 230)),
                        ("G(Q(x))", viz::points(&r)?, plotters_rgb(230, 60, 50)),
                    ],
                    (600, 600),
                )?;
                let p = dir.join("reconstructions.png");
                atomic_write(&p, &png)?;
                files.push(p);
            }
        }
        Ok(files)
    }
}

fn plotters_rgb(r: u8, g: u8, b: u8) -> plotters::style::RGBColor {
    plotters::style::RGBColor(r, g, b)
}

impl Lsal {
    /// `val_error.png` (SSL mode): the validation error against epochs; `None` before the first
    /// measurement.
    fn val_error_figure(&self, dir: &Path) -> anyhow::Result<Option<PathBuf>> {
        let Some(lab) = self.labelled.as_ref().filter(|l| !l.curve.is_empty()) else { return Ok(None) };
        let epoch = |s: usize| s as f64 / lab.steps_per_epoch as f64;
        let series = [viz::Series {
            name: "L(x, Q(x)) argmax",
            points: lab.curve.iter().map(|&(s, e)| (epoch(s), e)).collect(),
        }];
        let p = dir.join("val_error.png");
        atomic_write(&p, &viz::line_plot("validation error", "epochs", &series, (640, 400))?)?;
        Ok(Some(p))
    }

    /// The Fig. 5 analogue from `dir/../metrics.jsonl`: the weighted margins and the loss terms
    /// over training (left), and the per-element unweighted margins with the fixed-point value
    /// of the manifold margin, E|z - z'| = 2/sqrt(pi) per dimension, since Q(x) ~ P_Z = N(0, I) at the
    /// fixed point of Theorem 1 (right). Then `pullback.png`: Q's code statistics against the
    /// prior's (std 1, means 0) and how L uses the code (`l_code_gap` > 0 once L scores a code
    /// against its own image, which Corollary 1's G(Q(x)) = x needs).
    fn curve_figures(&self, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        let Some(run) = dir.parent() else { return Ok(vec![]) };
        let Ok(text) = std::fs::read_to_string(run.join("metrics.jsonl")) else { return Ok(vec![]) };
        let mut rows: Vec<serde_json::Map<String, serde_json::Value>> = vec![];
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Ok(serde_json::Value::Object(m)) = serde_json::from_str(line) {
                rows.push(m);
            }
        }
        if rows.is_empty() {
            return Ok(vec![]);
        }
        let series = |k: &str| -> Vec<(f64, f64)> {
            rows.iter().filter_map(|m| Some((m.get("step")?.as_f64()?, m.get(k)?.as_f64()?))).collect()
        };
        let level = |like: &[(f64, f64)], v: f64| -> Vec<(f64, f64)> { like.iter().map(|&(s, _)| (s, v)).collect() };
        let left: Vec<viz::Series> = ["margin_ambient_w", "margin_manifold_w", "loss_L", "l_real", "l_fake"]
            .iter()
            .map(|k| viz::Series { name: k, points: series(k) })
            .collect();
        let man = series("manifold_l1_per_dim");
        let flat = level(&man, 2.0 / std::f64::consts::PI.sqrt());
        let right = vec![
            viz::Series { name: "ambient |x - G(z)|_1 per pixel", points: series("ambient_l1_per_px") },
            viz::Series { name: "manifold |Q(x) - z|_1 per dim", points: man },
            viz::Series { name: "fixed point 2/sqrt(pi)", points: flat },
        ];
        let q_std = series("q_std");
        let pullback = vec![
            viz::Series { name: "q_std (prior: 1)", points: q_std.clone() },
            viz::Series { name: "q_mean_rms (prior: 0)", points: series("q_mean_rms") },
            viz::Series { name: "l_prior_gap: L(x, z) - L(x, Q(x))", points: series("l_prior_gap") },
            viz::Series { name: "l_code_gap: L(x, Q(x')) - L(x, Q(x))", points: series("l_code_gap") },
            viz::Series { name: "0", points: level(&q_std, 0.0) },
        ];
        let a = viz::line_plot("LSAL: weighted margins and loss terms", "step", &left, (800, 450))?;
        let b = viz::line_plot("LSAL: unweighted margins (Fig. 5 analogue)", "step", &right, (800, 450))?;
        let c = viz::line_plot("LSAL: Q's codes and L's use of them", "step", &pullback, (800, 450))?;
        let pa = dir.join("margins_and_losses.png");
        let pb = dir.join("margins.png");
        let pc = dir.join("pullback.png");
        atomic_write(&pa, &a)?;
        atomic_write(&pb, &b)?;
        atomic_write(&pc, &c)?;
        Ok(vec![pb, pa, pc])
    }
}
