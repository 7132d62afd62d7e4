//! The fixture both Hub tests share: a trained, packed and installed model.

use ganfold_core::{RunConfig, train};
use ganfold_hub::{Hub, HubOptions, install, pack};
use ganfold_plugins as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

pub const ID: &str = "ganfold-test/dcgan-ring8";

/// Trains a 12-step DCGAN on ring8, packs it and installs it into a fresh cache.
pub fn fixture() -> anyhow::Result<(tempfile::TempDir, PathBuf, PathBuf, PathBuf)> {
    let tmp = tempfile::tempdir()?;
    let run = tmp.path().join("run");
    let mut cfg = RunConfig::defaults("dcgan")?;
    cfg.set("train.data=ring8")?;
    cfg.set("train.steps=12")?;
    cfg.set("train.batch_size=32")?;
    train::train(cfg, Some(run.clone()), false)?;
    let model = tmp.path().join("model");
    pack(&run, ID, &model)?;
    let cache = tmp.path().join("cache");
    install(&model, &cache)?;
    Ok((tmp, run, model, cache))
}

/// A Hub whose endpoint is a local listener that nobody should ever connect to.
pub fn hub(cache: &Path, offline: bool) -> anyhow::Result<(Hub, TcpListener)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    l.set_nonblocking(true)?;
    let endpoint = format!("http://{}", l.local_addr()?);
    let h = Hub::new(HubOptions { cache_dir: Some(cache.to_path_buf()), offline, endpoint: Some(endpoint) })?;
    Ok((h, l))
}
