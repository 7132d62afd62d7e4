//! # ganfold-lsal: loss-sensitive adversarial learning with manifold margins
//!
//! Edraki & Qi, "Generalized Loss-Sensitive Adversarial Learning with Manifold Margins", ECCV 2018.
//! LSAL plays a three-player game on the joint space X x Z: a generator G(z), a pullback
//! mapping (encoder) Q(x), and a loss network L(x, z) that should give real pairs (x, Q(x)) a
//! lower loss than fake pairs (G(z), z) by a margin that grows with how different they are,
//! both in pixel space (ambient) and on the data manifold, measured through Q (manifold):
//!
//! ```text
//! Delta(x, z) = mu ||x - G(z)||_1 + nu ||Q(x) - z||_1                                 (1)
//! (I)   min_L  E_{x,z} C[ Delta(x, z) + L(x, Q(x)) - L(G(z), z) ]
//! (II)  min_G  E_z L(G(z), z)
//! (III) max_Q  E_x L(x, Q(x))
//! ```
//!
//! with a cost C[a] = max(a, eta a), eta <= 1 (the hinge eta = 0 gives LS-GAN, eta = 1 a
//! WGAN-like critic). `Q` is learned only adversarially; at the fixed point Q = G^-1. The
//! semi-supervised variant (Sec. 5, `--set mode=ssl --set labels=100`) makes L class-aware,
//! L(x, z, y) = lse([0, a(x, z)]) - a_y, with L_u = min_y L on unlabelled data (Eq. 8-10).
//!
//! Modules: [`objective`] (the margin, cost and objectives as pure tensor functions),
//! [`model`] (the three networks: conv nets for images, MLPs for 2-D points), [`method`]
//! (the training step, evaluation and figures), [`config`].
//!
//! Where the paper leaves a choice open, the code says which choice it makes and why; departures
//! from the paper are marked "Deviation:" (see also the README).

pub mod config;
mod figures;
pub mod method;
pub mod model;
pub mod objective;

pub use config::LsalConfig;
pub use method::Lsal;

inventory::submit! {
    ganfold_core::MethodEntry {
        name: "lsal",
        paper: "Edraki, Qi. Generalized Loss-Sensitive Adversarial Learning with Manifold Margins. ECCV 2018",
        summary: "three-player game G(z), Q(x), L(x, z) with ambient + manifold margins; `mode=ssl` for semi-supervised",
        default_config: ganfold_core::config::table_of::<LsalConfig>,
        renamed_keys: config::RENAMED_KEYS,
        build: method::build,
    }
}

#[cfg(test)]
mod tests;
