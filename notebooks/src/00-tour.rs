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
// # A tour of ganfold
//
// ganfold implements four papers about **GANs and the data manifold** as plugins over one core crate:
//
// | method | paper | the manifold idea |
// |---|---|---|
// | `lgan` | Qi, Zhang, Hu. *Global versus Localized GANs.* CVPR 2018 | a *local* generator $G(x, z)$: a chart of the manifold around every data point |
// | `lccgan` | Cao et al. *Adversarial Learning with Local Coordinate Coding.* ICML 2018 | the latent prior is built from bases that cover the data's latent manifold |
// | `lsal` | Edraki, Qi. *Generalized Loss-Sensitive Adversarial Learning with Manifold Margins.* ECCV 2018 | the margin between real and fake grows with their distance on the manifold |
// | `mmgan` | Park et al. *MMGAN: Manifold-Matching GANs.* ICPR 2018 | real and fake feature manifolds are summarised by spheres and matched |
//
// plus a DCGAN baseline. Every notebook here calls the library (the same code as the `ganfold` command line),
// trains a **small model on the CPU in under a minute or two**, and shows what its paper shows. The first cell pulls
// in one crate, `ganfold-notebook`, which links every plugin and shows pictures inline. With the `ganfold` kernel
// (`scripts/setup-notebooks.sh`) that cell compiles for about 3 minutes the first time on a 2-core machine and
// takes seconds afterwards: the compiled crates stay in `target/evcxr` (`notebooks/README.md`).
//
// Training length: each notebook reads `GANFOLD_NB_STEPS` (CI sets it to a few steps so that every notebook is
// executed on every change); without it you get the full run written in the cell.

// %%
// :dep ganfold-notebook = { path = "../notebook" }

// %%
use ganfold_notebook::*;
// Step budget: GANFOLD_NB_STEPS (CI sets it small); otherwise the full run below.
println!("GANFOLD_NB_STEPS = {:?}", std::env::var("GANFOLD_NB_STEPS").ok());

// %% [markdown]
// ## The plugin registry
//
// Each paper is a crate that registers a `MethodEntry` with `inventory`; linking `ganfold-notebook` links them all.

// %%
let registered = methods()?;
registered

// %% [markdown]
// ## Data
//
// Two datasets ship inside the library: `ring8`, eight Gaussians on a circle (the classic mode-collapse toy, a
// 1-D manifold in 2-D), and `mnist-5k`, 5,000 real MNIST digits.

// %%
{
    let ring = ganfold_core::data::load("ring8", 0)?;
    scatter("ring8: 2,000 of its points", &[("real", viz::points(&ring.head(2000, &Device::Cpu)?)?)])?
}

// %%
{
    let digits = ganfold_core::data::load("mnist-5k", 0)?;
    println!("{} samples of {}", digits.len(), digits.shape);
    // Every 104th digit, so that all classes show up.
    let rows: Vec<usize> = (0..48).map(|i| i * 104).collect();
    image_grid(&digits.batch(&rows, &Device::Cpu)?.x, 12)?
}

// %% [markdown]
// ## Training: the DCGAN baseline on ring8
//
// `train(name, method, data, steps, overrides)` runs the shared trainer (metrics, checkpoints, figures) into a run
// directory and loads the result back. Overrides use the command line's `--set` syntax.

// %%
let run = train("tour-dcgan", "dcgan", "ring8", steps(5000), &[])?;
run.report()

// %%
run.curves(&["d_loss", "g_loss"])?

// %%
run.samples(1000)?

// %% [markdown]
// A plain GAN on ring8 typically covers only some of the eight modes, and the ones it covers drift over training:
// that is the failure the four papers attack from different sides.
//
// ## Claims as experiments
//
// A paper's claim is one file in `experiments/`, run over seeds by `ganfold experiment run FILE` (or
// `experiment::Experiment::run` from Rust); its results are committed under `results/`. Here is the DCGAN baseline
// on full MNIST, three seeds, rebuilt from the committed run directories (nothing is trained in this cell):

// %%
experiment_table("dcgan-mnist")?

// %%
experiment_plot("dcgan-mnist")?

// %% [markdown]
// Next: `01-lgan`, `02-lccgan`, `03-lsal`, `04-mmgan`, then `05-write-a-plugin` and `06-pretrained`.
