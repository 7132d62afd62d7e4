//! The contracts every paper plugin implements.
//!
//! A [`Method`] owns one paper's networks, optimizers and training step (as Mimicry's
//! `train_step` or torchgan's `train_ops`): LCC-GAN has stages, LSAL three players, MMGAN
//! moving averages; the shared trainer ([`crate::train`]) does everything else.

use crate::data::{Batch, Dataset, SampleShape};
use crate::player::Player;
use crate::rng::Rng;
use candle_core::{Device, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A network that maps latent codes to samples (used by evaluation and notebooks).
pub trait Generator {
    /// Dimension of the latent input.
    fn latent_dim(&self) -> usize;
    /// Maps latent codes (B, latent_dim) to samples (B, C, H, W) or (B, dim), in eval mode.
    fn generate(&self, z: &Tensor) -> candle_core::Result<Tensor>;
}

/// A network that scores samples. `features_t` exposes the layer that feature matching and
/// MMGAN's manifold matching use.
pub trait Discriminator {
    /// Logits, (B, 1) for real/fake or (B, K) for a classifier.
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor>;
    /// Intermediate features, (B, F).
    fn features_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor>;
}

/// A local generator G(x, z) (LGAN): a chart around the data point x with coordinates z.
pub trait LocalGenerator {
    /// Number of local coordinates N.
    fn coord_dim(&self) -> usize;
    /// G(x, z) for x (B, ...) and z (B, N).
    fn forward_local(&self, x: &Tensor, z: &Tensor, train: bool) -> candle_core::Result<Tensor>;
}

/// What a regularizer may look at. Fields a method cannot provide are `None`; a regularizer
/// that needs one returns a clear error naming it.
pub struct RegContext<'a> {
    /// The real batch.
    pub real: &'a Tensor,
    /// Generated samples of this step.
    pub fake: Option<&'a Tensor>,
    /// Discriminator embeddings of the generated samples (B, F).
    pub fake_features: Option<&'a Tensor>,
    /// The method's local generator, if it has one.
    pub local: Option<&'a dyn LocalGenerator>,
    /// Randomness for the penalty (e.g. the coordinate subset of a finite-difference Jacobian).
    pub rng: &'a mut Rng,
}

/// A penalty attached to a method by name (`lgan-local`, `mmgan-correlation`, ...).
pub trait Regularizer {
    fn name(&self) -> &str;
    /// The penalty value (a scalar tensor, differentiable w.r.t. the networks that produced the
    /// context's tensors), before the method's weight is applied.
    fn penalty(&self, cx: &mut RegContext<'_>) -> anyhow::Result<Tensor>;
}

/// Named scalars reported by one training step, in a fixed order (losses first). The flag is
/// set by [`StepStats::push_periodic`]: the trainer then logs this step even between its
/// `log_every` steps, so a measurement taken every so often is never dropped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepStats(pub Vec<(String, f64)>, pub(crate) bool);

impl StepStats {
    pub fn push(&mut self, name: &str, v: f64) {
        self.0.push((name.to_string(), v));
    }
    /// Adds a measurement that a method takes only on some steps (a validation error every
    /// `eval_every` steps), and asks the trainer to log this step whatever `log_every` is.
    pub fn push_periodic(&mut self, name: &str, v: f64) {
        self.push(name, v);
        self.1 = true;
    }
    /// Whether this step holds a [`StepStats::push_periodic`] measurement.
    pub fn has_periodic(&self) -> bool {
        self.1
    }
    /// Adds a scalar tensor's value.
    pub fn push_t(&mut self, name: &str, t: &Tensor) -> candle_core::Result<()> {
        let v = t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        self.push(name, v);
        Ok(())
    }
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
    /// The first non-finite entry, if any.
    pub fn non_finite(&self) -> Option<&(String, f64)> {
        self.0.iter().find(|(_, v)| !v.is_finite())
    }
}

/// Everything a method saves beyond what the trainer saves (step, RNG, config): its players'
/// weights and optimizer moments ([`crate::player`]) and its extra state (moving averages,
/// stage, bases...).
#[derive(Clone, Debug, Default)]
pub struct MethodState {
    pub tensors: BTreeMap<String, Tensor>,
    pub meta: serde_json::Value,
}

/// Why a method is being built: checks that only training needs (data a schedule needs, second-order
/// gradients) belong behind [`Purpose::Train`], so a finished run still loads for `sample`/`eval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// To train: a new run, a resumed one, an experiment's or the benchmark's.
    Train,
    /// To load a finished run or a published model's weights (sample, evaluate, hub).
    Load,
}

/// What a method is built from.
pub struct BuildContext<'a> {
    /// The method's resolved configuration table (defaults, then file, then `--set`).
    pub config: &'a toml::Table,
    /// The training data (SSL methods pick their labelled subset from it).
    pub data: &'a Dataset,
    pub device: &'a Device,
    pub seed: u64,
    pub batch_size: usize,
    pub total_steps: usize,
    pub purpose: Purpose,
}

impl BuildContext<'_> {
    pub fn shape(&self) -> SampleShape {
        self.data.shape
    }
    /// The RNG that initialises the networks (independent of the training stream).
    pub fn init_rng(&self, label: &str) -> Rng {
        Rng::derive(self.seed, &format!("init-{label}"))
    }
}

/// One paper's training procedure.
pub trait Method {
    /// One training step on `batch` (all randomness from `rng`).
    fn step(&mut self, batch: &Batch, step: usize, rng: &mut Rng) -> anyhow::Result<StepStats>;
    /// Real batches the trainer hands each step (default 1): a critic trained `n_critic` times per
    /// generator update (WGAN-GP's Algorithm 1) asks for `n_critic`. Constant over a run; the
    /// batches are consecutive in the epoch order, so resuming draws the same ones.
    fn batches_per_step(&self) -> usize {
        1
    }
    /// One training step on [`Method::batches_per_step`] batches. The default hands the one batch
    /// to [`Method::step`]; a method asking for more overrides this.
    fn step_batches(&mut self, batches: &[Batch], step: usize, rng: &mut Rng) -> anyhow::Result<StepStats> {
        match batches {
            [batch] => self.step(batch, step, rng),
            _ => anyhow::bail!(
                "this method takes one batch per step, not {} (it overrides batches_per_step without step_batches)",
                batches.len()
            ),
        }
    }
    /// `n` samples in data space ([-1, 1] images or points), in eval mode.
    fn sample(&self, n: usize, rng: &mut Rng) -> anyhow::Result<Tensor>;
    /// Every network with its optimizer; the trainer checkpoints them ([`crate::player`]).
    fn players(&self) -> Vec<&Player>;
    fn players_mut(&mut self) -> Vec<&mut Player>;
    /// State beyond the players (moving averages, stage, bases...): tensors under the method's
    /// own prefixes and a JSON object of meta entries. None by default.
    fn extra_state(&self) -> anyhow::Result<MethodState> {
        Ok(MethodState::default())
    }
    /// Restores what [`Method::extra_state`] saved (the whole state is passed).
    fn load_extra_state(&mut self, _state: &MethodState) -> anyhow::Result<()> {
        Ok(())
    }
    /// The players and the extra state as one [`MethodState`]. Not meant to be overridden.
    fn save(&self) -> anyhow::Result<MethodState> {
        crate::player::save(self)
    }
    /// Restores a state saved by [`Method::save`]; a missing or mis-shaped tensor is an error
    /// naming it. Not meant to be overridden.
    fn load(&mut self, state: &MethodState) -> anyhow::Result<()> {
        crate::player::load(self, state)
    }
    /// The global generator, if the method has one (evaluation, notebooks).
    fn generator(&self) -> Option<&dyn Generator> {
        None
    }
    fn discriminator(&self) -> Option<&dyn Discriminator> {
        None
    }
    /// The local generator G(x, z), if the method has one (LGAN); evaluation reports its charts.
    fn local_generator(&self) -> Option<&dyn LocalGenerator> {
        None
    }
    /// A short label for the progress bar (e.g. the LCC-GAN stage).
    fn phase(&self) -> Option<String> {
        None
    }
    /// Metrics the method computes itself (e.g. semi-supervised test error); called at the end
    /// of training and written to `summary.json`.
    fn evaluate(&self, _data: &Dataset) -> anyhow::Result<Vec<(String, f64)>> {
        Ok(vec![])
    }
    /// The paper's pictures (tangent images, LCC bases, ...), written into `dir`; called at the
    /// end of training and by `ganfold sample`. Returns the files written.
    fn figures(&self, _dir: &Path, _data: &Dataset, _rng: &mut Rng) -> anyhow::Result<Vec<PathBuf>> {
        Ok(vec![])
    }
}
