//! End-to-end tests of the real `ganfold` binary: training, determinism, resume, sampling, and
//! a clear one-line error (never a panic, never a half-written run) for each kind of bad input.

use candle_core::Device;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ganfold(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ganfold"))
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .expect("the ganfold binary runs")
}

fn ok(args: &[&str]) -> String {
    let o = ganfold(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "ganfold {args:?} failed:\n{err}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs a command that must fail: non-zero exit, one `error:` line on stderr naming `needle`,
/// no panic.
fn fails(args: &[&str], needle: &str) {
    let o = ganfold(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "ganfold {args:?} should fail");
    assert!(!err.contains("panicked"), "panic on {args:?}:\n{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line for {args:?}, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(err.contains(needle), "error for {args:?} should mention {needle:?}:\n{err}");
}

/// A small, fast conv DCGAN run on the embedded digits.
const TINY: &[&str] = &["--batch-size", "8", "--set", "ngf=4", "--set", "ndf=4", "--set", "nz=8", "-q"];

fn train_tiny(out: &Path, steps: usize, extra: &[&str]) {
    let steps = steps.to_string();
    let mut a = vec!["train", "dcgan", "--steps", &steps, "--out", out.to_str().unwrap()];
    a.extend_from_slice(TINY);
    a.extend_from_slice(extra);
    ok(&a);
}

fn checkpoint_tensors(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let ck = ganfold_core::checkpoint::load(&dir.join("checkpoint/state.safetensors"), &Device::Cpu).unwrap();
    ck.state
        .tensors
        .iter()
        .map(|(k, t)| {
            (k.clone(), t.to_dtype(candle_core::DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap())
        })
        .collect()
}

#[test]
fn list_shows_dcgan_with_paper_and_summary() {
    let out = ok(&["list"]);
    let line = out.lines().find(|l| l.starts_with("dcgan ")).expect("dcgan listed");
    assert!(line.contains("Radford") && line.contains("baseline"), "{line}");
    assert!(ok(&["list", "--datasets"]).contains("ring8"));
}

#[test]
fn train_writes_a_complete_run_directory_and_sample_works() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    train_tiny(&run, 4, &["--set", "train.sample_count=9"]);
    for f in [
        "config.toml",
        "metrics.jsonl",
        "summary.json",
        "loss.png",
        "samples/final.png",
        "samples/step_000004.png",
        "checkpoint/state.safetensors",
    ] {
        assert!(run.join(f).is_file(), "missing {f}");
    }
    let png = std::fs::read(run.join("samples/final.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    assert!(
        first["step"].as_u64().is_some() && first["d_loss"].as_f64().is_some() && first["g_loss"].as_f64().is_some()
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["steps"], 4);
    let out = tmp.path().join("s.png");
    let printed = ok(&["sample", "--run", run.to_str().unwrap(), "-n", "16", "--out", out.to_str().unwrap()]);
    assert!(printed.contains("s.png") && std::fs::read(&out).unwrap().starts_with(b"\x89PNG"));
    // Every path it printed is the PNG or lies in `s-figures/` beside it; nothing else is written
    // into the folder that holds --out.
    for line in printed.lines() {
        let p = Path::new(line);
        assert!(p == out || p.starts_with(tmp.path().join("s-figures")), "{line}");
    }
    let names: Vec<String> =
        std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| ["run", "s.png", "s-figures"].contains(&n.as_str())), "{names:?}");

    // A copy of a finished model's files (no checkpoint/ folder) is no run to resume: refused,
    // and nothing in it changes.
    let copy = tmp.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    for f in ["config.toml", "summary.json"] {
        std::fs::copy(run.join(f), copy.join(f)).unwrap();
    }
    fails(&["train", "--resume", copy.to_str().unwrap(), "-q"], "not a run directory ganfold can resume");
    let mut left: Vec<_> = std::fs::read_dir(&copy).unwrap().map(|e| e.unwrap().file_name()).collect();
    left.sort();
    assert_eq!(left, ["config.toml", "summary.json"]);
}

#[test]
fn same_seed_gives_identical_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    let every = ["--set", "log_every=1"];
    train_tiny(&a, 6, &every);
    train_tiny(&b, 6, &every);
    train_tiny(&c, 6, &[every[0], every[1], "--seed", "1"]);
    let (ma, mb, mc) = [&a, &b, &c].map(|d| std::fs::read_to_string(d.join("metrics.jsonl")).unwrap()).into();
    assert_eq!(ma.lines().count(), 6);
    assert_eq!(ma, mb, "same seed, same metrics");
    assert_ne!(ma, mc, "another seed, other metrics");
}

#[test]
fn resume_equals_uninterrupted_run() {
    for data in ["mnist-5k", "ring8"] {
        let tmp = tempfile::tempdir().unwrap();
        let (full, part) = (tmp.path().join("full"), tmp.path().join("part"));
        let extra = ["--data", data, "--set", "log_every=1", "--set", "checkpoint_every=3"];
        train_tiny(&full, 7, &extra);
        train_tiny(&part, 4, &extra); // checkpoints at 3 and 4
        ok(&["train", "--resume", part.to_str().unwrap(), "--steps", "7", "-q"]);
        let (tf, tp) = (checkpoint_tensors(&full), checkpoint_tensors(&part));
        assert_eq!(tf.len(), tp.len());
        for ((kf, vf), (kp, vp)) in tf.iter().zip(&tp) {
            assert_eq!(kf, kp);
            let max = vf.iter().zip(vp).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(max <= 1e-6, "{data}: tensor {kf} differs by {max}");
        }
        let mf = std::fs::read_to_string(full.join("metrics.jsonl")).unwrap();
        let mp = std::fs::read_to_string(part.join("metrics.jsonl")).unwrap();
        assert_eq!(mf, mp, "{data}: resumed metrics equal the uninterrupted ones");
        // Nothing left to do: a clear error.
        fails(&["train", "--resume", part.to_str().unwrap(), "--steps", "7"], "already completed");
    }
}

#[test]
fn divergence_stops_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = ganfold(&[
        "train",
        "dcgan",
        "--data",
        "ring8",
        "--steps",
        "50",
        "--batch-size",
        "16",
        "-q",
        "--out",
        run.to_str().unwrap(),
        "--set",
        "lr_d=1e30",
        "--set",
        "lr_g=1e30",
        "--set",
        "checkpoint_every=1",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("diverged") && !err.contains("panicked"), "{err}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "diverged");
    if err.contains("last good checkpoint") {
        let ck = ganfold_core::checkpoint::load(&run.join("checkpoint/state.safetensors"), &Device::Cpu).unwrap();
        assert!(ganfold_core::checkpoint::all_finite(&ck.state.tensors).unwrap().is_none());
        assert!(ck.meta.step < summary["steps"].as_u64().unwrap() as usize);
    }
}

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    dims.iter().for_each(|d| b.extend_from_slice(&d.to_be_bytes()));
    b.extend_from_slice(data);
    b
}

/// Every bad input: one clear error line, non-zero exit, no run directory left behind.
#[test]
fn bad_input_is_a_clear_error_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let out = t.join("never");
    let o = out.to_str().unwrap();
    let d = |name: &str| t.join(name).to_str().unwrap().to_string();

    write(&t.join("badmagic/train-images-idx3-ubyte"), &[7, 7, 8, 3, 0, 0, 0, 1]);
    write(&t.join("trunc/train-images-idx3-ubyte"), &idx(&[10, 28, 28], &[0; 700]));
    write(&t.join("shape/train-images-idx3-ubyte"), &idx(&[4, 5, 5], &[0; 100]));
    write(&t.join("labels/train-images-idx3-ubyte"), &idx(&[4, 28, 28], &[0; 4 * 784]));
    write(&t.join("labels/train-labels-idx1-ubyte"), &idx(&[3], &[0; 3]));
    write(&t.join("gz/train-images-idx3-ubyte.gz"), &[0x1f, 0x8b, 8, 0, 1, 2, 3, 4]);
    let file = write(&t.join("afile"), b"x");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--data".into(), d("badmagic")], "bad magic"),
        (vec!["--data".into(), d("trunc")], "truncated"),
        (vec!["--data".into(), d("shape"), "--set".into(), "arch=conv".into()], "28x28"),
        (vec!["--data".into(), d("labels")], "expected 4 labels"),
        (vec!["--data".into(), d("gz")], "gzip"),
        (vec!["--data".into(), "no-such-dataset".into()], "unknown dataset"),
        (vec!["--set".into(), "nope=1".into()], "unknown config key `nope`"),
        (vec!["--set".into(), "ngf=abc".into()], "`ngf`"),
        (vec!["--set".into(), "ngf=4611686018427387904".into()], "largest size"),
        (vec!["--set".into(), "ngf=1000000".into()], "network parameter `fc.weight`"),
        (vec!["--set".into(), "lr_g=-0.1".into()], "learning rate must be positive"),
        (vec!["--set".into(), "ngf=-3".into()], "`ngf`"),
        (vec!["--set".into(), "train.seed=-1".into()], "`seed`"),
        (
            vec!["--set".into(), "train.steps=99999999999999999999999".into()],
            "`train.steps`: 99999999999999999999999 is out of range",
        ),
        (vec!["--batch-size".into(), "0".into()], "batch_size"),
        (vec!["--device".into(), "cuda".into()], "CUDA"),
        (vec!["--device".into(), "tpu".into()], "unknown device"),
        (vec!["--out".into(), file.join("run").to_str().unwrap().into()], "cannot create run directory"),
    ];
    for (extra, needle) in cases {
        let mut a = vec!["train", "dcgan", "--steps", "2", "-q"];
        if !extra.iter().any(|x| x == "--out") {
            a.extend(["--out", o]);
        }
        a.extend(extra.iter().map(String::as_str));
        fails(&a, needle);
        assert!(!out.exists(), "{a:?} left a run directory behind");
    }
    fails(&["train", "nosuchmethod", "--out", o], "unknown method `nosuchmethod`");
    let cfg = write(&t.join("c.toml"), b"[train]\nsteps = 3\n[method]\nbogus = 1\n");
    fails(&["train", "dcgan", "--config", cfg.to_str().unwrap(), "--out", o], "unknown config key `bogus`");
    if Path::new("/dev/zero").exists() {
        fails(&["train", "dcgan", "--config", "/dev/zero", "--out", o], "more than");
    }
    let cfg = write(&t.join("c2.toml"), b"[train\nsteps = 3\n");
    fails(&["train", "dcgan", "--config", cfg.to_str().unwrap(), "--out", o], "invalid TOML");
    assert!(!out.exists());
    fails(&["sample", "--run", t.join("nowhere").to_str().unwrap()], "not a ganfold run directory");
    // A run directory named in bytes that are not UTF-8 is refused before training (its name goes
    // into summary.json), not after it.
    {
        use std::os::unix::ffi::OsStrExt;
        let bad = t.join(std::ffi::OsStr::from_bytes(b"run-\xff"));
        let o = Command::new(env!("CARGO_BIN_EXE_ganfold"))
            .args(["train", "dcgan", "--steps", "100000", "-q", "--out"])
            .arg(&bad)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains("not valid UTF-8"), "{err}");
        assert!(!bad.exists());
    }
}

/// Resuming with a checkpoint that does not fit (another method, other shapes, corrupt file)
/// is a clear error that leaves the checkpoint untouched.
#[test]
fn mismatched_or_corrupt_checkpoints_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    train_tiny(&run, 2, &[]);
    let r = run.to_str().unwrap();
    let ck_path = run.join("checkpoint/state.safetensors");
    let before = std::fs::read(&ck_path).unwrap();
    fails(&["train", "--resume", r, "--steps", "4", "--set", "ngf=6"], "shape");
    fails(&["train", "lgan-nonexistent", "--resume", r, "--steps", "4"], "not `lgan-nonexistent`");

    // A checkpoint whose header names another method.
    let mut ck = ganfold_core::checkpoint::load(&ck_path, &Device::Cpu).unwrap();
    ck.meta.method = "other".into();
    ganfold_core::checkpoint::save(&ck_path, &ck.meta, &ck.state.tensors).unwrap();
    fails(&["train", "--resume", r, "--steps", "4"], "of method `other`");
    fails(&["sample", "--run", r], "of method `other`");

    // Truncated checkpoint.
    std::fs::write(&ck_path, &before[..before.len() / 2]).unwrap();
    fails(&["train", "--resume", r, "--steps", "4"], "checkpoint");
    std::fs::write(&ck_path, &before).unwrap();
    ok(&["train", "--resume", r, "--steps", "3", "-q"]);
}

#[test]
fn bench_times_the_named_methods_and_rejects_bad_arguments() {
    let out = ok(&["bench", "--methods", "dcgan", "--steps", "1", "--warmup", "0", "--threads", "1"]);
    assert!(out.contains("large SGEMM") && out.contains("GFLOP/s"), "{out}");
    {
        let m = "dcgan";
        let row =
            out.lines().find(|l| l.starts_with(&format!("{m} "))).unwrap_or_else(|| panic!("no row for {m}:\n{out}"));
        let ms: f64 = row.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert!(ms > 0.0 && ms.is_finite(), "{row}");
    }
    fails(&["bench", "--steps", "0"], "at least 1");
    fails(&["bench", "--methods", "nope", "--steps", "1"], "nope");
}

/// Under an address-space limit (`ulimit -v`), a network too wide for it is refused with one
/// error line (the memory budget takes the limit into account) instead of an allocation abort,
/// while a small run under the same limit trains.
#[test]
fn an_address_space_limit_gives_an_error_not_an_abort() {
    if !Path::new("/proc/self/limits").exists() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_ganfold");
    let run = |ngf: &str, out: &str| {
        let script = format!(
            "ulimit -v 2000000 && exec {bin} train dcgan --steps 1 --batch-size 8 --set ngf={ngf} --set ndf=4 -q --out {out}"
        );
        Command::new("bash").arg("-c").arg(script).env("RAYON_NUM_THREADS", "1").output().unwrap()
    };
    let small = run("4", tmp.path().join("small").to_str().unwrap());
    assert!(small.status.success(), "{}", String::from_utf8_lossy(&small.stderr));
    let wide = run("1200", tmp.path().join("wide").to_str().unwrap());
    let err = String::from_utf8_lossy(&wide.stderr);
    assert_eq!(wide.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() == 1 && lines[0].starts_with("error: ") && err.contains("memory available"), "{err}");
}
