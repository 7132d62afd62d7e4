//! WGAN-GP's Algorithm 1 (Gulrajani et al. 2017): per generator update, `n_critic` critic
//! updates, each on its own real batch (the trainer hands them in: `batches_per_step`), with
//! the loss D(x~) - D(x) + lambda (|grad D(x^)| - 1)^2 at x^ = e x + (1 - e) x~, e ~ U[0, 1] per
//! sample (Eq. 3); then one generator update on -D(G(z)).

use crate::config::WganGpConfig;
use candle_core::{DType, Device, Module, Tensor, Var};
use ganfold_core::nets::{self, Arch, ConvFit, Gen, MlpDiscriminator};
use ganfold_core::nn::{self, ConvCfg, Init, Linear, VarStore, VsPath};
use ganfold_core::{Batch, BuildContext, Generator, Method, Player, Purpose, Rng, SampleShape, StepStats};

/// The critic: the DCGAN discriminator's two stride-2 convolutions (each with its bias and leaky
/// ReLU fused in one op) and a linear head, without batch norm (Sec. 4); an MLP for points.
pub enum Critic {
    Conv { c1: nn::Conv2d, c2: nn::Conv2d, fc: Linear },
    Mlp(MlpDiscriminator),
}

impl Critic {
    pub fn new(arch: Arch, ndf: usize, hidden: usize, vs: VsPath) -> candle_core::Result<Self> {
        let s2 = ConvCfg::new(2, 1);
        Ok(match arch {
            Arch::Conv { c, h, w } => Critic::Conv {
                c1: nn::conv2d(c, ndf, 4, s2, true, Init::DCGAN, vs.pp("c1"))?,
                c2: nn::conv2d(ndf, 2 * ndf, 4, s2, true, Init::DCGAN, vs.pp("c2"))?,
                fc: nn::linear_with(2 * ndf * (h / 4) * (w / 4), 1, true, Init::DCGAN, vs.pp("fc"))?,
            },
            Arch::Mlp { dim } => Critic::Mlp(nets::mlp_discriminator(dim, hidden, vs)?),
        })
    }

    /// Scores (B, 1); higher is "more real".
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Critic::Conv { c1, c2, fc } => {
                let h = c2.forward_act(&c1.forward_act(x, 0.2)?, 0.2)?;
                fc.forward(&h.flatten_from(1)?)
            }
            Critic::Mlp(d) => d.forward_t(x, true),
        }
    }
}

pub struct WganGp {
    pub cfg: WganGpConfig,
    pub g: Gen,
    pub critic: Critic,
    /// The generator's and the critic's weights with their optimizers.
    pub players: [Player; 2],
    device: Device,
}

pub fn build(cx: &BuildContext<'_>) -> anyhow::Result<Box<dyn Method>> {
    let cfg: WganGpConfig = ganfold_core::config::parse(cx.config, "wgan-gp")?;
    cfg.validate()?;
    // Only training differentiates the penalty's gradient; a finished run loads without it.
    if cx.purpose == Purpose::Train {
        nn::require_second_order("wgan-gp's gradient penalty")?;
    }
    Ok(Box::new(WganGp::new(cfg, cx.shape(), cx.device, cx.seed)?))
}

impl WganGp {
    pub fn new(cfg: WganGpConfig, shape: SampleShape, device: &Device, seed: u64) -> anyhow::Result<Self> {
        Self::with_dtype(cfg, shape, device, seed, DType::F32)
    }

    /// In another float type (the tests check gradients in f64).
    pub fn with_dtype(
        cfg: WganGpConfig,
        shape: SampleShape,
        device: &Device,
        seed: u64,
        dtype: DType,
    ) -> anyhow::Result<Self> {
        let g_vs = VarStore::new(dtype, device, Rng::derive(seed, "init-g"));
        let d_vs = VarStore::new(dtype, device, Rng::derive(seed, "init-d"));
        let arch = Arch::choose(cfg.arch, shape, ConvFit::Only28, "wgan-gp")?;
        let g = Gen::new(arch, shape, cfg.latent_dim, cfg.ngf, cfg.hidden, g_vs.root())?;
        let critic = Critic::new(arch, cfg.ndf, cfg.hidden, d_vs.root())?;
        let players = [Player::new("g", g_vs, cfg.opt_g)?, Player::new("d", d_vs, cfg.opt_d)?];
        Ok(Self { cfg, g, critic, players, device: device.clone() })
    }

    fn noise(&self, n: usize, rng: &mut Rng) -> candle_core::Result<Tensor> {
        rng.randn((n, self.cfg.latent_dim), 0.0, 1.0, &self.device)
    }

    /// lambda · mean_b (|dD/dx^_b| - 1)^2 on the interpolates of `real` and `fake` (Eq. 3),
    /// differentiable in the critic's parameters.
    pub fn gradient_penalty(&self, real: &Tensor, fake: &Tensor, rng: &mut Rng) -> anyhow::Result<Tensor> {
        let b = real.dim(0)?;
        let mut e_shape = vec![b];
        e_shape.resize(real.rank(), 1);
        let e = rng.rand(e_shape, 0.0, 1.0, &self.device)?.to_dtype(real.dtype())?;
        let mix = (real.broadcast_mul(&e)? + fake.broadcast_mul(&(1.0 - &e)?)?)?;
        let x_hat = Var::from_tensor(&mix)?;
        let grads = self.critic.forward(x_hat.as_tensor())?.sum_all()?.backward()?;
        let g = grads.get(x_hat.as_tensor()).ok_or_else(|| anyhow::anyhow!("the critic ignores its input"))?;
        let norm = g.sqr()?.flatten_from(1)?.sum(1)?.sqrt()?;
        Ok(((norm - 1.0)?.sqr()?.mean_all()? * self.cfg.lambda)?)
    }
}

impl Method for WganGp {
    fn batches_per_step(&self) -> usize {
        self.cfg.n_critic
    }

    fn step(&mut self, batch: &Batch, step: usize, rng: &mut Rng) -> anyhow::Result<StepStats> {
        self.step_batches(std::slice::from_ref(batch), step, rng)
    }

    fn step_batches(&mut self, batches: &[Batch], _step: usize, rng: &mut Rng) -> anyhow::Result<StepStats> {
        let mut stats = StepStats::default();
        let (mut w_dist, mut gp) = (0.0, 0.0);
        for batch in batches {
            let b = batch.x.dim(0)?;
            let fake = self.g.forward_t(&self.noise(b, rng)?, true)?.detach();
            let wasserstein = (self.critic.forward(&batch.x)?.mean_all()? - self.critic.forward(&fake)?.mean_all()?)?;
            let penalty = self.gradient_penalty(&batch.x, &fake, rng)?;
            let d_loss = (&penalty - &wasserstein)?;
            self.players[1].backward_step(&d_loss)?;
            w_dist += wasserstein.to_scalar::<f32>()? as f64 / batches.len() as f64;
            gp += penalty.to_scalar::<f32>()? as f64 / batches.len() as f64;
        }
        let b = batches[0].x.dim(0)?;
        let fake = self.g.forward_t(&self.noise(b, rng)?, true)?;
        // The critic's parameters are constants in G's loss: their gradients would be discarded.
        let g_loss = nn::frozen(|| self.critic.forward(&fake))?.mean_all()?.neg()?;
        self.players[0].backward_step(&g_loss)?;
        stats.push("d_loss", gp - w_dist);
        stats.push("g_loss", g_loss.to_scalar::<f32>()? as f64);
        stats.push("wasserstein", w_dist);
        stats.push("gp", gp);
        Ok(stats)
    }

    fn sample(&self, n: usize, rng: &mut Rng) -> anyhow::Result<Tensor> {
        Ok(self.g.forward_t(&self.noise(n, rng)?, false)?)
    }

    fn players(&self) -> Vec<&Player> {
        self.players.iter().collect()
    }

    fn players_mut(&mut self) -> Vec<&mut Player> {
        self.players.iter_mut().collect()
    }

    fn generator(&self) -> Option<&dyn Generator> {
        Some(self)
    }
}

impl Generator for WganGp {
    fn latent_dim(&self) -> usize {
        self.cfg.latent_dim
    }
    fn generate(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        self.g.forward_t(z, false)
    }
}
