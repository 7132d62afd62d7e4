//! Checkpoints and atomic file writes.
//!
//! A checkpoint is one safetensors file: the method's tensors (weights, optimizer moments,
//! method state) plus a JSON header entry `ganfold` with the step, the RNG state, the method's
//! name and meta, and the data shape. It is written to a temporary file, synced, then renamed
//! over the previous one, so a crash leaves either the old or the new checkpoint, never half.

use crate::data::SampleShape;
use crate::method::MethodState;
use anyhow::{Context, bail};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

/// Testing knob (docs/reliability.md), compiled in only with the `fault-injection` feature,
/// which the CLI's tests turn on: `GANFOLD_SLOW_WRITE_MS=N` makes every atomic write pause N ms
/// halfway through its temp file, so a kill test can land inside a write.
#[cfg(feature = "fault-injection")]
fn slow_write_ms() -> u64 {
    static MS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *MS.get_or_init(|| std::env::var("GANFOLD_SLOW_WRITE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0))
}

#[cfg(not(feature = "fault-injection"))]
fn slow_write_ms() -> u64 {
    0
}

/// Temp files of [`atomic_write`] are `.<name>.<pid>.tmp`.
fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Removes temp files a killed writer left in `dir` (never the files they were replacing);
/// returns how many.
pub fn remove_stale_temps(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()) && is_temp_name(&e.file_name().to_string_lossy()))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// Writes `bytes` to `path` atomically: temp file in the same directory, fsync, rename, fsync dir.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().context("atomic_write: path has no file name")?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        let pause = slow_write_ms();
        if pause > 0 {
            let (a, b) = bytes.split_at(bytes.len() / 2);
            f.write_all(a)?;
            f.sync_all()?;
            std::thread::sleep(std::time::Duration::from_millis(pause));
            f.write_all(b)?;
        } else {
            f.write_all(bytes)?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::Error::new(e).context(format!("cannot write {}", path.display())));
    }
    Ok(())
}

/// An advisory lock on a run directory (`checkpoint/lock`, holding the owner's pid), held while a
/// process trains into it, so that a second `train` or `--resume` of the same directory fails
/// with a clear error instead of mixing two runs' files or deleting the other's temp files.
/// The operating system drops the lock when the holder exits, killed or not.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    pub const FILE: &'static str = "lock";

    /// Takes the lock of the run directory `dir` (whose `checkpoint/` must exist), or explains who holds it.
    pub fn acquire(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("checkpoint").join(Self::FILE);
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                use std::io::Read;
                let mut holder = String::new();
                let _ = (&mut f).take(32).read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() { "another process".into() } else { format!("process {holder}") };
                bail!("run directory {} is in use: {who} is training into it (lock {})", dir.display(), path.display());
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(anyhow::Error::new(e).context(format!("cannot lock {}", path.display())));
            }
        }
        f.set_len(0)?;
        f.write_all(std::process::id().to_string().as_bytes())?;
        Ok(Self { _file: f })
    }
}

/// The header entry of a checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckpointMeta {
    /// Format version of this layout.
    pub format: u32,
    pub method: String,
    /// Number of completed training steps.
    pub step: usize,
    /// State of the training RNG after `step` steps.
    pub rng: [u64; 4],
    pub data_shape: SampleShape,
    /// The method's own meta (stage, counters, ...).
    pub method_meta: serde_json::Value,
}

pub const FORMAT: u32 = 1;
const META_KEY: &str = "ganfold";

pub struct Checkpoint {
    pub meta: CheckpointMeta,
    pub state: MethodState,
}

/// Serialises a checkpoint to safetensors bytes (tensors converted to contiguous host copies).
pub fn to_bytes(meta: &CheckpointMeta, tensors: &BTreeMap<String, Tensor>) -> anyhow::Result<Vec<u8>> {
    // The file is built in memory: refused (the last checkpoint kept) when it cannot fit.
    let bytes: u128 = tensors.values().map(|t| (t.elem_count() * t.dtype().size_in_bytes()) as u128).sum();
    crate::limits::check_alloc(&format!("the checkpoint of {} tensors", tensors.len()), bytes)?;
    let host: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<anyhow::Result<_>>()?;
    let mut info = HashMap::new();
    info.insert(META_KEY.to_string(), serde_json::to_string(meta)?);
    Ok(safetensors::serialize(host, Some(info))?)
}

pub fn save(path: &Path, meta: &CheckpointMeta, tensors: &BTreeMap<String, Tensor>) -> anyhow::Result<()> {
    atomic_write(path, &to_bytes(meta, tensors)?)
}

/// Reads and validates a checkpoint (any corruption is an error, never a panic).
pub fn load(path: &Path, device: &Device) -> anyhow::Result<Checkpoint> {
    let bytes = crate::limits::read_data(path, "checkpoint")?;
    from_bytes(&bytes, device).with_context(|| format!("invalid checkpoint {}", path.display()))
}

/// Names formats that are not safetensors but are often mistaken for weights files. ganfold
/// never unpickles: a pickle can run arbitrary code when loaded.
pub fn foreign_format(bytes: &[u8]) -> Option<&'static str> {
    match bytes {
        [0x80, 2..=5, ..] => Some("a Python pickle (e.g. a PyTorch .pt/.pth/.bin file)"),
        [b'P', b'K', 3, 4, ..] => Some("a zip archive (e.g. a PyTorch .pt/.pth file, which holds pickles)"),
        [0x1f, 0x8b, ..] => Some("gzip-compressed data"),
        [0x93, b'N', b'U', b'M', b'P', b'Y', ..] => Some("a NumPy .npy file"),
        [0x89, b'H', b'D', b'F', ..] => Some("an HDF5 (Keras .h5) file"),
        _ => None,
    }
}

/// Parses a safetensors buffer, or says what the file is instead.
pub fn read_safetensors(bytes: &[u8]) -> anyhow::Result<safetensors::SafeTensors<'_>> {
    if let Some(what) = foreign_format(bytes) {
        bail!(
            "not a safetensors file: this is {what}; ganfold loads weights only from safetensors (it never unpickles)"
        );
    }
    safetensors::SafeTensors::deserialize(bytes).map_err(|e| anyhow::anyhow!("not a valid safetensors file: {e}"))
}

pub fn from_bytes(bytes: &[u8], device: &Device) -> anyhow::Result<Checkpoint> {
    let st = read_safetensors(bytes)?;
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).context("not a safetensors file")?;
    let info = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .context("not a ganfold checkpoint (no `ganfold` header)")?;
    let meta: CheckpointMeta = serde_json::from_str(info).context("corrupt checkpoint header")?;
    if meta.format != FORMAT {
        bail!("checkpoint format {} is not supported (this ganfold reads format {FORMAT})", meta.format);
    }
    let mut tensors = BTreeMap::new();
    for (name, view) in st.tensors() {
        let t = match view.dtype() {
            safetensors::Dtype::F32 | safetensors::Dtype::F64 | safetensors::Dtype::U32 | safetensors::Dtype::I64 => {
                candle_core::safetensors::Load::load(&view, device).with_context(|| format!("tensor `{name}`"))?
            }
            d => bail!("tensor `{name}` has unsupported dtype {d:?}"),
        };
        tensors.insert(name, t);
    }
    // Content, not only form: xoshiro's all-zero state draws only zeros, and a trainer never
    // saves non-finite weights (its NaN guard stops first), so either means a forged or broken file.
    if meta.rng == [0; 4] {
        bail!("the checkpoint's RNG state is all zeros (a generator in that state draws only zeros)");
    }
    if let Some(name) = all_finite(&tensors)? {
        bail!("tensor `{name}` holds NaN or infinite values");
    }
    let method_meta = meta.method_meta.clone();
    Ok(Checkpoint { meta, state: MethodState { tensors, meta: method_meta } })
}

/// True if every float tensor is finite.
pub fn all_finite(tensors: &BTreeMap<String, Tensor>) -> anyhow::Result<Option<String>> {
    for (k, t) in tensors {
        // Element by element on one host copy: a sum can overflow, and f64 temporaries of a
        // large network would double the memory a checkpoint needs.
        let finite = match t.dtype() {
            candle_core::DType::F64 => t.flatten_all()?.to_vec1::<f64>()?.iter().all(|x| x.is_finite()),
            d if d.is_float() => {
                t.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?.iter().all(|x| x.is_finite())
            }
            _ => true,
        };
        if !finite {
            return Ok(Some(k.clone()));
        }
    }
    Ok(None)
}

/// Tensor maps of a method's sub-parts, joined under prefixes (`"g."`, `"opt_g."`, ...).
pub fn prefixed(parts: Vec<(&str, BTreeMap<String, Tensor>)>) -> BTreeMap<String, Tensor> {
    let mut out = BTreeMap::new();
    for (p, m) in parts {
        for (k, t) in m {
            out.insert(format!("{p}{k}"), t);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_corruption_is_an_error() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("c.safetensors");
        let mut t = BTreeMap::new();
        t.insert("w".to_string(), Tensor::new(&[[1.0f32, 2.0], [3.0, 4.0]], &Device::Cpu)?);
        let meta = CheckpointMeta {
            format: FORMAT,
            method: "x".into(),
            step: 5,
            rng: [1, 2, 3, u64::MAX],
            data_shape: SampleShape::Points { dim: 2 },
            method_meta: serde_json::json!({"stage": 2}),
        };
        save(&p, &meta, &t)?;
        let c = load(&p, &Device::Cpu)?;
        assert_eq!(c.meta, meta);
        assert_eq!(c.state.tensors["w"].to_vec2::<f32>()?, vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
        let bytes = std::fs::read(&p)?;
        for cut in [0, 7, 20, bytes.len() / 2, bytes.len() - 1] {
            assert!(from_bytes(&bytes[..cut], &Device::Cpu).is_err(), "truncated at {cut}");
        }
        let mut bad = bytes.clone();
        bad[9] ^= 0xff;
        assert!(from_bytes(&bad, &Device::Cpu).is_err());
        // no temp files left behind
        assert_eq!(std::fs::read_dir(dir.path())?.count(), 1);
        // Well-formed but impossible contents are refused too.
        let zero_rng = CheckpointMeta { rng: [0; 4], ..meta.clone() };
        let Err(e) = from_bytes(&to_bytes(&zero_rng, &t)?, &Device::Cpu) else { panic!("zero RNG state loaded") };
        assert!(format!("{e:#}").contains("all zeros"), "{e:#}");
        let mut nan = t.clone();
        nan.insert("v".to_string(), Tensor::new(&[0.5f32, f32::NAN], &Device::Cpu)?);
        let Err(e) = from_bytes(&to_bytes(&meta, &nan)?, &Device::Cpu) else { panic!("NaN tensor loaded") };
        assert!(format!("{e:#}").contains("tensor `v` holds NaN"), "{e:#}");
        Ok(())
    }

    #[test]
    fn pickles_and_other_formats_are_named_never_loaded() {
        let cases: [(&[u8], &str); 4] = [
            (b"\x80\x02}q\x00(X\x06\x00\x00\x00weightq", "pickle"),
            (b"PK\x03\x04\x14\x00\x00\x00archive/data.pkl", "zip archive"),
            (b"\x93NUMPY\x01\x00v\x00{'descr': '<f4'", "NumPy"),
            (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "gzip"),
        ];
        for (bytes, what) in cases {
            let e = format!("{:#}", from_bytes(bytes, &Device::Cpu).err().expect("must fail"));
            assert!(e.contains("not a safetensors file") && e.contains(what) && e.contains("never unpickles"), "{e}");
        }
        let e = format!("{:#}", from_bytes(b"hello world, not weights", &Device::Cpu).err().expect("must fail"));
        assert!(e.contains("not a valid safetensors file"), "{e}");
    }

    #[test]
    fn wrong_shape_or_dtype_names_the_tensor() -> anyhow::Result<()> {
        use crate::nn::{Init, VarStore};
        use crate::optim::{Adam, AdamConfig};
        use candle_core::DType;
        let vs = VarStore::new(DType::F32, &Device::Cpu, crate::Rng::new(0));
        vs.pp("enc").var("weight", (2, 3), Init::Const(0.5))?;
        let good: BTreeMap<String, Tensor> = vs.tensors().into_iter().map(|(k, t)| (k, t.copy().unwrap())).collect();
        let with = |t: Tensor| {
            let mut m = good.clone();
            m.insert("enc.weight".to_string(), t);
            m
        };
        let e = vs.load(&with(Tensor::zeros((3, 2), DType::F32, &Device::Cpu)?), "").unwrap_err().to_string();
        assert!(e.contains("`enc.weight`") && e.contains("shape [3, 2]") && e.contains("[2, 3]"), "{e}");
        let e = vs.load(&with(Tensor::zeros((2, 3), DType::F64, &Device::Cpu)?), "").unwrap_err().to_string();
        assert!(e.contains("`enc.weight`") && e.contains("dtype F64") && e.contains("F32"), "{e}");
        let e = vs.load(&with(Tensor::zeros((2, 3), DType::U32, &Device::Cpu)?), "").unwrap_err().to_string();
        assert!(e.contains("`enc.weight`") && e.contains("U32"), "{e}");
        let e = vs.load(&BTreeMap::new(), "g.").unwrap_err().to_string();
        assert!(e.contains("`g.enc.weight` is missing"), "{e}");
        vs.load(&good, "")?;

        let mut adam = Adam::new(vs.trainable_vars(), AdamConfig::dcgan(1e-3))?;
        let mut st = adam.state().tensors;
        st.insert("m.enc.weight".into(), Tensor::zeros((2, 3), DType::F64, &Device::Cpu)?);
        let e = adam.load(0, &st, "").unwrap_err().to_string();
        assert!(e.contains("`m.enc.weight`") && e.contains("dtype F64"), "{e}");
        Ok(())
    }

    #[test]
    fn stale_temp_files_are_removed_and_nothing_else() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join(".state.safetensors.123.tmp"), b"half")?;
        std::fs::write(dir.path().join("state.safetensors"), b"kept")?;
        std::fs::write(dir.path().join("notes.tmp"), b"not ours")?;
        assert_eq!(remove_stale_temps(dir.path()), 1);
        let mut left: Vec<_> =
            std::fs::read_dir(dir.path())?.flatten().map(|e| e.file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["notes.tmp", "state.safetensors"]);
        Ok(())
    }

    /// One holder at a time (two open files conflict even within one process), the error names
    /// the holder's pid, and dropping the lock frees the directory.
    #[test]
    fn run_lock_is_exclusive_and_names_its_holder() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("checkpoint"))?;
        let held = RunLock::acquire(dir.path())?;
        let err = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains("in use") && err.contains(&std::process::id().to_string()), "{err}");
        drop(held);
        RunLock::acquire(dir.path())?;
        Ok(())
    }
}
