//! # ganfold-wgan-gp: a plugin template
//!
//! WGAN-GP (Gulrajani, Ahmed, Arjovsky, Dumoulin, Courville. Improved Training of Wasserstein
//! GANs. NeurIPS 2017), written as a third party would write a ganfold plugin: outside the
//! ganfold workspace, depending on `ganfold-core` for the trainer, networks, configs and
//! checkpoints and on `ganfold-cli` for its own `wgan-gp` binary (`src/bin/wgan-gp.rs`).
//!
//! `config.rs` holds the defaults, `method.rs` the paper's Algorithm 1, and the registration
//! below makes the method known to every binary that links this crate.

pub mod config;
pub mod method;

pub use config::WganGpConfig;
pub use method::WganGp;

inventory::submit! {
    ganfold_core::MethodEntry {
        name: "wgan-gp",
        paper: "Gulrajani et al. Improved Training of Wasserstein GANs. NeurIPS 2017",
        summary: "Wasserstein GAN with a gradient penalty, n_critic critic batches per generator step (plugin template)",
        default_config: ganfold_core::config::table_of::<WganGpConfig>,
        renamed_keys: &[],
        build: method::build,
    }
}
