// ---
// jupyter:
//   jupytext:
//     formats: ipynb,src//rs:percent
//     text_representation:
//       extension: .rs
//       format_name: percent
//       format_version: '1.3'
//       jupytext_version: 1.19.7
//   kernelspec:
//     display_name: Rust (ganfold)
//     language: rust
//     name: ganfold
// ---

// %% [markdown]
// # LCC-GAN: adversarial learning with local coordinate coding
//
// Cao, Guo, Wu, Shen, Huang, Tan. *Adversarial Learning with Local Coordinate Coding.* ICML 2018.
//
// A GAN's prior $z \sim \mathcal{N}(0, I_d)$ knows nothing about the data. LCC-GAN builds the prior from the data's
// latent manifold in three stages:
//
// 1. an autoencoder embeds the data, $h_i = \mathrm{Enc}(x_i)$;
// 2. $M$ **bases** $V = \{v_j\}$ are learned on the embeddings by Local Coordinate Coding,
// $$\min_{V, \gamma}\ \sum_i \tfrac12 \|h_i - V^\top \gamma_i\|^2 + \mu \sum_{i,j} |\gamma_{ij}|\,\|v_j - h_i\|^2,
// \qquad \mathbf{1}^\top \gamma_i = 1,$$
// so every embedding is a local combination of nearby bases;
// 3. the generator's input is an **LCC sample**: pick a basis, take its $d$ nearest bases $B$, draw
// $z \sim \mathcal{N}(0, I_d)$ and feed $h = \sum_{j \in B} z_j v_j$; the GAN trains $G_w(\gamma) = G_u(V\gamma)$ with $V$ frozen.
//
// The paper's argument (Theorems 1-2): a small $d$, near the manifold's intrinsic dimension, is enough. ring8 is a
// 1-D manifold, so $d = 1$.

// %%
// :dep ganfold-notebook = { path = "../notebook" }

// %%
use ganfold_notebook::*;
// Step budget: GANFOLD_NB_STEPS (CI sets it small); otherwise the full run below.
println!("GANFOLD_NB_STEPS = {:?}", std::env::var("GANFOLD_NB_STEPS").ok());

// %% [markdown]
// ## Train on ring8
//
// The stages run inside one `train` call: `ae_steps` autoencoder steps, `lcc_rounds` + 1 LCC steps, then the GAN.
// Settings from `plugins/lccgan/README.md` (8-d latent, 32 bases).

// %%
let run = {
    let gan_steps = steps(5000);
    let ae_steps = (gan_steps / 4).clamp(4, 500);
    let total = ae_steps + 5 + 1 + gan_steps;
    let ae = format!("ae_steps={ae_steps}");
    let sets = [
        "ae_latent_dim=8",
        "bases=32",
        "lcc_points=2000",
        "hidden=128",
        "opt_g.lr=1e-3",
        "opt_d.lr=1e-3",
        "latent_dim=1",
        "ae_loss=mse",
        "opt_ae.lr=1e-3",
        "lcc_rounds=5",
        ae.as_str(),
    ];
    train("lccgan-ring8", "lccgan", "ring8", total, &sets)?
};
run.report()

// %% [markdown]
// The autoencoder's loss (stage 1), then the GAN's losses (stage 3):

// %%
run.curves(&["ae_loss"])?

// %%
run.curves(&["d_loss", "g_loss"])?

// %% [markdown]
// ## The bases and the LCC samples
//
// The 8-d embeddings, the learned bases and LCC latent samples, projected on the top two principal axes of the
// embeddings (the paper's Fig. 3 analogue). The autoencoder maps each mode to a tight cluster, the bases sit on the
// clusters, and with $d = 1$ every LCC sample lies on a line through the origin spanned by one basis.

// %%
run.figure("lcc_embedding.png")?

// %% [markdown]
// Generated points, $G_u(V\gamma)$ for LCC samples $\gamma$:

// %%
run.figure("samples_lccgan_paper_d1.png")?

// %% [markdown]
// The same networks with the Gaussian prior are one override away: `"sampler=gaussian"`. On the reader's budget the
// README's three-seed table (`plugins/lccgan/README.md`) compares the two.

// %% [markdown]
// ## What the paper's claims measure at full size
//
// The notebook's runs are small. The paper's claim at full size is an experiment file,
// `experiments/lccgan-dsweep.toml`: the input dimension $d$ swept for LCC sampling and for a Gaussian prior on the same
// networks, over three seeds, trained by `ganfold experiment run experiments/lccgan-dsweep.toml`. Its committed results
// are rebuilt here from the run directories under `results/lccgan-dsweep` (nothing is trained in these cells);
// `plugins/lccgan/README.md` discusses them.

// %%
experiment_table("lccgan-dsweep")?

// %%
experiment_plot("lccgan-dsweep")?
