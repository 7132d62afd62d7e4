//! Registry entries and an end-to-end run through the shared trainer (ring8): metrics carry the
//! manifold statistics, `figures/manifold_stats.png` is written, and a resumed run equals an
//! uninterrupted one.

use ganfold_core::{RunConfig, registry, train};
use ganfold_mmgan as _;

fn cfg(steps: usize) -> RunConfig {
    let mut c = RunConfig::defaults("mmgan").unwrap();
    c.train.data = "ring8".into();
    c.train.steps = steps;
    c.train.batch_size = 16;
    c.train.log_every = 2;
    c.train.sample_every = 100;
    c.train.checkpoint_every = 4;
    c.set("hidden=16").unwrap();
    c
}

#[test]
fn registered() {
    let m = registry::method("mmgan").unwrap();
    assert!(m.paper.contains("MMGAN"));
    let t = (m.default_config)();
    assert_eq!(t.get("kernel").and_then(|v| v.as_str()), Some("rbf"));
    let regs = registry::build_regularizers(&[toml::toml! { name = "mmgan-correlation" weight = 0.5 }]).unwrap();
    assert_eq!(regs[0].0, 0.5);
    assert_eq!(regs[0].1.name(), "mmgan-correlation");
    assert!(registry::build_regularizers(&[toml::toml! { name = "mmgan-correlation" bogus = 1 }]).is_err());
}

#[test]
fn trains_end_to_end_writes_plot_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let s = train::train(cfg(8), Some(a.clone()), false).unwrap();
    assert_eq!(s.status, "completed", "{s:?}");
    for k in ["center_dist", "radius_real", "radius_fake", "r_g"] {
        assert!(s.final_stats.contains_key(k), "{k} missing from {:?}", s.final_stats);
    }
    assert!(a.join("figures/manifold_stats.png").exists());
    train::train(cfg(4), Some(b.clone()), false).unwrap();
    train::resume(&b, Some(8), false).unwrap();
    let read = |d: &std::path::Path| std::fs::read(d.join("checkpoint/state.safetensors")).unwrap();
    let ca = ganfold_core::checkpoint::from_bytes(&read(&a), &candle_core::Device::Cpu).unwrap();
    let cb = ganfold_core::checkpoint::from_bytes(&read(&b), &candle_core::Device::Cpu).unwrap();
    assert_eq!(ca.meta.rng, cb.meta.rng);
    for (k, t) in &ca.state.tensors {
        let x = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let y = cb.state.tensors[k].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()), "{k} differs after resume");
    }
    assert_eq!(
        std::fs::read_to_string(a.join("metrics.jsonl")).unwrap(),
        std::fs::read_to_string(b.join("metrics.jsonl")).unwrap()
    );
}
