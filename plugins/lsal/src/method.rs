//! The LSAL training step (paper Sec. 3.2, objectives I-III) and its semi-supervised variant (Sec. 5, Eq. 7-10),
//! plus evaluation (reconstruction error of G(Q(x)), SSL test error) and the paper's figures.

use crate::config::{LsalConfig, Mode, Schedule};
use crate::model::{self, Arch, Enc, Gen, LossNet};
use crate::objective::{self, SslActs};
use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use ganfold_core::checkpoint::atomic_write;
use ganfold_core::optim::AdamConfig;
use ganfold_core::nn::VarStore;
use ganfold_core::{Batch, BuildContext, Dataset, Generator, Method, Player, Rng, StepStats, viz};
use std::path::{Path, PathBuf};

/// The labelled subset of the semi-supervised mode, held by the method.
pub struct Labelled {
    /// Dataset indices of the labelled images (balanced over classes).
    pub index: Vec<usize>,
    pub x: Tensor,
    /// (n,) u32.
    pub y: Tensor,
    pub y_host: Vec<u32>,
    pub classes: usize,
}

/// Everything one forward pass of the game produces (the pieces the tests inspect).
pub struct Forward {
    pub loss_l: Tensor,
    pub loss_gq: Tensor,
    pub stats: StepStats,
}

pub struct Lsal {
    pub cfg: LsalConfig,
    pub mode: Mode,
    pub arch: Arch,
    pub dz: usize,
    pub dtype: DType,
    pub device: Device,
    pub g: Gen,
    pub q: Enc,
    pub l: LossNet,
    /// G, Q and L with their optimizers.
    pub player_g: Player,
    pub player_q: Player,
    pub player_l: Player,
    pub labelled: Option<Labelled>,
    seed: u64,
    batch_size: usize,
    data_len: usize,
}

/// The registry's build function.
pub fn build(cx: &BuildContext<'_>) -> anyhow::Result<Box<dyn Method>> {
    let cfg: LsalConfig = ganfold_core::config::parse(cx.config, "lsal")?;
    Ok(Box::new(Lsal::new(cfg, cx, DType::F32)?))
}

/// A balanced, seeded draw of `n` labelled indices: n / K per class (balanced, so no class
/// is missing from a small labelled set).
pub fn balanced_labels(labels: &[u32], classes: usize, n: usize, seed: u64) -> anyhow::Result<Vec<usize>> {
    if classes == 0 {
        anyhow::bail!("lsal: mode=ssl needs a labelled dataset (this one has no classes)");
    }
    if n == 0 || !n.is_multiple_of(classes) {
        anyhow::bail!("lsal: `labels` = {n} must be a positive multiple of the {classes} classes (a balanced draw)");
    }
    let per = n / classes;
    let mut rng = Rng::derive(seed, "lsal-labelled-subset");
    let mut out = vec![];
    for k in 0..classes as u32 {
        let of_k: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == k).collect();
        if of_k.len() < per {
            anyhow::bail!("lsal: class {k} has only {} samples, {per} labelled ones were asked for", of_k.len());
        }
        out.extend(rng.choose_distinct(of_k.len(), per).into_iter().map(|j| of_k[j]));
    }
    out.sort_unstable();
    Ok(out)
}

impl Lsal {
    /// Builds the three players for `cx.data` in precision `dtype` (tests use F64).
    pub fn new(cfg: LsalConfig, cx: &BuildContext<'_>, dtype: DType) -> anyhow::Result<Self> {
        cfg.validate()?;
        let mode = cfg.mode;
        let arch = Arch::for_shape(cx.data.shape)?;
        let dz = match (cfg.latent_dim, arch) {
            (0, Arch::Conv { .. }) => 64,
            (0, Arch::Mlp { .. }) => 2,
            (d, _) => d,
        };
        let labelled = match mode {
            Mode::Unsupervised => None,
            Mode::SemiSupervised => {
                let labels = cx.data.labels.as_ref().ok_or_else(|| {
                    anyhow::anyhow!("lsal: mode=ssl needs a labelled dataset; `{}` has no labels", cx.data.name)
                })?;
                let index = balanced_labels(labels, cx.data.num_classes, cfg.labels, cx.seed)?;
                let b = cx.data.batch(&index, cx.device)?;
                let y = b.y.context("labelled batch without labels")?;
                let y_host = y.to_vec1::<u32>()?;
                Some(Labelled { index, x: b.x.to_dtype(dtype)?, y, y_host, classes: cx.data.num_classes })
            }
        };
        let out_dim = labelled.as_ref().map_or(1, |l| l.classes);
        let g_vs = VarStore::new(dtype, cx.device, cx.init_rng("g"));
        let q_vs = VarStore::new(dtype, cx.device, cx.init_rng("q"));
        let l_vs = VarStore::new(dtype, cx.device, cx.init_rng("l"));
        let g = model::generator(arch, dz, &cfg, g_vs.root())?;
        let q = model::encoder(arch, dz, &cfg, q_vs.root())?;
        let l = model::loss_net(arch, dz, out_dim, &cfg, l_vs.root())?;
        let lr = if mode == Mode::SemiSupervised { cfg.ssl_lr } else { cfg.adam.lr };
        let adam = AdamConfig { lr, ..cfg.adam };
        eprintln!(
            "lsal: {} ({} mode), d_z = {dz}; params G {} Q {} L {}",
            arch.describe(),
            mode.as_str(),
            g_vs.num_params(),
            q_vs.num_params(),
            l_vs.num_params()
        );
        let (player_g, player_q, player_l) =
            (Player::new("g", g_vs, adam)?, Player::new("q", q_vs, adam)?, Player::new("l", l_vs, adam)?);
        Ok(Self {
            cfg,
            mode,
            arch,
            dz,
            dtype,
            device: cx.device.clone(),
            g,
            q,
            l,
            player_g,
            player_q,
            player_l,
            labelled,
            seed: cx.seed,
            batch_size: cx.batch_size,
            data_len: cx.data.len(),
        })
    }

    fn prior(&self, n: usize, rng: &mut Rng) -> candle_core::Result<Tensor> {
        // P_Z = N(0, I): the paper does not state P_Z; the authors' `lsal-blocks` code uses N(0, I).
        rng.randn((n, self.dz), 0.0, 1.0, &self.device)?.to_dtype(self.dtype)
    }

    /// The labelled batch of `step`: a pure function of (seed, step) that cycles through
    /// seeded permutations of the labelled set (the paper gives no batch composition), so a
    /// resumed run sees the same batches.
    fn labelled_batch(&self, step: usize, b: usize) -> anyhow::Result<(Tensor, Tensor)> {
        let lab = self.labelled.as_ref().context("no labelled set")?;
        let n = lab.index.len();
        let mut rows = Vec::with_capacity(b);
        let mut cached: Option<(usize, Vec<usize>)> = None;
        for i in 0..b {
            let j = step * b + i;
            let (e, pos) = (j / n, j % n);
            if cached.as_ref().map(|c| c.0) != Some(e) {
                cached = Some((e, Rng::derive(self.seed, &format!("lsal-labelled-epoch-{e}")).permutation(n)));
            }
            rows.push(cached.as_ref().map(|c| c.1[pos] as u32).unwrap_or(0));
        }
        let rows = Tensor::from_vec(rows, b, &self.device)?;
        Ok((lab.x.index_select(&rows, 0)?, lab.y.index_select(&rows, 0)?))
    }

    /// One forward pass of the unsupervised game (objectives I-III, paper Sec. 3.2) on `x` with prior draws `z`:
    /// the L-loss sees L's parameters on detached pairs, the G/Q-loss the same pairs through a
    /// frozen copy of L (same dropout masks), so each loss's gradients reach only its own player.
    pub fn forward_unsup(&self, x: &Tensor, z: &Tensor, rng: &mut Rng) -> anyhow::Result<Forward> {
        let b = x.dim(0)?;
        let x_fake = self.g.forward(z, true)?;
        let z_hat = self.q.forward(x, true)?;
        let m = objective::margins(x, &x_fake, &z_hat, z, self.cfg.ambient_weight, self.cfg.manifold_weight)?;
        let xx = Tensor::cat(&[x, &x_fake], 0)?;
        let zz = Tensor::cat(&[&z_hat, z], 0)?;
        let masks = self.l.draw_masks(2 * b, rng, self.dtype, &self.device)?;
        let out_l = self.l.forward(&xx.detach(), &zz.detach(), masks.as_ref(), false)?.squeeze(1)?;
        let out_gq = self.l.forward(&xx, &zz, masks.as_ref(), true)?.squeeze(1)?;
        let (l_real, l_fake) = (out_l.narrow(0, 0, b)?, out_l.narrow(0, b, b)?);
        let loss_l = objective::loss_l(&m.delta, &l_real, &l_fake, self.cfg.cost_slope)?;
        let loss_gq = objective::loss_gq(&out_gq.narrow(0, 0, b)?, &out_gq.narrow(0, b, b)?)?;
        let a = ((&m.delta + &l_real)? - &l_fake)?;
        let mut st = StepStats::default();
        st.push_t("loss_L", &loss_l)?;
        st.push_t("loss_GQ", &loss_gq)?;
        st.push_t("l_real", &l_real.mean_all()?)?;
        st.push_t("l_fake", &l_fake.mean_all()?)?;
        self.push_margins(&mut st, &m)?;
        st.push_t("hinge_active", &a.gt(0.0)?.to_dtype(DType::F64)?.mean_all()?)?;
        Ok(Forward { loss_l, loss_gq, stats: st })
    }

    fn push_margins(&self, st: &mut StepStats, m: &objective::Margins) -> anyhow::Result<()> {
        let numel = self.arch_numel() as f64;
        let amb = m.ambient.mean_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let man = m.manifold.mean_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        // Weighted terms (as they enter Delta) and per-element unweighted ones (scale-free, Fig. 5).
        st.push("margin_ambient_w", self.cfg.ambient_weight * amb);
        st.push("margin_manifold_w", self.cfg.manifold_weight * man);
        st.push("ambient_l1_per_px", amb / numel);
        st.push("manifold_l1_per_dim", man / self.dz as f64);
        Ok(())
    }

    fn arch_numel(&self) -> usize {
        match self.arch {
            Arch::Conv { c, h, w } => c * h * w,
            Arch::Mlp { dim } => dim,
        }
    }

    /// One forward pass of the semi-supervised game (paper Sec. 5, Eq. 8-10): a labelled batch (x_l, y_l) and
    /// an unlabelled batch x_u, each paired with its own prior batch; G, Q and L run once on the
    /// concatenation.
    pub fn forward_ssl(
        &self,
        x_l: &Tensor,
        y_l: &Tensor,
        x_u: &Tensor,
        z_l: &Tensor,
        z_u: &Tensor,
        y_tilde: &Tensor,
        rng: &mut Rng,
    ) -> anyhow::Result<Forward> {
        let (bl, bu) = (x_l.dim(0)?, x_u.dim(0)?);
        let x = Tensor::cat(&[x_l, x_u], 0)?;
        let z = Tensor::cat(&[z_l, z_u], 0)?;
        let x_fake = self.g.forward(&z, true)?;
        let z_hat = self.q.forward(&x, true)?;
        let m = objective::margins(&x, &x_fake, &z_hat, &z, self.cfg.ambient_weight, self.cfg.manifold_weight)?;
        let n = bl + bu;
        let xx = Tensor::cat(&[&x, &x_fake], 0)?;
        let zz = Tensor::cat(&[&z_hat, &z], 0)?;
        let masks = self.l.draw_masks(2 * n, rng, self.dtype, &self.device)?;
        let out_l = self.l.forward(&xx.detach(), &zz.detach(), masks.as_ref(), false)?;
        let out_gq = self.l.forward(&xx, &zz, masks.as_ref(), true)?;
        let split = |o: &Tensor| -> candle_core::Result<[Tensor; 4]> {
            Ok([o.narrow(0, 0, bl)?, o.narrow(0, bl, bu)?, o.narrow(0, n, bl)?, o.narrow(0, n + bl, bu)?])
        };
        let [rl, ru, fl, fu] = split(&out_l)?;
        let acts = SslActs { real_l: &rl, fake_l: &fl, y_l, real_u: &ru, fake_u: &fu };
        let (dl, du) = (m.delta.narrow(0, 0, bl)?, m.delta.narrow(0, bl, bu)?);
        let lambda = self.cfg.unlabelled_weight;
        let loss_l = objective::ssl_loss_l(&acts, &dl, &du, lambda, self.cfg.cost_slope)?;
        let [grl, gru, gfl, gfu] = split(&out_gq)?;
        let acts_gq = SslActs { real_l: &grl, fake_l: &gfl, y_l, real_u: &gru, fake_u: &gfu };
        let loss_gq = objective::ssl_loss_gq(&acts_gq, y_tilde)?;
        let mut st = StepStats::default();
        st.push_t("loss_L", &loss_l)?;
        st.push_t("loss_GQ", &loss_gq)?;
        st.push_t("l_real", &objective::unlabelled_loss(&ru)?.mean_all()?)?;
        st.push_t("l_fake", &objective::unlabelled_loss(&fu)?.mean_all()?)?;
        st.push_t("l_real_labelled", &objective::class_loss(&rl, y_l)?.mean_all()?)?;
        self.push_margins(&mut st, &m)?;
        let acc = objective::predict(&rl)?.eq(y_l)?.to_dtype(DType::F64)?.mean_all()?;
        st.push_t("train_acc_labelled", &acc)?;
        Ok(Forward { loss_l, loss_gq, stats: st })
    }

    /// Draws this step's randomness and runs the matching forward pass.
    fn forward_step(&self, batch: &Batch, step: usize, rng: &mut Rng) -> anyhow::Result<Forward> {
        let x = batch.x.to_dtype(self.dtype)?;
        let b = x.dim(0)?;
        match self.mode {
            Mode::Unsupervised => {
                let z = self.prior(b, rng)?;
                self.forward_unsup(&x, &z, rng)
            }
            Mode::SemiSupervised => {
                let lab = self.labelled.as_ref().context("no labelled set")?;
                let (x_l, y_l) = self.labelled_batch(step, b)?;
                let z_l = self.prior(b, rng)?;
                let z_u = self.prior(b, rng)?;
                // y~ ~ P_Y, the empirical label law of the labelled set: Sec. 5's T draws y ~ P_Y
                // although G itself is unconditional.
                let yt: Vec<u32> = (0..b).map(|_| lab.y_host[rng.below(lab.y_host.len())]).collect();
                let y_tilde = Tensor::from_vec(yt, b, &self.device)?;
                self.forward_ssl(&x_l, &y_l, &x, &z_l, &z_u, &y_tilde, rng)
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn forward_step_for_tests(&self, batch: &Batch, step: usize, rng: &mut Rng) -> anyhow::Result<Forward> {
        self.forward_step(batch, step, rng)
    }

    fn clip_l(&self) -> anyhow::Result<()> {
        let c = self.cfg.weight_clip;
        if c > 0.0 {
            for (_, v) in self.player_l.vs().trainable_vars() {
                v.set(&v.as_tensor().clamp(-c, c)?)?;
            }
        }
        Ok(())
    }

    /// G(Q(x)) in eval mode.
    pub fn reconstruct(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.g.forward(&self.q.forward(&x.to_dtype(self.dtype)?, false)?, false)
    }

    /// Class activations a(x, Q(x)) in eval mode (no dropout); the paper does not
    /// say which z to use at test time, and z = Q(x) is the natural one.
    pub fn class_scores(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = x.to_dtype(self.dtype)?;
        self.l.forward(&x, &self.q.forward(&x, false)?, None, false)
    }

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
            codes.push(self.q.forward(&x, false)?.to_dtype(DType::F64)?);
        }
        let z = Tensor::cat(&codes, 0)?;
        let mean = z.mean_keepdim(0)?;
        let std = z.broadcast_sub(&mean)?.sqr()?.mean(0)?.sqrt()?.mean_all()?.to_scalar::<f64>()?;
        Ok((std, mean.sqr()?.mean_all()?.sqrt()?.to_scalar::<f64>()?))
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
}

impl Generator for Lsal {
    fn latent_dim(&self) -> usize {
        self.dz
    }
    fn generate(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        self.g.forward(&z.to_dtype(self.dtype)?, false)
    }
}

impl Method for Lsal {
    fn step(&mut self, batch: &Batch, step: usize, rng: &mut Rng) -> anyhow::Result<StepStats> {
        if self.mode == Mode::SemiSupervised {
            let epoch = (step * self.batch_size) as f64 / self.data_len.max(1) as f64;
            let lr = self.cfg.ssl_lr_at(epoch);
            for o in [&mut self.player_g, &mut self.player_q, &mut self.player_l] {
                o.set_lr(lr);
            }
        }
        let fwd = self.forward_step(batch, step, rng)?;
        let alternating = self.cfg.schedule == Schedule::Alternating;
        // Both gradient stores come from the same forward before either optimiser steps
        // (simultaneous, as the authors' code does): stepping L first would send the G/Q
        // gradients through already-updated L weights.
        let grads_l = fwd.loss_l.backward()?;
        if alternating {
            // Optional schedule (the paper does not fix one): update L first, then G/Q against
            // the updated L on a fresh forward.
            self.player_l.step(&grads_l)?;
            self.clip_l()?;
            let again = self.forward_step(batch, step, rng)?;
            let grads_gq = again.loss_gq.backward()?;
            self.player_g.step(&grads_gq)?;
            self.player_q.step(&grads_gq)?;
        } else {
            let grads_gq = fwd.loss_gq.backward()?;
            self.player_l.step(&grads_l)?;
            self.clip_l()?;
            self.player_g.step(&grads_gq)?;
            self.player_q.step(&grads_gq)?;
        }
        let mut st = fwd.stats;
        if self.mode == Mode::SemiSupervised {
            st.push("lr", self.player_l.lr());
        }
        Ok(st)
    }

    fn sample(&self, n: usize, rng: &mut Rng) -> anyhow::Result<Tensor> {
        let z = self.prior(n, rng)?;
        Ok(self.g.forward(&z, false)?.to_dtype(DType::F32)?)
    }

    fn players(&self) -> Vec<&Player> {
        vec![&self.player_g, &self.player_q, &self.player_l]
    }

    fn players_mut(&mut self) -> Vec<&mut Player> {
        vec![&mut self.player_g, &mut self.player_q, &mut self.player_l]
    }

    fn generator(&self) -> Option<&dyn Generator> {
        Some(self)
    }

    fn phase(&self) -> Option<String> {
        Some(self.mode.as_str().to_string())
    }

    /// Reconstruction error of G(Q(x)) on held-out data (the test split, else training data,
    /// named in the key) and, in SSL mode, the classification error.
    fn evaluate(&self, data: &Dataset) -> anyhow::Result<Vec<(String, f64)>> {
        let (held, split) = match &data.test {
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
        ];
        if self.mode == Mode::SemiSupervised {
            match &data.test {
                Some(t) => out.push(("ssl_test_error".into(), self.classification_error(t)?)),
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
        }
        Ok(out)
    }

    fn figures(&self, dir: &Path, data: &Dataset, rng: &mut Rng) -> anyhow::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let held = data.test.as_deref().unwrap_or(data);
        let mut files = vec![];
        files.extend(self.margin_figures(dir)?);
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
                let zq = self.q.forward(&x.to_dtype(self.dtype)?, false)?;
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
    /// The Fig. 5 analogue from `dir/../metrics.jsonl`: the weighted margins and the loss terms
    /// over training (left), and the per-element unweighted margins with the fixed-point value
    /// of the manifold margin, E|z - z'| = 2/sqrt(pi) per dimension, since Q(x) ~ P_Z = N(0, I) at the
    /// fixed point of Theorem 1 (right).
    fn margin_figures(&self, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
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
        let left: Vec<viz::Series> = ["margin_ambient_w", "margin_manifold_w", "loss_L", "l_real", "l_fake"]
            .iter()
            .map(|k| viz::Series { name: k, points: series(k) })
            .collect();
        let man = series("manifold_l1_per_dim");
        let plateau = 2.0 / std::f64::consts::PI.sqrt();
        let flat: Vec<(f64, f64)> = man.iter().map(|&(s, _)| (s, plateau)).collect();
        let right = vec![
            viz::Series { name: "ambient |x - G(z)|_1 per pixel", points: series("ambient_l1_per_px") },
            viz::Series { name: "manifold |Q(x) - z|_1 per dim", points: man },
            viz::Series { name: "fixed point 2/sqrt(pi)", points: flat },
        ];
        let a = viz::line_plot("LSAL: weighted margins and loss terms", "step", &left, (800, 450))?;
        let b = viz::line_plot("LSAL: unweighted margins (Fig. 5 analogue)", "step", &right, (800, 450))?;
        let pa = dir.join("margins_and_losses.png");
        let pb = dir.join("margins.png");
        atomic_write(&pa, &a)?;
        atomic_write(&pb, &b)?;
        Ok(vec![pb, pa])
    }
}
