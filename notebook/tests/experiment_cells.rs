//! What the notebooks' experiment cells call: the committed results of every experiment, read
//! from this crate's absolute repository path (`ganfold experiment` writes them with a relative
//! `--results results`), and the tables and plots the paper notebooks show.

use ganfold_notebook::experiment::Experiment;
use ganfold_notebook::{experiment_plot, experiment_table, repo_dir};

#[test]
fn committed_results_belong_to_their_experiment_files() {
    let root = repo_dir();
    let all = Experiment::all(&root.join("experiments"), &root.join("results")).unwrap();
    let (mut with_prepare, mut bad) = (0, vec![]);
    for exp in all.iter().filter(|e| e.dir.join("table.md").exists()) {
        match exp.report() {
            Ok(r) if r.arms.is_empty() => bad.push(format!("{}: no arms in the report", exp.name)),
            Ok(r) if !r.complete => bad.push(format!("{}: the committed results are not complete", exp.name)),
            Ok(_) => {}
            Err(e) => bad.push(format!("{}: {e:#}", exp.name)),
        }
        with_prepare += usize::from(!exp.spec.prepares.is_empty());
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(with_prepare > 0, "no committed experiment has a [[prepare]] run: nothing checks their paths");
}

/// The experiments a notebook source names in `experiment_table("…")` / `experiment_plot("…")`.
fn named_experiments(source: &str) -> Vec<String> {
    let mut out = vec![];
    for call in ["experiment_table(\"", "experiment_plot(\""] {
        for (i, _) in source.match_indices(call) {
            let rest = &source[i + call.len()..];
            out.push(rest[..rest.find('"').unwrap()].to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn every_experiment_a_notebook_shows_is_committed() -> anyhow::Result<()> {
    let mut shown = 0;
    for entry in std::fs::read_dir(repo_dir().join("notebooks/src"))? {
        let path = entry?.path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let names = named_experiments(&std::fs::read_to_string(&path)?);
        let paper = ["01-", "02-", "03-", "04-"].iter().any(|p| name.starts_with(p));
        assert!(!paper || !names.is_empty(), "{name}: a paper notebook ends with its experiment's table and plot");
        for exp in names {
            let table = experiment_table(&exp)?;
            assert!(table.0.contains("| arm |"), "{name}: {exp}: {}", table.0);
            let root = repo_dir().display().to_string();
            assert!(!table.0.contains(&root) && !table.0.contains("## Commands"), "{name}: {exp}: {}", table.0);
            let plot = experiment_plot(&exp)?;
            assert!(plot.0.starts_with(b"\x89PNG") && plot.size().0 > 100, "{name}: {exp}: no plot");
            shown += 1;
        }
    }
    assert!(shown >= 5, "only {shown} experiments shown in the notebooks");
    assert!(experiment_table("no-such-experiment").is_err());
    Ok(())
}
