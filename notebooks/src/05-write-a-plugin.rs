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
// # Writing your own method
//
// A method is a type implementing `ganfold_core::Method` (`step`, `sample`, and `players`: its networks with their
// optimizers, which the trainer saves and loads) plus a
// `MethodEntry` registered with `inventory`. Here we write a **least-squares GAN** (Mao et al., ICCV 2017) in a few
// cells, register it, and train it with the very same trainer as the paper plugins:
//
// $$\min_D\ \tfrac12 \mathbb{E}_x (D(x) - 1)^2 + \tfrac12 \mathbb{E}_z D(G(z))^2, \qquad
// \min_G\ \tfrac12 \mathbb{E}_z (D(G(z)) - 1)^2.$$
//
// House rules (see `docs/DEVELOPING.md`): every random draw comes from the `Rng` the trainer passes in, parameters
// live in a `VarStore` (seeded init), and each network is a `Player` with its own `Adam`, whose moments the checkpoint
// keeps, so a run continues bit for bit.

// %%
// :dep ganfold-notebook = { path = "../notebook" }

// %%
use ganfold_notebook::*;
// Step budget: GANFOLD_NB_STEPS (CI sets it small); otherwise the full run below.
println!("GANFOLD_NB_STEPS = {:?}", std::env::var("GANFOLD_NB_STEPS").ok());

// %% [markdown]
// ## The networks

// %%
use ganfold_core::nn::{self, Linear, VarStore, VsPath};
use ganfold_core::optim::AdamConfig;

/// A 3-layer MLP.
pub struct Mlp {
    l1: Linear,
    l2: Linear,
    l3: Linear,
}

impl Mlp {
    pub fn new(inp: usize, hidden: usize, out: usize, vs: VsPath) -> candle_core::Result<Mlp> {
        Ok(Mlp {
            l1: nn::linear(inp, hidden, vs.pp("l1"))?,
            l2: nn::linear(hidden, hidden, vs.pp("l2"))?,
            l3: nn::linear(hidden, out, vs.pp("l3"))?,
        })
    }
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        // nn::relu: ganfold's kernel (Candle's `.relu()` is serial and takes several ops to differentiate).
        self.l3.forward(&nn::relu(&self.l2.forward(&nn::relu(&self.l1.forward(x)?)?)?)?)
    }
}

// %% [markdown]
// ## The method

// %%
pub struct LsGan {
    g: Mlp,
    d: Mlp,
    players: [Player; 2],
    nz: usize,
    dim: usize,
    device: Device,
}

fn lsgan_defaults() -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("hidden".into(), toml::Value::Integer(128));
    t.insert("nz".into(), toml::Value::Integer(2));
    t.insert("lr".into(), toml::Value::Float(1e-3));
    t
}

fn lsgan_build(cx: &BuildContext<'_>) -> anyhow::Result<Box<dyn Method>> {
    let int = |k: &str| {
        cx.config
            .get(k)
            .and_then(|v| v.as_integer())
            .filter(|v| *v > 0)
            .map(|v| v as usize)
            .ok_or_else(|| anyhow::anyhow!("lsgan-nb: `{k}` must be a positive integer"))
    };
    let lr = cx
        .config
        .get("lr")
        .and_then(|v| v.as_float())
        .ok_or_else(|| anyhow::anyhow!("lsgan-nb: `lr` must be a number"))?;
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

// %% [markdown]
// ## Registering it
//
// `inventory::submit!` expands to a `static` item, which evcxr only accepts inside a module, so the registration
// goes in a `mod` (in a plugin crate it sits at the top of `lib.rs`). From the next cell on, the method is in the
// registry like any other.

// %%
mod lsgan_plugin {
    use super::*;
    ganfold_core::inventory::submit! {
        ganfold_core::MethodEntry {
            name: "lsgan-nb",
            paper: "Mao, Li, Xie, Lau, Wang, Smolley. Least Squares GANs. ICCV 2017 (written in a notebook)",
            summary: "least-squares GAN with MLPs, for 2-D points",
            default_config: lsgan_defaults,
            renamed_keys: &[],
            build: lsgan_build,
        }
    }
}

// %%
let registered = methods()?;
registered

// %% [markdown]
// ## Train it with the shared trainer

// %%
let run = train("lsgan-nb-ring8", "lsgan-nb", "ring8", steps(5000), &["lr=5e-4"])?;
run.report()

// %%
run.curves(&["d_loss", "g_loss"])?

// %%
run.samples(1000)?

// %% [markdown]
// The checkpoint holds everything, so the run reloads and samples exactly as a paper plugin's does (`run.loaded` is
// that reloaded method). Bad configuration is an error, not a panic:

// %%
{
    let bad = train("lsgan-nb-bad", "lsgan-nb", "ring8", 5, &["hidden=0"]);
    assert!(bad.is_err(), "hidden=0 should have been rejected");
    println!("rejected as expected: {:#}", bad.err().unwrap());
};

// %% [markdown]
// To turn this into a crate: copy the cells into `plugins/<name>/src/`, replace the hand-built defaults table with a
// serde config struct (`ganfold_core::config::table_of::<Config>`), and add it to the workspace and to
// `plugins/all` (see `docs/DEVELOPING.md`).
