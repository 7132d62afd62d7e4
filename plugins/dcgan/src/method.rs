//! The DCGAN training step: one discriminator update, then one non-saturating generator
//! update on the same fakes (Goodfellow et al. 2014, Radford et al. 2016), as in the PyTorch
//! reference step `scripts/bench/reference.py`.

use crate::config::DcganConfig;
use candle_core::{DType, Device, Tensor};
use ganfold_core::loss::bce_const;
use ganfold_core::nets::{Arch, ConvFit, Disc, Gen};
use ganfold_core::nn::{self, VarStore};
use ganfold_core::{
    Batch, BuildContext, Discriminator, Generator, Method, Player, RegContext, Regularizer, Rng, SampleShape, StepStats,
};

pub struct Dcgan {
    pub cfg: DcganConfig,
    pub g: Gen,
    pub d: Disc,
    /// The generator's and the discriminator's weights with their optimizers.
    pub players: [Player; 2],
    regs: Vec<(f64, Box<dyn Regularizer>)>,
    device: Device,
}

pub fn build(cx: &BuildContext<'_>) -> anyhow::Result<Box<dyn Method>> {
    let cfg: DcganConfig = ganfold_core::config::parse(cx.config, "dcgan")?;
    cfg.validate()?;
    Ok(Box::new(Dcgan::new(cfg, cx.shape(), cx.device, cx.seed)?))
}

impl Dcgan {
    pub fn new(cfg: DcganConfig, shape: SampleShape, device: &Device, seed: u64) -> anyhow::Result<Self> {
        let g_vs = VarStore::new(DType::F32, device, Rng::derive(seed, "init-g"));
        let d_vs = VarStore::new(DType::F32, device, Rng::derive(seed, "init-d"));
        let arch = Arch::choose(cfg.arch, shape, ConvFit::Only28, "dcgan")?;
        let g = Gen::new(arch, shape, cfg.latent_dim, cfg.ngf, cfg.hidden, g_vs.root())?;
        let d = Disc::new(arch, cfg.ndf, cfg.hidden, d_vs.root())?;
        let players = [Player::new("g", g_vs, cfg.opt_g)?, Player::new("d", d_vs, cfg.opt_d)?];
        let regs = ganfold_core::registry::build_regularizers(&cfg.regularizers)?;
        Ok(Self { cfg, g, d, players, regs, device: device.clone() })
    }

    fn noise(&self, n: usize, rng: &mut Rng) -> candle_core::Result<Tensor> {
        rng.randn((n, self.cfg.latent_dim), 0.0, 1.0, &self.device)
    }
}

impl Method for Dcgan {
    fn step(&mut self, batch: &Batch, _step: usize, rng: &mut Rng) -> anyhow::Result<StepStats> {
        let b = batch.x.dim(0)?;
        let z = self.noise(b, rng)?;
        let fake = self.g.forward_t(&z, true)?;

        // Discriminator: max log D(x) + log(1 - D(G(z))).
        let d_real = self.d.forward_t(&batch.x, true)?;
        let d_fake = self.d.forward_t(&fake.detach(), true)?;
        let d_loss = (bce_const(&d_real, true)? + bce_const(&d_fake, false)?)?;
        self.players[1].backward_step(&d_loss)?;

        // Generator: non-saturating -log D(G(z)), plus any attached regularizers. D's parameters
        // are constants here (`nn::frozen`): their gradients would be discarded.
        let (logit, feats) = nn::frozen(|| -> candle_core::Result<_> {
            if self.regs.is_empty() {
                Ok((self.d.forward_t(&fake, true)?, None))
            } else {
                let f = self.d.features_t(&fake, true)?;
                Ok((self.d.head(&f)?, Some(f)))
            }
        })?;
        let adv = bce_const(&logit, true)?;
        let mut cx = RegContext { real: &batch.x, fake: Some(&fake), fake_features: feats.as_ref(), local: None, rng };
        let mut reg_stats = StepStats::default();
        let g_loss = match ganfold_core::registry::weighted_penalties(&self.regs, &mut cx, &mut reg_stats)? {
            Some(p) => (&adv + p)?,
            None => adv.clone(),
        };
        let mut stats = StepStats::default();
        self.players[0].backward_step(&g_loss)?;

        stats.push_t("d_loss", &d_loss)?;
        stats.push_t("g_loss", &g_loss)?;
        stats.push_t("d_real", &candle_nn::ops::sigmoid(&d_real)?.mean_all()?)?;
        stats.push_t("d_fake", &candle_nn::ops::sigmoid(&d_fake)?.mean_all()?)?;
        stats.0.extend(reg_stats.0);
        Ok(stats)
    }

    fn sample(&self, n: usize, rng: &mut Rng) -> anyhow::Result<Tensor> {
        let z = self.noise(n, rng)?;
        Ok(self.g.forward_t(&z, false)?)
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

    fn discriminator(&self) -> Option<&dyn Discriminator> {
        Some(self)
    }
}

impl Generator for Dcgan {
    fn latent_dim(&self) -> usize {
        self.cfg.latent_dim
    }
    fn generate(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        self.g.forward_t(z, false)
    }
}

impl Discriminator for Dcgan {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.d.forward_t(x, train)
    }
    fn features_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.d.features_t(x, train)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use ganfold_core::nets::ArchChoice;

    fn tiny(shape: SampleShape) -> Dcgan {
        let cfg = DcganConfig { latent_dim: 8, ngf: 4, ndf: 4, hidden: 16, ..Default::default() };
        Dcgan::new(cfg, shape, &Device::Cpu, 0).unwrap()
    }

    #[test]
    fn shapes_for_images_and_points() -> anyhow::Result<()> {
        let m = tiny(SampleShape::Image { c: 3, h: 28, w: 28 });
        assert_eq!(m.sample(5, &mut Rng::new(0))?.dims(), &[5, 3, 28, 28]);
        let x = Rng::new(1).randn((5, 3, 28, 28), 0.0, 1.0, &Device::Cpu)?;
        assert_eq!(Discriminator::forward_t(&m, &x, false)?.dims(), &[5, 1]);
        assert_eq!(Discriminator::features_t(&m, &x, false)?.dims(), &[5, 2 * 4 * 49]);
        let p = tiny(SampleShape::Points { dim: 2 });
        assert_eq!(p.sample(7, &mut Rng::new(0))?.dims(), &[7, 2]);
        let err = Dcgan::new(
            DcganConfig { arch: ArchChoice::Conv, ..Default::default() },
            SampleShape::Points { dim: 2 },
            &Device::Cpu,
            0,
        );
        assert!(err.is_err_and(|e| e.to_string().contains("28x28")));
        Ok(())
    }

    /// The D loss (on detached fakes) reaches only D's parameters; the G loss reaches G's.
    #[test]
    fn each_loss_reaches_its_own_player() -> anyhow::Result<()> {
        let m = tiny(SampleShape::Image { c: 1, h: 28, w: 28 });
        let mut rng = Rng::new(3);
        let x = rng.randn((4, 1, 28, 28), 0.0, 0.5, &Device::Cpu)?;
        let fake = m.g.forward_t(&m.noise(4, &mut rng)?, true)?;
        let d_loss =
            (bce_const(&m.d.forward_t(&x, true)?, true)? + bce_const(&m.d.forward_t(&fake.detach(), true)?, false)?)?;
        let grads = d_loss.backward()?;
        assert!(m.players[1].vs().trainable_vars().iter().all(|(_, v)| grads.get(v.as_tensor()).is_some()));
        assert!(m.players[0].vs().trainable_vars().iter().all(|(_, v)| grads.get(v.as_tensor()).is_none()));
        let g_loss = bce_const(&m.d.forward_t(&fake, true)?, true)?;
        let grads = g_loss.backward()?;
        assert!(m.players[0].vs().trainable_vars().iter().all(|(_, v)| grads.get(v.as_tensor()).is_some()));
        Ok(())
    }

    /// With D fixed, the G step moves only G; a whole step moves both and stays finite.
    #[test]
    fn a_step_trains_both_players_and_save_load_round_trips() -> anyhow::Result<()> {
        let data = ganfold_core::data::load("ring8", 0)?;
        let mut m = tiny(data.shape);
        let before_g =
            m.players[0].vs().tensors().values().map(|t| t.copy()).collect::<candle_core::Result<Vec<_>>>()?;
        let batch = data.batch(&(0..16).collect::<Vec<_>>(), &Device::Cpu)?;
        let st = m.step(&batch, 0, &mut Rng::new(0))?;
        assert!(st.non_finite().is_none() && st.get("d_loss").is_some() && st.get("g_loss").is_some());
        let moved = m.players[0]
            .vs()
            .tensors()
            .values()
            .zip(&before_g)
            .any(|(a, b)| (a - b).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
        assert!(moved, "the generator was updated");
        let saved = m.save()?;
        let mut other = tiny(data.shape);
        other.load(&saved)?;
        let (a, b) = (m.sample(4, &mut Rng::new(9))?, other.sample(4, &mut Rng::new(9))?);
        assert_eq!(a.to_vec2::<f32>()?, b.to_vec2::<f32>()?);
        Ok(())
    }

    /// Configs written with the earlier key names (run directories, published models) load.
    #[test]
    fn old_key_names_are_accepted() -> anyhow::Result<()> {
        let old = "[train]\nmethod = \"dcgan\"\n[method]\nnz = 7\nlr_g = 0.001\nbeta1 = 0.4\n";
        let mut cfg = ganfold_core::RunConfig::from_toml(old, None)?;
        let parsed: DcganConfig = ganfold_core::config::parse(&cfg.method, "dcgan")?;
        assert_eq!((parsed.latent_dim, parsed.opt_g.lr, parsed.opt_d.lr), (7, 0.001, 2e-4));
        assert_eq!((parsed.opt_g.beta1, parsed.opt_d.beta1), (0.4, 0.4));
        cfg.set("beta2=0.9")?;
        cfg.set("method.nz=3")?;
        let parsed: DcganConfig = ganfold_core::config::parse(&cfg.method, "dcgan")?;
        assert_eq!((parsed.latent_dim, parsed.opt_g.beta2, parsed.opt_d.beta2), (3, 0.9, 0.9));
        let both = "[train]\nmethod = \"dcgan\"\n[method]\nnz = 7\nlatent_dim = 8\n";
        assert!(ganfold_core::RunConfig::from_toml(both, None).is_err());
        Ok(())
    }
}
