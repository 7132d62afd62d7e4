//! # ganfold-mmgan: Manifold-Matching GAN
//!
//! Park, Anand, Moniz, Lee, Chakraborty, Choo, Park, Kim. "MMGAN: Manifold-Matching Generative
//! Adversarial Networks" (ICPR 2018). The discriminator's last hidden layer embeds real and
//! generated mini-batches; each set S is summarised by a sphere, its centroid c (Eq. 3) and
//! radius l (Eq. 4: mean distance to c; Eq. 7 in a kernel space: mean squared distance
//! K(c,c) - 2K(c,s_i) + K(s_i,s_i)). The generator matches the spheres of real (Y) and fake (X)
//! embeddings,
//!
//! ```text
//! (5)  L_G   = ||c_Y - c_X|| + |l_Y - l_X|
//! (8)  L_G^K = K(c_Y,c_Y) - 2K(c_Y,c_X) + K(c_X,c_X) + alpha |l_K,Y - l_K,X|
//! (9)  R_G   = ||I - A_X||_F     (A_X: n x n correlation matrix of the fake embeddings)
//! (10) L_G^final = L_G(^K) + beta R_G,   L_D^final = L_orig - L_G^final
//! ```
//!
//! with centres and radii exponential moving averages over mini-batches with decay delta
//! (Alg. 1 lines 7-10). The authors' announced code (`npark/MMGAN`) is not publicly available, so
//! choices the paper leaves open follow the code bases the paper says it forked
//! (`carpedm20/DCGAN-tensorflow`, `openai/improved-gan`) or are our own, each marked with its
//! reason where it is made; departures from the paper are marked "Deviation".
//! Modules: [`manifold`] (Eqs. 3-9, EMA, bandwidth),
//! [`regularizer`] (`mmgan-correlation`, usable by other methods), [`model`] (MLPs for 2-D
//! points, the unconditional DCGAN MNIST pair for images), [`method`] (Alg. 1), [`config`].

pub mod config;
mod figures;
pub mod manifold;
pub mod method;
pub mod model;
pub mod regularizer;

pub use config::MmganConfig;
pub use method::Mmgan;

const PAPER: &str = "Park et al. MMGAN: Manifold-Matching Generative Adversarial Networks. ICPR 2018";

inventory::submit! { ganfold_core::MethodEntry {
    name: "mmgan",
    paper: PAPER,
    summary: "match spheres (centre, radius; feature or kernel space) of real and fake D-embeddings, moving averages, R_G",
    default_config: ganfold_core::config::table_of::<MmganConfig>,
    renamed_keys: config::RENAMED_KEYS,
    build: method::build,
} }

inventory::submit! { ganfold_core::RegularizerEntry {
    name: "mmgan-correlation",
    paper: PAPER,
    summary: "R_G = ||I - A||_F on the n x n correlation matrix of the generated batch's D-embeddings (needs fake_features)",
    default_config: ganfold_core::config::table_of::<regularizer::CorrelationConfig>,
    build: regularizer::build,
} }

#[cfg(test)]
mod tests;
