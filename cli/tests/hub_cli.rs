//! `ganfold hub` and `ganfold sample --model`: pack a run, install it into a fresh cache, sample
//! from it offline; and the shipped pretrained models install and sample the same way.

use std::path::Path;
use std::process::{Command, Output};

fn ganfold(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ganfold"));
    c.args(args).current_dir(cwd).env("RAYON_NUM_THREADS", "1");
    // Any network attempt would go to a closed local port and fail the command.
    c.env("HF_ENDPOINT", "http://127.0.0.1:9").env_remove("HF_HUB_OFFLINE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("the ganfold binary runs")
}

fn ok(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> String {
    let o = ganfold(args, cwd, env);
    assert!(o.status.success(), "ganfold {args:?} failed:\n{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails(args: &[&str], cwd: &Path, env: &[(&str, &str)], needle: &str) {
    let o = ganfold(args, cwd, env);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "ganfold {args:?} should fail");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.starts_with("error: ") && err.contains(needle), "error for {args:?} should mention {needle:?}:\n{err}");
}

fn is_png(p: &Path) -> bool {
    std::fs::read(p).map(|b| b.starts_with(b"\x89PNG\r\n\x1a\n")).unwrap_or(false)
}

#[test]
fn pack_install_and_sample_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let cache = t.join("cache");
    let cache_s = cache.to_str().unwrap();
    ok(&["train", "mmgan", "--data", "ring8", "--steps", "15", "--batch-size", "32", "--out", "run", "-q"], t, &[]);
    ok(&["hub", "pack", "run", "--id", "me/mm-test", "--out", "model"], t, &[]);
    fails(&["hub", "pack", "run", "--id", "me/mm-test", "--out", "model"], t, &[], "not empty");
    fails(&["hub", "pack", "run", "--id", "../evil", "--out", "m2"], t, &[], "model id \"../evil\"");
    assert!(ok(&["hub", "verify", "model"], t, &[]).starts_with("ok me/mm-test"));

    // Not installed yet: offline is a clear error with no network attempt.
    fails(&["sample", "--model", "me/mm-test", "--offline", "--cache-dir", cache_s], t, &[], "not in the local cache");
    ok(&["hub", "install", "model", "--cache-dir", cache_s], t, &[]);
    let out = ok(
        &["sample", "--model", "me/mm-test", "--offline", "--cache-dir", cache_s, "-n", "100", "--out", "s.png"],
        t,
        &[],
    );
    assert!(is_png(&t.join("s.png")), "{out}");
    // HF_HUB_OFFLINE=1 works like --offline.
    ok(&["sample", "--model", "me/mm-test", "--cache-dir", cache_s, "--out", "s2.png"], t, &[("HF_HUB_OFFLINE", "1")]);
    assert!(is_png(&t.join("s2.png")));
    // Tampering with the cached checkpoint is caught.
    let repo = cache.join("models--me--mm-test");
    let commit = std::fs::read_to_string(repo.join("refs/main")).unwrap();
    let w = repo.join("snapshots").join(commit.trim()).join("model.safetensors");
    let mut b = std::fs::read(&w).unwrap();
    let n = b.len();
    b[n - 3] ^= 0x10;
    std::fs::write(&w, b).unwrap();
    fails(&["sample", "--model", "me/mm-test", "--offline", "--cache-dir", cache_s], t, &[], "checksum mismatch");
    fails(&["sample", "--model", "me/../x", "--offline", "--cache-dir", cache_s], t, &[], "model id");
}

#[test]
fn shipped_pretrained_models_install_and_sample_offline() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let cache_s = cache.to_str().unwrap();
    let out = ok(&["hub", "install", "--cache-dir", cache_s], root, &[]);
    let ids: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("installed ")?.split(' ').next()).collect();
    for m in ["dcgan", "lgan", "lccgan", "lsal", "mmgan"] {
        let id = format!("ganfold/{m}-ring8");
        assert!(ids.contains(&id.as_str()), "{id} not shipped: {out}");
        let png = tmp.path().join(format!("{m}.png"));
        ok(
            &[
                "sample",
                "--model",
                &id,
                "--offline",
                "--cache-dir",
                cache_s,
                "-n",
                "200",
                "--out",
                png.to_str().unwrap(),
            ],
            root,
            &[],
        );
        assert!(is_png(&png), "{id}");
    }
}
