//! The MMGAN training step (our executable reading of Alg. 1 with Eqs. 6 and 10) and its state.

use crate::config::{DBatch, KernelKind, MmganConfig, Objective};
use crate::manifold::{self, Kernel, Space};
use crate::model::{MmDiscriminator, MmGenerator};
use crate::regularizer::{Correlation, CorrelationConfig};
use anyhow::{Context, bail};
use candle_core::{Device, Tensor};
use ganfold_core::nn;
use ganfold_core::{
    Batch, BuildContext, Dataset, Discriminator, Generator, Method, MethodState, Player, RegContext, Regularizer, Rng,
    SampleShape, StepStats,
};
use std::path::{Path, PathBuf};

/// The four moving-average quantities of Alg. 1 (c_Y, l_Y, c_X, l_X), each `None` until its
/// first commit (one "initialised" flag per quantity, so that with several G steps per
/// iteration the real and fake sides still start and decay together).
#[derive(Clone, Debug, Default)]
pub struct EmaState {
    pub c_y: Option<Tensor>,
    pub l_y: Option<Tensor>,
    pub c_x: Option<Tensor>,
    pub l_x: Option<Tensor>,
    /// Smoothed kernel bandwidth denominator 2 sigma^2 (median heuristic; the paper gives no bandwidth).
    pub den: Option<f64>,
}

pub struct Mmgan {
    pub cfg: MmganConfig,
    pub g: MmGenerator,
    pub d: MmDiscriminator,
    /// G's and D's variables with their optimizers.
    players: [Player; 2],
    corr: Correlation,
    pub ema: EmaState,
    shape: SampleShape,
    device: Device,
}

pub fn build(cx: &BuildContext<'_>) -> anyhow::Result<Box<dyn Method>> {
    let cfg: MmganConfig = ganfold_core::config::parse(cx.config, "mmgan")?;
    Ok(Box::new(Mmgan::new(cfg, cx)?))
}

impl Mmgan {
    pub fn new(cfg: MmganConfig, cx: &BuildContext<'_>) -> anyhow::Result<Self> {
        cfg.validate()?;
        let shape = cx.shape();
        if cx.batch_size < 2 {
            bail!("mmgan: batch_size must be at least 2 (radii and R_G need several samples)");
        }
        let z_dim = match (cfg.latent_dim, shape) {
            (0, SampleShape::Points { .. }) => 16, // our choice for 2-D toys
            (0, SampleShape::Image { .. }) => 100, // as carpedm20/DCGAN-tensorflow
            (z, _) => z,
        };
        let g = MmGenerator::new(shape, z_dim, cfg.hidden, cx.device, cx.init_rng("g"))?;
        let d = MmDiscriminator::new(shape, cfg.hidden, cx.device, cx.init_rng("d"))?;
        // The players hold handles to the networks' own stores.
        let players = [Player::new("g", g.vs.clone(), cfg.opt_g)?, Player::new("d", d.vs.clone(), cfg.opt_d)?];
        let corr = Correlation::new(CorrelationConfig { center: cfg.corr_center, eps: cfg.eps })?;
        Ok(Self { cfg, g, d, players, corr, ema: EmaState::default(), shape, device: cx.device.clone() })
    }

    /// p(z) (not given in the paper): N(0, I) for 2-D toys (our choice); U(-1, 1) for images, as
    /// in `carpedm20/DCGAN-tensorflow`, which the paper forked.
    fn sample_z(&self, n: usize, rng: &mut Rng) -> candle_core::Result<Tensor> {
        let z = self.g.latent_dim();
        match self.shape {
            SampleShape::Points { .. } => rng.randn((n, z), 0.0, 1.0, &self.device),
            SampleShape::Image { .. } => rng.rand((n, z), -1.0, 1.0, &self.device),
        }
    }

    /// The manifold space of this iteration (kernel bandwidth fixed or from `ema.den`).
    pub fn space(&self) -> Space {
        let den =
            if self.cfg.sigma > 0.0 { 2.0 * self.cfg.sigma * self.cfg.sigma } else { self.ema.den.unwrap_or(1.0) };
        match self.cfg.kernel {
            KernelKind::Plain => Space::Plain,
            KernelKind::Linear => Space::Kernel(Kernel::Linear),
            KernelKind::Rbf => Space::Kernel(Kernel::Rbf { den }),
            KernelKind::Exp => Space::Kernel(Kernel::Exp { den }),
        }
    }

    /// The paper gives no bandwidth: median heuristic from the detached D-step features,
    /// EMA-smoothed with delta so that the EMA of l_K does not mix very different scales.
    fn update_bandwidth(&mut self, y: &Tensor, x: &Tensor) -> anyhow::Result<()> {
        let squared = match self.cfg.kernel {
            KernelKind::Rbf => true,
            KernelKind::Exp => false,
            _ => return Ok(()),
        };
        if self.cfg.sigma > 0.0 {
            return Ok(());
        }
        // Floor: all-equal features (dead units) would give a zero bandwidth. Not in the paper.
        let m = manifold::median_pairwise(y, x, squared)?.max(1e-6);
        self.ema.den = Some(match self.ema.den {
            None => m,
            Some(old) => self.cfg.delta * old + (1.0 - self.cfg.delta) * m,
        });
        Ok(())
    }

    /// D on the real and the generated batch: ((logits, f_D) of real, (logits, f_D) of fake), in
    /// one pass over `[real; fake]` or in two (`d_batch`, see the config for why joint is the default).
    pub(crate) fn embed(&self, real: &Tensor, fake: &Tensor) -> anyhow::Result<((Tensor, Tensor), (Tensor, Tensor))> {
        Ok(match self.cfg.d_batch {
            DBatch::Separate => (self.d.forward_feat(real, true)?, self.d.forward_feat(fake, true)?),
            DBatch::Joint => {
                let n = real.dim(0)?;
                let m = fake.dim(0)?;
                let (logit, f) = self.d.forward_feat(&Tensor::cat(&[real, fake], 0)?, true)?;
                ((logit.narrow(0, 0, n)?, f.narrow(0, 0, n)?), (logit.narrow(0, n, m)?, f.narrow(0, n, m)?))
            }
        })
    }

    /// D on the generated batch alone for the G step: the real half of a joint pass only supplies
    /// BatchNorm statistics, the separate mode needs no real pass.
    fn fake_logits_features(&self, real: &Tensor, fake: &Tensor) -> anyhow::Result<(Tensor, Tensor)> {
        Ok(match self.cfg.d_batch {
            DBatch::Separate => self.d.forward_feat(fake, true)?,
            DBatch::Joint => self.embed(real, fake)?.1,
        })
    }

    fn fake_features(&self, real: &Tensor, fake: &Tensor) -> anyhow::Result<Tensor> {
        Ok(self.fake_logits_features(real, fake)?.1)
    }

    fn rg(&self, real: &Tensor, fake: &Tensor, feats: &Tensor, rng: &mut Rng) -> anyhow::Result<Tensor> {
        let mut rc = RegContext { real, fake: Some(fake), fake_features: Some(feats), local: None, rng };
        self.corr.penalty(&mut rc)
    }

    fn step_gan(&mut self, real: &Tensor, z: &Tensor, x_img: &Tensor) -> anyhow::Result<StepStats> {
        let ((lr, y), (lf, x)) = self.embed(real, &x_img.detach())?;
        let d_loss = (ganfold_core::loss::bce_const(&lr, true)? + ganfold_core::loss::bce_const(&lf, false)?)?;
        self.players[1].backward_step(&d_loss)?;
        let mut g_loss = None;
        for _ in 0..self.cfg.g_steps_per_iter {
            let fake = self.g.forward_t(z, true)?;
            let lf = nn::frozen(|| self.fake_logits_features(real, &fake))?.0;
            let l = ganfold_core::loss::bce_const(&lf, true)?; // non-saturating -log D(G(z))
            self.players[0].backward_step(&l)?;
            g_loss = Some(l);
        }
        let mut st = StepStats::default();
        st.push_t("d_loss", &d_loss)?;
        st.push_t("g_loss", g_loss.as_ref().context("no G step")?)?;
        // Not trained on: the same R_G diagnostics as MMGAN logs, for comparison.
        st.push_t("r_g", &self.corr.of(&x.detach())?)?;
        st.push_t("r_g_real", &self.corr.of(&y.detach())?)?;
        Ok(st)
    }
}

fn scalar(t: &Tensor) -> anyhow::Result<f64> {
    Ok(t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?)
}

impl Method for Mmgan {
    fn step(&mut self, batch: &Batch, _step: usize, rng: &mut Rng) -> anyhow::Result<StepStats> {
        let real = &batch.x;
        let n = real.dim(0)?;
        if n < 2 {
            bail!("mmgan: a batch of {n} sample(s); radii and R_G need at least 2");
        }
        // Alg. 1 lines 4-5. The same z is reused in the G step (the paper does not
        // say; the DCGAN fork reuses its z batch).
        let z = self.sample_z(n, rng)?;
        let x_img = self.g.forward_t(&z, true)?;
        if self.cfg.objective == Objective::Gan {
            return self.step_gan(real, &z, &x_img);
        }
        let (eps, delta, beta) = (self.cfg.eps, self.cfg.delta, self.cfg.beta);

        // ---- Alg. 1 line 6: D step on L_D^final = L_orig - L_G^final (Eq. 6, 10).
        let ((logit_r, y), (logit_f, x)) = self.embed(real, &x_img.detach())?;
        // L_orig is D's BCE loss (-V of Eq. 1): only then is L_D = L_orig - L_G adversarial (Eq. 6).
        let l_orig =
            (ganfold_core::loss::bce_const(&logit_r, true)? + ganfold_core::loss::bce_const(&logit_f, false)?)?;
        self.update_bandwidth(&y, &x)?;
        let space = self.space();
        let (c_ym, l_ym) = manifold::batch_stats(space, &y, eps)?;
        let (c_xm, l_xm) = manifold::batch_stats(space, &x, eps)?;
        // Tentative composite delta*stored + (1-delta)*batch, not stored: with the stored EMA
        // alone, -L_G would give D no gradient (the paper does not say how D sees the EMA).
        let e = &self.ema;
        let m_d = manifold::manifold_loss(
            space,
            self.cfg.alpha,
            &manifold::ema(e.c_y.as_ref(), &c_ym, delta)?,
            &manifold::ema(e.l_y.as_ref(), &l_ym, delta)?,
            &manifold::ema(e.c_x.as_ref(), &c_xm, delta)?,
            &manifold::ema(e.l_x.as_ref(), &l_xm, delta)?,
            eps,
        )?;
        let mut lg_final_d = m_d.clone();
        if beta > 0.0 && self.cfg.d_maximizes_rg {
            // Eq. (10) read literally: D maximises beta R_G too.
            lg_final_d = (lg_final_d + (self.rg(real, &x_img, &x, rng)? * beta)?)?;
        }
        let d_loss = (&l_orig - &lg_final_d)?;
        self.players[1].backward_step(&d_loss)?;

        // ---- Alg. 1 lines 7-8: commit the real side, re-embedded with the updated D
        // (Alg. 1 places the commit after D's step).
        let y2 = match self.cfg.d_batch {
            DBatch::Separate => self.d.forward_feat(real, true)?.1,
            DBatch::Joint => self.embed(real, &x_img.detach())?.0.1,
        }
        .detach();
        let (c_ym2, l_ym2) = manifold::batch_stats(space, &y2, eps)?;
        // R_G of the real batch: the level of decorrelation G should reach, not go below.
        let r_g_real = self.corr.of(&y2)?;
        let c_y = manifold::ema(self.ema.c_y.as_ref(), &c_ym2, delta)?.detach();
        let l_y = manifold::ema(self.ema.l_y.as_ref(), &l_ym2, delta)?.detach();
        self.ema.c_y = Some(c_y.clone());
        self.ema.l_y = Some(l_y.clone());

        // ---- Alg. 1 lines 9-11: fake-side EMA kept in the graph for the G step(s).
        // Every G step blends with the same stored c_X, l_X; one commit per iteration, so both
        // sides decay at the same rate whatever `g_steps_per_iter` is.
        let mut last = None;
        for _ in 0..self.cfg.g_steps_per_iter {
            let x_img = self.g.forward_t(&z, true)?;
            // D's parameters are constants in G's loss (`nn::frozen`): their gradients would be discarded.
            let x2 = nn::frozen(|| self.fake_features(real, &x_img))?;
            let (c_xm2, l_xm2) = manifold::batch_stats(space, &x2, eps)?;
            let c_x = manifold::ema(self.ema.c_x.as_ref(), &c_xm2, delta)?;
            let l_x = manifold::ema(self.ema.l_x.as_ref(), &l_xm2, delta)?;
            let m_g = manifold::manifold_loss(space, self.cfg.alpha, &c_y, &l_y, &c_x, &l_x, eps)?;
            let r_g = self.rg(real, &x_img, &x2, rng)?;
            let g_loss = if beta > 0.0 { (&m_g + (&r_g * beta)?)? } else { m_g.clone() };
            self.players[0].backward_step(&g_loss)?;
            last = Some((c_x.detach(), l_x.detach(), g_loss, m_g, r_g));
        }
        let (c_x, l_x, g_loss, m_g, r_g) = last.context("no G step")?;
        self.ema.c_x = Some(c_x.clone());
        self.ema.l_x = Some(l_x.clone());

        let mut st = StepStats::default();
        st.push_t("d_loss", &d_loss)?;
        st.push_t("g_loss", &g_loss)?;
        st.push_t("l_orig", &l_orig)?;
        st.push_t("manifold", &m_g)?;
        st.push_t("r_g", &r_g)?;
        st.push_t("r_g_real", &r_g_real)?;
        // The center term of Eq. (5)/(8) and the two radii, on the committed moving averages.
        st.push("center_dist", scalar(&manifold::center_term(space, &c_y, &c_x, eps)?)?);
        st.push("radius_real", scalar(&l_y)?);
        st.push("radius_fake", scalar(&l_x)?);
        if let Some(den) = self.ema.den {
            st.push("bandwidth", den);
        }
        Ok(st)
    }

    fn sample(&self, n: usize, rng: &mut Rng) -> anyhow::Result<Tensor> {
        let z = self.sample_z(n, rng)?;
        Ok(self.g.generate(&z)?)
    }

    fn players(&self) -> Vec<&Player> {
        self.players.iter().collect()
    }

    fn players_mut(&mut self) -> Vec<&mut Player> {
        self.players.iter_mut().collect()
    }

    /// The moving averages (`ema.*`) and the kernel bandwidth.
    fn extra_state(&self) -> anyhow::Result<MethodState> {
        let mut tensors = std::collections::BTreeMap::new();
        // Radii are scalars; stored as (1,) tensors.
        for (k, v) in [
            ("ema.c_y", &self.ema.c_y),
            ("ema.l_y", &self.ema.l_y),
            ("ema.c_x", &self.ema.c_x),
            ("ema.l_x", &self.ema.l_x),
        ] {
            if let Some(t) = v {
                let t = if t.rank() == 0 { t.reshape(1)? } else { t.copy()? };
                tensors.insert(k.to_string(), t);
            }
        }
        // f64 bits, so that the bandwidth survives JSON exactly (bit-exact resume).
        let meta = serde_json::json!({
            "den_bits": self.ema.den.map(f64::to_bits),
        });
        Ok(MethodState { tensors, meta })
    }

    fn load_extra_state(&mut self, state: &MethodState) -> anyhow::Result<()> {
        let dfeat = self.d.feat_dim();
        let get = |k: &str, centre: bool| -> anyhow::Result<Option<Tensor>> {
            let Some(v) = state.tensors.get(k) else { return Ok(None) };
            let want: &[usize] = if centre { &[1, dfeat] } else { &[1] };
            if v.dims() != want {
                bail!("mmgan state: tensor `{k}` has shape {:?}, expected {want:?}", v.dims());
            }
            if v.dtype() != candle_core::DType::F32 {
                bail!("mmgan state: tensor `{k}` has dtype {:?}, expected F32", v.dtype());
            }
            let v = v.to_device(&self.device)?;
            Ok(Some(if centre { v } else { v.squeeze(0)? }))
        };
        self.ema = EmaState {
            c_y: get("ema.c_y", true)?,
            l_y: get("ema.l_y", false)?,
            c_x: get("ema.c_x", true)?,
            l_x: get("ema.l_x", false)?,
            den: state.meta.get("den_bits").and_then(|v| v.as_u64()).map(f64::from_bits),
        };
        Ok(())
    }

    fn generator(&self) -> Option<&dyn Generator> {
        Some(&self.g)
    }

    fn discriminator(&self) -> Option<&dyn Discriminator> {
        Some(&self.d)
    }

    /// `manifold_stats.png` and `samples.png` (`figures.rs`).
    fn figures(&self, dir: &Path, data: &Dataset, rng: &mut Rng) -> anyhow::Result<Vec<PathBuf>> {
        self.write_figures(dir, data, rng)
    }
}
