//! Cross-crate integration tests live in `tests/tests/`. This crate links every plugin through
//! the facade, as a user's binary would.
//!
//! [`fuzz`] holds the fuzz targets' logic: `fuzz/` (cargo-fuzz) calls it with generated
//! inputs, and `tests/tests/fuzz_corpus.rs` replays the checked-in seeds and every input
//! that ever crashed, so the regressions run in `cargo test`.

use ganfold_plugins as _;

pub mod fuzz {
    use candle_core::Device;
    use ganfold_core::checkpoint::{self, CheckpointMeta};
    use ganfold_core::{Method, Rng, RunConfig};

    /// IDX reader. First byte: 0 = images only; otherwise the next two bytes (big-endian) say
    /// where the images end and the labels begin. Any input: a dataset or an error.
    pub fn idx(data: &[u8]) {
        let Some((&mode, rest)) = data.split_first() else { return };
        let (images, labels) = if mode == 0 || rest.len() < 2 {
            (rest, None)
        } else {
            let (cut, rest) = rest.split_at(2);
            let at = (u16::from_be_bytes([cut[0], cut[1]]) as usize).min(rest.len());
            (&rest[..at], Some(&rest[at..]))
        };
        if let Ok(idx) = ganfold_core::data::parse_idx(images) {
            assert_eq!(idx.data.len(), idx.dims.iter().product::<usize>(), "IDX payload matches its dimensions");
        }
        if let Ok(ds) = ganfold_core::data::idx_dataset("fuzz", images, labels) {
            assert!(!ds.is_empty());
            let last = ds.len() - 1;
            let b = ds.batch(&[0, last], &Device::Cpu).expect("rows of a loaded dataset batch");
            assert_eq!(b.x.dim(0).unwrap(), 2);
            assert!(ds.batch(&[ds.len()], &Device::Cpu).is_err(), "an index past the end is an error");
        }
    }

    /// Config parser: TOML files (with and without a method named) and `--set` lines. A config
    /// that parses must write out and parse back to the same text.
    pub fn config(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else { return };
        for method in [None, Some("dcgan")] {
            if let Ok(cfg) = RunConfig::from_toml(text, method) {
                roundtrip(&cfg);
            }
        }
        let mut cfg = RunConfig::defaults("dcgan").expect("dcgan is registered");
        for line in text.lines().take(16) {
            if cfg.set(line).is_ok() {
                roundtrip(&cfg);
            }
        }
        let _ = cfg.train.validate();
    }

    fn roundtrip(cfg: &RunConfig) {
        let t = cfg.to_toml().expect("a parsed config serialises");
        let again =
            RunConfig::from_toml(&t, None).unwrap_or_else(|e| panic!("written config does not parse back: {e:#}\n{t}"));
        assert_eq!(again.to_toml().unwrap(), t, "config round trip");
    }

    /// Hub manifest parser (`ganfold.json`, written by a model's author: untrusted). A manifest
    /// that parses names an id whose cache folder is one plain path component and files that stay
    /// inside the snapshot, and writes out to JSON that parses back to itself.
    pub fn manifest(data: &[u8]) {
        let Ok(m) = ganfold_hub::Manifest::parse(data) else { return };
        let id = ganfold_hub::ModelId::parse(&m.id).expect("a parsed manifest's id parses");
        let folder = id.cache_folder();
        let plain = |p: &str| {
            let mut c = std::path::Path::new(p).components();
            c.all(|c| matches!(c, std::path::Component::Normal(_)))
        };
        assert!(plain(&folder) && !folder.contains('/'), "cache folder {folder:?}");
        for f in m.files.keys() {
            assert!(plain(f), "file name {f:?} leaves the snapshot");
        }
        let again = serde_json::to_vec(&m).expect("serialises");
        assert_eq!(ganfold_hub::Manifest::parse(&again).expect("parses back"), m, "manifest round trip");
    }

    /// The small models the checkpoint target loads into (and that `seed_checkpoints` saves).
    pub const MODELS: &[(&str, &[&str])] = &[("dcgan", &["hidden=8", "nz=4"]), ("mmgan", &["hidden=8", "z_dim=4"])];

    fn build(method: &str, sets: &[&str]) -> Box<dyn Method> {
        let mut cfg = RunConfig::defaults(method).expect("registered");
        for s in sets {
            cfg.set(s).expect("valid setting");
        }
        let data = ganfold_core::data::load("ring8", 0).expect("ring8");
        let entry = ganfold_core::registry::method(method).expect("registered");
        let cx = ganfold_core::BuildContext {
            config: &cfg.method,
            data: &data,
            device: &Device::Cpu,
            seed: 0,
            batch_size: 8,
            total_steps: 10,
            purpose: ganfold_core::Purpose::Train,
        };
        (entry.build)(&cx).expect("builds")
    }

    /// Checkpoint / weights loaders: the checkpoint parser, loading into real models, and the
    /// evaluation classifier's safetensors loader. Any bytes: loaded or an error.
    pub fn checkpoint(data: &[u8]) {
        if let Ok(ck) = checkpoint::from_bytes(data, &Device::Cpu) {
            for (name, sets) in MODELS {
                let mut m = build(name, sets);
                if m.load(&ck.state).is_ok() {
                    let x = m.sample(3, &mut Rng::new(0)).expect("a loaded model samples");
                    assert_eq!(x.dims(), &[3, 2]);
                }
            }
        }
        let _ = ganfold_eval::classifier::MnistClassifier::from_bytes(data, &Device::Cpu);
    }

    /// Fresh checkpoints of [`MODELS`] (the checkpoint target's seed corpus).
    pub fn seed_checkpoints() -> Vec<(String, Vec<u8>)> {
        MODELS
            .iter()
            .map(|(name, sets)| {
                let m = build(name, sets);
                let st = m.save().expect("saves");
                let meta = CheckpointMeta {
                    format: checkpoint::FORMAT,
                    method: name.to_string(),
                    step: 1,
                    rng: Rng::new(0).state(),
                    data_shape: ganfold_core::SampleShape::Points { dim: 2 },
                    method_meta: st.meta.clone(),
                };
                (name.to_string(), checkpoint::to_bytes(&meta, &st.tensors).expect("serialises"))
            })
            .collect()
    }
}
