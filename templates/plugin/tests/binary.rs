//! The plugin's own `wgan-gp` binary, end to end as a user runs it: train, resume, evaluate,
//! pack for the Hub, install into a fresh cache and sample from it offline.

use std::path::Path;
use std::process::Command;

fn wgan_gp(args: &[&str], cwd: &Path) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_wgan-gp"))
        .args(args)
        .current_dir(cwd)
        .env("RAYON_NUM_THREADS", "1")
        // Any network attempt would go to a closed local port and fail the command.
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env_remove("CANDLE_GRAD_DO_NOT_DETACH")
        .output()
        .expect("the wgan-gp binary runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "wgan-gp {args:?} failed:\n{err}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn train_resume_eval_pack_install_sample() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let t = tmp.path();
    assert!(wgan_gp(&["list"], t).lines().any(|l| l.starts_with("wgan-gp ")));
    let base = ["--data", "ring8", "--batch-size", "32", "--set", "hidden=32", "-q"];
    fn run<'a>(args: &[&'a str], base: &[&'a str]) -> Vec<&'a str> {
        [args, base].concat()
    }
    // Twenty steps at once, and ten then ten: the same weights (the n_critic batches of a step
    // are a function of the step, so a resumed run draws the same ones).
    wgan_gp(&run(&["train", "wgan-gp", "--steps", "20", "--out", "full"], &base), t);
    wgan_gp(&run(&["train", "wgan-gp", "--steps", "10", "--out", "half"], &base), t);
    wgan_gp(&["train", "--resume", "half", "--steps", "20", "-q"], t);
    let weights = |d: &str| std::fs::read(t.join(d).join("checkpoint/state.safetensors"));
    assert_eq!(weights("full")?, weights("half")?, "resume equals the uninterrupted run");
    let metrics = std::fs::read_to_string(t.join("full/metrics.jsonl"))?;
    let last: serde_json::Value = serde_json::from_str(metrics.lines().last().expect("a metrics line"))?;
    assert!(last["gp"].as_f64().is_some_and(|g| g.is_finite() && g >= 0.0), "{last}");

    let report: serde_json::Value = serde_json::from_str(&wgan_gp(&["eval", "--run", "full", "--samples", "200"], t))?;
    assert!(report.as_object().is_some_and(|o| !o.is_empty()), "{report}");

    let cache = t.join("cache");
    let cache = cache.to_str().expect("utf-8 path");
    wgan_gp(&["hub", "pack", "full", "--id", "me/wgan-gp-ring8", "--out", "model"], t);
    assert!(wgan_gp(&["hub", "verify", "model"], t).starts_with("ok me/wgan-gp-ring8"));
    wgan_gp(&["hub", "install", "model", "--cache-dir", cache], t);
    let out = wgan_gp(
        &["sample", "--model", "me/wgan-gp-ring8", "--offline", "--cache-dir", cache, "-n", "64", "--out", "s.png"],
        t,
    );
    assert!(out.contains("s.png") && std::fs::read(t.join("s.png"))?.starts_with(b"\x89PNG"));
    Ok(())
}
