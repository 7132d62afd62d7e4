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
// # LSAL: loss-sensitive adversarial learning with manifold margins
//
// Edraki, Qi. *Generalized Loss-Sensitive Adversarial Learning with Manifold Margins.* ECCV 2018.
//
// Three players on the joint space $X \times Z$: a generator $G(z)$, a pullback (encoder) $Q(x)$ and a **loss
// network** $L(x, z)$. Real pairs $(x, Q(x))$ should get a lower loss than fake pairs $(G(z), z)$ by a margin that
// grows with how different they are, both in pixel space and *on the manifold*, measured through $Q$:
//
// $$\Delta(x, z) = \mu\,\|x - G(z)\|_1 + \nu\,\|Q(x) - z\|_1$$
//
// $$\text{(I)}\ \min_L\ \mathbb{E}_{x,z}\, C\big[\Delta(x, z) + L(x, Q(x)) - L(G(z), z)\big] \qquad
// \text{(II)}\ \min_G\ \mathbb{E}_z L(G(z), z) \qquad
// \text{(III)}\ \max_Q\ \mathbb{E}_x L(x, Q(x))$$
//
// with the cost $C[a] = \max(a, \eta a)$ ($\eta = 0$ is the LS-GAN hinge). In the paper $Q$ learns only
// adversarially; at the fixed point $Q = G^{-1}$ (Corollary 1), so $G(Q(x))$ **reconstructs** $x$ although no
// reconstruction loss on real images is ever minimised. ganfold's defaults add three things the paper does not
// write, each measured (`plugins/lsal/README.md`): a Lipschitz condition on $L$ in the margin's own metric, a slower
// $Q$, and a latent regression $w\,\mathbb{E}_z|Q(G(z)) - z|$ that asks $Q$ to invert $G$ on $G$'s own samples
// (`latent_regression = 30`; `0` gives the paper's $Q$).

// %%
// :dep ganfold-notebook = { path = "../notebook" }

// %%
use ganfold_notebook::*;
// Step budget: GANFOLD_NB_STEPS (CI sets it small); otherwise the full run below.
println!("GANFOLD_NB_STEPS = {:?}", std::env::var("GANFOLD_NB_STEPS").ok());

// %% [markdown]
// ## Train on ring8 (MLP players, $d_z = 2$)

// %%
let run = train("lsal-ring8", "lsal", "ring8", steps(6000), &[])?;
run.report()

// %% [markdown]
// `l_real` and `l_fake` are the loss network's values on real and fake pairs; `hinge_active` is the fraction of
// pairs whose margin constraint is still violated (it falls as $L$ separates them).

// %%
run.curves(&["l_real", "l_fake", "hinge_active"])?

// %% [markdown]
// ## Margins
//
// The unweighted margins over training (the paper's Fig. 5 analogue): the ambient term $\|x - G(z)\|_1$ per
// coordinate and the manifold term $\|Q(x) - z\|_1$ per latent dimension. For independent $Q(x)$ and $z$ both
// standard normal the manifold term sits at $2/\sqrt{\pi}$; it leaves that line only if $Q$ and $G$ become
// (approximately) inverse.

// %%
run.figure("margins.png")?

// %% [markdown]
// ## Reconstructions $G(Q(x))$ (real images are never reconstructed in training; after a short run they land near, not on, the modes)

// %%
run.figure("reconstructions.png")?

// %%
run.samples(1000)?

// %% [markdown]
// ## What the paper's claims measure at full size
//
// The notebook's runs are small. The paper's claim at full size is an experiment file, `experiments/lsal-mnist.toml`:
// Q's codes against the prior, reconstructions $G(Q(x))$, and FID, with and without the manifold margin, against DCGAN
// at the same widths, over three seeds, trained by `ganfold experiment run experiments/lsal-mnist.toml`. Its committed
// results are rebuilt here from the run directories under `results/lsal-mnist` (nothing is trained in these cells);
// `plugins/lsal/README.md` discusses them.

// %%
experiment_table("lsal-mnist")?

// %%
experiment_plot("lsal-mnist")?

// %% [markdown]
// The same runs with the latent regression (the default), `experiments/lsal-mnist-cycle.toml`: reconstructions keep
// the digit's class far more often, and the codes are narrower than the prior's.

// %%
experiment_table("lsal-mnist-cycle")?
