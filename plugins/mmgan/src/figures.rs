//! MMGAN's pictures: samples, and the matched centre distance and radii over training, read
//! back from the run's `metrics.jsonl`.

use crate::method::Mmgan;
use anyhow::Context;
use ganfold_core::{Dataset, Method, Rng, checkpoint};
use std::path::{Path, PathBuf};

/// A logged metric and its legend.
type Key = (&'static str, &'static str);

impl Mmgan {
    /// `samples.png`, and from the run's `metrics.jsonl`: `manifold_stats.png` (center term and
    /// both radii over training) and `correlation.png` (R_G of the fake and of the real batch).
    pub(crate) fn write_figures(&self, dir: &Path, data: &Dataset, rng: &mut Rng) -> anyhow::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut out = vec![];
        let x = self.sample(64 * 4, rng)?;
        let png = ganfold_core::train::render_samples(&x, data, "MMGAN samples")?;
        let p = dir.join("samples.png");
        checkpoint::atomic_write(&p, &png)?;
        out.push(p);
        let Some(metrics) = dir.parent().map(|p| p.join("metrics.jsonl")).filter(|p| p.exists()) else {
            return Ok(out);
        };
        let kernel = format!("{:?}", self.cfg.kernel).to_lowercase();
        let plots: [(&str, String, &[Key]); 2] = [
            (
                "manifold_stats.png",
                format!("MMGAN manifolds ({kernel})"),
                &[
                    ("center_dist", "center term"),
                    ("radius_real", "radius real l_Y"),
                    ("radius_fake", "radius fake l_X"),
                ],
            ),
            // The level of R_G the real batch has is the one G should reach, not go below.
            ("correlation.png", "R_G of D's features".into(), &[("r_g", "fake batch"), ("r_g_real", "real batch")]),
        ];
        for (file, title, keys) in plots {
            let series: Vec<_> = read_history(&metrics, keys)?
                .into_iter()
                .zip(keys)
                .filter(|(points, _)| !points.is_empty())
                .map(|(points, &(_, name))| ganfold_core::viz::Series { name, points })
                .collect();
            if series.is_empty() {
                continue;
            }
            let png = ganfold_core::viz::line_plot(&title, "step", &series, (800, 450))?;
            let p = dir.join(file);
            checkpoint::atomic_write(&p, &png)?;
            out.push(p);
        }
        Ok(out)
    }
}

/// For each key, the (step, value) pairs of the `metrics.jsonl` lines that log it.
pub(crate) fn read_history(path: &Path, keys: &[Key]) -> anyhow::Result<Vec<Vec<(f64, f64)>>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = vec![vec![]; keys.len()];
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("bad line in {}", path.display()))?;
        let Some(step) = v.get("step").and_then(|x| x.as_f64()) else { continue };
        for ((key, _), series) in keys.iter().zip(&mut out) {
            if let Some(y) = v.get(*key).and_then(|x| x.as_f64()) {
                series.push((step, y));
            }
        }
    }
    Ok(out)
}
