//! # ganfold-dcgan: the baseline every paper is compared against
//!
//! DCGAN (Radford, Metz, Chintala. ICLR 2016): the 28x28 convolutional generator and
//! discriminator shared by every plugin ([`ganfold_core::nets`]), trained with the
//! non-saturating GAN loss (Goodfellow et al. 2014), and an MLP variant for the 2-D toy
//! mixtures. It is also the smallest complete example of a ganfold plugin: `config.rs`
//! (defaults), `method.rs` (the training step), and the registration below.

pub mod config;
pub mod method;

pub use config::DcganConfig;
pub use method::Dcgan;

inventory::submit! {
    ganfold_core::MethodEntry {
        name: "dcgan",
        paper: "Radford, Metz, Chintala. Unsupervised Representation Learning with Deep Convolutional GANs. ICLR 2016",
        summary: "baseline DCGAN (28x28 conv nets, MLPs for 2-D points), non-saturating loss",
        default_config: ganfold_core::config::table_of::<DcganConfig>,
        renamed_keys: config::RENAMED_KEYS,
        build: method::build,
    }
}
