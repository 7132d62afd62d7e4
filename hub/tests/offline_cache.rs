//! A local Hub cache built from a trained run resolves offline, with no network attempt, to
//! weights equal to the saved ones; tampering and missing files are clear errors.

use ganfold_core::checkpoint;
use ganfold_hub::{Manifest, ModelId, check_file_name, install, pack, verify_dir};
mod common;

use common::{ID, fixture, hub};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

fn assert_no_connection(l: &TcpListener) {
    match l.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((_, addr)) => panic!("the offline hub connected to the endpoint (from {addr})"),
        Err(e) => panic!("listener error {e}"),
    }
}

fn snapshot(cache: &Path) -> anyhow::Result<PathBuf> {
    let repo = cache.join(ModelId::parse(ID)?.cache_folder());
    let commit = std::fs::read_to_string(repo.join("refs/main"))?;
    Ok(repo.join("snapshots").join(commit.trim()))
}

#[test]
fn offline_resolve_loads_the_saved_weights_without_network() -> anyhow::Result<()> {
    let (_tmp, run, _model, cache) = fixture()?;
    let (h, listener) = hub(&cache, true)?;
    let t0 = std::time::Instant::now();
    let loaded = h.load(ID, None)?;
    let secs = t0.elapsed().as_secs_f64();
    assert_no_connection(&listener);
    assert_eq!(loaded.config.train.method, "dcgan");
    assert_eq!(loaded.step, 12);
    // Every tensor the method holds after loading equals the run's checkpoint, bit for bit.
    let saved = checkpoint::load(&run.join("checkpoint/state.safetensors"), &candle_core::Device::Cpu)?;
    let now = loaded.method.save()?;
    assert_eq!(saved.state.tensors.len(), now.tensors.len());
    assert!(!now.tensors.is_empty());
    for (k, t) in &saved.state.tensors {
        let a = t.flatten_all()?.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?;
        let b = now.tensors[k].flatten_all()?.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?;
        assert_eq!(a, b, "tensor {k} differs after the Hub round trip");
    }
    // It samples, and the resolved files live in the cache snapshot.
    let x = loaded.method.sample(16, &mut ganfold_core::Rng::new(1))?;
    assert_eq!(x.dims(), &[16, 2]);
    assert!(loaded.dir.starts_with(&cache));
    eprintln!("offline resolve + load took {secs:.3} s");
    Ok(())
}

#[test]
fn tampered_or_missing_files_are_clear_errors() -> anyhow::Result<()> {
    let (_tmp, _run, model, cache) = fixture()?;
    let snap = snapshot(&cache)?;
    let (h, listener) = hub(&cache, true)?;

    // A flipped byte in the checkpoint: checksum mismatch naming the file.
    let w = snap.join("model.safetensors");
    let mut bytes = std::fs::read(&w)?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&w, &bytes)?;
    let e = format!("{:#}", h.fetch(ID).err().expect("a tampered checkpoint must not load"));
    assert!(e.contains("checksum mismatch") && e.contains("model.safetensors"), "{e}");

    // A missing config: offline, not in the cache, named.
    std::fs::remove_file(snap.join("config.toml"))?;
    let e = format!("{:#}", h.fetch(ID).err().expect("a missing config must not load"));
    assert!(e.contains("config.toml") && e.contains("not in the local cache"), "{e}");

    // A model that was never installed.
    let e = format!("{:#}", h.fetch("ganfold-test/never-installed").err().expect("must fail"));
    assert!(e.contains("not in the local cache") && e.contains("offline"), "{e}");
    assert_no_connection(&listener);

    // The packed folder itself: tampering and missing files are caught by verify_dir/install.
    verify_dir(&model)?;
    let original = std::fs::read(model.join("config.toml"))?;
    std::fs::write(model.join("config.toml"), "[train]\nmethod = \"dcgan\"\n")?;
    let e = format!("{:#}", install(&model, &cache).expect_err("tampered folder must not install"));
    assert!(e.contains("checksum mismatch") && e.contains("config.toml"), "{e}");
    std::fs::write(model.join("config.toml"), original)?;
    std::fs::remove_file(model.join("loss.png"))?;
    let e = format!("{:#}", verify_dir(&model).expect_err("missing file"));
    assert!(e.contains("loss.png") && e.contains("missing"), "{e}");
    Ok(())
}

#[test]
fn ids_and_file_names_cannot_escape_the_cache() -> anyhow::Result<()> {
    for bad in [
        "",
        "noslash",
        "/name",
        "org/",
        "../x",
        "org/..",
        "org/.",
        "a/b/c",
        "a\\b/c",
        "org/na me",
        "org/-x",
        "a--b/c",
        "org/x..y",
        "..",
        "org/name\0",
    ] {
        assert!(ModelId::parse(bad).is_err(), "model id {bad:?} was accepted");
    }
    for good in ["ganfold/lgan-ring8", "Org_1/name.v2"] {
        ModelId::parse(good)?;
    }
    for bad in ["", "/etc/passwd", "../config.toml", "a/../../b", "a//b", "./x", "a\\b", "C:x", "x/", "a/./b", "a\nb"] {
        assert!(check_file_name(bad).is_err(), "file name {bad:?} was accepted");
    }
    check_file_name("figures/tangents.png")?;

    // A manifest naming an escaping file is rejected before anything is resolved.
    let sha = "0".repeat(64);
    let m = |files: &str| {
        format!(r#"{{"format":1,"id":"o/n","method":"dcgan","data":"ring8","steps":1,"files":{{{files}}}}}"#)
    };
    let ok = m(&format!(r#""config.toml":"{sha}","model.safetensors":"{sha}""#));
    Manifest::parse(ok.as_bytes())?;
    for files in [
        format!(r#""config.toml":"{sha}","model.safetensors":"{sha}","../../x":"{sha}""#),
        format!(r#""config.toml":"{sha}","model.safetensors":"{sha}","/abs":"{sha}""#),
        format!(r#""config.toml":"{sha}","model.safetensors":"short""#),
        format!(r#""config.toml":"{sha}""#),
    ] {
        assert!(Manifest::parse(m(&files).as_bytes()).is_err(), "manifest {files} was accepted");
    }
    let bad_id = ok.replace(r#""id":"o/n""#, r#""id":"../n""#);
    assert!(Manifest::parse(bad_id.as_bytes()).is_err());

    // Resolving an escaping name through the Hub is refused without touching the cache.
    let tmp = tempfile::tempdir()?;
    let (h, listener) = hub(tmp.path(), true)?;
    let id = ModelId::parse("o/n")?;
    let e = format!("{:#}", h.resolve_file(&id, "../../../etc/passwd").expect_err("must fail"));
    assert!(e.contains("could leave"), "{e}");
    assert_no_connection(&listener);
    Ok(())
}

#[test]
fn a_symlink_out_of_the_cache_is_refused() -> anyhow::Result<()> {
    let (tmp, _run, _model, cache) = fixture()?;
    let snap = snapshot(&cache)?;
    let outside = tmp.path().join("outside.toml");
    std::fs::copy(snap.join("config.toml"), &outside)?;
    std::fs::remove_file(snap.join("config.toml"))?;
    std::os::unix::fs::symlink(&outside, snap.join("config.toml"))?;
    let (h, _l) = hub(&cache, true)?;
    let e = format!("{:#}", h.fetch(ID).err().expect("must fail"));
    assert!(e.contains("outside the cache"), "{e}");
    Ok(())
}

/// Rewrites a cached model's file and its manifest digest, as the model's author could.
fn forge(
    snap: &Path,
    file: &str,
    contents: &str,
    manifest_edit: impl FnOnce(&mut serde_json::Value),
) -> anyhow::Result<()> {
    std::fs::write(snap.join(file), contents)?;
    let mp = snap.join("ganfold.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mp)?)?;
    m["files"][file] = ganfold_hub::sha256_hex(contents.as_bytes()).into();
    manifest_edit(&mut m);
    std::fs::write(&mp, serde_json::to_vec(&m)?)?;
    Ok(())
}

/// A model's author also writes its manifest, so consistent checksums prove nothing: a config
/// naming a path as its data, or a manifest for another model id, is refused, and the error
/// echoes nothing of the file the config names.
#[test]
fn a_forged_model_cannot_read_outside_its_snapshot() -> anyhow::Result<()> {
    let (_tmp, _run, _model, cache) = fixture()?;
    let snap = snapshot(&cache)?;
    let (h, _listener) = hub(&cache, true)?;
    let original = std::fs::read_to_string(snap.join("config.toml"))?;
    let secret = _tmp.path().join("secret.txt");
    std::fs::write(&secret, "TOP-SECRET-CONTENTS")?;
    let forged = original.replace("data = \"ring8\"", &format!("data = {:?}", secret.display().to_string()));
    assert_ne!(forged, original, "the fixture's config names ring8");
    forge(&snap, "config.toml", &forged, |_| {})?;
    let e = format!("{:#}", h.load(ID, None).err().expect("a model naming a path must not load"));
    assert!(e.contains("not one of ganfold's named datasets") && !e.contains("TOP-SECRET"), "{e}");

    forge(&snap, "config.toml", &original, |m| m["id"] = "ganfold-test/another-model".into())?;
    let e = format!("{:#}", h.fetch(ID).err().expect("a manifest for another id must not be served"));
    assert!(e.contains("its manifest is for `ganfold-test/another-model`"), "{e}");
    forge(&snap, "config.toml", &original, |m| m["id"] = ID.into())?;
    h.fetch(ID)?;
    Ok(())
}

/// Packing, verifying and installing read no method's defaults: a run of a method this process
/// has never registered (a third party's) packs and installs; only loading it needs the method.
#[test]
fn pack_verify_and_install_need_no_registry() -> anyhow::Result<()> {
    let (tmp, run, _model, _cache) = fixture()?;
    let other = tmp.path().join("other-run");
    std::fs::create_dir_all(other.join("checkpoint"))?;
    let text = std::fs::read_to_string(run.join("config.toml"))?.replace("\"dcgan\"", "\"third-party-gan\"");
    assert!(text.contains("third-party-gan"));
    std::fs::write(other.join("config.toml"), text)?;
    let ck_path = run.join("checkpoint/state.safetensors");
    let mut ck = checkpoint::load(&ck_path, &candle_core::Device::Cpu)?;
    ck.meta.method = "third-party-gan".into();
    checkpoint::save(&other.join("checkpoint/state.safetensors"), &ck.meta, &ck.state.tensors)?;
    assert!(ganfold_core::registry::method("third-party-gan").is_err());

    let model = tmp.path().join("other-model");
    let m = pack(&other, "someone/third-party", &model)?;
    assert_eq!((m.method.as_str(), m.steps), ("third-party-gan", 12));
    let cfg: toml::Table = toml::from_str(&std::fs::read_to_string(model.join("config.toml"))?)?;
    assert_eq!(cfg["train"]["device"].as_str(), Some("cpu"));
    assert_eq!(verify_dir(&model)?.0.id, "someone/third-party");
    install(&model, &tmp.path().join("cache2"))?;
    let (h, _l) = hub(&tmp.path().join("cache2"), true)?;
    let err = h.load("someone/third-party", None).err().expect("an unregistered method cannot load");
    assert!(format!("{err:#}").contains("unknown method `third-party-gan`"), "{err:#}");
    Ok(())
}
