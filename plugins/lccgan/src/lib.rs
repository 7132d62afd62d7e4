//! # ganfold-lccgan: Adversarial Learning with Local Coordinate Coding
//!
//! Cao, Guo, Wu, Shen, Huang, Tan. *Adversarial Learning with Local Coordinate Coding.*
//! ICML 2018. A GAN's prior `z ~ N(0, I_d)` is replaced by a sampler built on the data's latent
//! manifold: (1) an autoencoder embeds the data, `h_i = Enc(x_i)`; (2) `M` bases `V` are learned
//! on the embeddings by Local Coordinate Coding (reconstruction plus locality, codes summing to
//! one; Def. 2, Lemma 1, Problem 2); (3) the generator's input is an LCC sample: pick a random
//! basis, take its `d` nearest bases `B`, draw `z ~ N(0, I_d)` and feed `h = sum_{j in B} z_j v_j`
//! (Sec. 4.3). The paper argues (Theorems 1-2) that a small `d`, near the manifold's intrinsic
//! dimension, suffices.
//!
//! Equations implemented (paper numbering):
//! * LCC objective, paper eq. 2 (squared reconstruction; lambda = 0 by default, since eq. 2 has no
//!   basis-norm term): `J = sum_i 1/2 ||h_i - V^T g_i||^2 + mu sum_j |g_ij| ||v_j - h_i||^2
//!   + lambda ||V||^2`, `1^T g_i = 1` ([`lcc`]: ADMM coding step, closed-form basis step).
//! * LCC sampling, paper Sec. 4.3 ([`sampler`]).
//! * `G_w(gamma) = G_u(V gamma)`, eq. 3, with `V` frozen (plain host data, never in a VarStore).
//! * Alg. 1: one D step and one G step per iteration, a fresh LCC sample for the G step, BCE
//!   with logits (phi = log), non-saturating G loss by default ([`method`]).
//!
//! The three stages run inside one `ganfold train lccgan` (see [`method`] for the step layout),
//! each with its own progress label and resumable from a checkpoint taken in any of them.
//! `--set sampler=gaussian` gives the vanilla baseline with the very same networks.

pub mod config;
pub mod lcc;
pub mod method;
pub mod model;
pub mod sampler;

pub use config::LccganConfig;
pub use method::Lccgan;

inventory::submit! {
    ganfold_core::MethodEntry {
        name: "lccgan",
        paper: "Cao, Guo, Wu, Shen, Huang, Tan. Adversarial Learning with Local Coordinate Coding. ICML 2018",
        summary: "autoencoder, LCC bases, then a GAN fed LCC samples h = sum of z_j v_j over d nearest bases",
        default_config: ganfold_core::config::table_of::<LccganConfig>,
        renamed_keys: config::RENAMED_KEYS,
        build: method::build,
    }
}

#[cfg(test)]
mod tests;
