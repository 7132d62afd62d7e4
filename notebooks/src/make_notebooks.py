#!/usr/bin/env python3
"""Writes notebooks/*.ipynb (nbformat 4.5, stable cell ids, no outputs) from the cell lists below.

Edit the cells here, then run `python3 notebooks/src/make_notebooks.py`; the checked-in notebooks
are its output. No third-party module is needed (the JSON is written directly), and
scripts/run-notebooks.sh validates the result with nbformat before executing it.
"""
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE.parent

DEP = ':dep ganfold-notebook = { path = "../notebook" }'
USE = """use ganfold_notebook::*;
// Step budget: GANFOLD_NB_STEPS (CI sets it small); otherwise the full run below.
println!("GANFOLD_NB_STEPS = {:?}", std::env::var("GANFOLD_NB_STEPS").ok());"""


def md(s):
    return ("markdown", s.strip("\n"))


def code(s):
    return ("code", s.strip("\n"))


def setup(title_md):
    return [md(title_md), code(DEP), code(USE)]


NOTEBOOKS = {}

NOTEBOOKS["00-tour"] = setup(r"""
# A tour of ganfold

ganfold implements four papers about **GANs and the data manifold** as plugins over one core crate:

| method | paper | the manifold idea |
|---|---|---|
| `lgan` | Qi, Zhang, Hu. *Global versus Localized GANs.* CVPR 2018 | a *local* generator $G(x, z)$: a chart of the manifold around every data point |
| `lccgan` | Cao et al. *Adversarial Learning with Local Coordinate Coding.* ICML 2018 | the latent prior is built from bases that cover the data's latent manifold |
| `lsal` | Edraki, Qi. *Generalized Loss-Sensitive Adversarial Learning with Manifold Margins.* ECCV 2018 | the margin between real and fake grows with their distance on the manifold |
| `mmgan` | Park et al. *MMGAN: Manifold-Matching GANs.* ICPR 2018 | real and fake feature manifolds are summarised by spheres and matched |

plus a DCGAN baseline. Every notebook here calls the library (the same code as the `ganfold` command line),
trains a **small model on the CPU in a few minutes**, and shows what its paper shows. The first cell pulls in
one crate, `ganfold-notebook`, which links every plugin and shows pictures inline.

Training length: each notebook reads `GANFOLD_NB_STEPS` (CI sets it to a few steps so that every notebook is
executed on every change); without it you get the full run written in the cell.
""") + [
    md("""
## The plugin registry

Each paper is a crate that registers a `MethodEntry` with `inventory`; linking `ganfold-notebook` links them all.
"""),
    code("let registered = methods()?;\nregistered"),
    md("""
## Data

Two datasets ship inside the library: `ring8`, eight Gaussians on a circle (the classic mode-collapse toy, a
1-D manifold in 2-D), and `mnist-5k`, 5,000 real MNIST digits.
"""),
    code("""
{
    let ring = ganfold_core::data::load("ring8", 0)?;
    scatter("ring8: 2,000 of its points", &[("real", viz::points(&ring.head(2000, &Device::Cpu)?)?)])?
}
"""),
    code("""
{
    let digits = ganfold_core::data::load("mnist-5k", 0)?;
    println!("{} samples of {}", digits.len(), digits.shape);
    // Every 104th digit, so that all classes show up.
    let rows: Vec<usize> = (0..48).map(|i| i * 104).collect();
    image_grid(&digits.batch(&rows, &Device::Cpu)?.x, 12)?
}
"""),
    md("""
## Training: the DCGAN baseline on ring8

`train(name, method, data, steps, overrides)` runs the shared trainer (metrics, checkpoints, figures) into a run
directory and loads the result back. Overrides use the command line's `--set` syntax.
"""),
    code("""
let run = train("tour-dcgan", "dcgan", "ring8", steps(5000), &[])?;
run.report()
"""),
    code('run.curves(&["d_loss", "g_loss"])?'),
    code("run.samples(1000)?"),
    md("""
A plain GAN on ring8 typically covers only some of the eight modes, and the ones it covers drift over training:
that is the failure the four papers attack from different sides.

## Claims as experiments

A paper's claim is one file in `experiments/`, run over seeds by `ganfold experiment run FILE` (or
`experiment::Experiment::run` from Rust); its results are committed under `results/`. Here is the DCGAN baseline
on full MNIST, three seeds, rebuilt from the committed run directories (nothing is trained in this cell):
"""),
    code('experiment_table("dcgan-mnist")?'),
    code('experiment_plot("dcgan-mnist")?'),
    md("""
Next: `01-lgan`, `02-lccgan`, `03-lsal`, `04-mmgan`, then `05-write-a-plugin` and `06-pretrained`.
"""),
]

NOTEBOOKS["01-lgan"] = setup(r"""
# LGAN: localized GANs

Qi, Zhang, Hu. *Global versus Localized Generative Adversarial Nets.* CVPR 2018.

A classic GAN has one global chart $z \mapsto G(z)$ for the whole data manifold. LGAN learns a **local generator**
$G(x, z)$: given a data point $x$ and local coordinates $z \in \mathbb{R}^N$ it returns a point on the manifold near
$x$, so that $\{G(x, z)\}_z$ is a chart centred at $x$. Two priors make it a proper chart:

$$\Omega_G(x) = \mu\,\|G(x, 0) - x\|^2 + \eta\,\|J_x^\top J_x - I_N\|^2, \qquad J_x = \frac{\partial G(x, z)}{\partial z}\Big|_{z=0}$$

*locality* (the chart passes through $x$) and *orthonormal tangents* (the $N$ columns of $J_x$ span an
$N$-dimensional tangent space: no local collapse). The game is the usual one on top:

$$\max_D\ \mathbb{E}_x \log D(x) + \mathbb{E}_{x,z} \log(1 - D(G(x, z))), \qquad
\min_G\ -\mathbb{E}_{x,z} \log D(G(x, z)) + \mathbb{E}_x\,\Omega_G(x).$$

The columns of $J_x$ are the **tangent vectors** of the manifold at $x$; ganfold computes them (and the penalty)
by central finite differences in $z$. On MNIST they are images (stroke thickness, slant); on ring8, with $N = 1$
coordinate, each chart is a short curve that should run *along* the circle.
""") + [
    md("## Train LGAN on ring8 ($N = 1$, $\\eta = 1$; 10,000 steps, about a minute)"),
    code("""
let n = steps(10000);
let run = train("lgan-ring8", "lgan", "ring8", n, &["coords=1", "eta=1", "lr_d=2e-4"])?;
run.report()
"""),
    md("""
The loss terms: the adversarial pair, and the two priors. `locality` is $\\|G(x,0) - x\\|^2$ and `orth` is
$\\|J^\\top J - I\\|^2$; the priors push both down while the game goes on.
"""),
    code('run.curves(&["d_loss", "g_adv", "locality", "orth"])?'),
    md("""
## Charts and tangents

For a few data points $x$ the figure draws $G(x, t\\,e_1)$ for $|t| \\le 3\\sigma$ (red) and the chart centre
$G(x, 0)$ (black) over the real data (blue). A good local generator draws short curves that follow the ring:
the chart's tangent is the manifold's tangent.
"""),
    code('run.figure("charts.png")?'),
    md("""
`local_median_min_eig` / `local_median_max_eig` above are the medians over data points of the smallest and largest
eigenvalue of $J_x^\\top J_x$: the orthonormality prior pushes both towards 1 (with $N = 1$ they coincide), and a
value near 0 would be the local collapse the paper warns about. `local_locality_rmse` is the distance from
$G(x, 0)$ to $x$ (on digits, `local_class_agreement` says how often $G(x, 0)$ keeps the class of $x$).

Samples: a random data point, then a random $z$ in its chart.
"""),
    code("run.samples(1000)?"),
    md("""
On MNIST (`train("lgan-mnist", "lgan", "mnist-5k", ...)`) the same run writes `tangents.png`, the paper's Fig. 6:
each row is an image followed by its tangent images $\\partial G / \\partial z_j$. That takes minutes per hundred
steps on a CPU, so it is not run here; the command line is the place for it (see `plugins/lgan/README.md`).
"""),
]

NOTEBOOKS["02-lccgan"] = setup(r"""
# LCC-GAN: adversarial learning with local coordinate coding

Cao, Guo, Wu, Shen, Huang, Tan. *Adversarial Learning with Local Coordinate Coding.* ICML 2018.

A GAN's prior $z \sim \mathcal{N}(0, I_d)$ knows nothing about the data. LCC-GAN builds the prior from the data's
latent manifold in three stages:

1. an autoencoder embeds the data, $h_i = \mathrm{Enc}(x_i)$;
2. $M$ **bases** $V = \{v_j\}$ are learned on the embeddings by Local Coordinate Coding,
$$\min_{V, \gamma}\ \sum_i \tfrac12 \|h_i - V^\top \gamma_i\|^2 + \mu \sum_{i,j} |\gamma_{ij}|\,\|v_j - h_i\|^2,
\qquad \mathbf{1}^\top \gamma_i = 1,$$
so every embedding is a local combination of nearby bases;
3. the generator's input is an **LCC sample**: pick a basis, take its $d$ nearest bases $B$, draw
$z \sim \mathcal{N}(0, I_d)$ and feed $h = \sum_{j \in B} z_j v_j$; the GAN trains $G_w(\gamma) = G_u(V\gamma)$ with $V$ frozen.

The paper's argument (Theorems 1-2): a small $d$, near the manifold's intrinsic dimension, is enough. ring8 is a
1-D manifold, so $d = 1$.
""") + [
    md("""
## Train on ring8

The stages run inside one `train` call: `ae_steps` autoencoder steps, `lcc_rounds` + 1 LCC steps, then the GAN.
Settings from `plugins/lccgan/README.md` (8-d latent, 32 bases).
"""),
    code("""
let run = {
    let gan_steps = steps(5000);
    let ae_steps = (gan_steps / 4).clamp(4, 500);
    let total = ae_steps + 5 + 1 + gan_steps;
    let ae = format!("ae_steps={ae_steps}");
    let sets = [
        "latent=8", "bases=32", "lcc_points=2000", "hidden=128", "lr_g=1e-3", "lr_d=1e-3", "d=1",
        "ae_loss=mse", "ae_lr=1e-3", "lcc_rounds=5", ae.as_str(),
    ];
    train("lccgan-ring8", "lccgan", "ring8", total, &sets)?
};
run.report()
"""),
    md("The autoencoder's loss (stage 1), then the GAN's losses (stage 3):"),
    code('run.curves(&["ae_loss"])?'),
    code('run.curves(&["d_loss", "g_loss"])?'),
    md("""
## The bases and the LCC samples

The 8-d embeddings, the learned bases and LCC latent samples, projected on the top two principal axes of the
embeddings (the paper's Fig. 3 analogue). The autoencoder maps each mode to a tight cluster, the bases sit on the
clusters, and with $d = 1$ every LCC sample lies on a line through the origin spanned by one basis.
"""),
    code('run.figure("lcc_embedding.png")?'),
    md("Generated points, $G_u(V\\gamma)$ for LCC samples $\\gamma$:"),
    code('run.figure("samples_lccgan_paper_d1.png")?'),
    md("""
The same networks with the Gaussian prior are one override away: `"sampler=gaussian"`. On the reader's budget the
README's three-seed table (`plugins/lccgan/README.md`) compares the two.
"""),
]

NOTEBOOKS["03-lsal"] = setup(r"""
# LSAL: loss-sensitive adversarial learning with manifold margins

Edraki, Qi. *Generalized Loss-Sensitive Adversarial Learning with Manifold Margins.* ECCV 2018.

Three players on the joint space $X \times Z$: a generator $G(z)$, a pullback (encoder) $Q(x)$ and a **loss
network** $L(x, z)$. Real pairs $(x, Q(x))$ should get a lower loss than fake pairs $(G(z), z)$ by a margin that
grows with how different they are, both in pixel space and *on the manifold*, measured through $Q$:

$$\Delta(x, z) = \mu\,\|x - G(z)\|_1 + \nu\,\|Q(x) - z\|_1$$

$$\text{(I)}\ \min_L\ \mathbb{E}_{x,z}\, C\big[\Delta(x, z) + L(x, Q(x)) - L(G(z), z)\big] \qquad
\text{(II)}\ \min_G\ \mathbb{E}_z L(G(z), z) \qquad
\text{(III)}\ \max_Q\ \mathbb{E}_x L(x, Q(x))$$

with the cost $C[a] = \max(a, \eta a)$ ($\eta = 0$ is the LS-GAN hinge). $Q$ learns only adversarially; at the
fixed point $Q = G^{-1}$, so $G(Q(x))$ **reconstructs** $x$ although no reconstruction loss is ever minimised.
""") + [
    md("## Train on ring8 (MLP players, $d_z = 2$)"),
    code("""
let run = train("lsal-ring8", "lsal", "ring8", steps(6000), &[])?;
run.report()
"""),
    md("""
`l_real` and `l_fake` are the loss network's values on real and fake pairs; `hinge_active` is the fraction of
pairs whose margin constraint is still violated (it falls as $L$ separates them).
"""),
    code('run.curves(&["l_real", "l_fake", "hinge_active"])?'),
    md("""
## Margins

The unweighted margins over training (the paper's Fig. 5 analogue): the ambient term $\\|x - G(z)\\|_1$ per
coordinate and the manifold term $\\|Q(x) - z\\|_1$ per latent dimension. For independent $Q(x)$ and $z$ both
standard normal the manifold term sits at $2/\\sqrt{\\pi}$; it leaves that line only if $Q$ and $G$ become
(approximately) inverse.
"""),
    code('run.figure("margins.png")?'),
    md("## Reconstructions $G(Q(x))$ (never trained for directly; after a short run they land near, not on, the modes)"),
    code('run.figure("reconstructions.png")?'),
    code("run.samples(1000)?"),
]

NOTEBOOKS["04-mmgan"] = setup(r"""
# MMGAN: manifold-matching GANs

Park, Anand, Moniz, Lee, Chakraborty, Choo, Park, Kim. *MMGAN: Manifold-Matching Generative Adversarial Networks.*
ICPR 2018.

The discriminator's last hidden layer embeds real ($Y$) and generated ($X$) mini-batches. Each set $S$ is
summarised by a **sphere**: its centre $c = \frac1n \sum_i s_i$ and radius $l = \frac1n \sum_i \|s_i - c\|$
(or, in a kernel space, $l_K = \frac1n \sum_i K(c,c) - 2K(c, s_i) + K(s_i, s_i)$). The generator matches the
spheres,

$$L_G = \|c_Y - c_X\| + |l_Y - l_X| \qquad\text{or}\qquad
L_G^K = K(c_Y,c_Y) - 2K(c_Y,c_X) + K(c_X,c_X) + \alpha\,|l_{K,Y} - l_{K,X}|,$$

with a decorrelation penalty $R_G = \|I - A_X\|_F$ on the fake embeddings' correlation matrix $A_X$, and
$L_G^{final} = L_G + \beta R_G$. Centres and radii are exponential moving averages over mini-batches (Alg. 1).
""") + [
    md("## Train on ring8 (the default RBF-kernel objective)"),
    code("""
let run = train("mmgan-ring8", "mmgan", "ring8", steps(10000), &[])?;
run.report()
"""),
    md("""
## Manifold centres and radii

`center_dist` is the distance between the real and fake centres, `radius_real` / `radius_fake` the two radii
($l_Y$, $l_X$), all measured in D's feature space. G's objective pulls the centres together and the radii towards
each other, but the space itself moves as D trains, so the curves are not monotone: read them together with the
samples below.
"""),
    code('run.curves(&["center_dist", "radius_real", "radius_fake"])?'),
    code('run.curves(&["d_loss", "g_loss", "r_g"])?'),
    code("run.samples(1000)?"),
    md("""
The measured comparison against a plain GAN on ring8 and grid25 (three seeds, 3,000 and 10,000 steps) is in
`plugins/mmgan/README.md`.
"""),
]

NOTEBOOKS["05-write-a-plugin"] = setup(r"""
# Writing your own method

A method is a type implementing `ganfold_core::Method` (`step`, `sample`, and `players`: its networks with their
optimizers, which the trainer saves and loads) plus a
`MethodEntry` registered with `inventory`. Here we write a **least-squares GAN** (Mao et al., ICCV 2017) in a few
cells, register it, and train it with the very same trainer as the paper plugins:

$$\min_D\ \tfrac12 \mathbb{E}_x (D(x) - 1)^2 + \tfrac12 \mathbb{E}_z D(G(z))^2, \qquad
\min_G\ \tfrac12 \mathbb{E}_z (D(G(z)) - 1)^2.$$

House rules (see `docs/DEVELOPING.md`): every random draw comes from the `Rng` the trainer passes in, parameters
live in a `VarStore` (seeded init), and each network is a `Player` with its own `Adam`, whose moments the checkpoint
keeps, so a run continues bit for bit.
""") + [
    md("## The networks"),
    code("""
use ganfold_core::nn::{self, Linear, VarStore, VsPath};
use ganfold_core::optim::AdamConfig;

/// A 3-layer MLP.
pub struct Mlp { l1: Linear, l2: Linear, l3: Linear }

impl Mlp {
    pub fn new(inp: usize, hidden: usize, out: usize, vs: VsPath) -> candle_core::Result<Mlp> {
        Ok(Mlp { l1: nn::linear(inp, hidden, vs.pp("l1"))?, l2: nn::linear(hidden, hidden, vs.pp("l2"))?, l3: nn::linear(hidden, out, vs.pp("l3"))? })
    }
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        // nn::relu: ganfold's kernel (Candle's `.relu()` is serial and takes several ops to differentiate).
        self.l3.forward(&nn::relu(&self.l2.forward(&nn::relu(&self.l1.forward(x)?)?)?)?)
    }
}
"""),
    md("## The method"),
    code("""
pub struct LsGan {
    g: Mlp, d: Mlp, players: [Player; 2], nz: usize, dim: usize, device: Device,
}

fn lsgan_defaults() -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("hidden".into(), toml::Value::Integer(128));
    t.insert("nz".into(), toml::Value::Integer(2));
    t.insert("lr".into(), toml::Value::Float(1e-3));
    t
}

fn lsgan_build(cx: &BuildContext<'_>) -> anyhow::Result<Box<dyn Method>> {
    let int = |k: &str| cx.config.get(k).and_then(|v| v.as_integer()).filter(|v| *v > 0).map(|v| v as usize)
        .ok_or_else(|| anyhow::anyhow!("lsgan-nb: `{k}` must be a positive integer"));
    let lr = cx.config.get("lr").and_then(|v| v.as_float()).ok_or_else(|| anyhow::anyhow!("lsgan-nb: `lr` must be a number"))?;
    let ganfold_core::data::SampleShape::Points { dim } = cx.shape() else {
        anyhow::bail!("lsgan-nb is an MLP GAN for 2-D points, not {}", cx.shape());
    };
    let (hidden, nz) = (int("hidden")?, int("nz")?);
    let g_vs = VarStore::new(DType::F32, cx.device, cx.init_rng("g"));
    let d_vs = VarStore::new(DType::F32, cx.device, cx.init_rng("d"));
    let g = Mlp::new(nz, hidden, dim, g_vs.root())?;
    let d = Mlp::new(dim, hidden, 1, d_vs.root())?;
    // A player is a network's variables with its optimizer; the trainer checkpoints players.
    let players = [Player::new("g", g_vs, AdamConfig::dcgan(lr))?, Player::new("d", d_vs, AdamConfig::dcgan(lr))?];
    Ok(Box::new(LsGan { g, d, players, nz, dim, device: cx.device.clone() }))
}

impl Method for LsGan {
    fn step(&mut self, batch: &ganfold_core::Batch, _step: usize, rng: &mut Rng) -> anyhow::Result<StepStats> {
        let b = batch.x.dim(0)?;
        // D step on a detached fake batch.
        let fake = self.g.forward(&rng.randn((b, self.nz), 0.0, 1.0, &self.device)?)?.detach();
        let real_term = (self.d.forward(&batch.x)? - 1.0)?.sqr()?.mean_all()?;
        let fake_term = self.d.forward(&fake)?.sqr()?.mean_all()?;
        let d_loss = ((real_term + fake_term)? * 0.5)?;
        self.players[1].backward_step(&d_loss)?;
        // G step on a fresh batch; G's player updates G's variables only, and D runs frozen: its
        // parameters are constants in G's loss, so their gradients are never formed.
        let fake = self.g.forward(&rng.randn((b, self.nz), 0.0, 1.0, &self.device)?)?;
        let g_loss = ((nn::frozen(|| self.d.forward(&fake))? - 1.0)?.sqr()?.mean_all()? * 0.5)?;
        self.players[0].backward_step(&g_loss)?;
        let mut st = StepStats::default();
        st.push_t("d_loss", &d_loss)?;
        st.push_t("g_loss", &g_loss)?;
        Ok(st)
    }

    fn sample(&self, n: usize, rng: &mut Rng) -> anyhow::Result<Tensor> {
        Ok(self.g.forward(&rng.randn((n, self.nz), 0.0, 1.0, &self.device)?)?)
    }

    // Saving and loading come with the players: no save/load to write.
    fn players(&self) -> Vec<&Player> {
        self.players.iter().collect()
    }

    fn players_mut(&mut self) -> Vec<&mut Player> {
        self.players.iter_mut().collect()
    }
}
"""),
    md("""
## Registering it

`inventory::submit!` expands to a `static` item, which evcxr only accepts inside a module, so the registration
goes in a `mod` (in a plugin crate it sits at the top of `lib.rs`). From the next cell on, the method is in the
registry like any other.
"""),
    code("""
mod lsgan_plugin {
    use super::*;
    ganfold_core::inventory::submit! {
        ganfold_core::MethodEntry {
            name: "lsgan-nb",
            paper: "Mao, Li, Xie, Lau, Wang, Smolley. Least Squares GANs. ICCV 2017 (written in a notebook)",
            summary: "least-squares GAN with MLPs, for 2-D points",
            default_config: lsgan_defaults,
            build: lsgan_build,
        }
    }
}
"""),
    code("let registered = methods()?;\nregistered"),
    md("## Train it with the shared trainer"),
    code("""
let run = train("lsgan-nb-ring8", "lsgan-nb", "ring8", steps(5000), &["lr=5e-4"])?;
run.report()
"""),
    code('run.curves(&["d_loss", "g_loss"])?'),
    code("run.samples(1000)?"),
    md("""
The checkpoint holds everything, so the run reloads and samples exactly as a paper plugin's does (`run.loaded` is
that reloaded method). Bad configuration is an error, not a panic:
"""),
    code("""
{
    let bad = train("lsgan-nb-bad", "lsgan-nb", "ring8", 5, &["hidden=0"]);
    assert!(bad.is_err(), "hidden=0 should have been rejected");
    println!("rejected as expected: {:#}", bad.err().unwrap());
};
"""),
    md("""
To turn this into a crate: copy the cells into `plugins/<name>/src/`, replace the hand-built defaults table with a
serde config struct (`ganfold_core::config::table_of::<Config>`), and add it to the workspace and to
`plugins/all` (see `docs/DEVELOPING.md`).
"""),
]

NOTEBOOKS["06-pretrained"] = setup(r"""
# Pretrained weights through the Hugging Face Hub cache

The repository ships small pretrained models, one per method, under `pretrained/<name>/`, each a Hub model
repository: `ganfold.json` (manifest: id, method, data, steps and the **sha256 of every file**), `config.toml`,
`model.safetensors` (weights, optimizer moments and method state), `summary.json`, `metrics.jsonl`, the loss curve,
samples, the method's figures and a model card. They were trained by `ganfold train` (see the README).

`ganfold-hub` resolves `org/name` + file through `hf-hub` and its cache
(`~/.cache/huggingface/hub/models--org--name/...`, or `HF_HUB_CACHE`). Here everything is **offline**: the shipped
folders are installed into the local cache layout and resolved from it with no network access (the command line
does the same with `ganfold hub install` and `ganfold sample --model org/name --offline`).
""") + [
    code("""
// Installs pretrained/<folder> into the cache (after checking every sha256), then resolves and loads it offline.
let lgan = pretrained("..", "lgan-ring8")?;
println!("{} at step {} on {}", lgan.config.train.method, lgan.step, lgan.config.train.data);
let card = model_card("ganfold/lgan-ring8")?;
card
"""),
    code("samples_of(&lgan, 1000, 7)?"),
    md("Files of the model repository are read through the cache and verified against the manifest, e.g. the charts figure:"),
    code('model_png("ganfold/lgan-ring8", "figures/charts.png")?'),
    md("## Every shipped model"),
    code("""
{
    let mut t = Table::default();
    for folder in ["dcgan-ring8", "lgan-ring8", "lccgan-ring8", "lsal-ring8", "mmgan-ring8"] {
        let run = pretrained("..", folder)?;
        t.push(folder, format!("{} steps of {}, {} tensors", run.step, run.config.train.method, run.method.save()?.tensors.len()));
    }
    t
}
"""),
    code("samples_of(&pretrained(\"..\", \"mmgan-ring8\")?, 1000, 7)?"),
    code("samples_of(&pretrained(\"..\", \"lccgan-ring8\")?, 1000, 7)?"),
    md("""
## Tampering is caught

Every file is checked against the manifest's sha256 before use. A copy of the cache with one flipped byte in the
checkpoint refuses to load:
"""),
    code("""
{
    let tmp = std::env::temp_dir().join("ganfold-nb-tamper");
    let _ = std::fs::remove_dir_all(&tmp);
    let snap = ganfold_hub::install(std::path::Path::new("../pretrained/dcgan-ring8"), &tmp)?;
    let w = snap.join("model.safetensors");
    let mut bytes = std::fs::read(&w)?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&w, &bytes)?;
    let hub = ganfold_hub::Hub::new(ganfold_hub::HubOptions { cache_dir: Some(tmp.clone()), offline: true, endpoint: None })?;
    let res = hub.load("ganfold/dcgan-ring8", None);
    assert!(res.is_err(), "a tampered checkpoint loaded");
    println!("refused: {:#}", res.err().unwrap());
};
"""),
    md("""
## Publishing your own

```
ganfold train lgan --data ring8 --steps 2500 --out runs/my-lgan
ganfold hub pack runs/my-lgan --id you/my-lgan --out hub/my-lgan
huggingface-cli upload you/my-lgan hub/my-lgan .
ganfold sample --model you/my-lgan -n 64
```
"""),
]


def notebook(name, cells):
    out = []
    for i, (kind, src) in enumerate(cells):
        lines = src.split("\n")
        source = [l + "\n" for l in lines[:-1]] + [lines[-1]]
        cell = {"cell_type": kind, "id": f"{name}-{i:02d}", "metadata": {}, "source": source}
        if kind == "code":
            cell["execution_count"] = None
            cell["outputs"] = []
        out.append(cell)
    return {
        "cells": out,
        "metadata": {
            "kernelspec": {"display_name": "Rust", "language": "rust", "name": "rust"},
            "language_info": {
                "codemirror_mode": "rust",
                "file_extension": ".rs",
                "mimetype": "text/rust",
                "name": "Rust",
                "pygment_lexer": "rust",
                "version": "",
            },
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


if __name__ == "__main__":
    for name, cells in NOTEBOOKS.items():
        path = OUT / f"{name}.ipynb"
        path.write_text(json.dumps(notebook(name, cells), indent=1, ensure_ascii=False) + "\n")
        print(path)
