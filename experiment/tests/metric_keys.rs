//! The metric keys an experiment may name are the ones the evaluation reports: the list that
//! rejects unknown metrics before training cannot drift from the evaluation code.

use ganfold_experiment::evaluate::{EvalOptions, evaluate_data, lookup, metric_keys};

#[test]
fn every_listed_key_is_in_the_report() -> anyhow::Result<()> {
    for data in ["mnist-5k", "ring8", "stacked-mnist"] {
        let opts = EvalOptions { samples: 300, ..Default::default() };
        let report = evaluate_data(data, &opts)?;
        let ds = ganfold_core::data::load(data, 0)?;
        let keys = metric_keys(&ds, false);
        assert!(keys.len() > 2, "{data}: {keys:?}");
        for k in keys.iter().filter(|k| **k != "checkpoint_step") {
            assert!(lookup(&report, k).is_some(), "{data}: `{k}` is listed but not in {report:#}");
        }
    }
    Ok(())
}

#[test]
fn real_digits_cover_every_class() -> anyhow::Result<()> {
    let report = evaluate_data("mnist-5k", &EvalOptions { samples: 1000, ..Default::default() })?;
    assert_eq!(lookup(&report, "classes_covered"), Some(10.0));
    let kl = lookup(&report, "class_kl").unwrap();
    assert!((0.0..0.05).contains(&kl), "class KL of real digits: {kl}");
    Ok(())
}
