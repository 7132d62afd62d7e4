//! Improved-GAN's semi-supervised training step (Salimans et al. 2016, Sec. 3.1 and 5), as the
//! authors' MNIST code runs it.

use crate::config::ImprovedGanConfig;
use crate::model::FmGen;
use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use ganfold_core::loss::{log_sum_exp, softplus};
use ganfold_core::nn::{self, VarStore};
use ganfold_core::ssl::{Ema, LabelledSet, NoisyMlp, Split, error_rate};
use ganfold_core::viz::{Series, line_plot};
use ganfold_core::{Batch, BuildContext, Dataset, Generator, Method, MethodState, Player, Rng, StepStats};
use std::path::{Path, PathBuf};

/// The generator, the K-class classifier (the discriminator) and the moving average of its
/// weights that is tested.
pub struct ImprovedGan {
    cfg: ImprovedGanConfig,
    device: Device,
    g: FmGen,
    d: NoisyMlp,
    /// The same classifier on the averaged weights.
    d_avg: NoisyMlp,
    ema: Ema,
    players: [Player; 2],
    /// The training images: G's feature-matching batch is drawn from them independently of the
    /// classifier's unlabelled batch, as the authors draw it.
    data: Dataset,
    split: Split,
    labelled: LabelledSet,
    eval_every: usize,
    steps_per_epoch: usize,
    /// (step, validation error of the weights, of their average), every `eval_every` steps.
    curve: Vec<(usize, f64, f64)>,
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
        let split = Split::draw(data, cfg.labels, cfg.val, cx.seed, "improved-gan")?;
        let labelled = LabelledSet::new(data, &split.labelled, cx.device)?;
        let dims = data.shape.dims();
        let numel = data.shape.numel();

        let g_vs = VarStore::new(DType::F32, cx.device, cx.init_rng("g"));
        let g = FmGen::new(cfg.latent_dim, cfg.gen_width, &dims, g_vs.root())?;
        let d_vs = VarStore::new(DType::F32, cx.device, cx.init_rng("d"));
        let d = NoisyMlp::new(numel, &cfg.widths, data.num_classes, &d_vs)?;
        // Data-dependent init on `init_batch` training images (the authors: the first 500 of
        // their shuffled training set).
        let mut rng = Rng::derive(cx.seed, "improved-gan-init");
        let pick = rng.choose_distinct(data.len(), cfg.init_batch.min(data.len()));
        d.init_on(&data.batch(&pick, cx.device)?.x, &d_vs, &mut rng)?;
        let avg_vs = VarStore::new(DType::F32, cx.device, Rng::derive(cx.seed, "init-d-avg"));
        let d_avg = NoisyMlp::new(numel, &cfg.widths, data.num_classes, &avg_vs)?;
        let ema = Ema::new(avg_vs, &d_vs, cfg.ema_rate)?;
        let players = [Player::new("g", g_vs, cfg.opt_g)?, Player::new("d", d_vs, cfg.opt_d)?];
        let steps_per_epoch = data.len().div_ceil(cx.batch_size.max(1));
        let eval_every = if cfg.eval_every > 0 { cfg.eval_every } else { steps_per_epoch };
        Ok(Self {
            cfg,
            device: cx.device.clone(),
            g,
            d,
            d_avg,
            ema,
            players,
            data: data.clone(),
            split,
            labelled,
            eval_every,
            steps_per_epoch,
            curve: vec![],
        })
    }

    /// z ~ U(0, 1)^latent_dim (the authors' noise).
    fn noise(&self, b: usize, rng: &mut Rng) -> candle_core::Result<Tensor> {
        rng.rand((b, self.cfg.latent_dim), 0.0, 1.0, &self.device)
    }

    /// The classifier's noisy forward pass on `x` with fresh noise: (features, logits).
    fn classify(&self, x: &Tensor, rng: &mut Rng) -> candle_core::Result<(Tensor, Tensor)> {
        let noise = self.d.draw_noise(x.dim(0)?, rng, &self.device)?;
        self.d.forward(x, Some(&noise))
    }

    /// The classification error on `rows` of `data`, tested without noise; `avg`: on the
    /// averaged weights.
    pub fn error(&self, data: &Dataset, rows: &[usize], avg: bool) -> anyhow::Result<f64> {
        let net = if avg { &self.d_avg } else { &self.d };
        error_rate(data, rows, &self.device, &|x| Ok(net.forward(x, None)?.1))
    }

    /// The validation curve: (step, error of the weights, error of their average).
    pub fn curve(&self) -> &[(usize, f64, f64)] {
        &self.curve
    }
}

impl Method for ImprovedGan {
    fn step(&mut self, batch: &Batch, step: usize, rng: &mut Rng) -> anyhow::Result<StepStats> {
        let xu = &batch.x;
        let b = xu.dim(0)?;
        let (xl, yl) = self.labelled.batch(b, rng)?;
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
        let (_, logits) = self.classify(&x, rng)?;
        let ll = logits.narrow(0, 0, b)?;
        let lab = (log_sum_exp(&ll)? - ll.gather(&yl.unsqueeze(1)?, 1)?.squeeze(1)?)?.mean_all()?;
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
        self.ema.update(self.players[1].vs())?;
        st.push_t("loss_lab", &lab)?;

        // G: feature matching on a second, independent real batch (the authors' `trainx_unl2`).
        // The classifier's parameters are constants in G's loss (`nn::frozen`); real and generated
        // rows share one pass.
        if w > 0.0 {
            let pick = rng.choose_distinct(self.data.len(), b.min(self.data.len()));
            let xr = self.data.batch(&pick, &self.device)?.x;
            let fake = self.g.forward_t(&self.noise(b, rng)?, true)?;
            let x = Tensor::cat(&[&xr.detach(), &fake], 0)?;
            let (f, _) = nn::frozen(|| self.classify(&x, rng))?;
            let r = xr.dim(0)?;
            let real = f.narrow(0, 0, r)?.mean(0)?.detach();
            let g_loss = (real - f.narrow(0, r, b)?.mean(0)?)?.sqr()?.mean_all()?;
            self.players[0].backward_step(&g_loss)?;
            st.push_t("g_fm", &g_loss)?;
        }

        if (step + 1).is_multiple_of(self.eval_every) && !self.split.val.is_empty() {
            let (raw, avg) =
                (self.error(&self.data, &self.split.val, false)?, self.error(&self.data, &self.split.val, true)?);
            self.curve.push((step + 1, raw, avg));
            st.push("val_error", raw);
            st.push("val_error_ema", avg);
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
        let tensors = self.ema.vs().tensors().into_iter().map(|(k, v)| (format!("d_avg.{k}"), v)).collect();
        Ok(MethodState { tensors, meta: serde_json::json!({ "val_curve": self.curve }) })
    }

    fn load_extra_state(&mut self, state: &MethodState) -> anyhow::Result<()> {
        self.ema.vs().load(&state.tensors, "d_avg.")?;
        self.curve = match state.meta.get("val_curve") {
            Some(v) => serde_json::from_value(v.clone()).context("checkpoint meta `val_curve` is malformed")?,
            None => vec![],
        };
        Ok(())
    }

    fn generator(&self) -> Option<&dyn Generator> {
        Some(&self.g)
    }

    /// `ssl_test_error` (the averaged weights, as the authors test) and `ssl_test_error_raw` on
    /// the test split where there is one; `ssl_val_error` and `ssl_val_error_raw` on the
    /// validation images.
    fn evaluate(&self, data: &Dataset) -> anyhow::Result<Vec<(String, f64)>> {
        let mut out = vec![];
        if let Some(t) = data.test.as_deref().filter(|t| t.labels.is_some()) {
            let rows: Vec<usize> = (0..t.len()).collect();
            out.push(("ssl_test_error".into(), self.error(t, &rows, true)?));
            out.push(("ssl_test_error_raw".into(), self.error(t, &rows, false)?));
        }
        if !self.split.val.is_empty() {
            out.push(("ssl_val_error".into(), self.error(data, &self.split.val, true)?));
            out.push(("ssl_val_error_raw".into(), self.error(data, &self.split.val, false)?));
        }
        Ok(out)
    }

    /// `val_error.png`: the validation error against epochs, of the weights and of their average.
    fn figures(&self, dir: &Path, _data: &Dataset, _rng: &mut Rng) -> anyhow::Result<Vec<PathBuf>> {
        if self.curve.is_empty() {
            return Ok(vec![]);
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("val_error.png");
        let epoch = |s: usize| s as f64 / self.steps_per_epoch as f64;
        let series = [
            Series { name: "weights", points: self.curve.iter().map(|&(s, r, _)| (epoch(s), r)).collect() },
            Series { name: "moving average", points: self.curve.iter().map(|&(s, _, a)| (epoch(s), a)).collect() },
        ];
        let png = line_plot("validation error", "epochs", &series, (640, 400))?;
        ganfold_core::checkpoint::atomic_write(&path, &png)?;
        Ok(vec![path])
    }
}
