//! The `lsal` method is registered with its defaults, and its build function rejects bad
//! configurations with messages naming the key.

use ganfold_lsal as _;

#[test]
fn lsal_is_registered_with_documented_defaults() -> anyhow::Result<()> {
    let e = ganfold_core::registry::method("lsal")?;
    assert!(e.paper.contains("Edraki") && e.paper.contains("ECCV 2018"));
    let d = (e.default_config)();
    assert_eq!(d["mode"].as_str(), Some("unsup"));
    assert_eq!(d["ambient_weight"].as_float(), Some(0.002));
    assert_eq!(d["manifold_weight"].as_float(), Some(0.018));
    assert_eq!(d["cost_slope"].as_float(), Some(0.0));
    assert_eq!(d["labels"].as_integer(), Some(100));
    assert_eq!(d["latent_regression"].as_float(), Some(30.0));
    let data = ganfold_core::data::load("ring8", 0)?;
    let mut bad = d.clone();
    bad.insert("cost_slope".into(), toml::Value::Float(2.0));
    let cx = ganfold_core::BuildContext {
        config: &bad,
        data: &data,
        device: &candle_core::Device::Cpu,
        seed: 0,
        batch_size: 8,
        total_steps: 1,
        purpose: ganfold_core::Purpose::Train,
    };
    let err = (e.build)(&cx).err().expect("eta = 2 must be rejected").to_string();
    assert!(err.contains("cost_slope"), "{err}");
    let cx = ganfold_core::BuildContext { config: &d, ..cx };
    assert!((e.build)(&cx).is_ok());
    Ok(())
}
