//! The registry seen through the facade, as any binary or notebook sees it.

use ganfold_core::{RunConfig, registry};
use ganfold_plugins as _;

#[test]
fn facade_registers_every_plugin_with_valid_unique_names() {
    let methods = registry::methods().expect("a consistent registry");
    let names: Vec<&str> = methods.iter().map(|e| e.name).collect();
    assert!(names.contains(&"dcgan"), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(names, sorted, "listed sorted, without duplicates");
    for e in &methods {
        registry::validate_name(e.name).unwrap();
        assert!(!e.paper.is_empty() && !e.summary.is_empty(), "{} lacks a paper or summary", e.name);
        assert!(!e.summary.contains('\n'), "{}: one-line summary", e.name);
    }
    for e in registry::regularizers().expect("a consistent registry") {
        registry::validate_name(e.name).unwrap();
    }
}

#[test]
fn every_method_defaults_round_trip_through_toml() {
    for e in registry::methods().unwrap() {
        let cfg = RunConfig::defaults(e.name).unwrap();
        let back = RunConfig::from_toml(&cfg.to_toml().unwrap(), None).unwrap();
        assert_eq!(cfg, back, "{}", e.name);
    }
}

#[test]
fn every_method_builds_samples_and_saves_on_its_data() {
    use candle_core::Device;
    for e in registry::methods().unwrap() {
        let cfg = RunConfig::defaults(e.name).unwrap();
        let data = ganfold_core::data::load("ring8", 0).unwrap();
        let cx = ganfold_core::BuildContext {
            config: &cfg.method,
            data: &data,
            device: &Device::Cpu,
            seed: 0,
            batch_size: 16,
            total_steps: 100_000, // room for LCC-GAN's stages
            purpose: ganfold_core::Purpose::Train,
        };
        let m = (e.build)(&cx).unwrap_or_else(|err| panic!("{} does not build on ring8: {err:#}", e.name));
        let x = m.sample(5, &mut ganfold_core::Rng::new(1)).unwrap();
        assert_eq!(x.dims(), &[5, 2], "{}", e.name);
        assert!(!m.save().unwrap().tensors.is_empty(), "{}", e.name);
    }
}

#[test]
fn unknown_method_error_lists_the_available_ones() {
    let Err(err) = registry::method("nope") else { panic!("`nope` should not resolve") };
    let err = err.to_string();
    assert!(err.contains("unknown method `nope`") && err.contains("dcgan"), "{err}");
}
