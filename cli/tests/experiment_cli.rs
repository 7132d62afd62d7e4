//! `ganfold experiment` end to end on the 2-D toy data: a killed experiment, run again, finishes
//! without retraining finished runs and reaches the table of an uninterrupted one; `--jobs 2`
//! reaches the same table; bad files and changed definitions are clear errors that overwrite
//! nothing.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const FILE: &str = r#"
claim = "a tiny DCGAN covers the ring's modes"
source = "test"
data = "ring8"
steps = 240
batch_size = 32
seeds = [3, 4]
set = { hidden = 16, nz = 4, checkpoint_every = 20, sample_every = 100000 }

[eval]
samples = 400
metrics = ["modes.modes_covered", "modes.high_quality_fraction"]

[[arm]]
label = "lr 2e-4"
method = "dcgan"

[[arm]]
label = "lr 1e-3"
method = "dcgan"
set = { lr_g = 1e-3, lr_d = 1e-3 }
"#;

fn ganfold(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ganfold"));
    c.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

fn run(args: &[&str]) -> Output {
    ganfold(args).output().unwrap()
}

fn ok(args: &[&str]) {
    let o = run(args);
    assert!(o.status.success(), "ganfold {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
}

fn fails(args: &[&str], needle: &str) -> String {
    let o = run(args);
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "ganfold {args:?} should fail");
    assert!(e.contains(needle), "ganfold {args:?}: {e}\nwanted: {needle}");
    assert!(!e.contains("panicked"), "{e}");
    e
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Every arm's metric values per seed, from results.json.
fn values(results: &Path) -> Vec<(String, Vec<Value>)> {
    let r: Value = serde_json::from_str(&std::fs::read_to_string(results.join("results.json")).unwrap()).unwrap();
    assert_eq!(r["complete"], Value::Bool(true));
    r["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["label"].as_str().unwrap().to_string(),
                a["runs"].as_array().unwrap().iter().map(|r| r["values"].clone()).collect(),
            )
        })
        .collect()
}

#[test]
fn killed_experiment_finishes_without_redoing_runs_and_reaches_the_same_table() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "toy.toml", FILE);
    let f = file.to_str().unwrap();
    let (full, part, jobs) = (tmp.path().join("full"), tmp.path().join("part"), tmp.path().join("jobs"));

    ok(&["experiment", "run", f, "--results", full.to_str().unwrap(), "-q"]);
    let want = values(&full.join("toy"));
    assert_eq!(want.len(), 2);
    let table = std::fs::read_to_string(full.join("toy/table.md")).unwrap();
    assert!(table.contains("| lr 1e-3 | `dcgan` |") && table.contains("2 of 2"), "{table}");
    assert!(std::fs::read(full.join("toy/plot.png")).unwrap().starts_with(b"\x89PNG"));

    // Kill once the first run is finished and the second has a checkpoint.
    let runs = part.join("toy/runs/lr-2e-4");
    let mut child = ganfold(&["experiment", "run", f, "--results", part.to_str().unwrap(), "-q"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        assert!(child.try_wait().unwrap().is_none(), "the experiment ended before it could be killed");
        assert!(Instant::now() < deadline, "no checkpoint of the second run in 300 s");
        if runs.join("seed-3/eval.json").exists() && runs.join("seed-4/checkpoint/state.safetensors").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!part.join("toy/table.md").exists());
    let first = std::fs::read(runs.join("seed-3/summary.json")).unwrap();
    let first_eval = std::fs::read(runs.join("seed-3/eval.json")).unwrap();

    // `report` on the partial results: the table says what is missing.
    ok(&["experiment", "report", f, "--results", part.to_str().unwrap()]);
    let partial = std::fs::read_to_string(part.join("toy/table.md")).unwrap();
    assert!(partial.contains("Incomplete") && partial.contains("1 of 2"), "{partial}");

    ok(&["experiment", "run", f, "--results", part.to_str().unwrap(), "-q"]);
    assert_eq!(std::fs::read(runs.join("seed-3/summary.json")).unwrap(), first, "a finished run was trained again");
    assert_eq!(std::fs::read(runs.join("seed-3/eval.json")).unwrap(), first_eval, "a finished run was evaluated again");
    let resumed: Value =
        serde_json::from_str(&std::fs::read_to_string(runs.join("seed-4/summary.json")).unwrap()).unwrap();
    assert!(resumed["steps_this_run"].as_u64().unwrap() < 240, "the partial run did not resume from its checkpoint");
    assert_eq!(values(&part.join("toy")), want);

    // Two runs at once, one core each: the same numbers.
    ok(&["experiment", "run", f, "--results", jobs.to_str().unwrap(), "--jobs", "2", "-q"]);
    assert_eq!(values(&jobs.join("toy")), want);

    // Run again: nothing to do, and the table is unchanged.
    let before = std::fs::read(full.join("toy/results.json")).unwrap();
    ok(&["experiment", "run", f, "--results", full.to_str().unwrap(), "-q"]);
    assert_eq!(std::fs::read(full.join("toy/results.json")).unwrap(), before);

    // The file changed under existing results: an error naming the change; nothing overwritten.
    let table_before = std::fs::read(full.join("toy/table.md")).unwrap();
    let changed = write(tmp.path(), "toy.toml", &FILE.replace("steps = 240", "steps = 250"));
    let e = fails(
        &["experiment", "run", changed.to_str().unwrap(), "--results", full.to_str().unwrap()],
        "another definition",
    );
    assert!(e.contains("train.steps is 240 there, 250 in the file"), "{e}");
    let fewer = FILE.replace("seeds = [3, 4]", "seeds = [3]");
    write(tmp.path(), "toy.toml", &fewer);
    fails(&["experiment", "run", f, "--results", full.to_str().unwrap()], "the arms or seeds changed");
    assert_eq!(std::fs::read(full.join("toy/table.md")).unwrap(), table_before);
}

#[test]
fn bad_experiment_files_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("res");
    let r = res.to_str().unwrap();
    let cases = [
        (FILE.replace("method = \"dcgan\"\nset", "method = \"nope\"\nset"), "unknown method `nope`"),
        (FILE.replace("lr_g = 1e-3", "lr_q = 1e-3"), "unknown config key `lr_q`"),
        (FILE.replace("\"modes.high_quality_fraction\"", "\"fid.fid\""), "unknown metric `fid.fid` for data `ring8`"),
        (FILE.replace("label = \"lr 1e-3\"", "label = \"lr 2e-4\""), "arm label `lr 2e-4` is used twice"),
        (FILE.replace("data = \"ring8\"", "data = \"no-such-data\""), "unknown dataset `no-such-data`"),
        (FILE.replace("steps = 240", "steps = \"many\""), "invalid experiment file"),
    ];
    for (text, needle) in cases {
        let f = write(tmp.path(), "bad.toml", &text);
        fails(&["experiment", "run", f.to_str().unwrap(), "--results", r], needle);
        assert!(!res.join("bad/runs").exists(), "{needle}: a bad file started runs");
    }
    fails(&["experiment", "run", tmp.path().join("missing.toml").to_str().unwrap()], "cannot read experiment file");
    let f = write(tmp.path(), "toy.toml", FILE);
    fails(&["experiment", "run", f.to_str().unwrap(), "--results", r, "--only", "nope"], "no arm is labelled `nope`");
}

#[test]
fn list_names_each_experiment_with_its_grid_and_quick_runs_every_arm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("exps");
    std::fs::create_dir(&dir).unwrap();
    let f = write(&dir, "toy.toml", FILE);
    let o = Command::new(env!("CARGO_BIN_EXE_ganfold"))
        .args(["experiment", "list", "--dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.contains("toy") && out.contains("2 x 2") && out.contains("tiny DCGAN"), "{out}");
    let res = tmp.path().join("res");
    ok(&["experiment", "run", "--quick", f.to_str().unwrap(), "--results", res.to_str().unwrap(), "-q"]);
    assert!(!res.exists(), "--quick wrote into the results directory");
}

/// A metric the evaluation found undefined (`null`: a KL to uniform with no high-quality
/// sample) is left out of its arm's mean and counted in its cell; the run counts as finished
/// and is not evaluated again.
#[test]
fn undefined_metrics_are_counted_not_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let text = FILE
        .replace("steps = 240", "steps = 20")
        .replace("\"modes.high_quality_fraction\"", "\"modes.kl_to_uniform\"")
        .replace("[[arm]]\nlabel = \"lr 1e-3\"\nmethod = \"dcgan\"\nset = { lr_g = 1e-3, lr_d = 1e-3 }\n", "");
    let f = write(tmp.path(), "toy.toml", &text);
    let (f, res) = (f.to_str().unwrap(), tmp.path().join("results"));
    ok(&["experiment", "run", f, "--results", res.to_str().unwrap(), "-q"]);
    // Seed 3 with a KL, seed 4 without (20 steps leave no high-quality sample, so set both).
    let set_kl = |seed: u32, kl: Value| {
        let p = res.join(format!("toy/runs/lr-2e-4/seed-{seed}/eval.json"));
        let mut e: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        e["modes"]["kl_to_uniform"] = kl;
        std::fs::write(&p, serde_json::to_vec_pretty(&e).unwrap()).unwrap();
    };
    set_kl(3, 0.5.into());
    set_kl(4, Value::Null);
    let eval = res.join("toy/runs/lr-2e-4/seed-4/eval.json");
    let before = std::fs::read(&eval).unwrap();
    ok(&["experiment", "run", f, "--results", res.to_str().unwrap(), "-q"]);
    assert_eq!(std::fs::read(&eval).unwrap(), before, "a run with an undefined metric was evaluated again");
    let table = std::fs::read_to_string(res.join("toy/table.md")).unwrap();
    let row = table.lines().find(|l| l.starts_with("| lr 2e-4")).unwrap();
    assert!(row.contains("| 0.500 (1 of 2) |") && row.contains("| 2 of 2 |"), "{row}");
    assert!(table.contains("A cell marked (k of n)") && !table.contains("Incomplete"), "{table}");
}

const PREPARED: &str = r#"
claim = "LCC arms share one fit of the bases"
source = "test"
data = "ring8"
steps = 6
batch_size = 32
seeds = [0, 1]
set = { hidden = 16, bases = 8, ae_latent_dim = 3, lcc_points = 64, knn_k = 8, eval_samples = 0 }

[eval]
samples = 100
metrics = ["modes.modes_covered", { key = "summary.evaluation.lcc_nnz", label = "nnz" }]

[[prepare]]
name = "stages"
method = "lccgan"
steps = 7
set = { ae_steps = 4, lcc_rounds = 2 }
quick_set = { ae_steps = 2, lcc_rounds = 1 }

[[arm]]
label = "learned"
method = "lccgan"
set = { latent_dim = 2, init_from = "{prepare.stages}" }

[[arm]]
label = "random"
method = "lccgan"
set = { latent_dim = 3, sampler = "random_bases", init_from = "{prepare.stages}" }
"#;

/// A `[[prepare]]` run trains once, before the arms that name it; every arm adopts its fit
/// (the same LCC code size in every run), a second run of the file leaves it alone, and a
/// changed or unknown prepared run is a clear error.
#[test]
fn prepared_runs_train_once_and_arms_build_on_them() {
    let tmp = tempfile::tempdir().unwrap();
    let f = write(tmp.path(), "lcc.toml", PREPARED);
    let (f, res) = (f.to_str().unwrap(), tmp.path().join("results"));
    let r = res.to_str().unwrap();
    ok(&["experiment", "run", f, "--results", r, "-q"]);
    let stages = res.join("lcc/prepare/stages");
    let summary: Value = serde_json::from_slice(&std::fs::read(stages.join("summary.json")).unwrap()).unwrap();
    assert_eq!((summary["status"].as_str(), summary["steps"].as_u64()), (Some("completed"), Some(7)));
    let nnz: Vec<Value> = values(&res.join("lcc")).into_iter().flat_map(|(_, v)| v).map(|v| v[1].clone()).collect();
    assert_eq!(nnz.len(), 4);
    assert!(nnz[0].as_f64().is_some() && nnz.iter().all(|v| *v == nnz[0]), "one shared fit: {nnz:?}");
    let cfg = std::fs::read_to_string(res.join("lcc/runs/random/seed-1/config.toml")).unwrap();
    assert!(cfg.contains(&format!("init_from = \"{}\"", stages.display())), "{cfg}");
    let table = std::fs::read_to_string(res.join("lcc/table.md")).unwrap();
    assert!(table.contains("Trained once before the arms (`{prepare.stages}`)"), "{table}");

    let log = std::fs::read(stages.join("metrics.jsonl")).unwrap();
    std::fs::remove_dir_all(res.join("lcc/runs/learned/seed-0")).unwrap();
    ok(&["experiment", "run", f, "--results", r, "-q"]);
    assert_eq!(std::fs::read(stages.join("metrics.jsonl")).unwrap(), log, "the prepared run trained again");
    assert!(res.join("lcc/runs/learned/seed-0/eval.json").exists());

    let changed = write(
        tmp.path(),
        "lcc.toml",
        &PREPARED.replace("ae_steps = 4, lcc_rounds = 2", "ae_steps = 3, lcc_rounds = 3"),
    );
    let changed = changed.to_str().unwrap();
    std::fs::remove_dir_all(res.join("lcc/runs/learned/seed-0")).unwrap();
    fails(&["experiment", "run", changed, "--results", r], "another definition of the experiment");
    let unknown = write(
        tmp.path(),
        "lcc.toml",
        &PREPARED
            .replace("init_from = \"{prepare.stages}\" }\n\n[[arm]]", "init_from = \"{prepare.nope}\" }\n\n[[arm]]"),
    );
    fails(
        &["experiment", "run", unknown.to_str().unwrap(), "--results", r],
        "names a [[prepare]] run the file does not have",
    );
    let f = write(tmp.path(), "lcc.toml", PREPARED);
    ok(&[
        "experiment",
        "run",
        "--quick",
        f.to_str().unwrap(),
        "--results",
        tmp.path().join("q").to_str().unwrap(),
        "-q",
    ]);
}
