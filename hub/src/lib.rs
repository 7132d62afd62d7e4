//! # ganfold-hub
//!
//! Pretrained ganfold models as Hugging Face Hub model repositories, resolved through `hf-hub`'s
//! cache. A model repository holds:
//!
//! ```text
//! ganfold.json        manifest: id, method, data, steps and the sha256 of every other file
//! config.toml         the run's resolved configuration (device "cpu")
//! model.safetensors   the checkpoint (weights, optimizer moments, method state; see ganfold_core::checkpoint)
//! summary.json, metrics.jsonl, loss.png, samples.png, figures/*.png, README.md   (optional)
//! ```
//!
//! Every file is checked against the manifest's sha256 before it is used, and model ids and file
//! names are validated so that nothing can resolve outside the cache directory. Offline mode
//! (`HubOptions::offline` or `HF_HUB_OFFLINE=1`) answers from the local cache only and never
//! touches the network.
//!
//! The client is hf-hub's blocking API over `ureq` (hf-hub 0.4). hf-hub 1.0's client brings
//! tokio, reqwest, hyper, aws-lc and the Xet storage stack, some 230 crates, which a notebook
//! kernel compiles before its first cell; ganfold's models are a few small files that the Hub's
//! `resolve` endpoint serves to either client.
//!
//! [`pack`] turns a finished run directory into such a repository (ready to upload), and
//! [`install`] writes one into the local cache layout
//! (`models--org--name/{refs/main, snapshots/<commit>/...}`), so that it then resolves offline.

use anyhow::{Context, anyhow, bail};
use ganfold_core::RunConfig;
use ganfold_core::checkpoint::{self, atomic_write};
use ganfold_core::train::{self, LoadedRun};
use hf_hub::api::sync::{Api, ApiBuilder, ApiError};
use hf_hub::{Cache, Repo};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The manifest's file name.
pub const MANIFEST: &str = "ganfold.json";
/// The configuration's file name.
pub const CONFIG: &str = "config.toml";
/// The checkpoint's file name.
pub const WEIGHTS: &str = "model.safetensors";
/// Version of the manifest layout.
pub const MANIFEST_FORMAT: u32 = 1;

/// A validated `org/name` model id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelId {
    pub org: String,
    pub name: String,
}

impl ModelId {
    /// Parses `org/name`. Each part: 1 to 96 ASCII letters, digits, '-', '_' or '.', not
    /// starting or ending with '-' or '.', without "--" or ".." (so the cache folder
    /// `models--org--name` is unambiguous and no part can mean a parent directory).
    pub fn parse(id: &str) -> anyhow::Result<Self> {
        let Some((org, name)) = id.split_once('/') else {
            bail!("model id {id:?} must have the form `org/name`");
        };
        for (what, p) in [("organisation", org), ("name", name)] {
            if p.is_empty() {
                bail!("model id {id:?}: the {what} is empty (expected `org/name`)");
            }
            if p.len() > 96 {
                bail!("model id {id:?}: the {what} is longer than 96 characters");
            }
            if let Some(c) = p.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
                bail!(
                    "model id {id:?}: the {what} {p:?} contains {c:?}; use ASCII letters, digits, '-', '_' and '.' only"
                );
            }
            if p.starts_with(['-', '.']) || p.ends_with(['-', '.']) || p.contains("--") || p.contains("..") {
                bail!(
                    "model id {id:?}: the {what} {p:?} may not start or end with '-' or '.', nor contain \"--\" or \"..\""
                );
            }
        }
        Ok(ModelId { org: org.into(), name: name.into() })
    }

    /// The repository's folder in the cache: `models--org--name`.
    pub fn cache_folder(&self) -> String {
        format!("models--{}--{}", self.org, self.name)
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.org, self.name)
    }
}

/// Checks a repository-relative file name: '/'-separated, relative, no empty, "." or ".."
/// component, no backslash, colon or control character, at most 255 bytes.
pub fn check_file_name(file: &str) -> anyhow::Result<()> {
    if file.is_empty() {
        bail!("file name is empty");
    }
    if file.len() > 255 {
        bail!("file name {file:?} is longer than 255 bytes");
    }
    if file.contains('\\') {
        bail!("file name {file:?} contains a backslash; use '/' between directories");
    }
    if file.starts_with('/') {
        bail!("file name {file:?} is absolute; it must be relative to the model repository");
    }
    if let Some(c) = file.chars().find(|c| c.is_control() || *c == ':') {
        bail!("file name {file:?} contains the character {c:?}");
    }
    for part in file.split('/') {
        match part {
            "" => bail!("file name {file:?} has an empty path component"),
            "." | ".." => bail!("file name {file:?} has a {part:?} component and could leave the model repository"),
            _ => {}
        }
    }
    Ok(())
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The manifest of a model repository.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The `org/name` the model was packed for.
    pub id: String,
    pub method: String,
    pub data: String,
    pub steps: usize,
    /// sha256 (lowercase hex) of every file in the repository except the manifest itself.
    pub files: BTreeMap<String, String>,
}

impl Manifest {
    /// Parses and validates a manifest: known format, valid id and file names, 64-hex digests,
    /// and the two files every model needs.
    pub fn parse(bytes: &[u8]) -> anyhow::Result<Self> {
        let m: Manifest = serde_json::from_slice(bytes).context("the manifest is not valid ganfold.json")?;
        if m.format != MANIFEST_FORMAT {
            bail!("manifest format {} is not supported (this ganfold reads format {MANIFEST_FORMAT})", m.format);
        }
        ModelId::parse(&m.id).context("manifest `id`")?;
        for (f, h) in &m.files {
            check_file_name(f).context("manifest `files`")?;
            if f == MANIFEST {
                bail!("the manifest lists itself");
            }
            if h.len() != 64 || !h.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
                bail!("manifest: the sha256 of `{f}` is not 64 lowercase hex digits");
            }
        }
        for need in [CONFIG, WEIGHTS] {
            if !m.files.contains_key(need) {
                bail!("manifest of `{}` does not list `{need}`", m.id);
            }
        }
        Ok(m)
    }

    fn expected(&self, file: &str) -> anyhow::Result<&str> {
        self.files
            .get(file)
            .map(String::as_str)
            .with_context(|| format!("model `{}` has no file `{file}` in its manifest", self.id))
    }
}

fn verify(bytes: &[u8], expected: &str, file: &str, id: &str) -> anyhow::Result<()> {
    let got = sha256_hex(bytes);
    if got != expected {
        bail!(
            "checksum mismatch for `{file}` of model `{id}`: the manifest says sha256 {expected}, the file has {got} \
             (the file is corrupt or was changed; reinstall the model)"
        );
    }
    Ok(())
}

/// True if `HF_HUB_OFFLINE` is set to 1, true, yes or on (any case), as huggingface_hub reads it.
pub fn offline_from_env() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// How to reach models.
#[derive(Clone, Debug, Default)]
pub struct HubOptions {
    /// The hf-hub cache (default: `HF_HUB_CACHE`, `HUGGINGFACE_HUB_CACHE`, `$HF_HOME/hub`,
    /// `$XDG_CACHE_HOME/huggingface/hub`, `~/.cache/huggingface/hub`).
    pub cache_dir: Option<PathBuf>,
    /// Local cache only, no network. Also switched on by `HF_HUB_OFFLINE`.
    pub offline: bool,
    /// Hub endpoint (default: `HF_ENDPOINT`, then https://huggingface.co).
    pub endpoint: Option<String>,
}

/// The default cache directory, found as huggingface_hub finds it: `HF_HUB_CACHE`, then
/// `HUGGINGFACE_HUB_CACHE`, `$HF_HOME/hub`, `$XDG_CACHE_HOME/huggingface/hub`,
/// `~/.cache/huggingface/hub`.
pub fn default_cache_dir() -> PathBuf {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("HF_HUB_CACHE")
        .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
        .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
        .or_else(|| var("XDG_CACHE_HOME").map(|c| c.join("huggingface/hub")))
        .or_else(|| var("HOME").map(|h| h.join(".cache/huggingface/hub")))
        .unwrap_or_else(|| PathBuf::from(".cache/huggingface/hub"))
}

/// A client for ganfold model repositories.
pub struct Hub {
    api: Api,
    cache: PathBuf,
    offline: bool,
}

impl Hub {
    pub fn new(opts: HubOptions) -> anyhow::Result<Self> {
        let cache = opts.cache_dir.unwrap_or_else(default_cache_dir);
        let offline = opts.offline || offline_from_env();
        let endpoint = opts
            .endpoint
            .or_else(|| std::env::var("HF_ENDPOINT").ok().filter(|e| !e.is_empty()))
            .unwrap_or_else(|| "https://huggingface.co".into());
        let api = ApiBuilder::from_cache(Cache::new(cache.clone()))
            .with_endpoint(endpoint.trim_end_matches('/').to_string())
            .with_retries(2)
            .build()
            .context("cannot set up the Hub client")?;
        Ok(Hub { api, cache, offline })
    }

    pub fn offline(&self) -> bool {
        self.offline
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    /// The local path of `file` in model `id` (from the cache, else downloaded unless offline);
    /// not checksummed: use [`Hub::fetch`] / [`Hub::file`] for verified contents.
    pub fn resolve_file(&self, id: &ModelId, file: &str) -> anyhow::Result<PathBuf> {
        check_file_name(file)?;
        let cached = Cache::new(self.cache.clone()).repo(Repo::model(id.to_string())).get(file);
        let path = match cached {
            Some(p) => p,
            None if self.offline => bail!(
                "model `{id}`: `{file}` is not in the local cache {} and offline mode is on (--offline or HF_HUB_OFFLINE); \
                 install the model first (e.g. `ganfold hub install`) or go online",
                self.cache.display()
            ),
            None => self.download(id, file)?,
        };
        // The cache may hold symlinks: whatever they point at must still be inside the cache.
        let root =
            self.cache.canonicalize().with_context(|| format!("cannot open the cache {}", self.cache.display()))?;
        let real = path.canonicalize().with_context(|| {
            format!("model `{id}`: `{file}` resolved to {}, which cannot be opened", path.display())
        })?;
        if !real.starts_with(&root) {
            bail!("model `{id}`: `{file}` resolves to {}, outside the cache {}", real.display(), root.display());
        }
        Ok(path)
    }

    fn download(&self, id: &ModelId, file: &str) -> anyhow::Result<PathBuf> {
        let repo = self.api.repo(Repo::model(id.to_string()));
        // hf-hub unwraps a few server headers (a redirect without a Location, for one): a broken or
        // hostile endpoint must give an error, not abort the caller.
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| repo.download(file)))
            .map_err(|_| anyhow!("the Hub endpoint sent a response hf-hub cannot read"));
        let context = || {
            format!(
                "cannot fetch `{file}` of model `{id}` (to use the local cache {} only, pass --offline or set HF_HUB_OFFLINE=1)",
                self.cache.display()
            )
        };
        match res.with_context(context)? {
            Ok(p) => Ok(p),
            Err(ApiError::RequestError(e)) => match &*e {
                ureq::Error::Status(code, r) => match r.header("x-error-code") {
                    Some("EntryNotFound") => bail!("model `{id}` has no file `{file}`"),
                    Some("RepoNotFound") => bail!("model `{id}` does not exist on the Hub (or is private)"),
                    _ if *code == 404 => bail!("model `{id}`: `{file}` was not found on the Hub (HTTP 404)"),
                    _ => Err(anyhow!("HTTP {code} {}", r.status_text())).with_context(context),
                },
                other => Err(anyhow!("{other}")).with_context(context),
            },
            Err(e) => Err(anyhow!(e)).with_context(context),
        }
    }

    /// The verified manifest of model `id`, and the snapshot folder holding it.
    pub fn manifest(&self, id: &ModelId) -> anyhow::Result<(Manifest, PathBuf)> {
        let p = self.resolve_file(id, MANIFEST)?;
        let bytes = ganfold_core::limits::read_bounded(&p, ganfold_core::limits::TEXT_MAX, "manifest")?;
        let m = Manifest::parse(&bytes).with_context(|| format!("model `{id}`"))?;
        let snapshot = p.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok((m, snapshot))
    }

    /// The bytes of `file`, checked against the manifest's sha256.
    pub fn file(&self, id: &ModelId, manifest: &Manifest, file: &str) -> anyhow::Result<Vec<u8>> {
        let expected = manifest.expected(file)?;
        let p = self.resolve_file(id, file)?;
        let bytes = ganfold_core::limits::read_data(&p, "model file")?;
        verify(&bytes, expected, file, &id.to_string())?;
        Ok(bytes)
    }

    /// Resolves a model: manifest, configuration and checkpoint, all verified.
    pub fn fetch(&self, id: &str) -> anyhow::Result<ResolvedModel> {
        let id = ModelId::parse(id)?;
        let (manifest, snapshot) = self.manifest(&id)?;
        // The cache's refs decide which snapshot a name serves; the manifest must agree.
        if manifest.id != id.to_string() {
            bail!(
                "model `{id}`: its manifest is for `{}` (the cache serves another model under this name)",
                manifest.id
            );
        }
        let cfg_bytes = self.file(&id, &manifest, CONFIG)?;
        let text = String::from_utf8(cfg_bytes).with_context(|| format!("model `{id}`: {CONFIG} is not UTF-8"))?;
        let config = RunConfig::from_toml(&text, None).with_context(|| format!("model `{id}`: invalid {CONFIG}"))?;
        if config.train.method != manifest.method {
            bail!(
                "model `{id}`: the manifest says method `{}`, {CONFIG} says `{}`",
                manifest.method,
                config.train.method
            );
        }
        // A published model is its author's word: its config may name only ganfold's own
        // datasets, never a path, so loading it reads nothing outside the snapshot and the
        // data folder (and no error can echo another file's contents).
        let data = &config.train.data;
        if !ganfold_core::data::NAMED.iter().any(|(n, _)| n == data) {
            bail!(
                "model `{id}`: its {CONFIG} names data {:?}, which is not one of ganfold's named datasets; a published \
                 model may not read other files",
                data.chars().take(200).collect::<String>()
            );
        }
        if *data != manifest.data {
            bail!("model `{id}`: the manifest says data `{}`, {CONFIG} says `{data}`", manifest.data);
        }
        let weights = self.file(&id, &manifest, WEIGHTS)?;
        Ok(ResolvedModel { id, manifest, snapshot, config, weights })
    }

    /// Resolves and loads a model in one call.
    pub fn load(&self, id: &str, device: Option<&str>) -> anyhow::Result<LoadedRun> {
        self.fetch(id)?.load(device)
    }
}

/// A model whose manifest, configuration and checkpoint have been resolved and verified.
pub struct ResolvedModel {
    pub id: ModelId,
    pub manifest: Manifest,
    /// The cache snapshot folder (its other files are verified on demand by [`Hub::file`]).
    pub snapshot: PathBuf,
    pub config: RunConfig,
    /// The checkpoint's bytes (what was checksummed is what is loaded).
    pub weights: Vec<u8>,
}

impl ResolvedModel {
    /// Builds the method from the configuration and loads the checkpoint into it.
    /// `device` overrides the configuration's (`cpu`, `cuda`, `cuda:N`).
    pub fn load(&self, device: Option<&str>) -> anyhow::Result<LoadedRun> {
        let mut cfg = self.config.clone();
        if let Some(d) = device {
            cfg.train.device = d.to_string();
        }
        let dev = train::parse_device(&cfg.train.device)?;
        let ck =
            checkpoint::from_bytes(&self.weights, &dev).with_context(|| format!("model `{}`: {WEIGHTS}", self.id))?;
        train::load_checkpoint(&self.snapshot, cfg, ck).with_context(|| format!("model `{}`", self.id))
    }
}

fn read(p: &Path) -> anyhow::Result<Vec<u8>> {
    ganfold_core::limits::read_data(p, "file")
}

/// Checks a model repository folder against its manifest (every listed file present with the
/// right sha256, no file name that escapes the folder). Returns the manifest and its bytes.
pub fn verify_dir(dir: &Path) -> anyhow::Result<(Manifest, Vec<u8>)> {
    let mbytes =
        read(&dir.join(MANIFEST)).with_context(|| format!("{} is not a ganfold model folder", dir.display()))?;
    let m = Manifest::parse(&mbytes).with_context(|| format!("{}", dir.join(MANIFEST).display()))?;
    for (f, h) in &m.files {
        let p = dir.join(f);
        if !p.is_file() {
            bail!("{}: `{f}` is listed in the manifest but missing", dir.display());
        }
        verify(&read(&p)?, h, f, &m.id)?;
    }
    Ok((m, mbytes))
}

/// Installs a model folder (as written by [`pack`]) into the cache layout
/// `<cache>/models--org--name/{refs/main, snapshots/<commit>/...}` after verifying it; the
/// commit id is derived from the manifest, so re-installing the same model changes nothing.
/// Returns the snapshot folder.
pub fn install(model_dir: &Path, cache: &Path) -> anyhow::Result<PathBuf> {
    let (m, mbytes) = verify_dir(model_dir)?;
    let id = ModelId::parse(&m.id)?;
    let commit = &sha256_hex(&mbytes)[..40];
    let repo = cache.join(id.cache_folder());
    let snap = repo.join("snapshots").join(commit);
    for f in m.files.keys().map(String::as_str).chain([MANIFEST]) {
        let dst = snap.join(f);
        let parent = dst.parent().unwrap_or(&snap);
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        atomic_write(&dst, &read(&model_dir.join(f))?)?;
    }
    // refs/main last: a half-installed snapshot is never the one that resolves.
    std::fs::create_dir_all(repo.join("refs"))?;
    atomic_write(&repo.join("refs").join("main"), commit.as_bytes())?;
    Ok(snap)
}

/// Makes a model repository folder `out` (which must not exist or be empty) from a finished run
/// directory: configuration (device set to cpu), checkpoint, summary, metrics, pictures, a model
/// card and the manifest (written last).
pub fn pack(run_dir: &Path, id: &str, out: &Path) -> anyhow::Result<Manifest> {
    let mid = ModelId::parse(id)?;
    let text = ganfold_core::train::read_run_config(run_dir)?;
    let cfg = PackedConfig::parse(&text).with_context(|| format!("invalid {}", run_dir.join(CONFIG).display()))?;
    let ck_path = run_dir.join("checkpoint").join("state.safetensors");
    let ck_bytes = read(&ck_path)?;
    let ck = checkpoint::from_bytes(&ck_bytes, &ganfold_core::candle_core::Device::Cpu)
        .with_context(|| format!("invalid checkpoint {}", ck_path.display()))?;
    if ck.meta.method != cfg.method {
        bail!("the checkpoint in {} is of method `{}`, not `{}`", run_dir.display(), ck.meta.method, cfg.method);
    }
    let summary: Option<serde_json::Value> = match std::fs::read(run_dir.join("summary.json")) {
        Ok(b) => Some(serde_json::from_slice(&b).context("invalid summary.json")?),
        Err(_) => None,
    };
    if let Some(s) = &summary
        && s.get("status").and_then(|v| v.as_str()) != Some("completed")
    {
        bail!(
            "the run in {} did not complete (summary.json status {:?}); only finished runs are packed",
            run_dir.display(),
            s.get("status")
        );
    }
    if out.exists() && std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} already exists and is not empty", out.display());
    }
    let mut files: Vec<(String, Vec<u8>)> =
        vec![(CONFIG.into(), cfg.text.clone().into_bytes()), (WEIGHTS.into(), ck_bytes)];
    for (src, dst) in [
        ("summary.json", "summary.json"),
        ("metrics.jsonl", "metrics.jsonl"),
        ("loss.png", "loss.png"),
        ("samples/final.png", "samples.png"),
    ] {
        if let Ok(b) = std::fs::read(run_dir.join(src)) {
            files.push((dst.into(), b));
        }
    }
    if let Ok(rd) = std::fs::read_dir(run_dir.join("figures")) {
        let mut figs: Vec<PathBuf> =
            rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == "png")).collect();
        figs.sort();
        for p in figs {
            let name = format!("figures/{}", p.file_name().unwrap_or_default().to_string_lossy());
            if check_file_name(&name).is_ok() {
                files.push((name, read(&p)?));
            }
        }
    }
    files.push(("README.md".into(), model_card(&mid, &cfg, ck.meta.step, summary.as_ref()).into_bytes()));
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        id: mid.to_string(),
        method: cfg.method.clone(),
        data: cfg.data.clone(),
        steps: ck.meta.step,
        files: files.iter().map(|(f, b)| (f.clone(), sha256_hex(b))).collect(),
    };
    for (f, b) in &files {
        let p = out.join(f);
        std::fs::create_dir_all(p.parent().unwrap_or(out))
            .with_context(|| format!("cannot create {}", out.display()))?;
        atomic_write(&p, b)?;
    }
    atomic_write(&out.join(MANIFEST), format!("{}\n", serde_json::to_string_pretty(&manifest)?).as_bytes())?;
    Ok(manifest)
}

/// What packing reads of a run's `config.toml`: the [train] keys the manifest and the model card
/// name, and the text with the device set to cpu. The method's table is copied as it is, never
/// interpreted, so packing needs no registry (a third-party method packs from any binary;
/// loading checks the table against the method's defaults).
struct PackedConfig {
    method: String,
    data: String,
    batch_size: i64,
    seed: i64,
    text: String,
}

impl PackedConfig {
    fn parse(text: &str) -> anyhow::Result<Self> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| anyhow!("invalid TOML: {}", e.message().trim()))?;
        let train = table.get_mut("train").and_then(|v| v.as_table_mut()).context("no [train] table")?;
        let string = |k: &str| train.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let int = |k: &str| train.get(k).and_then(|v| v.as_integer());
        let (Some(method), Some(data), Some(batch_size), Some(seed)) =
            (string("method"), string("data"), int("batch_size"), int("seed"))
        else {
            bail!("[train] must name method, data, batch_size and seed");
        };
        train.insert("device".into(), "cpu".into());
        Ok(Self { method, data, batch_size, seed, text: toml::to_string(&table)? })
    }
}

fn model_card(id: &ModelId, t: &PackedConfig, step: usize, summary: Option<&serde_json::Value>) -> String {
    let mut s = format!(
        "---\nlibrary_name: ganfold\ntags:\n- gan\n- ganfold\n- {}\n---\n\n# {id}\n\nA ganfold `{}` model trained on `{}` for {step} steps \
         (batch {}, seed {}). Trained by `ganfold train`; the full configuration is in `config.toml`.\n\n",
        t.method, t.method, t.data, t.batch_size, t.seed
    );
    if let Some(sm) = summary {
        s.push_str("## Measured at the end of training\n\n");
        for key in ["wall_seconds", "images_per_second"] {
            if let Some(v) = sm.get(key).and_then(|v| v.as_f64()) {
                s.push_str(&format!("- {key}: {v:.3}\n"));
            }
        }
        for sec in ["final_stats", "evaluation"] {
            if let Some(obj) = sm.get(sec).and_then(|v| v.as_object()) {
                for (k, v) in obj {
                    if let Some(x) = v.as_f64() {
                        s.push_str(&format!("- {sec}.{k}: {x:.5}\n"));
                    }
                }
            }
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "## Use\n\n```\nganfold sample --model {id} -n 64 --out samples.png\n```\n\nor in Rust: \
         `ganfold_hub::Hub::new(Default::default())?.load(\"{id}\", None)?`. Every file is checked against \
         the sha256 in `ganfold.json`.\n"
    ));
    s
}
