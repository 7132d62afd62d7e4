//! The LCC-GAN method: three stages inside one `ganfold train lccgan` run (paper Alg. 1).
//!
//! Steps `[0, ae_steps)`: stage 1, the autoencoder (one batch per step, Alg. 1 line 1).
//! Steps `[ae_steps, ae_steps + lcc_rounds]`: stage 2, the LCC bases (Alg. 1 line 2). The first
//! of these steps encodes the fit subset and seeds `V` by k-means++; each following step runs
//! one alternation (all points' codes, then the closed-form basis solve) on the host in f64,
//! so a checkpoint can land between alternations; the last also builds the kNN table.
//! The remaining steps: stage 3, the GAN (Alg. 1 lines 3-9) with LCC-sampled latent inputs.
//! Every stage's state (weights, Adam moments, embeddings `H`, bases `V`, J history, kNN table)
//! is saved, so a checkpoint taken in any stage resumes bit for bit.

use crate::config::LccganConfig;
use crate::lcc::{self, LccParams};
use crate::model::{DiscNet, GenNet};
use crate::sampler::{self, SamplerMode};
use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use ganfold_core::loss::{bce_const, softplus};
use ganfold_core::nets::{Arch, ArchChoice, ConvFit};
use ganfold_core::nn::{self, VarStore};
use ganfold_core::{Batch, BuildContext, Dataset, Method, MethodState, Player, Rng, StepStats};
use std::path::{Path, PathBuf};

// A child module, so that it reads the method's private fields.
#[path = "figures.rs"]
mod figures;
pub use figures::nn_dist;

/// Stage 1's networks, one player `ae`.
struct Autoencoder {
    enc: DiscNet,
    dec: GenNet,
    player: Player,
}

pub struct Lccgan {
    cfg: LccganConfig,
    device: Device,
    seed: u64,
    /// `None` for the gaussian and mixture-of-Gaussians baselines.
    mode: Option<SamplerMode>,
    /// The `random_bases` control: the sampler draws on random bases of the learned norms.
    random_bases: bool,
    /// `M x d` component means of the `mog` baseline (empty otherwise).
    mog_means: Vec<f64>,
    params: LccParams,
    ae: Option<Autoencoder>,
    g: GenNet,
    d: DiscNet,
    /// The GAN's generator and discriminator with their optimizers.
    gan: [Player; 2],
    /// The seeded data subset that stage 2 encodes (rebuilt from the data at build, not saved).
    x_fit: Option<Tensor>,
    /// Steps completed.
    steps_done: usize,
    /// Embeddings of `x_fit`, `N_fit x dB` (empty before stage 2).
    h: Vec<f64>,
    /// Bases, `M x dB` (empty before stage 2). Plain host data: never trained by the GAN.
    v: Vec<f64>,
    /// J after each coding and each basis step.
    j_hist: Vec<f64>,
    converged: bool,
    /// `M x d` neighbour table (empty until stage 2 ends).
    knn: Vec<u32>,
    /// Mean non-zeros of the last round's codes (the paper's proxy for the local dimension).
    lcc_nnz: Option<f64>,
    /// TwoNN intrinsic dimension of the embeddings `H`.
    twonn_dim: Option<f64>,
}

pub fn build(cx: &BuildContext<'_>) -> anyhow::Result<Box<dyn Method>> {
    Ok(Box::new(Lccgan::new(cx)?))
}

impl Lccgan {
    pub fn new(cx: &BuildContext<'_>) -> anyhow::Result<Self> {
        let cfg: LccganConfig = ganfold_core::config::parse(cx.config, "lccgan")?;
        cfg.validate()?;
        let arch = Arch::choose(ArchChoice::Auto, cx.shape(), ConvFit::Only28, "lccgan")?;
        let pre = cfg.pre_gan_steps();
        // Exactly `pre` steps is a run that only fits the bases, for another run's `init_from`.
        if cx.total_steps < pre {
            anyhow::bail!(
                "lccgan: train.steps = {} ends inside stages 1-2, which take ae_steps + lcc_rounds + 1 = {pre} steps",
                cx.total_steps
            );
        }
        let mode = match cfg.sampler.as_str() {
            "paper" | "random_bases" => Some(SamplerMode::Paper),
            "affine" => Some(SamplerMode::Affine { scale: cfg.affine_scale }),
            "convex" => Some(SamplerMode::Convex { tau: cfg.convex_tau }),
            _ => None,
        };
        let (gw, dw) = match arch {
            Arch::Conv { .. } => (cfg.ngf, cfg.ndf),
            Arch::Mlp { .. } => (cfg.hidden, cfg.hidden),
        };
        // Our choice (equivalent to paper eq. 3): G takes h = V gamma (dB-dim); the gaussian baseline takes z (d-dim).
        let nz = if mode.is_some() { cfg.ae_latent_dim } else { cfg.latent_dim };
        let g_vs = VarStore::new(DType::F32, cx.device, cx.init_rng("g"));
        let g = GenNet::gan(arch, nz, gw, g_vs.root())?;
        let d_vs = VarStore::new(DType::F32, cx.device, cx.init_rng("d"));
        let d = DiscNet::gan(arch, dw, d_vs.root())?;
        let gan = [Player::new("g", g_vs, cfg.opt_g)?, Player::new("d", d_vs, cfg.opt_d)?];
        let (ae, x_fit) = if mode.is_some() {
            let vs = VarStore::new(DType::F32, cx.device, cx.init_rng("ae"));
            let enc = DiscNet::new(arch, cfg.ae_latent_dim, dw, vs.pp("enc"))?;
            let dec = GenNet::new(arch, cfg.ae_latent_dim, gw, vs.pp("dec"))?;
            // Adam, betas (0.5, 0.999) (DCGAN setting; the paper does not state them), lr 1e-4 (authors' code).
            let player = Player::new("ae", vs, cfg.opt_ae)?;
            let n = cx.data.len();
            if n < cfg.bases {
                anyhow::bail!("lccgan: the data has {n} samples, fewer than the M = {} bases", cfg.bases);
            }
            let idx = Rng::derive(cx.seed, "lcc-fit").choose_distinct(n, cfg.lcc_points.min(n));
            let x = cx.data.batch(&idx, cx.device)?.x;
            (Some(Autoencoder { enc, dec, player }), Some(x))
        } else {
            (None, None)
        };
        let mog_means = if cfg.sampler == "mog" {
            let mut r = Rng::derive(cx.seed, "mog-means");
            (0..cfg.bases * cfg.latent_dim).map(|_| 2.0 * r.uniform() - 1.0).collect()
        } else {
            vec![]
        };
        let params = LccParams {
            mu: cfg.mu_times_m / cfg.bases as f64,
            lambda: cfg.lambda,
            k: cfg.knn_k.min(cfg.bases),
            admm_iters: cfg.admm_iters,
        };
        Ok(Self {
            random_bases: cfg.sampler == "random_bases",
            cfg,
            device: cx.device.clone(),
            seed: cx.seed,
            mode,
            mog_means,
            params,
            ae,
            g,
            d,
            gan,
            x_fit,
            steps_done: 0,
            h: vec![],
            v: vec![],
            j_hist: vec![],
            converged: false,
            knn: vec![],
            lcc_nnz: None,
            twonn_dim: None,
        })
    }

    /// "autoencoder", "lcc" or "gan" for the step about to run.
    pub fn stage(&self) -> &'static str {
        let s = self.steps_done;
        if self.mode.is_none() || s >= self.cfg.pre_gan_steps() {
            "gan"
        } else if s < self.cfg.ae_steps {
            "autoencoder"
        } else {
            "lcc"
        }
    }

    /// The fitted bases `V` (`M x dB`, row per basis), empty before stage 2.
    pub fn bases(&self) -> &[f64] {
        &self.v
    }

    /// The sampler's `M x d` neighbour table, empty before stage 2 ends.
    pub fn knn(&self) -> &[u32] {
        &self.knn
    }

    /// The stage-2 embeddings `H` (`N_fit x dB`).
    pub fn embeddings(&self) -> &[f64] {
        &self.h
    }

    fn ready(&self) -> bool {
        self.mode.is_none() || !self.knn.is_empty()
    }

    /// A batch of generator inputs: LCC samples `V^T gamma` (paper Sec. 4.3) or, for the
    /// baselines, `z ~ N(0, I_d)` or `z ~ N(mu_k, sigma^2 I_d)` with `k` uniform in `0..M`.
    pub fn latent(&self, n: usize, anchor: Option<usize>, rng: &mut Rng) -> anyhow::Result<Tensor> {
        let d = self.cfg.latent_dim;
        match self.mode {
            None if !self.mog_means.is_empty() => {
                let mut z = Vec::with_capacity(n * d);
                for _ in 0..n {
                    let mu = &self.mog_means[rng.below(self.cfg.bases) * d..][..d];
                    z.extend(mu.iter().map(|m| (m + self.cfg.mog_sigma * rng.normal()) as f32));
                }
                Ok(Tensor::from_vec(z, (n, d), &self.device)?)
            }
            None => Ok(rng.randn((n, d), 0.0, 1.0, &self.device)?),
            Some(mode) => {
                if self.knn.is_empty() {
                    anyhow::bail!("lccgan: the LCC bases are not fitted yet (stage {})", self.stage());
                }
                let s = sampler::sample(
                    &self.v,
                    self.cfg.ae_latent_dim,
                    &self.knn,
                    self.cfg.latent_dim,
                    n,
                    mode,
                    anchor,
                    rng,
                );
                Ok(Tensor::from_vec(s.h, (n, self.cfg.ae_latent_dim), &self.device)?)
            }
        }
    }

    fn ae_step(&mut self, batch: &Batch) -> anyhow::Result<StepStats> {
        let ae = self.ae.as_mut().context("lccgan: no autoencoder in gaussian mode")?;
        let x = &batch.x;
        let r = ae.dec.forward_t(&ae.enc.forward_t(x, true)?, true)?;
        let diff = (r - x)?;
        let loss = if self.cfg.ae_loss == "l1" { diff.abs()?.mean_all()? } else { diff.sqr()?.mean_all()? };
        ae.player.backward_step(&loss)?;
        let mut st = StepStats::default();
        st.push_t("ae_loss", &loss)?;
        st.push("stage", 1.0);
        Ok(st)
    }

    /// Encodes the fit subset in eval mode, `N_fit x dB` in f64.
    fn encode_fit(&self) -> anyhow::Result<Vec<f64>> {
        let ae = self.ae.as_ref().context("lccgan: no autoencoder")?;
        let x = self.x_fit.as_ref().context("lccgan: no fit data")?;
        let n = x.dim(0)?;
        let mut out = Vec::with_capacity(n * self.cfg.ae_latent_dim);
        for s in (0..n).step_by(500) {
            let len = 500.min(n - s);
            let h = ae.enc.forward_t(&x.narrow(0, s, len)?, false)?;
            out.extend(h.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?);
        }
        Ok(out)
    }

    fn lcc_step(&mut self, k: usize, rng: &mut Rng) -> anyhow::Result<StepStats> {
        let dim = self.cfg.ae_latent_dim;
        let mut st = StepStats::default();
        if k == 0 {
            self.h = self.encode_fit()?;
            self.v = lcc::kmeans_init(&self.h, dim, self.cfg.bases, self.cfg.kmeans_iters, rng);
            self.j_hist.clear();
            self.converged = false;
            self.twonn_dim = lcc::two_nn_dimension(&self.h, dim);
            if let Some(t) = self.twonn_dim {
                st.push("twonn_dim", t);
            }
            let n = self.h.len() / dim;
            let q: f64 = self
                .h
                .chunks(dim)
                .map(|hi| lcc::sqdist(hi, &self.v[lcc::nearest(&self.v, dim, hi, 1)[0] * dim..][..dim]))
                .sum();
            st.push("lcc_kmeans_mse", q / n as f64);
        } else if !self.converged {
            let r = lcc::round(&self.h, &self.v, dim, &self.params);
            let n = r.codes.len() as f64;
            let prev = self.j_hist.last().copied();
            self.j_hist.push(r.j_code);
            self.j_hist.push(r.j_basis);
            st.push("lcc_j", r.j_basis / n);
            st.push("lcc_rel_err", lcc::relative_error(&self.h, &r.v, dim, &r.codes));
            let nnz = r.codes.iter().map(|c| c.idx.len()).sum::<usize>() as f64 / n;
            self.lcc_nnz = Some(nnz);
            st.push("lcc_nnz", nnz);
            st.push("lcc_dead", r.dead.len() as f64);
            // Our choice: stop when the relative decrease of J is below tol (the remaining
            // stage-2 steps are then no-ops).
            if let Some(p) = prev {
                self.converged = (p - r.j_basis) <= self.cfg.lcc_tol * p.abs();
            }
            self.v = r.v;
        } else {
            let n = (self.h.len() / dim) as f64;
            st.push("lcc_j", self.j_hist.last().copied().unwrap_or(0.0) / n);
        }
        if k == self.cfg.lcc_rounds {
            self.finish_bases();
        }
        st.push("stage", 2.0);
        Ok(st)
    }

    /// End of stage 2: the `random_bases` control swaps in its random bases, then the sampler's
    /// neighbour table is built.
    fn finish_bases(&mut self) {
        let dim = self.cfg.ae_latent_dim;
        if self.random_bases {
            self.v = lcc::random_bases_like(&self.v, dim, &mut Rng::derive(self.seed, "random-bases"));
        }
        self.knn = lcc::knn_table(&self.v, dim, self.cfg.latent_dim);
    }

    /// Stages 1-2 of the run in `init_from`: its autoencoder weights, embeddings, bases and
    /// diagnostics (its optimiser state is not needed: stage 3 never trains the autoencoder).
    fn adopt_stages(&mut self) -> anyhow::Result<()> {
        let dir = Path::new(&self.cfg.init_from);
        let path = ganfold_core::train::checkpoint_file(dir);
        let what = format!("lccgan: init_from {}", dir.display());
        let ck = ganfold_core::checkpoint::load(&path, &self.device).with_context(|| what.clone())?;
        anyhow::ensure!(ck.meta.method == "lccgan", "{what}: a `{}` run, not an lccgan one", ck.meta.method);
        let meta = &ck.state.meta;
        anyhow::ensure!(
            meta["stage"] == "gan" && ck.state.tensors.contains_key("lcc.v"),
            "{what}: its stages 1-2 are not finished (stage `{}` at step {}); train it to ae_steps + lcc_rounds + 1 steps first",
            meta["stage"].as_str().unwrap_or("?"),
            ck.meta.step
        );
        for (k, want) in [("latent", self.cfg.ae_latent_dim), ("bases", self.cfg.bases)] {
            anyhow::ensure!(
                meta[k].as_u64() == Some(want as u64),
                "{what}: its `{k}` is {}, this run's is {want}",
                meta[k]
            );
        }
        let ae = self.ae.as_ref().context("lccgan: no autoencoder")?;
        ae.player.vs().load(&ck.state.tensors, "ae.").with_context(|| format!("{what}: its autoencoder"))?;
        let (steps_done, d) = (self.steps_done, self.cfg.latent_dim);
        let mut state = ck.state;
        // Its own neighbour table is for its own d; ours is built below.
        state.tensors.remove("lcc.knn");
        self.load_extra_state(&state).with_context(|| what.clone())?;
        self.steps_done = steps_done;
        debug_assert_eq!(d, self.cfg.latent_dim);
        self.finish_bases();
        Ok(())
    }

    fn gan_step(&mut self, batch: &Batch, rng: &mut Rng) -> anyhow::Result<StepStats> {
        let n = batch.index.len();
        // Alg. 1 lines 4-6: LCC sample, real batch, D ascent (as BCE descent, paper eq. 4 with phi = log).
        let fake = self.g.forward_t(&self.latent(n, None, rng)?, true)?;
        let l_real = self.d.forward_t(&batch.x, true)?;
        let l_fake = self.d.forward_t(&fake.detach(), true)?;
        let d_loss = (bce_const(&l_real, true)? + bce_const(&l_fake, false)?)?;
        self.gan[1].backward_step(&d_loss)?;
        // Alg. 1 lines 7-8: a fresh LCC sample (or the code's reuse) and the G step.
        let fake2 =
            if self.cfg.reuse_fake_for_g { fake } else { self.g.forward_t(&self.latent(n, None, rng)?, true)? };
        // D's parameters are constants in G's loss (`nn::frozen`): their gradients would be discarded.
        let l = nn::frozen(|| self.d.forward_t(&fake2, true))?;
        let g_loss = if self.cfg.g_loss == "saturating" {
            // phi = log: minimise E log(1 - D(G)) = -E softplus(l).
            softplus(&l)?.mean_all()?.neg()?
        } else {
            bce_const(&l, true)?
        };
        self.gan[0].backward_step(&g_loss)?;
        let mut st = StepStats::default();
        st.push_t("d_loss", &d_loss)?;
        st.push_t("g_loss", &g_loss)?;
        st.push_t("d_real", &candle_core::Tensor::mean_all(&sigmoid(&l_real)?)?)?;
        st.push_t("d_fake", &candle_core::Tensor::mean_all(&sigmoid(&l_fake)?)?)?;
        st.push("stage", 3.0);
        Ok(st)
    }

    /// Stage preview before the GAN exists: autoencoder reconstructions of the fit subset.
    fn reconstructions(&self, n: usize) -> anyhow::Result<Tensor> {
        let ae = self.ae.as_ref().context("lccgan: no autoencoder")?;
        let x = self.x_fit.as_ref().context("lccgan: no fit data")?;
        let len = x.dim(0)?;
        let idx: Vec<u32> = (0..n).map(|i| (i % len) as u32).collect();
        let x = x.index_select(&Tensor::new(idx.as_slice(), &self.device)?, 0)?;
        Ok(ae.dec.forward_t(&ae.enc.forward_t(&x, false)?, false)?)
    }

    /// Decoded bases (what each anchor looks like through the decoder).
    fn decoded_bases(&self) -> anyhow::Result<Tensor> {
        let ae = self.ae.as_ref().context("lccgan: no autoencoder")?;
        let m = self.v.len() / self.cfg.ae_latent_dim;
        let v: Vec<f32> = self.v.iter().map(|&x| x as f32).collect();
        let v = Tensor::from_vec(v, (m, self.cfg.ae_latent_dim), &self.device)?;
        Ok(ae.dec.forward_t(&v, false)?)
    }
}

fn sigmoid(x: &Tensor) -> candle_core::Result<Tensor> {
    (x.neg()?.exp()? + 1.0)?.recip()
}

fn f64_tensor(v: &[f64], rows: usize, dev: &Device) -> anyhow::Result<Tensor> {
    Ok(Tensor::from_vec(v.to_vec(), (rows, v.len() / rows.max(1)), dev)?)
}

fn tensor_f64(t: &Tensor) -> anyhow::Result<Vec<f64>> {
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}

impl Method for Lccgan {
    fn step(&mut self, batch: &Batch, step: usize, rng: &mut Rng) -> anyhow::Result<StepStats> {
        if step != self.steps_done {
            anyhow::bail!("lccgan: asked for step {step} but {} steps are done", self.steps_done);
        }
        if self.mode.is_some() && !self.cfg.init_from.is_empty() && self.v.is_empty() {
            self.adopt_stages()?;
        }
        let st = match self.stage() {
            "autoencoder" => self.ae_step(batch)?,
            "lcc" => self.lcc_step(step - self.cfg.ae_steps, rng)?,
            _ => self.gan_step(batch, rng)?,
        };
        self.steps_done += 1;
        Ok(st)
    }

    fn sample(&self, n: usize, rng: &mut Rng) -> anyhow::Result<Tensor> {
        if self.ready() { Ok(self.g.forward_t(&self.latent(n, None, rng)?, false)?) } else { self.reconstructions(n) }
    }

    fn players(&self) -> Vec<&Player> {
        self.gan.iter().chain(self.ae.as_ref().map(|a| &a.player)).collect()
    }

    fn players_mut(&mut self) -> Vec<&mut Player> {
        self.gan.iter_mut().chain(self.ae.as_mut().map(|a| &mut a.player)).collect()
    }

    /// Stage 2's data (`lcc.h`, `lcc.v`, `lcc.j_hist`, `lcc.knn`) and the stage counters.
    fn extra_state(&self) -> anyhow::Result<MethodState> {
        let mut tensors = std::collections::BTreeMap::new();
        let dim = self.cfg.ae_latent_dim;
        let cpu = Device::Cpu;
        if !self.h.is_empty() {
            tensors.insert("lcc.h".into(), f64_tensor(&self.h, self.h.len() / dim, &cpu)?);
            tensors.insert("lcc.v".into(), f64_tensor(&self.v, self.v.len() / dim, &cpu)?);
        }
        if !self.j_hist.is_empty() {
            tensors.insert("lcc.j_hist".into(), Tensor::new(self.j_hist.as_slice(), &cpu)?);
        }
        if !self.knn.is_empty() {
            tensors.insert(
                "lcc.knn".into(),
                Tensor::from_vec(self.knn.clone(), (self.knn.len() / self.cfg.latent_dim, self.cfg.latent_dim), &cpu)?,
            );
        }
        let meta = serde_json::json!({
            "steps_done": self.steps_done,
            "stage": self.stage(),
            "converged": self.converged,
            "d": self.cfg.latent_dim,
            "bases": self.cfg.bases,
            "latent": self.cfg.ae_latent_dim,
            "lcc_nnz": self.lcc_nnz,
            "twonn_dim": self.twonn_dim,
        });
        Ok(MethodState { tensors, meta })
    }

    fn load_extra_state(&mut self, state: &MethodState) -> anyhow::Result<()> {
        let t = &state.tensors;
        let meta = &state.meta;
        let u = |k: &str| {
            meta.get(k).and_then(|v| v.as_u64()).with_context(|| format!("lccgan checkpoint: meta `{k}` is missing"))
        };
        self.steps_done = u("steps_done")? as usize;
        self.converged = meta.get("converged").and_then(|v| v.as_bool()).unwrap_or(false);
        self.lcc_nnz = meta.get("lcc_nnz").and_then(|v| v.as_f64());
        self.twonn_dim = meta.get("twonn_dim").and_then(|v| v.as_f64());
        let dim = self.cfg.ae_latent_dim;
        self.h = t.get("lcc.h").map(tensor_f64).transpose()?.unwrap_or_default();
        self.v = t.get("lcc.v").map(tensor_f64).transpose()?.unwrap_or_default();
        if !self.h.len().is_multiple_of(dim) || !self.v.len().is_multiple_of(dim) {
            anyhow::bail!("lccgan checkpoint: lcc.h / lcc.v do not have latent = {dim} columns");
        }
        if !self.v.is_empty() && self.v.len() / dim != self.cfg.bases {
            anyhow::bail!(
                "lccgan checkpoint: lcc.v has {} bases, the config says M = {}",
                self.v.len() / dim,
                self.cfg.bases
            );
        }
        self.j_hist = t.get("lcc.j_hist").map(tensor_f64).transpose()?.unwrap_or_default();
        self.knn = match t.get("lcc.knn") {
            Some(k) if k.dim(1)? == self.cfg.latent_dim => {
                let knn =
                    k.flatten_all()?.to_vec1::<u32>().context("lccgan checkpoint: tensor `lcc.knn` must be u32")?;
                // The sampler indexes V with these; a corrupt table must not reach it.
                let m = self.v.len() / dim;
                if knn.len() != m * self.cfg.latent_dim || knn.iter().any(|&i| i as usize >= m) {
                    anyhow::bail!("lccgan checkpoint: tensor `lcc.knn` does not index the {m} saved bases");
                }
                knn
            }
            // V is learned once (paper Alg. 1 line 2) and does not depend on d, so a checkpoint may be continued with another d;
            // the neighbour table is rebuilt from the saved V.
            Some(_) => lcc::knn_table(&self.v, dim, self.cfg.latent_dim),
            None => vec![],
        };
        Ok(())
    }

    fn generator(&self) -> Option<&dyn ganfold_core::Generator> {
        Some(&self.g)
    }

    fn discriminator(&self) -> Option<&dyn ganfold_core::Discriminator> {
        Some(&self.d)
    }

    fn phase(&self) -> Option<String> {
        Some(self.stage().to_string())
    }

    /// Proxy sample-quality metrics (`figures.rs`).
    fn evaluate(&self, data: &Dataset) -> anyhow::Result<Vec<(String, f64)>> {
        self.evaluate_run(data)
    }

    /// Samples, the LCC embedding (Fig. 3 analogue), a fixed anchor (Table 3 analogue), decoded bases.
    fn figures(&self, dir: &Path, data: &Dataset, rng: &mut Rng) -> anyhow::Result<Vec<PathBuf>> {
        self.write_figures(dir, data, rng)
    }
}
