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
// # LGAN: localized GANs
//
// Qi, Zhang, Hu. *Global versus Localized Generative Adversarial Nets.* CVPR 2018.
//
// A classic GAN has one global chart $z \mapsto G(z)$ for the whole data manifold. LGAN learns a **local generator**
// $G(x, z)$: given a data point $x$ and local coordinates $z \in \mathbb{R}^N$ it returns a point on the manifold near
// $x$, so that $\{G(x, z)\}_z$ is a chart centred at $x$. Two priors make it a proper chart:
//
// $$\Omega_G(x) = \mu\,\|G(x, 0) - x\|^2 + \eta\,\|J_x^\top J_x - I_N\|^2, \qquad J_x = \frac{\partial G(x, z)}{\partial z}\Big|_{z=0}$$
//
// *locality* (the chart passes through $x$) and *orthonormal tangents* (the $N$ columns of $J_x$ span an
// $N$-dimensional tangent space: no local collapse). The game is the usual one on top:
//
// $$\max_D\ \mathbb{E}_x \log D(x) + \mathbb{E}_{x,z} \log(1 - D(G(x, z))), \qquad
// \min_G\ -\mathbb{E}_{x,z} \log D(G(x, z)) + \mathbb{E}_x\,\Omega_G(x).$$
//
// The columns of $J_x$ are the **tangent vectors** of the manifold at $x$; ganfold computes them (and the penalty)
// by central finite differences in $z$. On MNIST they are images (stroke thickness, slant); on ring8, with $N = 1$
// coordinate, each chart is a short curve that should run *along* the circle.

// %%
// :dep ganfold-notebook = { path = "../notebook" }

// %%
use ganfold_notebook::*;
// Step budget: GANFOLD_NB_STEPS (CI sets it small); otherwise the full run below.
println!("GANFOLD_NB_STEPS = {:?}", std::env::var("GANFOLD_NB_STEPS").ok());

// %% [markdown]
// ## Train LGAN on ring8 ($N = 1$, $\eta = 1$; 10,000 steps, about 35 s on 2 cores)

// %%
let n = steps(10000);
let run = train("lgan-ring8", "lgan", "ring8", n, &["latent_dim=1", "eta=1", "opt_d.lr=2e-4"])?;
run.report()

// %% [markdown]
// The loss terms: the adversarial pair, and the two priors. `locality` is $\|G(x,0) - x\|^2$ and `orth` is
// $\|J^\top J - I\|^2$; the priors push both down while the game goes on.

// %%
run.curves(&["d_loss", "g_adv", "locality", "orth"])?

// %% [markdown]
// ## Charts and tangents
//
// For a few data points $x$ the figure draws $G(x, t\,e_1)$ for $|t| \le 3\sigma$ (red) and the chart centre
// $G(x, 0)$ (black) over the real data (blue). A good local generator draws short curves that follow the ring:
// the chart's tangent is the manifold's tangent.

// %%
run.figure("charts.png")?

// %% [markdown]
// `local_median_min_eig` / `local_median_max_eig` above are the medians over data points of the smallest and largest
// eigenvalue of $J_x^\top J_x$: the orthonormality prior pushes both towards 1 (with $N = 1$ they coincide), and a
// value near 0 would be the local collapse the paper warns about. `local_locality_rmse` is the distance from
// $G(x, 0)$ to $x$ (on digits, `local_class_agreement` says how often $G(x, 0)$ keeps the class of $x$).
//
// Samples: a random data point, then a random $z$ in its chart.

// %%
run.samples(1000)?

// %% [markdown]
// On MNIST (`train("lgan-mnist", "lgan", "mnist-5k", ...)`) the same run writes `tangents.png`, the paper's Fig. 6:
// each row is an image followed by its tangent images $\partial G / \partial z_j$. 100 MNIST steps take about 24 s
// on a 2-core CPU (`ganfold train lgan --data mnist-5k --steps 100`, release build), so the 2,000 steps that give
// readable tangents take about 8 minutes; that run is left to the command line (see `plugins/lgan/README.md`).

// %% [markdown]
// ## What the paper's claims measure at full size
//
// The notebook's runs are small. The paper's claim at full size is an experiment file, `experiments/lgan-mnist.toml`:
// LGAN's charts on full MNIST (class agreement of $G(x, 0)$, tangent spectrum, FID) against a DCGAN baseline, over
// three seeds, trained by `ganfold experiment run experiments/lgan-mnist.toml`. Its committed results are rebuilt here
// from the run directories under `results/lgan-mnist` (nothing is trained in these cells); `plugins/lgan/README.md`
// discusses them.

// %%
experiment_table("lgan-mnist")?

// %%
experiment_plot("lgan-mnist")?
