//! MMGAN's pictures: samples, and the matched centre distance and radii over training, read
//! back from the run's `metrics.jsonl`.

use crate::method::Mmgan;
use anyhow::Context;
use ganfold_core::{Dataset, Method, Rng, checkpoint};
use std::path::{Path, PathBuf};

impl Mmgan {
    /// `manifold_stats.png` (center distance and both radii over training, read back from the
    /// run's `metrics.jsonl`) and `samples.png`.
    pub(crate) fn write_figures(&self, dir: &Path, data: &Dataset, rng: &mut Rng) -> anyhow::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut out = vec![];
        let x = self.sample(64 * 4, rng)?;
        let png = ganfold_core::train::render_samples(&x, data, "MMGAN samples")?;
        let p = dir.join("samples.png");
        checkpoint::atomic_write(&p, &png)?;
        out.push(p);
        if let Some(metrics) = dir.parent().map(|p| p.join("metrics.jsonl")).filter(|p| p.exists()) {
            let hist = read_manifold_history(&metrics)?;
            if !hist.is_empty() {
                let s = |i: usize| hist.iter().map(|r| (r.0, r.1[i])).collect::<Vec<_>>();
                let series = [
                    ganfold_core::viz::Series { name: "center term", points: s(0) },
                    ganfold_core::viz::Series { name: "radius real l_Y", points: s(1) },
                    ganfold_core::viz::Series { name: "radius fake l_X", points: s(2) },
                ];
                let title = format!("MMGAN manifolds ({:?})", self.cfg.kernel).to_lowercase();
                let png = ganfold_core::viz::line_plot(&title, "step", &series, (800, 450))?;
                let p = dir.join("manifold_stats.png");
                checkpoint::atomic_write(&p, &png)?;
                out.push(p);
            }
        }
        Ok(out)
    }
}

/// (step, [center_dist, radius_real, radius_fake]) from a metrics.jsonl.
pub(crate) fn read_manifold_history(path: &Path) -> anyhow::Result<Vec<(f64, [f64; 3])>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = vec![];
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("bad line in {}", path.display()))?;
        let f = |k: &str| v.get(k).and_then(|x| x.as_f64());
        if let (Some(s), Some(a), Some(b), Some(c)) = (f("step"), f("center_dist"), f("radius_real"), f("radius_fake"))
        {
            out.push((s, [a, b, c]));
        }
    }
    Ok(out)
}
