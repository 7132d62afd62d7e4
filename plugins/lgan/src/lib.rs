//! # ganfold-lgan: Localized GAN
//!
//! Qi, Zhang, Hu. *Global versus Localized Generative Adversarial Nets.* CVPR 2018.
//!
//! A classic GAN has one global chart z -> G(z). LGAN learns a **local generator** G(x, z): given a
//! data point x and local coordinates z in R^N it returns a point near x on the data manifold, so
//! {G(x, z) | z ~ P_Z} is a chart centred at x. Two priors make it a proper chart (eq. 3):
//!
//! ```text
//! Omega_G(x) = mu ||G(x,0) - x||^2  +  eta ||J_x^T J_x - I_N||^2,   J_x = dG(x,z)/dz at z = 0   (eqs. 1-3)
//! ```
//! locality and orthonormal tangents; the latter keeps dim T_x = N ("no local collapse").
//!
//! * Generation (Sec. 3.4): D maximises E log D(x) + E log(1 - D(G(x,z))); G minimises
//!   -E log D(G(x,z)) + E Omega_G(x); z ~ 0.9 N(0, I) + 0.1 delta_0 (Sec. 5.1).
//! * Semi-supervised (Sec. 4, `--set mode=ssl`): a (K+1)-class classifier maximises eq. (8), the
//!   labelled, unlabelled and fake terms minus the manifold-gradient (Laplace-Beltrami) penalty
//!   sum_k ||grad_z log P(y=k | G(x,z)) at z=0||^2; G minimises eq. (9): label preservation K_G,
//!   feature matching L_G and Omega_G.
//!
//! Every derivative in z is a central finite difference over a random subset S of the
//! coordinates (the paper does not say how; both authors' codes, Localized-GAN and SSL_LGAN,
//! do this, and Candle has no
//! double backward), so parameter gradients need one ordinary
//! backward pass. The regularizer is registered on its own as `lgan-local` (see [`reg`]).
//!
//! Modules: [`config`] (defaults and their sources), [`model`] (networks), [`reg`] (Omega_G and
//! the finite-difference Jacobian), [`method`] (training, sampling, figures, evaluation).

pub mod config;
pub mod method;
pub mod model;
pub mod reg;

pub use config::LganConfig;
pub use method::Lgan;
pub use reg::{LganLocal, LganLocalConfig};

ganfold_core::inventory::submit! {
    ganfold_core::MethodEntry {
        name: "lgan",
        paper: "Qi, Zhang, Hu. Global versus Localized Generative Adversarial Nets. CVPR 2018",
        summary: "local generator G(x, z) with locality and orthonormal-tangent priors; generation and (K+1)-class SSL with a manifold-gradient penalty",
        default_config: ganfold_core::config::table_of::<LganConfig>,
        renamed_keys: config::RENAMED_KEYS,
        build: method::build,
    }
}

ganfold_core::inventory::submit! {
    ganfold_core::RegularizerEntry {
        name: "lgan-local",
        paper: "Qi, Zhang, Hu. Global versus Localized Generative Adversarial Nets. CVPR 2018",
        summary: "locality ||G(x,0)-x||^2 + orthonormality ||J^T J - I||^2 of a local generator (finite-difference Jacobian)",
        default_config: ganfold_core::config::table_of::<LganLocalConfig>,
        build: reg::build,
    }
}
