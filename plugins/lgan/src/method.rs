//! The LGAN training method: generation (Sec. 3.4) and semi-supervised (Sec. 4) modes.

use crate::config::{LganConfig, Mode};
use crate::model::{Critic, GenOptions, LocalGen};
use crate::reg::{self, LganLocal, Reduction};
use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use ganfold_core::loss::{bce_const, cross_entropy, log_sum_exp, softplus};
use ganfold_core::nn::{self, VarStore};
use ganfold_core::ssl::SslClassifier;
use ganfold_core::{
    Batch, BuildContext, Dataset, LocalGenerator, Method, MethodState, Player, RegContext, Regularizer, Rng,
    SampleShape, StepStats,
};
use std::path::{Path, PathBuf};

// A child module, so that it reads the method's private fields.
#[path = "figures.rs"]
mod figures;

/// What G plays against: the real/fake discriminator (generation) or the K-class classifier
/// with the fake class's logit fixed at 0 (SSL).
enum Judge {
    Critic(Critic),
    Classifier(SslClassifier),
}

/// LGAN: a local generator G(x, z), a discriminator (or (K+1)-class classifier), Omega_G.
pub struct Lgan {
    cfg: LganConfig,
    mode: Mode,
    shape: SampleShape,
    device: Device,
    g: LocalGen,
    d: Judge,
    /// G's and D's weights with their optimizers.
    players: [Player; 2],
    reg: LganLocal,
    /// Registered penalties attached to G's loss (`regularizers`), with their weights.
    attached: Vec<(f64, Box<dyn Regularizer>)>,
    /// Real points that `sample()` centres its charts at (up to `cfg.pool`, seeded draw).
    pool: Tensor,
    /// The training images (SSL draws its chart centres and G's real batch from them,
    /// independently of the classifier's unlabelled batch).
    data: Dataset,
}

/// Registry constructor.
pub fn build(cx: &BuildContext<'_>) -> anyhow::Result<Box<dyn Method>> {
    Ok(Box::new(Lgan::new(cx)?))
}

impl Lgan {
    pub fn new(cx: &BuildContext<'_>) -> anyhow::Result<Self> {
        let cfg: LganConfig = ganfold_core::config::parse(cx.config, "lgan")?;
        cfg.validate()?;
        let mode = cfg.mode;
        let shape = cx.shape();
        crate::model::check_shape(shape)?;
        let image = shape.is_image();
        let n = match (cfg.latent_dim, shape) {
            (0, SampleShape::Image { .. }) => 10,
            (0, SampleShape::Points { .. }) => 1,
            (n, _) => n,
        };
        if let SampleShape::Points { dim } = shape
            && n > dim
        {
            anyhow::bail!("lgan: {n} orthonormal tangents cannot exist in {dim}-D data; set latent_dim <= {dim}");
        }
        let mut reduction = Reduction::parse(&cfg.reduction)?;
        if reduction == Reduction::Auto {
            reduction = if image { Reduction::Mean } else { Reduction::Sum };
        }
        // Our starting points: the paper tunes mu and eta on a validation set and gives no values.
        let mu = if cfg.mu < 0.0 { if image { 10.0 } else { 1.0 } } else { cfg.mu };
        let eta = if cfg.eta < 0.0 { 1.0 } else { cfg.eta };
        let distance = reg::Distance::parse(&cfg.distance)?;
        let reg = LganLocal { mu, eta, subset: cfg.jac_subset, delta: cfg.fd_delta, reduction, distance };

        let g_vs = VarStore::new(DType::F32, cx.device, cx.init_rng("g"));
        let gopts =
            GenOptions { code_gain: cfg.code_affine.then_some(cfg.code_gain), exact_locality: cfg.exact_locality };
        let g = LocalGen::new(shape, n, cfg.ngf, gopts, &g_vs)?;
        let d_vs = VarStore::new(DType::F32, cx.device, cx.init_rng("d"));
        let (d, opt_d) = match mode {
            Mode::Gen => (Judge::Critic(Critic::new(shape, cfg.ndf, &d_vs)?), cfg.opt_d),
            Mode::Ssl => {
                let c = SslClassifier::new(cx.data, &cfg.ssl(), &d_vs, cx.seed, cx.batch_size, cx.device, "lgan ssl")?;
                (Judge::Classifier(c), cfg.opt_c)
            }
        };
        let players = [Player::new("g", g_vs, cfg.opt_g)?, Player::new("d", d_vs, opt_d)?];
        let attached = ganfold_core::registry::build_regularizers(&cfg.regularizers)?;
        // The pool of chart centres for `sample()`: a seeded draw of up to `pool` training points.
        let mut prng = Rng::derive(cx.seed, "lgan-pool");
        let k = cfg.pool.min(cx.data.len());
        let idx = prng.choose_distinct(cx.data.len(), k);
        let pool = cx.data.batch(&idx, cx.device)?.x;
        let data = cx.data.clone();
        Ok(Self { cfg, mode, shape, device: cx.device.clone(), g, d, players, reg, attached, pool, data })
    }

    /// The local generator (for notebooks and the `lgan-local` regularizer).
    pub fn local_generator(&self) -> &LocalGen {
        &self.g
    }

    /// The regularizer with the weights this run uses.
    pub fn regularizer(&self) -> &LganLocal {
        &self.reg
    }

    /// z ~ P_Z = (1 - p_zero) N(0, z_std^2 I) + p_zero delta_0 (paper Sec. 5.1), per sample.
    /// Deviation (SSL): no atom at 0. With exact locality G(x, 0) = x, so the atom would feed
    /// real images to the classifier's fake class (the authors' SSL code never sets z to 0).
    pub fn sample_z(&self, b: usize, rng: &mut Rng) -> anyhow::Result<Tensor> {
        let n = self.g.coord_dim();
        let mut v = Vec::with_capacity(b * n);
        for _ in 0..b {
            let zero = self.mode == Mode::Gen && rng.bernoulli(self.cfg.p_zero);
            for _ in 0..n {
                let e = rng.normal() * self.cfg.z_std;
                v.push(if zero { 0.0 } else { e as f32 });
            }
        }
        Ok(Tensor::from_vec(v, (b, n), &self.device)?)
    }

    fn step_gen(&mut self, batch: &Batch, rng: &mut Rng) -> anyhow::Result<StepStats> {
        let Judge::Critic(d) = &self.d else { anyhow::bail!("lgan gen: no discriminator") };
        let x = &batch.x;
        let b = x.dim(0)?;
        // The same minibatch feeds D's real term and G's chart centres, as in the authors'
        // generation code (Localized-GAN, train.py); the paper does not say.
        // D step: max E log D(x) + E log(1 - D(G(x, z))).
        let z = self.sample_z(b, rng)?;
        let fake = self.g.forward_local(x, &z, true)?.detach();
        let d_loss = (bce_const(&d.forward_t(x, true)?, true)? + bce_const(&d.forward_t(&fake, true)?, false)?)?;
        self.players[1].backward_step(&d_loss)?;
        // G step: min -E log D(G(x, z)) + E Omega_G(x)   (Sec. 3.4, non-saturating).
        let z = self.sample_z(b, rng)?;
        let fake = self.g.forward_local(x, &z, true)?;
        // D's parameters are constants here (`nn::frozen`): their gradients would be discarded.
        let adv = bce_const(&nn::frozen(|| d.forward_t(&fake, true))?, true)?;
        let t = self.reg.terms(&self.g, x, rng, true)?;
        let mut st = StepStats::default();
        let extra = if self.attached.is_empty() {
            Tensor::zeros((), DType::F32, &self.device)?
        } else {
            let feats = nn::frozen(|| d.features_t(&fake, true))?;
            self.attached_penalties(x, &fake, &feats, rng, &mut st)?
        };
        let g_loss = ((&adv + self.reg.value(&t)?)? + extra)?;
        self.players[0].backward_step(&g_loss)?;
        st.push_t("d_loss", &d_loss)?;
        st.push_t("g_adv", &adv)?;
        st.push_t("locality", &t.locality)?;
        st.push_t("orth", &t.orth)?;
        Ok(st)
    }

    /// The weighted sum of the attached regularizers at the real batch `x`, the generated batch
    /// `fake` and D's features `feats` of it (differentiable w.r.t. G; D's parameters are
    /// constants), each value pushed to `st` under its name. A scalar zero when none is attached.
    fn attached_penalties(
        &self,
        x: &Tensor,
        fake: &Tensor,
        feats: &Tensor,
        rng: &mut Rng,
        st: &mut StepStats,
    ) -> anyhow::Result<Tensor> {
        let mut cx = RegContext { real: x, fake: Some(fake), fake_features: Some(feats), local: Some(&self.g), rng };
        Ok(match ganfold_core::registry::weighted_penalties(&self.attached, &mut cx, st)? {
            Some(s) => s,
            None => Tensor::zeros((), DType::F32, &self.device)?,
        })
    }

    /// `b` training images drawn afresh (chart centres, G's real batch).
    fn real_batch(&self, b: usize, rng: &mut Rng) -> anyhow::Result<Tensor> {
        let pick = rng.choose_distinct(self.data.len(), b.min(self.data.len()));
        Ok(self.data.batch(&pick, &self.device)?.x)
    }

    /// R = (N/s) sum_{j in S} sum_k (d/dz_j log P(y=k | G(x,z), y <= K) at z=0)^2, batch mean:
    /// eq. (8) sums over all N coordinates with weight 1, and N/s keeps that scale on a subset
    /// of s. Central differences with G frozen; the two passes of each difference share the
    /// classifier's noise, so that their difference is a derivative of one network.
    fn manifold_penalty(
        &self,
        clf: &SslClassifier,
        x: &Tensor,
        coords: &[usize],
        rng: &mut Rng,
    ) -> anyhow::Result<Tensor> {
        let n = self.g.coord_dim();
        let s = coords.len();
        let b = x.dim(0)?;
        let delta = self.reg.delta;
        let mut zp = vec![0f32; 2 * b * s * n];
        for r in 0..b * s {
            zp[r * n + coords[r % s]] = delta as f32;
            zp[(b * s + r) * n + coords[r % s]] = -delta as f32;
        }
        let z = Tensor::from_vec(zp, (2 * b * s, n), &self.device)?;
        let mut rep = vec![b, s];
        rep.extend_from_slice(&x.dims()[1..]);
        let mut flat = vec![b * s];
        flat.extend_from_slice(&x.dims()[1..]);
        let xr = x.unsqueeze(1)?.broadcast_as(rep)?.reshape(flat)?;
        let xr = Tensor::cat(&[&xr, &xr], 0)?;
        let moved = self.g.forward_local(&xr, &z, false)?.detach();
        let half = clf.net().draw_noise(b * s, rng, &self.device)?;
        let noise = half.iter().map(|t| Tensor::cat(&[t, t], 0)).collect::<candle_core::Result<Vec<_>>>()?;
        let logits = clf.net().forward(&moved, Some(&noise))?.1;
        let lp = logits.broadcast_sub(&log_sum_exp(&logits)?.unsqueeze(1)?)?;
        let g = ((lp.narrow(0, 0, b * s)? - lp.narrow(0, b * s, b * s)?)? / (2.0 * delta))?;
        Ok((g.sqr()?.sum_all()? * (n as f64 / s as f64 / b as f64))?)
    }

    fn step_ssl(&mut self, batch: &Batch, step: usize, rng: &mut Rng) -> anyhow::Result<StepStats> {
        let Judge::Classifier(clf) = &self.d else { anyhow::bail!("lgan ssl: no classifier") };
        let xu = &batch.x;
        let b = xu.dim(0)?;
        let (xl, yl) = clf.labelled.batch(b, rng)?;

        // --- Classifier step, eq. (8), G fixed. The unlabelled batch is the trainer's batch over
        // all training images (labelled ones included, as in the authors' SSL code); the fakes are
        // charts at an independent batch of centres (the authors' third shuffle). One noisy pass
        // over the labelled, unlabelled and generated rows (the classifier has no batch
        // statistics, so this equals three passes).
        let centres = self.real_batch(b, rng)?;
        let fake = self.g.forward_local(&centres, &self.sample_z(b, rng)?, true)?.detach();
        let (_, logits) = clf.classify(&Tensor::cat(&[&xl, xu, &fake], 0)?, rng)?;
        // -mean log P(y_l | x_l, y <= K): the K-way conditional, as Salimans et al. and the authors'
        // SSL code take the labelled term (the paper's P(y | x) leaves open which; spec Sec. 4.6).
        let p_lab = cross_entropy(&logits.narrow(0, 0, b)?, &yl)?;
        let lse_u = log_sum_exp(&logits.narrow(0, b, b)?)?;
        let lse_g = log_sum_exp(&logits.narrow(0, 2 * b, b)?)?;
        // -E log P(y <= K | x_u) - E log P(y = K+1 | G(x, z)), fake logit fixed at 0.
        let p_unl = ((softplus(&lse_u)? - &lse_u)?.mean_all()? + softplus(&lse_g)?.mean_all()?)?;
        // The manifold penalty gets its own subset S of min(jac_subset, N) coordinates (the paper
        // samples coordinates only for the orthonormal prior; the N/s factor keeps eq. 8's scale).
        // Deviation: it is taken on the unlabelled batch only (it already holds the labelled
        // images, so a labelled term would count them twice).
        let coords = self.reg.draw_subset(self.g.coord_dim(), rng);
        let manifold = if self.cfg.lambda > 0.0 {
            self.manifold_penalty(clf, xu, &coords, rng)?
        } else {
            Tensor::zeros((), DType::F32, &self.device)?
        };
        let p_loss = ((&p_lab + (&p_unl * self.cfg.w_unl)?)? + (&manifold * self.cfg.lambda)?)?;
        self.players[1].backward_step(&p_loss)?;

        // --- Generator step, eq. (9): K_G + L_G + Omega_G, classifier fixed (`nn::frozen`). The
        // real batch of feature matching and the chart centres are two more independent draws
        // (the authors' `x_unl2` and `x`).
        let Judge::Classifier(clf) = &self.d else { anyhow::bail!("lgan ssl: no classifier") };
        let xr = self.real_batch(b, rng)?;
        let centres = self.real_batch(b, rng)?;
        let fake = self.g.forward_local(&centres, &self.sample_z(b, rng)?, true)?;
        let (f, _) = nn::frozen(|| clf.classify(&Tensor::cat(&[&xr, &fake], 0)?, rng))?;
        let r = xr.dim(0)?;
        let psi_real = f.narrow(0, 0, r)?.mean(0)?.detach();
        let psi_fake = f.narrow(0, r, b)?;
        // L_G: squared L2 of the mean-feature difference (paper; the authors' SSL code uses an L1 mean).
        // Deviation (the reduction of eq. 3's norms, applied to L_G): with `mean` (images) it is averaged over
        // the F features like the locality term is over pixels.
        let fm = feature_matching(&psi_real, &psi_fake.mean(0)?, self.reg.reduction.resolve(xu))?;
        // K_G at z ~ P_Z (paper; the authors' SSL code uses z = 0).
        let gl = self.g.forward_local(&xl, &self.sample_z(b, rng)?, true)?;
        let kg = cross_entropy(&nn::frozen(|| clf.classify(&gl, rng))?.1, &yl)?;
        let t = self.reg.terms(&self.g, &centres, rng, true)?;
        let mut st = StepStats::default();
        let extra = self.attached_penalties(&centres, &fake, &psi_fake, rng, &mut st)?;
        let g_loss = (((&kg + &fm)? + self.reg.value(&t)?)? + extra)?;
        self.players[0].backward_step(&g_loss)?;

        st.push_t("p_lab", &p_lab)?;
        st.push_t("p_unl", &p_unl)?;
        st.push_t("manifold", &manifold)?;
        st.push_t("g_fm", &fm)?;
        st.push_t("g_kg", &kg)?;
        st.push_t("locality", &t.locality)?;
        st.push_t("orth", &t.orth)?;
        if let Judge::Classifier(clf) = &mut self.d {
            clf.after_update(self.players[1].vs(), step, &self.data, &mut st)?;
        }
        Ok(st)
    }

    /// SSL: the labelled loss over the whole labelled subset, without noise.
    pub fn labelled_loss(&self) -> anyhow::Result<f64> {
        let clf = self.classifier().context("labelled_loss: not an ssl run")?;
        let lab = &clf.labelled;
        Ok(cross_entropy(&clf.logits(&lab.x, false)?, &lab.y)?.to_scalar::<f32>()? as f64)
    }

    /// SSL: the classifier, its moving average and its split.
    pub fn classifier(&self) -> Option<&SslClassifier> {
        match &self.d {
            Judge::Classifier(c) => Some(c),
            Judge::Critic(_) => None,
        }
    }
}

/// L_G of eq. (9) from the mean features of the real and the generated batch (each (F,)):
/// ||psi_real - psi_fake||^2, divided by F under the `mean` reduction (see `step_ssl`).
pub fn feature_matching(psi_real: &Tensor, psi_fake: &Tensor, reduction: Reduction) -> candle_core::Result<Tensor> {
    let d2 = (psi_real - psi_fake)?.sqr()?;
    if reduction == Reduction::Mean { d2.mean_all() } else { d2.sum_all() }
}

impl Method for Lgan {
    fn step(&mut self, batch: &Batch, step: usize, rng: &mut Rng) -> anyhow::Result<StepStats> {
        match self.mode {
            Mode::Gen => self.step_gen(batch, rng),
            Mode::Ssl => self.step_ssl(batch, step, rng),
        }
    }

    /// n samples G(x, z): x drawn uniformly from the pool of real points, z ~ P_Z.
    fn sample(&self, n: usize, rng: &mut Rng) -> anyhow::Result<Tensor> {
        let p = self.pool.dim(0)?;
        let idx: Vec<u32> = (0..n).map(|_| rng.below(p) as u32).collect();
        let x = self.pool.index_select(&Tensor::from_vec(idx, n, &self.device)?, 0)?;
        let z = self.sample_z(n, rng)?;
        Ok(self.g.forward_local(&x, &z, false)?)
    }

    fn players(&self) -> Vec<&Player> {
        self.players.iter().collect()
    }

    fn players_mut(&mut self) -> Vec<&mut Player> {
        self.players.iter_mut().collect()
    }

    /// The generation mode's D (the SSL classifier is [`Lgan::classifier`]).
    fn discriminator(&self) -> Option<&dyn ganfold_core::Discriminator> {
        match &self.d {
            Judge::Critic(c) => Some(c),
            Judge::Classifier(_) => None,
        }
    }

    /// SSL: the classifier's averaged weights (`d_avg.*`) and validation curve.
    fn extra_state(&self) -> anyhow::Result<MethodState> {
        let Some(clf) = self.classifier() else { return Ok(MethodState::default()) };
        let (tensors, curve) = clf.state("d_avg.");
        Ok(MethodState { tensors, meta: serde_json::json!({ "val_curve": curve }) })
    }

    fn load_extra_state(&mut self, state: &MethodState) -> anyhow::Result<()> {
        if let Judge::Classifier(clf) = &mut self.d {
            clf.load_state(&state.tensors, "d_avg.", state.meta.get("val_curve"))?;
        }
        Ok(())
    }

    fn local_generator(&self) -> Option<&dyn LocalGenerator> {
        Some(&self.g)
    }

    fn phase(&self) -> Option<String> {
        Some(match self.mode {
            Mode::Gen => "gen".into(),
            Mode::Ssl => "ssl".into(),
        })
    }

    /// The chart metrics and, in SSL mode, the classification error (`figures.rs`).
    fn evaluate(&self, data: &Dataset) -> anyhow::Result<Vec<(String, f64)>> {
        self.evaluate_run(data)
    }

    /// `tangents.png` (Fig. 6) and `dense_samples.png` (Fig. 4) for images; `charts.png` for points.
    fn figures(&self, dir: &Path, data: &Dataset, rng: &mut Rng) -> anyhow::Result<Vec<PathBuf>> {
        self.write_figures(dir, data, rng)
    }
}
