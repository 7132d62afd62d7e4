//! # ganfold-improved-gan: feature-matching semi-supervised GAN
//!
//! Salimans, Goodfellow, Zaremba, Cheung, Radford, Chen. *Improved Techniques for Training GANs.*
//! NeurIPS 2016, Sec. 3.1 (feature matching) and Sec. 5 (semi-supervised learning).
//!
//! The baseline every semi-supervised claim of the manifold papers is measured against (LGAN's
//! Sec. 5.3 compares with it, and LSAL's tables list it). A K-class classifier is also the
//! discriminator: with the fake class's logit fixed at 0, `D(x) = Z(x) / (Z(x) + 1)`,
//! `Z(x) = sum_k exp l_k(x)`, so
//!
//! ```text
//! L_D = -E_lab log p(y | x)                                              (supervised)
//!       - 1/2 E_unl log D(x) - 1/2 E_z log(1 - D(G(z)))                  (unsupervised)
//! L_G = || E_unl f(x) - E_z f(G(z)) ||^2 / F                             (feature matching)
//! ```
//! with `f` the classifier's last hidden layer. The networks, noise, initialisation and
//! optimiser are those of the authors' MNIST code (`improved-gan`, `train_mnist_feature_matching.py`):
//! see [`config`] and [`ganfold_core::ssl::NoisyMlp`]. `unlabelled_weight = 0` trains the same
//! classifier on the labelled images alone (the supervised-only baseline).
//!
//! Modules: [`config`], [`model`] (the generator), [`method`] (the training step, evaluation
//! and the validation curve).

pub mod config;
pub mod method;
pub mod model;

pub use config::ImprovedGanConfig;
pub use method::ImprovedGan;

ganfold_core::inventory::submit! {
    ganfold_core::MethodEntry {
        name: "improved-gan",
        paper: "Salimans et al. Improved Techniques for Training GANs. NeurIPS 2016",
        summary: "feature-matching semi-supervised GAN (K-class classifier as D, weight norm, Gaussian noise, weight EMA): the SSL baseline",
        default_config: ganfold_core::config::table_of::<ImprovedGanConfig>,
        renamed_keys: &[],
        build: method::build,
    }
}
