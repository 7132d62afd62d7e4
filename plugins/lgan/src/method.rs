//! The LGAN training method: generation (Sec. 3.4) and semi-supervised (Sec. 4) modes.

use crate::config::{LganConfig, Mode};
use crate::model::{Critic, GenOptions, LocalGen};
use crate::reg::{self, LganLocal, Reduction};
use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use ganfold_core::loss::{bce_const, log_sum_exp, softplus};
use ganfold_core::nn::{self, VarStore};
use ganfold_core::{
    Batch, BuildContext, Dataset, LocalGenerator, Method, Player, RegContext, Regularizer, Rng, SampleShape, StepStats,
};
use std::path::{Path, PathBuf};

// A child module, so that it reads the method's private fields.
#[path = "figures.rs"]
mod figures;

/// The labelled subset of the SSL mode.
struct Labelled {
    x: Tensor,
    y: Tensor,
    index: Vec<usize>,
}

/// LGAN: a local generator G(x, z), a discriminator (or (K+1)-class classifier), Omega_G.
pub struct Lgan {
    cfg: LganConfig,
    mode: Mode,
    shape: SampleShape,
    device: Device,
    g: LocalGen,
    d: Critic,
    /// G's and D's weights with their optimizers.
    players: [Player; 2],
    reg: LganLocal,
    /// Registered penalties attached to G's loss (`regularizers`), with their weights.
    attached: Vec<(f64, Box<dyn Regularizer>)>,
    /// Real points that `sample()` centres its charts at (up to `cfg.pool`, seeded draw).
    pool: Tensor,
    labelled: Option<Labelled>,
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

        let classes = cx.data.num_classes;
        if mode == Mode::Ssl && classes < 2 {
            anyhow::bail!(
                "lgan ssl: dataset `{}` has {classes} classes; the (K+1)-class classifier needs K >= 2",
                cx.data.name
            );
        }
        let labelled = match mode {
            Mode::Gen => None,
            Mode::Ssl => Some(pick_labelled(cx.data, cfg.labels, cx.seed, cx.device)?),
        };
        let g_vs = VarStore::new(DType::F32, cx.device, cx.init_rng("g"));
        let gopts =
            GenOptions { code_gain: cfg.code_affine.then_some(cfg.code_gain), exact_locality: cfg.exact_locality };
        let g = LocalGen::new(shape, n, cfg.ngf, gopts, &g_vs)?;
        let d_vs = VarStore::new(DType::F32, cx.device, cx.init_rng("d"));
        let d_out = if mode == Mode::Ssl { classes } else { 1 };
        let d = Critic::new(shape, cfg.ndf, d_out, mode == Mode::Ssl, &d_vs)?;
        let players = [Player::new("g", g_vs, cfg.opt_g)?, Player::new("d", d_vs, cfg.opt_d)?];
        let attached = ganfold_core::registry::build_regularizers(&cfg.regularizers)?;
        // The pool of chart centres for `sample()`: a seeded draw of up to `pool` training points.
        let mut prng = Rng::derive(cx.seed, "lgan-pool");
        let k = cfg.pool.min(cx.data.len());
        let idx = prng.choose_distinct(cx.data.len(), k);
        let pool = cx.data.batch(&idx, cx.device)?.x;
        Ok(Self { cfg, mode, shape, device: cx.device.clone(), g, d, players, reg, attached, pool, labelled })
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
    pub fn sample_z(&self, b: usize, rng: &mut Rng) -> anyhow::Result<Tensor> {
        let n = self.g.coord_dim();
        let mut v = Vec::with_capacity(b * n);
        for _ in 0..b {
            let zero = rng.bernoulli(self.cfg.p_zero);
            for _ in 0..n {
                let e = rng.normal() * self.cfg.z_std;
                v.push(if zero { 0.0 } else { e as f32 });
            }
        }
        Ok(Tensor::from_vec(v, (b, n), &self.device)?)
    }

    fn step_gen(&mut self, batch: &Batch, rng: &mut Rng) -> anyhow::Result<StepStats> {
        let x = &batch.x;
        let b = x.dim(0)?;
        // The same minibatch feeds D's real term and G's chart centres, as in the authors'
        // generation code (Localized-GAN, train.py); the paper does not say.
        // D step: max E log D(x) + E log(1 - D(G(x, z))).
        let z = self.sample_z(b, rng)?;
        let fake = self.g.forward_local(x, &z, true)?.detach();
        let d_loss =
            (bce_const(&self.d.forward_t(x, true)?, true)? + bce_const(&self.d.forward_t(&fake, true)?, false)?)?;
        self.players[1].backward_step(&d_loss)?;
        // G step: min -E log D(G(x, z)) + E Omega_G(x)   (Sec. 3.4, non-saturating).
        let z = self.sample_z(b, rng)?;
        let fake = self.g.forward_local(x, &z, true)?;
        // D's parameters are constants here (`nn::frozen`): their gradients would be discarded.
        let adv = bce_const(&nn::frozen(|| self.d.forward_t(&fake, true))?, true)?;
        let t = self.reg.terms(&self.g, x, rng, true)?;
        let mut st = StepStats::default();
        let extra = self.attached_penalties(x, &fake, rng, &mut st)?;
        let g_loss = ((&adv + self.reg.value(&t)?)? + extra)?;
        self.players[0].backward_step(&g_loss)?;
        st.push_t("d_loss", &d_loss)?;
        st.push_t("g_adv", &adv)?;
        st.push_t("locality", &t.locality)?;
        st.push_t("orth", &t.orth)?;
        Ok(st)
    }

    /// The weighted sum of the attached regularizers at the real batch `x` and the generated batch
    /// `fake` (differentiable w.r.t. G; D's parameters are constants), each value pushed to `st`
    /// under its name. A scalar zero when none is attached.
    fn attached_penalties(
        &self,
        x: &Tensor,
        fake: &Tensor,
        rng: &mut Rng,
        st: &mut StepStats,
    ) -> anyhow::Result<Tensor> {
        let mut sum = Tensor::zeros((), DType::F32, &self.device)?;
        if self.attached.is_empty() {
            return Ok(sum);
        }
        let feats = nn::frozen(|| self.d.features_t(fake, true))?;
        for (w, r) in &self.attached {
            let mut cx =
                RegContext { real: x, fake: Some(fake), fake_features: Some(&feats), local: Some(&self.g), rng };
            let p = r.penalty(&mut cx).with_context(|| format!("regularizer {}", r.name()))?;
            st.push_t(r.name(), &p)?;
            sum = (sum + (p * *w)?)?;
        }
        Ok(sum)
    }

    /// log P(y = k | x) for k <= K under the (K+1)-way model with the fake logit fixed at 0
    /// (the paper's P(y|x) is over y in {1..K+1}, Sec. 4): l_k - log(1 + sum_j e^{l_j}) = l_k - softplus(lse).
    fn log_p_real(logits: &Tensor) -> candle_core::Result<Tensor> {
        logits.broadcast_sub(&softplus(&log_sum_exp(logits)?)?.unsqueeze(1)?)
    }

    /// -mean log P(y_l | x) over the rows, (K+1)-way (Sec. 4).
    fn labelled_nll(logits: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
        let lp = Self::log_p_real(logits)?;
        lp.gather(&y.unsqueeze(1)?, 1)?.mean_all()?.neg()
    }

    /// R = (N/s) sum_{j in S} sum_k (d/dz_j log P(y=k | G(x,z)) at z=0)^2, batch mean: eq. (8)
    /// sums over all N coordinates with weight 1, and N/s keeps that scale on a subset of s.
    /// Central differences with G frozen.
    fn manifold_penalty(&self, x: &Tensor, coords: &[usize]) -> anyhow::Result<Tensor> {
        let n = self.g.coord_dim();
        let s = coords.len();
        let b = x.dim(0)?;
        let delta = self.reg.delta;
        // G is frozen in the classifier step: differentiate the classifier only.
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
        let lp = Self::log_p_real(&self.d.forward_t(&moved, true)?)?;
        let g = ((lp.narrow(0, 0, b * s)? - lp.narrow(0, b * s, b * s)?)? / (2.0 * delta))?;
        Ok((g.sqr()?.sum_all()? * (n as f64 / s as f64 / b as f64))?)
    }

    fn step_ssl(&mut self, batch: &Batch, rng: &mut Rng) -> anyhow::Result<StepStats> {
        let lab = self.labelled.as_ref().context("lgan ssl: no labelled subset")?;
        let xu = &batch.x;
        let b = xu.dim(0)?;
        // Labelled minibatch: B draws with replacement from the labelled subset (the unlabelled
        // batch is the trainer's batch over all training images, labelled ones included, as in
        // the authors' SSL code, SSL_LGAN train_cifar10.py). Our choice: the unlabelled batch also
        // serves as G's chart centres (eq. 9 draws them from P_X, so no extra batch is needed).
        let pick: Vec<u32> = (0..b).map(|_| rng.below(lab.index.len()) as u32).collect();
        let pick = Tensor::from_vec(pick, b, &self.device)?;
        let xl = lab.x.index_select(&pick, 0)?;
        let yl = lab.y.index_select(&pick, 0)?;

        // --- Classifier step, eq. (8), G fixed.
        let z = self.sample_z(b, rng)?;
        let fake = self.g.forward_local(xu, &z, true)?.detach();
        let p_lab = Self::labelled_nll(&self.d.forward_t(&xl, true)?, &yl)?;
        let lse_u = log_sum_exp(&self.d.forward_t(xu, true)?)?;
        let lse_g = log_sum_exp(&self.d.forward_t(&fake, true)?)?;
        // -E log P(y <= K | x_u) - E log P(y = K+1 | G(x, z)).
        let p_unl = ((softplus(&lse_u)? - &lse_u)?.mean_all()? + softplus(&lse_g)?.mean_all()?)?;
        // The manifold penalty gets its own subset S of min(jac_subset, N) coordinates (the paper
        // samples coordinates only for the orthonormal prior; the N/s factor keeps eq. 8's scale).
        // Deviation: lambda applies to the unlabelled batch only (it already holds the labelled
        // images, so a labelled term would count them twice), and there is no validation split or
        // D-parameter EMA (which the authors' SSL code has); the final model is evaluated.
        let coords = self.reg.draw_subset(self.g.coord_dim(), rng);
        let manifold = if self.cfg.lambda > 0.0 {
            self.manifold_penalty(xu, &coords)?
        } else {
            Tensor::zeros((), DType::F32, &self.device)?
        };
        let p_loss = ((&p_lab + (&p_unl * self.cfg.w_unl)?)? + (&manifold * self.cfg.lambda)?)?;
        self.players[1].backward_step(&p_loss)?;

        // --- Generator step, eq. (9): K_G + L_G + Omega_G, classifier fixed.
        let z = self.sample_z(b, rng)?;
        let fake = self.g.forward_local(xu, &z, true)?;
        // The classifier's parameters are constants in G's loss (`nn::frozen`).
        let psi_real = self.d.features_t(xu, true)?.mean(0)?.detach();
        let psi_fake = nn::frozen(|| self.d.features_t(&fake, true))?.mean(0)?;
        // L_G: squared L2 of the mean-feature difference (paper; the authors' SSL code uses an L1 mean).
        // Deviation (the reduction of eq. 3's norms, applied to L_G): with `mean` (images) it is averaged over
        // the F features like the locality term is over pixels; summed over F = 128 it reached
        // hundreds against a mu * locality of a few units (README, SSL table).
        let fm = feature_matching(&psi_real, &psi_fake, self.reg.reduction.resolve(xu))?;
        // K_G at z ~ P_Z (paper; the authors' SSL code uses z = 0), (K+1)-way log-probabilities (Sec. 4).
        let zl = self.sample_z(b, rng)?;
        let gl = self.g.forward_local(&xl, &zl, true)?;
        let kg = Self::labelled_nll(&nn::frozen(|| self.d.forward_t(&gl, true))?, &yl)?;
        let t = self.reg.terms(&self.g, xu, rng, true)?;
        let mut st = StepStats::default();
        let extra = self.attached_penalties(xu, &fake, rng, &mut st)?;
        let g_loss = (((&kg + &fm)? + self.reg.value(&t)?)? + extra)?;
        self.players[0].backward_step(&g_loss)?;

        st.push_t("p_lab", &p_lab)?;
        st.push_t("p_unl", &p_unl)?;
        st.push_t("manifold", &manifold)?;
        st.push_t("g_fm", &fm)?;
        st.push_t("g_kg", &kg)?;
        st.push_t("locality", &t.locality)?;
        st.push_t("orth", &t.orth)?;
        Ok(st)
    }

    /// SSL: the (K+1)-way labelled loss over the whole labelled subset (eval mode).
    pub fn labelled_loss(&self) -> anyhow::Result<f64> {
        let lab = self.labelled.as_ref().context("labelled_loss: not an ssl run")?;
        Ok(Self::labelled_nll(&self.d.forward_t(&lab.x, false)?, &lab.y)?.to_scalar::<f32>()? as f64)
    }
}

/// The labelled subset: `labels` images balanced over the K classes (labels / K each, the
/// remainder to the first classes), a seeded draw independent of training.
fn pick_labelled(data: &Dataset, labels: usize, seed: u64, device: &Device) -> anyhow::Result<Labelled> {
    let y = data.labels.as_ref().with_context(|| format!("lgan ssl: dataset `{}` has no labels", data.name))?;
    let k = data.num_classes;
    if k < 2 {
        anyhow::bail!("lgan ssl: needs at least 2 classes, `{}` has {k}", data.name);
    }
    if labels < k {
        anyhow::bail!("lgan ssl: `labels` = {labels} is fewer than the {k} classes (at least one per class)");
    }
    let mut rng = Rng::derive(seed, "lgan-labelled");
    let perm = rng.permutation(data.len());
    let mut want: Vec<usize> = (0..k).map(|c| labels / k + usize::from(c < labels % k)).collect();
    let mut index = vec![];
    for i in perm {
        let c = y[i] as usize;
        if c < k && want[c] > 0 {
            want[c] -= 1;
            index.push(i);
        }
    }
    if want.iter().any(|&w| w > 0) {
        anyhow::bail!("lgan ssl: `{}` has too few images of some class for {labels} balanced labels", data.name);
    }
    let b = data.batch(&index, device)?;
    Ok(Labelled { x: b.x, y: b.y.context("labels")?, index })
}

/// L_G of eq. (9) from the mean features of the real and the generated batch (each (F,)):
/// ||psi_real - psi_fake||^2, divided by F under the `mean` reduction (see `step_ssl`).
pub fn feature_matching(psi_real: &Tensor, psi_fake: &Tensor, reduction: Reduction) -> candle_core::Result<Tensor> {
    let d2 = (psi_real - psi_fake)?.sqr()?;
    if reduction == Reduction::Mean { d2.mean_all() } else { d2.sum_all() }
}

impl Method for Lgan {
    fn step(&mut self, batch: &Batch, _step: usize, rng: &mut Rng) -> anyhow::Result<StepStats> {
        match self.mode {
            Mode::Gen => self.step_gen(batch, rng),
            Mode::Ssl => self.step_ssl(batch, rng),
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

    fn discriminator(&self) -> Option<&dyn ganfold_core::Discriminator> {
        Some(&self.d)
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
