//! Improved-GAN's semi-supervised training step (Salimans et al. 2016, Sec. 3.1 and 5), as the
//! authors' MNIST code runs it.

use crate::config::ImprovedGanConfig;
use crate::model::FmGen;
use candle_core::{DType, Device, Tensor};
use ganfold_core::loss::{cross_entropy, log_sum_exp, softplus};
use ganfold_core::nn::{self, VarStore};
use ganfold_core::ssl::SslClassifier;
use ganfold_core::{Batch, BuildContext, Dataset, Generator, Method, MethodState, Player, Rng, StepStats};
use std::path::{Path, PathBuf};

/// The generator and the K-class classifier (the discriminator), with the moving average of its
/// weights that is tested.
pub struct ImprovedGan {
    cfg: ImprovedGanConfig,
    device: Device,
    g: FmGen,
    clf: SslClassifier,
    players: [Player; 2],
    /// The training images: G's feature-matching batch is drawn from them independently of the
    /// classifier's unlabelled batch, as the authors draw it.
    data: Dataset,
}

/// Registry constructor.
pub fn build(cx: &BuildContext<'_>) -> anyhow::Result<Box<dyn Method>> {
    Ok(Box::new(ImprovedGan::new(cx)?))
}

impl ImprovedGan {
    pub fn new(cx: &BuildContext<'_>) -> anyhow::Result<Self> {
        let cfg: ImprovedGanConfig = ganfold_core::config::parse(cx.config, "improved-gan")?;
        cfg.validate()?;
        let data = cx.data;
        let g_vs = VarStore::new(DType::F32, cx.device, cx.init_rng("g"));
        let g = FmGen::new(cfg.latent_dim, cfg.gen_width, &data.shape.dims(), g_vs.root())?;
        let d_vs = VarStore::new(DType::F32, cx.device, cx.init_rng("d"));
        let clf = SslClassifier::new(data, &cfg.ssl(), &d_vs, cx.seed, cx.batch_size, cx.device, "improved-gan")?;
        let players = [Player::new("g", g_vs, cfg.opt_g)?, Player::new("d", d_vs, cfg.opt_d)?];
        Ok(Self { cfg, device: cx.device.clone(), g, clf, players, data: data.clone() })
    }

    /// z ~ U(0, 1)^latent_dim (the authors' noise).
    fn noise(&self, b: usize, rng: &mut Rng) -> candle_core::Result<Tensor> {
        rng.rand((b, self.cfg.latent_dim), 0.0, 1.0, &self.device)
    }

    /// The classification error on `rows` of `data`, tested without noise; `avg`: on the
    /// averaged weights.
    pub fn error(&self, data: &Dataset, rows: &[usize], avg: bool) -> anyhow::Result<f64> {
        self.clf.error(data, rows, avg)
    }

    /// The validation curve: (step, error of the weights, error of their average).
    pub fn curve(&self) -> &[(usize, f64, f64)] {
        self.clf.curve()
    }
}

impl Method for ImprovedGan {
    fn step(&mut self, batch: &Batch, step: usize, rng: &mut Rng) -> anyhow::Result<StepStats> {
        let xu = &batch.x;
        let b = xu.dim(0)?;
        let (xl, yl) = self.clf.labelled.batch(b, rng)?;
        let mut st = StepStats::default();

        // Classifier: L_lab + w L_unl. With the fake logit fixed at 0, log p(y | x) =
        // l_y - lse(l), log D(x) = lse(l) - softplus(lse(l)), log(1 - D(x)) = -softplus(lse(l)).
        // One noisy pass over the labelled, unlabelled and generated rows (the classifier has no
        // batch statistics, so this equals three passes and costs one).
        let w = self.cfg.unlabelled_weight;
        let x = if w > 0.0 {
            let fake = self.g.forward_t(&self.noise(b, rng)?, true)?.detach();
            Tensor::cat(&[&xl, xu, &fake], 0)?
        } else {
            xl.clone()
        };
        let (_, logits) = self.clf.classify(&x, rng)?;
        let lab = cross_entropy(&logits.narrow(0, 0, b)?, &yl)?;
        let d_loss = if w > 0.0 {
            let (zu, zf) = (log_sum_exp(&logits.narrow(0, b, b)?)?, log_sum_exp(&logits.narrow(0, 2 * b, b)?)?);
            // -1/2 E log D(x_unl) - 1/2 E log(1 - D(G(z))).
            let unl = ((softplus(&zu)? - &zu)?.mean_all()? * 0.5 + (softplus(&zf)?.mean_all()? * 0.5)?)?;
            st.push_t("loss_unl", &unl)?;
            (&lab + (unl * w)?)?
        } else {
            lab.clone()
        };
        self.players[1].backward_step(&d_loss)?;
        self.clf.after_update(self.players[1].vs(), step, &self.data, &mut st)?;
        st.push_t("loss_lab", &lab)?;

        // G: feature matching on a second, independent real batch (the authors' `trainx_unl2`).
        // The classifier's parameters are constants in G's loss (`nn::frozen`); real and generated
        // rows share one pass.
        if w > 0.0 {
            let pick = rng.choose_distinct(self.data.len(), b.min(self.data.len()));
            let xr = self.data.batch(&pick, &self.device)?.x;
            let fake = self.g.forward_t(&self.noise(b, rng)?, true)?;
            let x = Tensor::cat(&[&xr.detach(), &fake], 0)?;
            let (f, _) = nn::frozen(|| self.clf.classify(&x, rng))?;
            let r = xr.dim(0)?;
            let real = f.narrow(0, 0, r)?.mean(0)?.detach();
            let g_loss = (real - f.narrow(0, r, b)?.mean(0)?)?.sqr()?.mean_all()?;
            self.players[0].backward_step(&g_loss)?;
            st.push_t("g_fm", &g_loss)?;
        }

        Ok(st)
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

    /// The averaged weights (`d_avg.*`) and the validation curve.
    fn extra_state(&self) -> anyhow::Result<MethodState> {
        let (tensors, curve) = self.clf.state("d_avg.");
        Ok(MethodState { tensors, meta: serde_json::json!({ "val_curve": curve }) })
    }

    fn load_extra_state(&mut self, state: &MethodState) -> anyhow::Result<()> {
        self.clf.load_state(&state.tensors, "d_avg.", state.meta.get("val_curve"))
    }

    fn generator(&self) -> Option<&dyn Generator> {
        Some(&self.g)
    }

    /// `ssl_test_error` (the averaged weights, as the authors test) and `ssl_test_error_raw` on
    /// the test split where there is one; `ssl_val_error` and `ssl_val_error_raw` on the
    /// validation images.
    fn evaluate(&self, data: &Dataset) -> anyhow::Result<Vec<(String, f64)>> {
        self.clf.evaluate(data)
    }

    /// `val_error.png`: the validation error against epochs, of the weights and of their average.
    fn figures(&self, dir: &Path, _data: &Dataset, _rng: &mut Rng) -> anyhow::Result<Vec<PathBuf>> {
        Ok(self.clf.figure(dir)?.into_iter().collect())
    }
}
