//! # ganfold-core
//!
//! The ground every ganfold plugin stands on: the [`Method`], [`Generator`],
//! [`Discriminator`] and [`Regularizer`] contracts, the `inventory` plugin
//! [registries](registry), configuration, ganfold's seeded [`Rng`], layers with seeded init
//! ([`nn`]), an [`Adam`](optim::Adam) whose moments can be saved, stable losses, datasets,
//! the shared [trainer](train) and atomic [checkpoints](checkpoint).
//!
//! A plugin crate implements [`Method`] for one paper and registers it:
//! ```ignore
//! inventory::submit! { ganfold_core::MethodEntry {
//!     name: "dcgan", paper: "...", summary: "...",
//!     default_config: ganfold_core::config::table_of::<DcganConfig>,
//!     renamed_keys: &[],
//!     build: Dcgan::build,
//! } }
//! ```
//! and every binary, test or notebook that wants it links the facade:
//! `use ganfold_plugins as _;`.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod limits;
pub mod loss;
pub mod method;
pub mod nets;
pub mod nn;
pub mod optim;
pub mod player;
pub mod registry;
pub mod rng;
pub mod ssl;
pub mod train;
pub mod viz;

pub use candle_core;
pub use config::{RunConfig, TrainConfig};
pub use data::{Batch, Dataset, SampleShape};
pub use inventory;
pub use method::{
    BuildContext, Discriminator, Generator, LocalGenerator, Method, MethodState, Purpose, RegContext, Regularizer,
    StepStats,
};
pub use player::Player;
pub use registry::{MethodEntry, RegularizerEntry};
pub use rng::Rng;
