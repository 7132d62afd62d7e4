//! The LSAL training step (paper Sec. 3.2, objectives I-III) and its semi-supervised variant (Sec. 5, Eq. 7-10),
//! plus evaluation (reconstruction error of G(Q(x)), SSL test error) and the paper's figures.

use crate::config::{LsalConfig, Mode, Schedule};
use crate::model::{self, Arch, Encoder, Gen, LossNet};
use crate::objective::{self, SslActs};
use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use ganfold_core::nn::VarStore;
use ganfold_core::optim::AdamConfig;
use ganfold_core::{Batch, BuildContext, Dataset, Generator, Method, Player, Rng, StepStats};
use std::path::{Path, PathBuf};

/// The labelled subset and the validation images of the semi-supervised mode (drawn by the
/// shared `ganfold_core::ssl::Split`, as every SSL method's are), held by the method.
pub struct Labelled {
    /// Dataset indices of the labelled images (balanced over classes), sorted.
    pub index: Vec<usize>,
    pub x: Tensor,
    /// (n,) u32.
    pub y: Tensor,
    pub y_host: Vec<u32>,
    pub classes: usize,
    /// Validation images (disjoint from the labelled ones) and their labels: every setting is
    /// chosen on them, never on the test set.
    pub val_x: Option<Tensor>,
    pub val_y: Vec<u32>,
    /// (step, validation error) every `eval_every` steps; saved with the checkpoint.
    pub curve: Vec<(usize, f64)>,
    pub eval_every: usize,
    pub steps_per_epoch: usize,
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
    pub q: Encoder,
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
                if cx.data.labels.is_none() {
                    anyhow::bail!("lsal: mode=ssl needs a labelled dataset; `{}` has no labels", cx.data.name);
                }
                let split = ganfold_core::ssl::Split::draw(cx.data, cfg.labels, cfg.val, cx.seed, "lsal")?;
                let mut index = split.labelled;
                index.sort_unstable();
                let b = cx.data.batch(&index, cx.device)?;
                let y = b.y.context("labelled batch without labels")?;
                let y_host = y.to_vec1::<u32>()?;
                let (val_x, val_y) = if split.val.is_empty() {
                    (None, vec![])
                } else {
                    let v = cx.data.batch(&split.val, cx.device)?;
                    (Some(v.x.to_dtype(dtype)?), v.y.context("validation images without labels")?.to_vec1::<u32>()?)
                };
                let steps_per_epoch = (cx.data.len() / cx.batch_size.max(1)).max(1);
                let eval_every = if cfg.eval_every > 0 { cfg.eval_every } else { steps_per_epoch };
                Some(Labelled {
                    index,
                    x: b.x.to_dtype(dtype)?,
                    y,
                    y_host,
                    classes: cx.data.num_classes,
                    val_x,
                    val_y,
                    curve: vec![],
                    eval_every,
                    steps_per_epoch,
                })
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
        let adam_q = AdamConfig { lr: lr * cfg.encoder_lr_scale, ..adam };
        let (player_g, player_q, player_l) =
            (Player::new("g", g_vs, adam)?, Player::new("q", q_vs, adam_q)?, Player::new("l", l_vs, adam)?);
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

    pub(crate) fn prior(&self, n: usize, rng: &mut Rng) -> candle_core::Result<Tensor> {
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
        let z_hat = self.q.forward(x, true, Some(rng))?;
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
        let score = |o: &Tensor| o.squeeze(1);
        let loss_l = self.add_lipschitz(loss_l, [x, &z_hat], [&x_fake, z], &score, rng, &mut st)?;
        let loss_l = self.add_margin_lipschitz(loss_l, [x, &z_hat], [&x_fake, z], &m, &score, rng, &mut st)?;
        self.push_diagnostics(&mut st, x, &z_hat, z, &score)?;
        let loss_gq = self.add_latent_regression(loss_gq, &x_fake, z, rng, &mut st)?;
        let loss_gq = self.add_reconstruction(loss_gq, x, &z_hat, &mut st)?;
        let loss_gq = self.add_code_prior(loss_gq, &z_hat, &mut st)?;
        st.push_t("loss_L", &loss_l)?;
        st.push_t("loss_GQ", &loss_gq)?;
        st.push_t("l_real", &l_real.mean_all()?)?;
        st.push_t("l_fake", &l_fake.mean_all()?)?;
        self.push_margins(&mut st, &m)?;
        st.push_t("hinge_active", &a.gt(0.0)?.to_dtype(DType::F64)?.mean_all()?)?;
        // How far L separates pairs beyond their margin (0 when L is 1-Lipschitz in the margin's metric).
        st.push_t("margin_excess", &a.minimum(0.0)?.neg()?.mean_all()?)?;
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

    pub(crate) fn arch_numel(&self) -> usize {
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
        let z_hat = self.q.forward(&x, true, Some(rng))?;
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
        // Optional labelled NLL on L (CLS-GAN's term; not in the paper's Eq. 8), also logged as
        // `l_real_labelled`.
        let nll = objective::class_loss(&rl, y_l)?.mean_all()?;
        let loss_l = if self.cfg.labelled_nll > 0.0 { (loss_l + (&nll * self.cfg.labelled_nll)?)? } else { loss_l };
        let [grl, gru, gfl, gfu] = split(&out_gq)?;
        let acts_gq = SslActs { real_l: &grl, fake_l: &gfl, y_l, real_u: &gru, fake_u: &gfu };
        let loss_gq = objective::ssl_loss_gq(&acts_gq, y_tilde)?;
        let mut st = StepStats::default();
        let unl = |o: &Tensor| objective::unlabelled_loss(o);
        let loss_l = self.add_lipschitz(loss_l, [&x, &z_hat], [&x_fake, &z], &unl, rng, &mut st)?;
        let loss_l = self.add_margin_lipschitz(loss_l, [&x, &z_hat], [&x_fake, &z], &m, &unl, rng, &mut st)?;
        self.push_diagnostics(&mut st, x_u, &z_hat.narrow(0, bl, bu)?, z_u, &unl)?;
        let loss_gq = self.add_latent_regression(loss_gq, &x_fake, &z, rng, &mut st)?;
        st.push_t("loss_L", &loss_l)?;
        st.push_t("loss_GQ", &loss_gq)?;
        st.push_t("l_real", &objective::unlabelled_loss(&ru)?.mean_all()?)?;
        st.push_t("l_fake", &objective::unlabelled_loss(&fu)?.mean_all()?)?;
        st.push_t("l_real_labelled", &nll)?;
        self.push_margins(&mut st, &m)?;
        let acc = objective::predict(&rl)?.eq(y_l)?.to_dtype(DType::F64)?.mean_all()?;
        st.push_t("train_acc_labelled", &acc)?;
        Ok(Forward { loss_l, loss_gq, stats: st })
    }

    /// `loss_l` plus the finite-difference Lipschitz penalty (when `lipschitz_penalty` > 0): for each
    /// row, two random points p1, p2 on the segment from the fake pair (G(z), z) to the real pair
    /// (x, Q(x)), and w * mean((|s(L(p1)) - s(L(p2))| / ||p1 - p2||_2 - 1)^2), with `score` s the
    /// scalar loss (L itself, or L_u in SSL). The inputs are detached (a penalty on L only) and
    /// both passes share one set of dropout masks, so their difference is not dropout noise.
    pub(crate) fn add_lipschitz(
        &self,
        loss_l: Tensor,
        real: [&Tensor; 2],
        fake: [&Tensor; 2],
        score: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>,
        rng: &mut Rng,
        st: &mut StepStats,
    ) -> anyhow::Result<Tensor> {
        let w = self.cfg.lipschitz_penalty;
        if w <= 0.0 {
            return Ok(loss_l);
        }
        let b = real[0].dim(0)?;
        // fake + t (real - fake) for input k, t (B,) broadcast over the other dims.
        let lerp = |k: usize, t: &Tensor| -> candle_core::Result<Tensor> {
            let (r, f) = (real[k].detach(), fake[k].detach());
            let mut shape = vec![b];
            shape.extend(std::iter::repeat_n(1, r.rank() - 1));
            &f + (r - &f)?.broadcast_mul(&t.reshape(shape)?)?
        };
        let point = |t: &Tensor| -> candle_core::Result<[Tensor; 2]> { Ok([lerp(0, t)?, lerp(1, t)?]) };
        let t1 = rng.rand(b, 0.0, 1.0, &self.device)?.to_dtype(self.dtype)?;
        let t2 = rng.rand(b, 0.0, 1.0, &self.device)?.to_dtype(self.dtype)?;
        let (p1, p2) = (point(&t1)?, point(&t2)?);
        let masks = self.l.draw_masks(b, rng, self.dtype, &self.device)?;
        let s1 = score(&self.l.forward(&p1[0], &p1[1], masks.as_ref(), false)?)?;
        let s2 = score(&self.l.forward(&p2[0], &p2[1], masks.as_ref(), false)?)?;
        let d2 = |k: usize| -> candle_core::Result<Tensor> { (&p1[k] - &p2[k])?.sqr()?.flatten_from(1)?.sum(1) };
        let dist = ((d2(0)? + d2(1)?)? + 1e-12)?.sqrt()?;
        let slope = (s1 - s2)?.abs()?.broadcast_div(&dist)?;
        let pen = (slope - 1.0)?.sqr()?.mean_all()?;
        st.push_t("lipschitz_penalty", &pen)?;
        Ok((loss_l + (pen * w)?)?)
    }

    /// `loss_l` plus w times the margin-Lipschitz penalty (`objective::margin_lipschitz_penalty`,
    /// when `margin_lipschitz` = w > 0): the scores of the real pairs, their corners (x, z) and the
    /// fake pairs come from one L forward on detached inputs with one set of dropout masks, so
    /// the differences along each leg are not dropout noise.
    #[allow(clippy::too_many_arguments)]
    fn add_margin_lipschitz(
        &self,
        loss_l: Tensor,
        real: [&Tensor; 2],
        fake: [&Tensor; 2],
        m: &objective::Margins,
        score: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>,
        rng: &mut Rng,
        st: &mut StepStats,
    ) -> anyhow::Result<Tensor> {
        let w = self.cfg.margin_lipschitz;
        if w <= 0.0 {
            return Ok(loss_l);
        }
        let b = real[0].dim(0)?;
        let xs = Tensor::cat(&[real[0], real[0], fake[0]], 0)?.detach();
        let zs = Tensor::cat(&[real[1], fake[1], fake[1]], 0)?.detach();
        let masks = match self.l.draw_masks(b, rng, self.dtype, &self.device)? {
            Some(mk) => Some(mk.repeat(3)?),
            None => None,
        };
        let s = score(&self.l.forward(&xs, &zs, masks.as_ref(), false)?)?;
        let (s_real, s_corner, s_fake) = (s.narrow(0, 0, b)?, s.narrow(0, b, b)?, s.narrow(0, 2 * b, b)?);
        let (mu, nu) = (self.cfg.ambient_weight, self.cfg.manifold_weight);
        let pen = objective::margin_lipschitz_penalty(&s_real, &s_corner, &s_fake, m, mu, nu)?;
        st.push_t("margin_lipschitz_penalty", &pen)?;
        Ok((loss_l + (pen * w)?)?)
    }

    /// `loss_gq` plus w times the latent-regression term (w = `latent_regression`, or
    /// `ssl_latent_regression` in SSL mode; nothing when w = 0):
    /// Q run in training mode on the detached fakes G(z), asked to return their codes. Its
    /// BatchNorm running statistics then also see the fakes, as BiGAN's encoder does when it is
    /// trained on both. Logged as `latent_regression` (the unweighted mean |Q(G(z)) - z|).
    fn add_latent_regression(
        &self,
        loss_gq: Tensor,
        x_fake: &Tensor,
        z: &Tensor,
        rng: &mut Rng,
        st: &mut StepStats,
    ) -> anyhow::Result<Tensor> {
        let w = match self.mode {
            Mode::Unsupervised => self.cfg.latent_regression,
            Mode::SemiSupervised => self.cfg.ssl_latent_regression,
        };
        if w <= 0.0 {
            return Ok(loss_gq);
        }
        let z_rec = self.q.forward(&x_fake.detach(), true, Some(rng))?;
        let term = objective::mean_abs_error(&z_rec, z)?;
        st.push_t("latent_regression", &term)?;
        Ok((loss_gq + (term * w)?)?)
    }

    /// `loss_gq` plus w times the reconstruction term (w = `reconstruction`; unsupervised mode):
    /// G(Q(x)) through G with frozen parameters in evaluation mode, so the gradient reaches Q's
    /// codes and not G, and G's BatchNorm running statistics see only G's own samples. Logged as
    /// `reconstruction` (the unweighted mean |G(Q(x)) - x|).
    fn add_reconstruction(
        &self,
        loss_gq: Tensor,
        x: &Tensor,
        z_hat: &Tensor,
        st: &mut StepStats,
    ) -> anyhow::Result<Tensor> {
        let w = self.cfg.reconstruction;
        if w <= 0.0 {
            return Ok(loss_gq);
        }
        let x_rec = ganfold_core::nn::frozen(|| self.g.forward(z_hat, false))?;
        let term = objective::mean_abs_error(&x_rec, x)?;
        st.push_t("reconstruction", &term)?;
        Ok((loss_gq + (term * w)?)?)
    }

    /// `loss_gq` plus w times `objective::code_prior_kl` of the real images' codes (w =
    /// `code_prior`; unsupervised mode): only Q produced them, so only Q learns from it. Logged
    /// as `code_prior_kl` (unweighted).
    fn add_code_prior(&self, loss_gq: Tensor, z_hat: &Tensor, st: &mut StepStats) -> anyhow::Result<Tensor> {
        let w = self.cfg.code_prior;
        if w <= 0.0 {
            return Ok(loss_gq);
        }
        let term = objective::code_prior_kl(z_hat)?;
        st.push_t("code_prior_kl", &term)?;
        Ok((loss_gq + (term * w)?)?)
    }

    /// Logged diagnostics of the real pairs: Q's code statistics (`q_std`, the mean
    /// per-dimension batch standard deviation, 1 under the prior; `q_mean_rms`, 0 under it);
    /// `l_code_sens`, how much L's score moves when x is given another image's code (mean
    /// |s(L(x, Q(x'))) - s(L(x, Q(x)))|, no dropout; 0 when L ignores z); and `l_code_gap`, the
    /// signed mean of the same difference: how much worse L scores x with another image's code
    /// than with its own. A score additive in x and z moves (`l_code_sens` > 0) but gives a gap
    /// of 0 over the batch: it does not tell x's own code from another's. `l_prior_gap`: mean
    /// s(L(x, z)) - s(L(x, Q(x))) for prior draws z, how much more fake L finds x with a prior
    /// code than with its own (> 0 once L tells Q's codes from the prior's; Q's only signal).
    fn push_diagnostics(
        &self,
        st: &mut StepStats,
        x: &Tensor,
        z_hat: &Tensor,
        prior: &Tensor,
        score: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>,
    ) -> anyhow::Result<()> {
        let (x, z) = (x.detach(), z_hat.detach());
        let mean = z.mean_keepdim(0)?;
        st.push_t("q_std", &z.broadcast_sub(&mean)?.sqr()?.mean(0)?.sqrt()?.mean_all()?)?;
        st.push_t("q_mean_rms", &mean.sqr()?.mean_all()?.sqrt()?)?;
        let b = z.dim(0)?;
        if b > 1 {
            let rolled = Tensor::cat(&[z.narrow(0, 1, b - 1)?, z.narrow(0, 0, 1)?], 0)?;
            let own = score(&self.l.forward(&x, &z, None, false)?)?;
            let other = score(&self.l.forward(&x, &rolled, None, false)?)?;
            let d = (&other - &own)?;
            st.push_t("l_code_sens", &d.abs()?.mean_all()?)?;
            st.push_t("l_code_gap", &d.mean_all()?)?;
            let with_prior = score(&self.l.forward(&x, &prior.detach(), None, false)?)?;
            st.push_t("l_prior_gap", &(with_prior - &own)?.mean_all()?)?;
        }
        Ok(())
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
        self.g.forward(&self.q.forward(&x.to_dtype(self.dtype)?, false, None)?, false)
    }

    /// Class activations a(x, Q(x)) in eval mode (no dropout); the paper does not
    /// say which z to use at test time, and z = Q(x) is the natural one.
    pub fn class_scores(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = x.to_dtype(self.dtype)?;
        self.l.forward(&x, &self.q.forward(&x, false, None)?, None, false)
    }
}

impl Lsal {
    /// The error of argmax a(x, Q(x)) on the validation images of the shared split (SSL mode).
    pub(crate) fn validation_error(&self) -> anyhow::Result<Option<f64>> {
        let Some(lab) = self.labelled.as_ref() else { return Ok(None) };
        let Some(vx) = lab.val_x.as_ref() else { return Ok(None) };
        let n = vx.dim(0)?;
        let mut wrong = 0usize;
        for start in (0..n).step_by(500) {
            let len = 500.min(n - start);
            let pred = objective::predict(&self.class_scores(&vx.narrow(0, start, len)?)?)?.to_vec1::<u32>()?;
            wrong += pred.iter().zip(&lab.val_y[start..start + len]).filter(|(p, y)| p != y).count();
        }
        Ok(Some(wrong as f64 / n.max(1) as f64))
    }

    /// Every `eval_every` steps in SSL mode: the validation error, recorded in the curve and
    /// logged as `val_error`.
    fn measure_validation(&mut self, step: usize, st: &mut StepStats) -> anyhow::Result<()> {
        let Some(lab) = self.labelled.as_ref() else { return Ok(()) };
        if !(step + 1).is_multiple_of(lab.eval_every) {
            return Ok(());
        }
        let Some(err) = self.validation_error()? else { return Ok(()) };
        st.push_periodic("val_error", err);
        if let Some(lab) = self.labelled.as_mut() {
            lab.curve.push((step + 1, err));
        }
        Ok(())
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
            for o in [&mut self.player_g, &mut self.player_l] {
                o.set_lr(lr);
            }
            self.player_q.set_lr(lr * self.cfg.encoder_lr_scale);
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
            self.measure_validation(step, &mut st)?;
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

    /// The SSL validation curve (checkpoint meta `val_curve`), so a resumed run keeps it.
    fn extra_state(&self) -> anyhow::Result<ganfold_core::MethodState> {
        let curve = self.labelled.as_ref().map(|l| l.curve.clone()).unwrap_or_default();
        Ok(ganfold_core::MethodState { tensors: Default::default(), meta: serde_json::json!({ "val_curve": curve }) })
    }

    fn load_extra_state(&mut self, state: &ganfold_core::MethodState) -> anyhow::Result<()> {
        if let Some(lab) = self.labelled.as_mut() {
            lab.curve = match state.meta.get("val_curve") {
                Some(v) => serde_json::from_value(v.clone()).context("checkpoint meta `val_curve` is malformed")?,
                None => vec![],
            };
        }
        Ok(())
    }

    fn phase(&self) -> Option<String> {
        Some(self.mode.as_str().to_string())
    }

    /// Reconstruction error of G(Q(x)) on held-out data and, in SSL mode, the classification error.
    fn evaluate(&self, data: &Dataset) -> anyhow::Result<Vec<(String, f64)>> {
        self.evaluate_run(data)
    }

    fn figures(&self, dir: &Path, data: &Dataset, rng: &mut Rng) -> anyhow::Result<Vec<PathBuf>> {
        self.write_figures(dir, data, rng)
    }
}
