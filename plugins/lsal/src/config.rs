//! LSAL configuration (`[method]` table of a `ganfold train lsal` run).
//!
//! Every default names its source: the ECCV 2018 paper, the authors' public code
//! (`maple-research-lab/lsal-blocks` scripts), or "our choice" with the reason where both are silent.

use ganfold_core::optim::AdamConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LsalConfig {
    /// `unsup` (Sec. 3, the three-player game) or `ssl` (Sec. 5, class-aware loss network).
    pub mode: Mode,
    /// Latent size d_z; 0 picks 64 for images and 2 for 2-D points. The paper
    /// gives no d_z; the authors' scripts use 64 (CIFAR-10) to 256; 2 is the points' own dimension.
    pub latent_dim: usize,
    /// mu of Eq. (1), weight of the ambient margin ||x - G(z)||_1 (L1 sum over pixels).
    /// The paper gives no value; the authors' `lsal-blocks` code uses 0.004 for pixels in [0, 1].
    /// ganfold's images are in [-1, 1], where every L1 distance is twice as large, so 0.002 keeps
    /// the weighted margin on the authors' scale.
    pub ambient_weight: f64,
    /// nu of Eq. (1), weight of the manifold margin ||Q(x) - z||_1. The paper gives
    /// no value; the authors' code uses 0.018.
    pub manifold_weight: f64,
    /// eta of the cost C_eta(a) = max(a, eta a); must be <= 1. 0 = hinge (the paper's experiments),
    /// 1 = WGAN-like, -1 = |a| (Sec. 3.2).
    pub cost_slope: f64,
    /// Clip every loss-network weight to [-c, c] after each update (0 = off). The paper
    /// uses none (with the hinge, S is bounded below by 0). Our choice, as in GLS-GAN's code
    /// (`guojunq/glsgan`, clip 0.04): a Lipschitz control is required when eta > 0, since the
    /// objective is then unbounded below.
    pub weight_clip: f64,
    /// `simultaneous` (both players' gradients from one forward, as the authors' code does) or
    /// `alternating` (G/Q gradients through the already-updated L). The paper fixes no schedule.
    pub schedule: Schedule,
    /// Adam of all three players: lr 1e-4 for generation, beta1 = 0.5, beta2 = 0.99 (paper
    /// Sec. 6). In `ssl` mode the learning rate follows `ssl_lr` and its schedule instead.
    pub adam: AdamConfig,
    /// Q's learning rate as a multiple of the other players' (1 = the paper's one Adam for all).
    /// Q's codes answer L's z-gradient at once (its wide last layer moves every code by up to
    /// ~0.1 a step under Adam), faster than L can learn what tells Q's codes from the prior's: the
    /// codes then chase the current maximum of L over z and collapse, and L never comes to depend
    /// on z (`l_prior_gap` stays at 0). A slower Q is the two-time-scale rule of Heusel et al. 2017.
    /// Default 0.1 by measurement on validation digits (`experiments/lsal-pullback.toml`).
    pub encoder_lr_scale: f64,
    /// Drop probability in front of the loss network's FC layers: the paper's "ratio of 0.2"
    /// (Sec. 6), read as a drop probability as in the authors' code.
    pub dropout: f64,
    /// Drop probability on the loss network's image input and on the input of its second conv
    /// layer: 0.2, the authors' `lsal-blocks` code (the paper names dropout on the FC layers only).
    pub conv_dropout: f64,
    /// `deterministic`: Q(x) as the paper writes it; `gaussian`: the authors' code's
    /// `GaussianConditional` (a mean and a log standard deviation; training samples, evaluation
    /// and classification use the mean).
    pub encoder: EncoderKind,
    /// Finite-difference Lipschitz penalty on L (0 = off, the paper): w * mean((|L(p1) - L(p2)| /
    /// ||p1 - p2||_2 - 1)^2) at two random interpolates p1, p2 of each real pair (x, Q(x)) and
    /// fake pair (G(z), z), as the same lab's `glsgan-gp` code does with weight 10.
    pub lipschitz_penalty: f64,
    /// Weight w of the margin-Lipschitz penalty on L (`objective::margin_lipschitz_penalty`): L
    /// held 1-Lipschitz in the margin's metric mu ||.||_1 + nu ||.||_1 along the two legs from each
    /// real pair (x, Q(x)) through (x, z) to its fake pair (G(z), z), so that it cannot separate the
    /// two by more than Delta, the condition of Theorem 1's proof (0 = off, the paper's plain hinge).
    /// Default 10 (the weight of the same lab's `glsgan-gp` penalty) by measurement on validation
    /// digits (`experiments/lsal-pullback.toml`): only with it and a slower Q does L come to tell
    /// Q's codes from the prior's and do Q's codes spread to the prior's scale.
    pub margin_lipschitz: f64,
    /// SSL: weight of a labelled negative log-likelihood -log P(y_l | x_l, Q(x_l)) added to L's loss
    /// (0 = off, the paper's Eq. 8; the same lab's CLS-GAN has this term). Default 1 by measurement
    /// on validation digits (`experiments/lsal-ssl-screen.toml`): with the labelled hinge as the
    /// only supervised signal L never fits the 100 labels (validation error 0.89, chance), since
    /// the hinge goes inactive once L scores the fakes' classes high; with the NLL it is 0.20.
    pub labelled_nll: f64,
    /// Weight of a latent-regression term added to Q's loss: w * mean |Q(G(z)) - z| over the batch
    /// and the d_z dimensions, with G(z) detached, so only Q learns from it (0 = the paper: Q
    /// learns from L alone). Not in the paper; Corollary 1 says Q = G^-1 at the game's fixed
    /// point, and this asks it of Q on G's own samples from the start (BiGAN's "latent regressor"
    /// baseline, Donahue et al. 2017; ALICE's cycle terms, Li et al. 2017). Default 30, chosen on
    /// validation digits by `experiments/lsal-cycle.toml` (reconstructions keep x's class in 31 %
    /// against 11 % without it; 1, 10 and 100 were worse). Unsupervised mode only; SSL has its own.
    pub latent_regression: f64,
    /// SSL: the same term's weight in semi-supervised mode. Default 0: at weight 30 the validation
    /// error rose from 0.196 to 0.217 (`experiments/lsal-ssl-cycle.toml`).
    pub ssl_latent_regression: f64,
    /// Weight of a reconstruction term added to Q's loss: w * mean |G(Q(x)) - x| over the batch
    /// and the pixels of the real images, through a frozen G in evaluation mode (the G that
    /// samples), so only Q learns from it and G's running statistics are untouched (0 = the paper).
    /// Not in the paper: Corollary 1 asks G(Q(x)) = x of the fixed point, and the latent regression
    /// asks Q to invert G only on G's own samples, which real digits do not resemble early on;
    /// this asks it on the real digits, in the L1 metric of the ambient margin (ALICE's cycle
    /// term on x, Li et al. 2017, trained here on Q alone). Unsupervised mode only.
    pub reconstruction: f64,
    /// Weight of a prior-matching term added to Q's loss: w * `objective::code_prior_kl` of the
    /// batch's codes Q(x), AGE's per-dimension Gaussian estimate of KL(Q(x) || N(0, I)) (Ulyanov et
    /// al. 2018) (0 = the paper). Not in the paper: at Theorem 1's fixed point Q(x) follows P_Z,
    /// but the latent regression pulls to 0 every code dimension that G ignores (code std 0.42 on
    /// test digits after 12,000 steps, `experiments/lsal-long.toml`) and L's signal against it is
    /// weak. Unsupervised mode only.
    pub code_prior: f64,
    /// Hidden layers of the loss network's joint head, the only layers that see x's and z's
    /// features together, so the only place where L can tell x's own code from another image's.
    /// The paper's Fig. 2 says "a sequence of fully connected layers"; the authors' code has 2 with
    /// maxout. Default 1 by measurement on validation digits (`experiments/lsal-joint.toml`): 2,
    /// with or without maxout, left L as blind to the pairing as 1 (`l_code_gap` ~ 0) at 1.3 to
    /// 1.9 times L's head cost.
    pub joint_layers: usize,
    /// Pieces of a maxout unit in the joint head's hidden layers (1 = leaky ReLU). The authors' code
    /// uses maxout with 2 pieces throughout L; the paper names no nonlinearity.
    pub joint_maxout: usize,
    /// Weight normalisation on the loss network's conv layers (paper Sec. 6) and, our choice,
    /// its FC layers too (the paper does not say).
    pub weight_norm: bool,
    /// Base channel width of the 28x28 conv nets (DCGAN-like, sized for a 2-core CPU; our choice).
    pub width: usize,
    /// Hidden units of the MLPs used for 2-D points (our choice; the paper has no toy experiment).
    pub hidden: usize,
    /// SSL: number of labelled training images, drawn balanced over the classes.
    pub labels: usize,
    /// SSL: validation images held out of the labelled draw (the shared `ssl::Split`, 1,000 as
    /// Improved-GAN's and LGAN's MNIST runs): the SSL error is measured on them during training.
    pub val: usize,
    /// SSL: steps between validation measurements (the run's `val_error.png`); 0 = once per epoch.
    pub eval_every: usize,
    /// SSL: lambda of Eq. (8), weight of the unlabelled objective S_u. The paper tunes it on
    /// a validation set and reports no value; 1 is our starting point.
    pub unlabelled_weight: f64,
    /// SSL learning-rate schedule (paper Sec. 6.1): 6e-4, times `ssl_lr_decay` every
    /// `ssl_lr_decay_epochs` epochs, floored at 3e-4. "Decays by 5% every 50 epochs" is read
    /// as multiplicative (x0.95), the usual reading.
    pub ssl_lr: f64,
    pub ssl_lr_floor: f64,
    pub ssl_lr_decay: f64,
    pub ssl_lr_decay_epochs: f64,
}

impl Default for LsalConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Unsupervised,
            latent_dim: 0,
            ambient_weight: 0.002,
            manifold_weight: 0.018,
            cost_slope: 0.0,
            weight_clip: 0.0,
            schedule: Schedule::Simultaneous,
            adam: AdamConfig { lr: 1e-4, beta1: 0.5, beta2: 0.99, eps: 1e-8, weight_decay: 0.0 },
            encoder_lr_scale: 0.1,
            dropout: 0.2,
            conv_dropout: 0.2,
            encoder: EncoderKind::Deterministic,
            lipschitz_penalty: 0.0,
            margin_lipschitz: 10.0,
            labelled_nll: 1.0,
            latent_regression: 30.0,
            ssl_latent_regression: 0.0,
            reconstruction: 0.0,
            code_prior: 0.0,
            joint_layers: 1,
            joint_maxout: 1,
            weight_norm: true,
            width: 32,
            hidden: 128,
            labels: 100,
            val: 1000,
            eval_every: 0,
            unlabelled_weight: 1.0,
            ssl_lr: 6e-4,
            ssl_lr_floor: 3e-4,
            ssl_lr_decay: 0.95,
            ssl_lr_decay_epochs: 50.0,
        }
    }
}

/// Training mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    #[serde(rename = "unsup")]
    Unsupervised,
    #[serde(rename = "ssl")]
    SemiSupervised,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Unsupervised => "unsup",
            Mode::SemiSupervised => "ssl",
        }
    }
}

/// The pullback mapping's family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderKind {
    Deterministic,
    Gaussian,
}

/// Order of the players' updates within a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Simultaneous,
    Alternating,
}

/// Key names of earlier versions, still accepted (`MethodEntry::renamed_keys`).
pub const RENAMED_KEYS: &[(&str, &str)] = &[("lr", "adam.lr"), ("beta1", "adam.beta1"), ("beta2", "adam.beta2")];

impl LsalConfig {
    /// Rejects impossible values with a message naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        let fin = |k: &str, v: f64| -> anyhow::Result<()> {
            if !v.is_finite() {
                anyhow::bail!("lsal: `{k}` must be finite, got {v}");
            }
            Ok(())
        };
        for (k, v) in [("ambient_weight", self.ambient_weight), ("manifold_weight", self.manifold_weight)] {
            fin(k, v)?;
            if v < 0.0 {
                anyhow::bail!("lsal: `{k}` is a margin weight and must be >= 0, got {v}");
            }
        }
        fin("cost_slope", self.cost_slope)?;
        if self.cost_slope > 1.0 {
            anyhow::bail!(
                "lsal: `cost_slope` (eta) must be <= 1 so that C[a] >= a (Sec. 3.2), got {}",
                self.cost_slope
            );
        }
        fin("weight_clip", self.weight_clip)?;
        if self.weight_clip < 0.0 {
            anyhow::bail!("lsal: `weight_clip` must be >= 0 (0 = off), got {}", self.weight_clip);
        }
        if self.cost_slope > 0.0
            && self.weight_clip == 0.0
            && self.lipschitz_penalty == 0.0
            && self.margin_lipschitz == 0.0
        {
            anyhow::bail!(
                "lsal: cost_slope = {} > 0 makes the loss-network objective unbounded below; set a Lipschitz \
                 control, e.g. `--set margin_lipschitz=10`, `--set weight_clip=0.04` or `--set lipschitz_penalty=10`",
                self.cost_slope
            );
        }
        self.adam.validate("lsal `adam`")?;
        for (k, v) in [("ssl_lr", self.ssl_lr), ("ssl_lr_floor", self.ssl_lr_floor)] {
            if !(v.is_finite() && v > 0.0) {
                anyhow::bail!("lsal: `{k}` must be positive and finite, got {v}");
            }
        }
        for (k, v) in [("dropout", self.dropout), ("conv_dropout", self.conv_dropout)] {
            if !(0.0..1.0).contains(&v) {
                anyhow::bail!("lsal: `{k}` is a drop probability in [0, 1), got {v}");
            }
        }
        for (k, v) in [
            ("lipschitz_penalty", self.lipschitz_penalty),
            ("margin_lipschitz", self.margin_lipschitz),
            ("labelled_nll", self.labelled_nll),
            ("latent_regression", self.latent_regression),
            ("ssl_latent_regression", self.ssl_latent_regression),
            ("reconstruction", self.reconstruction),
            ("code_prior", self.code_prior),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                anyhow::bail!("lsal: `{k}` is a weight and must be >= 0, got {v}");
            }
        }
        if !(self.encoder_lr_scale.is_finite() && self.encoder_lr_scale > 0.0) {
            anyhow::bail!("lsal: `encoder_lr_scale` must be positive and finite, got {}", self.encoder_lr_scale);
        }
        if !(1..=8).contains(&self.joint_layers) || !(1..=8).contains(&self.joint_maxout) {
            anyhow::bail!(
                "lsal: `joint_layers` and `joint_maxout` must be in 1..=8, got {} and {}",
                self.joint_layers,
                self.joint_maxout
            );
        }
        if self.width == 0 || self.hidden == 0 {
            anyhow::bail!("lsal: `width` and `hidden` must be at least 1");
        }
        if !(self.ssl_lr_decay > 0.0 && self.ssl_lr_decay <= 1.0) {
            anyhow::bail!("lsal: `ssl_lr_decay` must be in (0, 1], got {}", self.ssl_lr_decay);
        }
        if !(self.ssl_lr_decay_epochs.is_finite() && self.ssl_lr_decay_epochs > 0.0) {
            anyhow::bail!("lsal: `ssl_lr_decay_epochs` must be positive, got {}", self.ssl_lr_decay_epochs);
        }
        fin("unlabelled_weight", self.unlabelled_weight)?;
        if self.unlabelled_weight < 0.0 {
            anyhow::bail!("lsal: `unlabelled_weight` (lambda) must be >= 0, got {}", self.unlabelled_weight);
        }
        Ok(())
    }

    /// The SSL learning rate at `epoch` (paper Sec. 6.1):
    /// max(floor, lr0 * decay^floor(epoch / every)).
    pub fn ssl_lr_at(&self, epoch: f64) -> f64 {
        let k = (epoch / self.ssl_lr_decay_epochs).floor().max(0.0);
        (self.ssl_lr * self.ssl_lr_decay.powf(k)).max(self.ssl_lr_floor)
    }
}
