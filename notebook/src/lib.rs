//! # ganfold-notebook
//!
//! Everything an evcxr notebook needs, behind one line:
//!
//! ```text
//! :dep ganfold-notebook = { path = "../notebook" }
//! use ganfold_notebook::*;
//! ```
//!
//! It links every plugin (so the registry is full), re-exports ganfold's crates, and renders
//! pictures inline: [`Png`] (sample grids, the trainers' figures, plotters charts drawn with the
//! bundled DejaVu font, no system fonts) and [`Table`] show themselves through evcxr's
//! `evcxr_display` protocol when they are a cell's last expression.
//!
//! Pretrained models (`pretrained`, `model_card`, `model_png`) need the `hub` feature:
//! `:dep ganfold-notebook = { path = "../notebook", features = ["hub"] }`.
//!
//! Training in a notebook goes through the same trainer as `ganfold train` ([`train`]), for a
//! step budget the reader chooses and CI shortens ([`steps`], `GANFOLD_NB_STEPS`).

pub use anyhow;
pub use ganfold_core;
pub use ganfold_core::candle_core;
pub use ganfold_core::candle_core::{DType, Device, Module, Tensor};
pub use ganfold_core::inventory;
pub use ganfold_core::method::{BuildContext, Method, MethodState, StepStats};
pub use ganfold_core::registry::{self, MethodEntry};
pub use ganfold_core::train::{LoadedRun, Summary};
pub use ganfold_core::{Dataset, Player, Rng, RunConfig, viz};
pub use ganfold_experiment as experiment;
#[cfg(feature = "hub")]
pub use ganfold_hub;
pub use ganfold_plugins;
pub use ganfold_plugins::{dcgan, lccgan, lgan, lsal, mmgan};
pub use serde_json;
pub use toml;

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};

/// A PNG image; shown inline when it is the last expression of a cell.
#[derive(Clone)]
pub struct Png(pub Vec<u8>);

impl Png {
    /// Reads a PNG file (checks the signature).
    pub fn open(path: impl AsRef<Path>) -> anyhow::Result<Png> {
        let p = path.as_ref();
        let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
        if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            bail!("{} is not a PNG file", p.display());
        }
        Ok(Png(bytes))
    }

    /// Width and height from the IHDR chunk.
    pub fn size(&self) -> (u32, u32) {
        let be = |i: usize| self.0.get(i..i + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(0);
        (be(16), be(20))
    }

    pub fn save(&self, path: impl AsRef<Path>) -> anyhow::Result<()> {
        ganfold_core::checkpoint::atomic_write(path.as_ref(), &self.0)
    }

    /// evcxr's display hook: one `image/png` output.
    pub fn evcxr_display(&self) {
        use base64::Engine;
        println!(
            "EVCXR_BEGIN_CONTENT image/png\n{}\nEVCXR_END_CONTENT",
            base64::engine::general_purpose::STANDARD.encode(&self.0)
        );
    }
}

impl std::fmt::Debug for Png {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (w, h) = self.size();
        write!(f, "Png({w}x{h}, {} bytes)", self.0.len())
    }
}

/// A two-column table (name, value); shown inline as HTML.
#[derive(Clone, Debug, Default)]
pub struct Table(pub Vec<(String, String)>);

impl Table {
    pub fn push(&mut self, k: impl Into<String>, v: impl ToString) {
        self.0.push((k.into(), v.to_string()));
    }

    pub fn evcxr_display(&self) {
        let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        let mut html = String::from("<table>");
        for (k, v) in &self.0 {
            html.push_str(&format!(
                "<tr><td style=\"text-align:left\"><code>{}</code></td><td style=\"text-align:left\">{}</td></tr>",
                esc(k),
                esc(v)
            ));
        }
        html.push_str("</table>");
        let text: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        println!("EVCXR_BEGIN_CONTENT text/html\n{html}\nEVCXR_END_CONTENT");
        println!("EVCXR_BEGIN_CONTENT text/plain\n{}\nEVCXR_END_CONTENT", text.join("\n"));
    }
}

/// Markdown text; shown rendered when it is the last expression of a cell.
#[derive(Clone, Debug)]
pub struct Markdown(pub String);

impl Markdown {
    pub fn evcxr_display(&self) {
        println!("EVCXR_BEGIN_CONTENT text/markdown\n{}\nEVCXR_END_CONTENT", self.0);
    }
}

/// The repository this notebook crate belongs to (where `experiments/` and `results/` are).
pub fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn committed_experiment(name: &str) -> anyhow::Result<(experiment::Experiment, experiment::Report)> {
    let root = repo_dir();
    let exp =
        experiment::Experiment::load(&root.join("experiments").join(format!("{name}.toml")), &root.join("results"))?;
    let report = exp.report()?;
    Ok((exp, report))
}

/// The claim and table of `experiments/<name>.toml` (Markdown), rebuilt from the committed run
/// directories under `results/<name>` (nothing is trained or written). The page's plot is
/// [`experiment_plot`]; its commands are in `results/<name>/table.md`. Paths are shown relative
/// to the repository, as on that page.
pub fn experiment_table(name: &str) -> anyhow::Result<Markdown> {
    let (exp, report) = committed_experiment(name)?;
    let table = report.summary_markdown(&exp).replace(&format!("{}/", repo_dir().display()), "");
    Ok(Markdown(format!("{}\n\nThe commands of every run: `results/{name}/table.md`.", table.trim_end())))
}

/// The plot of the same results (one panel per metric).
pub fn experiment_plot(name: &str) -> anyhow::Result<Png> {
    let (_, report) = committed_experiment(name)?;
    Ok(Png(experiment::plot::plot(&report)?))
}

/// The notebook's step budget: `GANFOLD_NB_STEPS` if set (CI runs every notebook short), else
/// `default` (the full run a reader gets).
pub fn steps(default: usize) -> usize {
    match std::env::var("GANFOLD_NB_STEPS").ok().and_then(|v| v.trim().parse::<usize>().ok()) {
        Some(n) if n > 0 => n,
        _ => default,
    }
}

/// Where notebook runs are written: `GANFOLD_NB_RUNS`, else `<tmp>/ganfold-notebooks`.
pub fn runs_dir() -> PathBuf {
    std::env::var_os("GANFOLD_NB_RUNS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("ganfold-notebooks"))
}

/// The registered methods as a table (name, paper).
pub fn methods() -> anyhow::Result<Table> {
    let mut t = Table::default();
    for e in registry::methods()? {
        t.push(e.name, format!("{} — {}", e.paper, e.summary));
    }
    Ok(t)
}

/// A finished notebook run: its directory, summary and the method at its last checkpoint.
pub struct Run {
    pub dir: PathBuf,
    pub summary: Summary,
    pub loaded: LoadedRun,
}

/// Trains `method` on `data` for `steps` steps with the shared trainer (the same code as
/// `ganfold train`), applying `--set`-style overrides, into `runs_dir()/<name>` (replaced if it
/// exists). Progress goes to stderr every 10 s.
pub fn train(name: &str, method: &str, data: &str, steps: usize, sets: &[&str]) -> anyhow::Result<Run> {
    let mut cfg = RunConfig::defaults(method)?;
    cfg.set(&format!("train.data={data}"))?;
    cfg.set(&format!("train.steps={steps}"))?;
    // About 50 logged points whatever the budget, so the loss curve has a shape.
    cfg.set(&format!("train.log_every={}", (steps / 50).max(1)))?;
    for s in sets {
        cfg.set(s)?;
    }
    let dir = runs_dir().join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(runs_dir())?;
    let t0 = std::time::Instant::now();
    let summary = ganfold_core::train::train(cfg, Some(dir.clone()), true)?;
    eprintln!("trained {method} on {data}: {steps} steps in {:.1} s", t0.elapsed().as_secs_f64());
    let loaded = ganfold_core::train::load_run(&dir, None)?;
    Ok(Run { dir, summary, loaded })
}

/// A metrics log: (step, [(name, value)]) per logged step.
pub type Metrics = Vec<(usize, Vec<(String, f64)>)>;

/// Reads a run's `metrics.jsonl`.
pub fn read_metrics(path: &Path) -> anyhow::Result<Metrics> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = vec![];
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("bad line in {}", path.display()))?;
        let Some(obj) = v.as_object() else { continue };
        let Some(step) = obj.get("step").and_then(|s| s.as_u64()) else { continue };
        let vals =
            obj.iter().filter(|(k, _)| *k != "step").filter_map(|(k, v)| Some((k.clone(), v.as_f64()?))).collect();
        out.push((step as usize, vals));
    }
    Ok(out)
}

/// Line chart of the named series of a metrics log (all series if `names` is empty).
pub fn metrics_plot(title: &str, metrics: &[(usize, Vec<(String, f64)>)], names: &[&str]) -> anyhow::Result<Png> {
    let mut keys: Vec<String> = vec![];
    for (_, vals) in metrics {
        for (k, _) in vals {
            if (names.is_empty() || names.contains(&k.as_str())) && !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    let series: Vec<(String, Vec<(f64, f64)>)> = keys
        .iter()
        .map(|k| {
            (
                k.clone(),
                metrics
                    .iter()
                    .filter_map(|(s, v)| v.iter().find(|(n, _)| n == k).map(|(_, x)| (*s as f64, *x)))
                    .collect(),
            )
        })
        .collect();
    lines(title, "step", &series)
}

/// A line chart (plotters, bundled font).
pub fn lines(title: &str, x_label: &str, series: &[(String, Vec<(f64, f64)>)]) -> anyhow::Result<Png> {
    let s: Vec<viz::Series> = series.iter().map(|(n, p)| viz::Series { name: n, points: p.clone() }).collect();
    Ok(Png(viz::line_plot(title, x_label, &s, (820, 440))?))
}

/// A scatter plot of named point layers, colours picked from a fixed palette.
pub fn scatter(title: &str, layers: &[(&str, Vec<(f64, f64)>)]) -> anyhow::Result<Png> {
    const PALETTE: [(u8, u8, u8); 6] =
        [(80, 120, 230), (230, 60, 50), (40, 160, 80), (150, 80, 200), (240, 150, 30), (60, 60, 60)];
    let l: Vec<_> = layers
        .iter()
        .enumerate()
        .map(|(i, (n, p))| {
            let (r, g, b) = PALETTE[i % PALETTE.len()];
            (*n, p.clone(), plotters::style::RGBColor(r, g, b))
        })
        .collect();
    Ok(Png(viz::scatter(title, &l, (560, 560))?))
}

/// A grid of images (N, C, H, W) in [-1, 1].
pub fn image_grid(images: &Tensor, cols: usize) -> anyhow::Result<Png> {
    Ok(Png(viz::image_grid(images, cols, 2)?))
}

/// `n` samples of a loaded method, as an image grid or a scatter over the real data.
pub fn samples_of(run: &LoadedRun, n: usize, seed: u64) -> anyhow::Result<Png> {
    let mut rng = Rng::derive(seed, "notebook-samples");
    let x = run.method.sample(n, &mut rng)?;
    let title = format!("{} samples (step {})", run.config.train.method, run.step);
    Ok(Png(ganfold_core::train::render_samples(&x, &run.data, &title)?))
}

impl Run {
    pub fn method(&self) -> &dyn Method {
        self.loaded.method.as_ref()
    }

    /// The loss curves of the run (all logged series, or those named).
    pub fn curves(&self, names: &[&str]) -> anyhow::Result<Png> {
        let m = read_metrics(&self.dir.join("metrics.jsonl"))?;
        metrics_plot(&format!("{}: training curves", self.summary.method), &m, names)
    }

    pub fn metrics(&self) -> anyhow::Result<Metrics> {
        read_metrics(&self.dir.join("metrics.jsonl"))
    }

    /// Fresh samples from the trained method.
    pub fn samples(&self, n: usize) -> anyhow::Result<Png> {
        samples_of(&self.loaded, n, self.summary.seed)
    }

    /// The names of the figures the method drew at the end of training.
    pub fn figures(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.join("figures"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".png"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// One of the method's figures (see [`Run::figures`]).
    pub fn figure(&self, name: &str) -> anyhow::Result<Png> {
        let names = self.figures();
        if !names.iter().any(|n| n == name) {
            bail!("{} drew no figure `{name}` (it drew: {})", self.summary.method, names.join(", "));
        }
        Png::open(self.dir.join("figures").join(name))
    }

    /// Summary numbers: wall time, throughput, final losses, the method's own evaluation.
    pub fn report(&self) -> Table {
        let s = &self.summary;
        let mut t = Table::default();
        t.push("method", &s.method);
        t.push("data", &s.data);
        t.push("steps", s.steps);
        t.push("wall seconds", format!("{:.1}", s.wall_seconds));
        t.push("images / s", format!("{:.0}", s.images_per_second));
        for (k, v) in s.final_stats.iter().chain(s.evaluation.iter()) {
            t.push(k, v.as_f64().map(|x| format!("{x:.4}")).unwrap_or_else(|| v.to_string()));
        }
        t
    }
}

/// Installs the pretrained model folder shipped in this repository (`pretrained/<name>`) into
/// the local Hub cache, then resolves and loads it offline (no network). Returns the loaded run.
#[cfg(feature = "hub")]
pub fn pretrained(repo_root: impl AsRef<Path>, folder: &str) -> anyhow::Result<LoadedRun> {
    let dir = repo_root.as_ref().join("pretrained").join(folder);
    let (manifest, _) = ganfold_hub::verify_dir(&dir)?;
    let hub = ganfold_hub::Hub::new(ganfold_hub::HubOptions { offline: true, ..Default::default() })?;
    ganfold_hub::install(&dir, hub.cache_dir())?;
    hub.load(&manifest.id, None)
}

#[cfg(feature = "hub")]
fn offline_hub() -> anyhow::Result<ganfold_hub::Hub> {
    ganfold_hub::Hub::new(ganfold_hub::HubOptions { offline: true, ..Default::default() })
}

/// A PNG file of an installed model (e.g. `figures/charts.png`), checked against its manifest,
/// from the local cache only.
#[cfg(feature = "hub")]
pub fn model_png(id: &str, file: &str) -> anyhow::Result<Png> {
    let hub = offline_hub()?;
    let mid = ganfold_hub::ModelId::parse(id)?;
    let (m, _) = hub.manifest(&mid)?;
    Ok(Png(hub.file(&mid, &m, file)?))
}

/// What an installed model's manifest and `summary.json` say, as a table (local cache only).
#[cfg(feature = "hub")]
pub fn model_card(id: &str) -> anyhow::Result<Table> {
    let hub = offline_hub()?;
    let mid = ganfold_hub::ModelId::parse(id)?;
    let (m, snapshot) = hub.manifest(&mid)?;
    let mut t = Table::default();
    t.push("id", &m.id);
    t.push("method", &m.method);
    t.push("data", &m.data);
    t.push("steps", m.steps);
    t.push("files", m.files.keys().cloned().collect::<Vec<_>>().join(", "));
    t.push("snapshot", snapshot.display());
    if m.files.contains_key("summary.json") {
        let s: serde_json::Value = serde_json::from_slice(&hub.file(&mid, &m, "summary.json")?)?;
        for key in ["wall_seconds", "images_per_second"] {
            if let Some(v) = s.get(key).and_then(|v| v.as_f64()) {
                t.push(key, format!("{v:.2}"));
            }
        }
        for sec in ["final_stats", "evaluation"] {
            for (k, v) in s.get(sec).and_then(|v| v.as_object()).into_iter().flatten() {
                t.push(format!("{sec}.{k}"), v.as_f64().map(|x| format!("{x:.4}")).unwrap_or_else(|| v.to_string()));
            }
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_and_render_inline() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        // SAFETY: the only test in this crate that touches the environment.
        unsafe { std::env::set_var("GANFOLD_NB_RUNS", tmp.path()) };
        let run = train("t", "dcgan", "ring8", 12, &["train.batch_size=32"])?;
        assert_eq!(run.summary.steps, 12);
        let m = run.metrics()?;
        assert_eq!(m.len(), 12, "log_every follows the budget");
        for png in [run.curves(&[])?, run.samples(64)?] {
            assert!(png.0.starts_with(b"\x89PNG"));
            let (w, h) = png.size();
            assert!(w > 100 && h > 100, "{w}x{h}");
        }
        assert!(run.figure("nope.png").is_err());
        assert_eq!(run.report().0[0], ("method".to_string(), "dcgan".to_string()));
        Ok(())
    }
}
