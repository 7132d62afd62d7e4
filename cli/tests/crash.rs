//! Crash safety of the real `ganfold train`: SIGKILL at seeded random moments and in the middle
//! of checkpoint writes, resume each time, and finish with exactly the weights and metrics of
//! an uninterrupted run of the same seed. After every kill the checkpoint on disk must be a
//! complete one (it loads, at a checkpoint step, never going back), and a write cut short
//! leaves only a temp file that is never read and is removed on resume.

use candle_core::Device;
use ganfold_core::Rng;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

// Ten rounds can never finish the run: five timed kills of at most 1/8 of a run each, plus five
// kills inside writes that keep at most one new checkpoint each (20 of 96 steps).
const STEPS: usize = 96;
const EVERY: usize = 4;
/// `GANFOLD_SLOW_WRITE_MS` (docs/reliability.md): each atomic write pauses halfway, so that the
/// kills below can land inside a checkpoint write.
const SLOW_WRITE_MS: &str = "25";

fn ganfold(args: &[String], slow: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ganfold"));
    c.args(args).env("RAYON_NUM_THREADS", "1").stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    if slow {
        c.env("GANFOLD_SLOW_WRITE_MS", SLOW_WRITE_MS);
    }
    c
}

fn train_args(out: &Path) -> Vec<String> {
    let steps = STEPS.to_string();
    let every = format!("checkpoint_every={EVERY}");
    let a: Vec<&str> = vec![
        "train",
        "dcgan",
        "--data",
        "ring8",
        "--steps",
        &steps,
        "--batch-size",
        "16",
        "--seed",
        "3",
        "-q",
        "--set",
        "hidden=16",
        "--set",
        "nz=4",
        "--set",
        &every,
        "--set",
        "log_every=1",
        "--set",
        "sample_every=100000",
        "--out",
        out.to_str().unwrap(),
    ];
    a.into_iter().map(String::from).collect()
}

fn resume_args(dir: &Path) -> Vec<String> {
    ["train", "--resume", dir.to_str().unwrap(), "-q"].map(String::from).to_vec()
}

fn temps(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for sub in ["", "checkpoint", "samples", "figures"] {
        if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
            out.extend(rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "tmp")));
        }
    }
    out
}

/// Whether process `pid` has a checkpoint write in progress (its temp file exists).
fn checkpoint_temp(dir: &Path, pid: u32) -> bool {
    dir.join(format!("checkpoint/.state.safetensors.{pid}.tmp")).exists()
}

/// Step of the checkpoint on disk (0 if none). It must always load: never a partial file.
fn checkpoint_step(dir: &Path) -> usize {
    let p = dir.join("checkpoint/state.safetensors");
    if !p.exists() {
        return 0;
    }
    let ck = ganfold_core::checkpoint::load(&p, &Device::Cpu)
        .unwrap_or_else(|e| panic!("checkpoint after a kill does not load: {e:#}"));
    assert!(ck.meta.step.is_multiple_of(EVERY) || ck.meta.step == STEPS, "checkpoint at step {}", ck.meta.step);
    ck.meta.step
}

fn tensors(dir: &Path) -> Vec<(String, Vec<u32>)> {
    let ck = ganfold_core::checkpoint::load(&dir.join("checkpoint/state.safetensors"), &Device::Cpu).unwrap();
    ck.state
        .tensors
        .iter()
        .map(|(k, t)| {
            let bits = match t.dtype() {
                candle_core::DType::F32 => {
                    t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()).collect()
                }
                _ => t.to_dtype(candle_core::DType::U32).unwrap().flatten_all().unwrap().to_vec1::<u32>().unwrap(),
            };
            (k.clone(), bits)
        })
        .collect()
}

/// Kills `child` once `k` checkpoint writes have begun (a temp file appeared in checkpoint/),
/// while the k-th is still being written. Returns false if the process ended first.
fn kill_in_write(child: &mut Child, dir: &Path, k: usize) -> bool {
    let (mut seen, mut was) = (0, false);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let now = checkpoint_temp(dir, child.id());
        if now && !was {
            seen += 1;
            if seen == k {
                child.kill().unwrap();
                child.wait().unwrap();
                return true;
            }
        }
        was = now;
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("no checkpoint write seen in 60 s");
}

/// Kills `child` after `delay`; false if it ended first.
fn kill_after(child: &mut Child, delay: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < delay {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let killed = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    child.wait().unwrap();
    killed
}

#[test]
fn sigkill_anywhere_then_resume_equals_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (full, part) = (tmp.path().join("full"), tmp.path().join("part"));

    let t0 = Instant::now();
    let o = ganfold(&train_args(&full), true).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run_ms = t0.elapsed().as_millis() as usize;

    let mut rng = Rng::new(10);
    let (mut kills, mut in_write, mut restarts) = (0, 0, 0);
    let mut last_step = 0;
    for round in 0..10 {
        let fresh = !part.join("config.toml").exists();
        if fresh && part.exists() {
            // Killed before config.toml was written: nothing to keep, start again.
            std::fs::remove_dir_all(&part).unwrap();
            restarts += 1;
        }
        let args = if fresh { train_args(&part) } else { resume_args(&part) };
        let from = checkpoint_step(&part);
        let mut child = ganfold(&args, true).spawn().unwrap();
        let killed = if round % 2 == 1 {
            let k = 1 + rng.below(2);
            let pid = child.id();
            let hit = kill_in_write(&mut child, &part, k);
            if hit {
                in_write += 1;
                // The write in progress was cut: the previous complete checkpoint remains,
                // and only a temp file shows the attempt.
                assert!(checkpoint_temp(&part, pid), "round {round}: the kill should leave the cut write's temp file");
                let want = from + (k - 1) * EVERY;
                assert_eq!(checkpoint_step(&part), want, "round {round}: not the last complete checkpoint");
            }
            hit
        } else {
            // Up to 1/8 of a whole run, start-up included.
            kill_after(&mut child, Duration::from_millis(rng.below(run_ms / 8 + 1) as u64))
        };
        if !killed {
            break; // finished before the kill: resume below has nothing left to do
        }
        kills += 1;
        let step = checkpoint_step(&part);
        eprintln!("round {round}: killed, checkpoint at step {step}");
        assert!(step >= last_step, "round {round}: checkpoint went back from {last_step} to {step}");
        last_step = step;
    }
    // Resume to the end (a no-op error if the last round already finished).
    if !part.join("summary.json").exists() || checkpoint_step(&part) < STEPS {
        let o = ganfold(&resume_args(&part), false).output().unwrap();
        assert!(o.status.success(), "final resume failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(temps(&part), Vec::<PathBuf>::new(), "temp files left after the final resume");

    let (tf, tp) = (tensors(&full), tensors(&part));
    assert_eq!(tf.iter().map(|t| &t.0).collect::<Vec<_>>(), tp.iter().map(|t| &t.0).collect::<Vec<_>>());
    for ((k, a), (_, b)) in tf.iter().zip(&tp) {
        assert!(a == b, "tensor {k} differs from the uninterrupted run");
    }
    let m = |d: &Path| std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
    assert_eq!(m(&full), m(&part), "metrics.jsonl differs from the uninterrupted run");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(part.join("summary.json")).unwrap()).unwrap();
    assert_eq!((s["status"].as_str(), s["steps"].as_u64()), (Some("completed"), Some(STEPS as u64)));
    assert!(
        kills >= 6 && in_write >= 3,
        "only {kills} kills, {in_write} inside a checkpoint write (restarts {restarts})"
    );
    eprintln!(
        "{kills} kills ({in_write} inside checkpoint writes, {restarts} restarts); uninterrupted run {run_ms} ms"
    );
}

/// A run killed before its first checkpoint resumes by starting over (nothing trained is lost,
/// and the result equals an uninterrupted run).
#[test]
fn resume_before_the_first_checkpoint_starts_over() {
    let tmp = tempfile::tempdir().unwrap();
    let (full, part) = (tmp.path().join("full"), tmp.path().join("part"));
    for d in [&full, &part] {
        let o = ganfold(&train_args(d), false).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // What a kill before step EVERY leaves: the setup files, a cut log line, a cut write.
    std::fs::remove_file(part.join("checkpoint/state.safetensors")).unwrap();
    std::fs::remove_file(part.join("summary.json")).unwrap();
    std::fs::write(part.join("metrics.jsonl"), "{\"step\":1,\"d_loss\":0.69}\n{\"step\":2,\"d_lo").unwrap();
    std::fs::write(part.join("checkpoint/.state.safetensors.999.tmp"), b"half a checkpoint").unwrap();
    let o = ganfold(&resume_args(&part), false).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(temps(&part), Vec::<PathBuf>::new());
    assert!(tensors(&full) == tensors(&part), "weights differ from the uninterrupted run");
    let m = |d: &Path| std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
    assert_eq!(m(&full), m(&part));
}

/// A kill after the last checkpoint but before `summary.json` (final samples, figures and
/// evaluation not written yet): `--resume` finishes the run without training, and a second
/// `--resume` says the run is complete.
#[test]
fn resume_after_the_last_checkpoint_finishes_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (full, part) = (tmp.path().join("full"), tmp.path().join("part"));
    for d in [&full, &part] {
        let o = ganfold(&train_args(d), false).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    std::fs::remove_file(part.join("summary.json")).unwrap();
    std::fs::remove_file(part.join("samples/final.png")).unwrap();
    let o = ganfold(&resume_args(&part), false).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(part.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["steps"], STEPS);
    assert_eq!(summary["steps_this_run"], 0);
    assert!(summary["final_stats"]["d_loss"].is_number(), "final losses from the log: {summary}");
    assert!(part.join("samples/final.png").exists());
    assert!(tensors(&full) == tensors(&part), "finishing must not train");
    let o = ganfold(&resume_args(&part), false).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already completed"));
}

/// Hidden setup directories `.NAME.PID.tmp` of `train --out PARENT/NAME`.
fn setup_dirs(parent: &Path, name: &str) -> Vec<PathBuf> {
    let prefix = format!(".{name}.");
    let Ok(rd) = std::fs::read_dir(parent) else { return vec![] };
    rd.flatten().map(|e| e.path()).filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&prefix)).collect()
}

/// Kills while `train` sets up its run directory (each write slowed so that the kill lands inside
/// the setup) never leave a half-made run directory: `--out` is absent, or a whole run that resumes.
#[test]
fn kills_during_setup_leave_no_half_made_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let mut hits = 0;
    for extra_ms in [0u64, 5, 10, 20, 30, 40] {
        let mut child = ganfold(&train_args(&out), true).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while setup_dirs(tmp.path(), "run").is_empty() && child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "no setup directory seen in 60 s");
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(extra_ms));
        let _ = child.kill();
        child.wait().unwrap();
        if out.exists() {
            // The kill came after the rename: a whole run directory, which resumes.
            assert!(out.join("config.toml").exists(), "half-made run directory after a {extra_ms} ms kill");
            let o = ganfold(&resume_args(&out), false).output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            std::fs::remove_dir_all(&out).unwrap();
        } else {
            hits += 1;
        }
    }
    assert!(hits >= 1, "no kill landed inside the setup");
    // A later `train` into the same --out starts cleanly.
    let o = ganfold(&train_args(&out), false).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// While one process trains into a run directory, a second `train --resume` of it and a second
/// `train` into it fail with a clear error, and the first run is not disturbed.
#[test]
fn a_run_directory_in_use_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, alone) = (tmp.path().join("run"), tmp.path().join("alone"));
    let mut first = ganfold(&train_args(&out), true).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !checkpoint_temp(&out, first.id()) {
        assert!(first.try_wait().unwrap().is_none(), "the first run ended before its first checkpoint write");
        assert!(Instant::now() < deadline, "no checkpoint write seen in 60 s");
        std::thread::sleep(Duration::from_millis(1));
    }
    let o = ganfold(&resume_args(&out), false).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("in use") && err.contains(&first.id().to_string()), "{err}");
    let o = ganfold(&train_args(&out), false).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not empty"));
    assert!(first.wait().unwrap().success(), "the first run was disturbed");
    let o = ganfold(&train_args(&alone), false).output().unwrap();
    assert!(o.status.success());
    assert!(tensors(&out) == tensors(&alone), "the first run's result changed");
    let m = |d: &Path| std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
    assert_eq!(m(&out), m(&alone));
}
