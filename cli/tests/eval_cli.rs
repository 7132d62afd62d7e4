//! End-to-end tests of `ganfold eval` through the real binary.

use std::process::Command;

fn ganfold() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ganfold"))
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "ganfold failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

#[test]
fn eval_data_ring8_is_the_real_data_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ceiling.json");
    let out = ganfold().args(["eval", "--data", "ring8", "--samples", "2000", "--out"]).arg(&path).output().unwrap();
    let j = json_of(&out);
    let m = &j["modes"];
    assert_eq!(m["modes_covered"], 8);
    assert_eq!(m["n_samples"], 2000);
    // Real 2-D Gaussian samples fall within 3σ with probability 1 − e^{−4.5} ≈ 0.989.
    let hq = m["high_quality_fraction"].as_f64().unwrap();
    assert!((hq - 0.989).abs() < 0.01, "high-quality share {hq}");
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(written, j);
}

#[test]
fn eval_rejects_missing_or_double_targets() {
    assert!(!ganfold().args(["eval"]).output().unwrap().status.success());
    let out = ganfold().args(["eval", "--data", "ring8", "--run", "x"]).output().unwrap();
    assert!(!out.status.success());
    let out = ganfold().args(["eval", "--run", "/nonexistent/run"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a ganfold run directory"));
}

#[test]
fn eval_run_reports_modes_and_the_jacobian_spectrum_of_a_trained_dcgan() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("ring8");
    let out = ganfold()
        .args(["train", "dcgan", "--data", "ring8", "--steps", "20", "--quiet", "--out"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(out.status.success(), "training failed: {}", String::from_utf8_lossy(&out.stderr));
    let out = ganfold()
        .args(["eval", "--run"])
        .arg(&run)
        .args(["--samples", "500", "--manifold-points", "4"])
        .output()
        .unwrap();
    let j = json_of(&out);
    assert_eq!(j["method"], "dcgan");
    assert_eq!(j["data"], "ring8");
    assert_eq!(j["checkpoint_step"], 20);
    assert_eq!(j["modes"]["n_samples"], 500);
    assert_eq!(j["modes"]["n_modes"], 8);
    let m = &j["manifold"];
    assert_eq!(m["n_points"], 4);
    assert_eq!(m["output_dim"], 2);
    // A 2-D output has at most 2 non-zero singular values.
    assert!(m["median_local_dim"].as_f64().unwrap() <= 2.0);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("eval.json")).unwrap()).unwrap();
    assert_eq!(written, j);

    // Sizes beyond the memory budget are refused by option before anything is allocated (a
    // 1 GiB budget, so the check does not depend on this machine), and eval.json is kept.
    for (flag, n) in [("--samples", "100000000"), ("--manifold-points", "100000000")] {
        let out = ganfold()
            .args(["eval", "--run"])
            .arg(&run)
            .args([flag, n])
            .env("GANFOLD_MAX_MEMORY", "1G")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(&format!("{flag} needs")) && err.contains("1.0 GiB"), "{err}");
    }
    let kept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("eval.json")).unwrap()).unwrap();
    assert_eq!(kept, j);
}
