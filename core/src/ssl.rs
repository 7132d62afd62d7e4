//! What every semi-supervised method shares: the labelled subset and the validation split, the
//! classification error, an exponential moving average of a network's weights, and the
//! classifier of Improved-GAN's MNIST experiment (Salimans et al. 2016), a weight-normalised MLP
//! with Gaussian noise on its input and every hidden layer.

use crate::data::Dataset;
use crate::nn::{Init, VarStore, VsPath, param};
use crate::rng::Rng;
use anyhow::{Context, bail};
use candle_core::{D, DType, Device, Result, Tensor};

/// The labelled subset and the validation split of a training set, drawn once from the seed.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// The labelled images: `labels / K` per class (the remainder to the first classes).
    pub labelled: Vec<usize>,
    /// Validation images, disjoint from `labelled`: every setting is chosen on them, never on
    /// the test set. Their labels are used only to measure; their images may still appear in
    /// the unlabelled stream, which never sees a label.
    pub val: Vec<usize>,
}

impl Split {
    /// `val` images first (a seeded draw), then `labels` balanced ones from the rest. `who`
    /// names the method in errors.
    pub fn draw(data: &Dataset, labels: usize, val: usize, seed: u64, who: &str) -> anyhow::Result<Split> {
        let y = data.labels.as_ref().with_context(|| format!("{who}: dataset `{}` has no labels", data.name))?;
        let k = data.num_classes;
        if k < 2 {
            bail!("{who}: dataset `{}` has {k} classes; semi-supervised learning needs at least 2", data.name);
        }
        if labels < k {
            bail!("{who}: `labels` = {labels} is fewer than the {k} classes (at least one per class)");
        }
        if val + labels > data.len() {
            bail!("{who}: {val} validation and {labels} labelled images do not fit in {} training images", data.len());
        }
        let perm = Rng::derive(seed, "ssl-split").permutation(data.len());
        let (val_idx, rest) = perm.split_at(val);
        let mut want: Vec<usize> = (0..k).map(|c| labels / k + usize::from(c < labels % k)).collect();
        let mut labelled = vec![];
        for &i in rest {
            let c = y[i] as usize;
            if c < k && want[c] > 0 {
                want[c] -= 1;
                labelled.push(i);
            }
        }
        if want.iter().any(|&w| w > 0) {
            bail!("{who}: `{}` has too few images of some class for {labels} balanced labels", data.name);
        }
        Ok(Split { labelled, val: val_idx.to_vec() })
    }
}

/// The labelled images and their labels, on the training device.
pub struct LabelledSet {
    pub x: Tensor,
    /// (L,) u32.
    pub y: Tensor,
    pub index: Vec<usize>,
}

impl LabelledSet {
    pub fn new(data: &Dataset, index: &[usize], device: &Device) -> anyhow::Result<Self> {
        let b = data.batch(index, device)?;
        Ok(Self { x: b.x, y: b.y.context("labelled images without labels")?, index: index.to_vec() })
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// A labelled minibatch of `b` rows: distinct rows when `b` <= L (with L = b, every labelled
    /// image once, as Improved-GAN's tiled epochs give), otherwise draws with replacement.
    pub fn batch(&self, b: usize, rng: &mut Rng) -> Result<(Tensor, Tensor)> {
        let l = self.len();
        let pick: Vec<u32> = if b <= l {
            rng.choose_distinct(l, b).into_iter().map(|i| i as u32).collect()
        } else {
            (0..b).map(|_| rng.below(l) as u32).collect()
        };
        let pick = Tensor::from_vec(pick, b, self.x.device())?;
        Ok((self.x.index_select(&pick, 0)?, self.y.index_select(&pick, 0)?))
    }
}

/// The fraction of `rows` of `data` whose argmax of `logits(x)` (B, K) is not the label.
pub fn error_rate(
    data: &Dataset,
    rows: &[usize],
    device: &Device,
    logits: &dyn Fn(&Tensor) -> Result<Tensor>,
) -> anyhow::Result<f64> {
    let labels = data.labels.as_ref().with_context(|| format!("dataset `{}` has no labels", data.name))?;
    if rows.is_empty() {
        bail!("error_rate: no rows to classify");
    }
    let mut wrong = 0usize;
    for chunk in rows.chunks(500) {
        let x = data.batch(chunk, device)?.x;
        let pred = logits(&x)?.argmax(D::Minus1)?.to_vec1::<u32>()?;
        wrong += chunk.iter().zip(pred).filter(|(i, p)| labels[**i] != *p).count();
    }
    Ok(wrong as f64 / rows.len() as f64)
}

/// An exponential moving average of a network's weights: `a <- a + rate (p - a)` after every
/// update of the trainable parameters; buffers are copied. It starts at the weights it is
/// created from (Improved-GAN starts its average at zero, which with its rate of 1e-4 is only
/// reliable after tens of thousands of steps; a copy needs no warm-up).
pub struct Ema {
    vs: VarStore,
    pub rate: f64,
}

impl Ema {
    /// `shadow` holds a second copy of the network (built with the same names); it is set to
    /// `source`'s weights.
    pub fn new(shadow: VarStore, source: &VarStore, rate: f64) -> anyhow::Result<Self> {
        if !(rate > 0.0 && rate <= 1.0) {
            bail!("the moving-average rate must be in (0, 1], got {rate}");
        }
        shadow.copy_from(source)?;
        Ok(Self { vs: shadow, rate })
    }

    /// The averaged weights.
    pub fn vs(&self) -> &VarStore {
        &self.vs
    }

    pub fn update(&self, source: &VarStore) -> anyhow::Result<()> {
        let src = source.tensors();
        for (name, var, trainable) in self.vs.vars() {
            let p = src.get(&name).with_context(|| format!("moving average: the network has no `{name}`"))?;
            let next = if trainable { (var.as_tensor() + ((p - var.as_tensor())? * self.rate)?)? } else { p.clone() };
            var.set(&next)?;
        }
        Ok(())
    }
}

/// A dense layer with weight normalisation (Salimans & Kingma 2016) as Improved-GAN's MNIST
/// code writes it: `W = scale * theta / ||theta||` per output unit, `theta ~ N(0, 0.1)`, bias 0;
/// the scale is trainable only where `train_scale` (the output layer), and the data-dependent
/// init ([`WnDense::init_on`]) sets scale and bias so that the first batch's pre-activations have
/// zero mean and unit variance.
pub struct WnDense {
    theta: Tensor,
    scale: Tensor,
    bias: Tensor,
    scale_name: String,
    bias_name: String,
}

impl WnDense {
    pub fn new(inp: usize, out: usize, train_scale: bool, vs: VsPath) -> Result<Self> {
        Self::with_init(inp, out, train_scale, Init::Normal { mean: 0.0, std: 0.1 }, vs)
    }

    /// With another init of `theta` (Improved-GAN's generator output layer: Glorot uniform).
    pub fn with_init(inp: usize, out: usize, train_scale: bool, init: Init, vs: VsPath) -> Result<Self> {
        let theta = vs.var("theta", (out, inp), init)?;
        let scale = if train_scale {
            vs.var("scale", out, Init::Const(1.0))?
        } else {
            vs.buffer("scale", out, Init::Const(1.0))?.as_tensor().clone()
        };
        let bias = vs.var("bias", out, Init::Const(0.0))?;
        Ok(Self { theta, scale, bias, scale_name: vs.path("scale"), bias_name: vs.path("bias") })
    }

    /// The pre-activation `x W^T` without the bias.
    fn linear(&self, x: &Tensor) -> Result<Tensor> {
        let theta = param(&self.theta);
        // The 1e-6 of the authors' `l2normalize` keeps an all-zero row finite.
        let norm = (theta.sqr()?.sum_keepdim(1)? + 1e-6)?.sqrt()?;
        let w = theta.broadcast_mul(&param(&self.scale).unsqueeze(1)?.broadcast_div(&norm)?)?;
        x.matmul(&w.t()?)
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.linear(x)?.broadcast_add(&param(&self.bias))
    }

    /// Data-dependent init on the batch `x`: scale /= std, bias = -mean / std of `x W^T`; returns
    /// the normalised pre-activations (what the next layer sees at init).
    pub fn init_on(&self, x: &Tensor, vs: &VarStore) -> anyhow::Result<Tensor> {
        let a = self.linear(x)?.detach();
        let m = a.mean(0)?;
        let c = a.broadcast_sub(&m)?;
        let std = c.sqr()?.mean(0)?.sqrt()?;
        vs.set(&self.scale_name, &(self.scale.detach() / &std)?)?;
        vs.set(&self.bias_name, &(m.neg()? / &std)?)?;
        Ok(c.broadcast_div(&std)?)
    }
}

/// Improved-GAN's MNIST classifier (its `train_mnist_feature_matching.py`): Gaussian noise
/// (std 0.3) on the input in [0, 1], weight-normalised dense layers 1000-500-250-250-250 with
/// ReLU, each followed by Gaussian noise (std 0.5), and a weight-normalised output layer of K
/// logits with a trainable scale. The feature layer of feature matching is the last hidden
/// layer's output, before its noise.
pub struct NoisyMlp {
    hidden: Vec<WnDense>,
    head: WnDense,
    sigma_in: f64,
    sigma_hidden: f64,
    widths: Vec<usize>,
}

/// The hidden widths of Improved-GAN's MNIST classifier.
pub const IMPROVED_GAN_WIDTHS: [usize; 5] = [1000, 500, 250, 250, 250];

impl NoisyMlp {
    /// `inp` inputs (784 for MNIST), `widths` hidden layers, `classes` logits.
    pub fn new(inp: usize, widths: &[usize], classes: usize, vs: &VarStore) -> Result<Self> {
        if widths.is_empty() {
            candle_core::bail!("the noisy MLP needs at least one hidden layer");
        }
        let mut hidden = vec![];
        let mut i = inp;
        for (l, &w) in widths.iter().enumerate() {
            let name = format!("h{l}");
            hidden.push(WnDense::new(i, w, false, vs.pp(&name))?);
            i = w;
        }
        let head = WnDense::new(i, classes, true, vs.pp("out"))?;
        let mut all = vec![inp];
        all.extend_from_slice(widths);
        Ok(Self { hidden, head, sigma_in: 0.3, sigma_hidden: 0.5, widths: all })
    }

    /// The width of the feature layer.
    pub fn feature_dim(&self) -> usize {
        *self.widths.last().expect("at least one layer")
    }

    /// Fresh noise for `rows` rows: one tensor per noise layer (input, then each hidden layer).
    /// Passing the same noise to two forward passes (finite differences) makes their difference
    /// a derivative of one network, not noise.
    pub fn draw_noise(&self, rows: usize, rng: &mut Rng, device: &Device) -> Result<Vec<Tensor>> {
        self.widths
            .iter()
            .enumerate()
            .map(|(l, &w)| {
                let sigma = if l == 0 { self.sigma_in } else { self.sigma_hidden };
                Tensor::from_vec(rng.normal_vec_f32(rows * w, 0.0, sigma as f32), (rows, w), device)
            })
            .collect()
    }

    /// Images in [-1, 1] as the [0, 1] rows Improved-GAN's noise levels are stated for.
    fn input(x: &Tensor) -> Result<Tensor> {
        (x.flatten_from(1)? + 1.0)? * 0.5
    }

    /// (features, logits); `noise` from [`NoisyMlp::draw_noise`] in training, `None` to test.
    pub fn forward(&self, x: &Tensor, noise: Option<&[Tensor]>) -> Result<(Tensor, Tensor)> {
        let add = |h: Tensor, l: usize| -> Result<Tensor> {
            match noise {
                Some(n) => h + &n[l],
                None => Ok(h),
            }
        };
        let mut h = add(Self::input(x)?, 0)?;
        let mut feats = h.clone();
        for (l, layer) in self.hidden.iter().enumerate() {
            feats = layer.forward(&h)?.relu()?;
            h = add(feats.clone(), l + 1)?;
        }
        Ok((feats, self.head.forward(&h)?))
    }

    /// Improved-GAN's data-dependent init on the batch `x`, with training noise as its code.
    pub fn init_on(&self, x: &Tensor, vs: &VarStore, rng: &mut Rng) -> anyhow::Result<()> {
        let noise = self.draw_noise(x.dim(0)?, rng, x.device())?;
        let noise = noise.iter().map(|n| n.to_dtype(x.dtype())).collect::<Result<Vec<_>>>()?;
        let mut h = (Self::input(x)? + &noise[0])?;
        for (l, layer) in self.hidden.iter().enumerate() {
            h = (layer.init_on(&h, vs)?.relu()? + &noise[l + 1])?;
        }
        self.head.init_on(&h, vs)?;
        Ok(())
    }
}

/// What a semi-supervised classifier is built from (each method's configuration supplies it).
#[derive(Clone, Debug)]
pub struct SslOptions {
    /// Hidden widths of the noisy MLP ([`IMPROVED_GAN_WIDTHS`] for MNIST).
    pub widths: Vec<usize>,
    /// Labelled images, balanced over the classes.
    pub labels: usize,
    /// Validation images held out of the labelled draw.
    pub val: usize,
    /// Rate of the moving average of the weights that is tested.
    pub ema_rate: f64,
    /// Training images of the data-dependent initialisation.
    pub init_batch: usize,
    /// Steps between validation measurements; 0 = once per epoch.
    pub eval_every: usize,
}

/// The K-class classifier of a semi-supervised GAN as Improved-GAN trains and tests it: the noisy
/// MLP (its weights live in the caller's player), the moving average of those weights that is
/// tested, the labelled subset and validation split, and the validation curve. A method adds
/// its own losses; this holds what every such method shares.
pub struct SslClassifier {
    net: NoisyMlp,
    avg: NoisyMlp,
    ema: Ema,
    pub split: Split,
    pub labelled: LabelledSet,
    device: Device,
    eval_every: usize,
    steps_per_epoch: usize,
    /// (step, validation error of the weights, of their average).
    curve: Vec<(usize, f64, f64)>,
}

impl SslClassifier {
    /// Builds the classifier in `vs` (the store its optimiser updates) and initialises it on
    /// `init_batch` training images drawn from `seed`; the split is drawn from `seed` too, so
    /// that two methods run with one seed see the same labels. `who` names the method in errors.
    pub fn new(
        data: &Dataset,
        opts: &SslOptions,
        vs: &VarStore,
        seed: u64,
        batch_size: usize,
        device: &Device,
        who: &str,
    ) -> anyhow::Result<Self> {
        if opts.widths.is_empty() || opts.widths.contains(&0) {
            bail!("{who}: `widths` must list at least one hidden width, each at least 1");
        }
        if opts.init_batch == 0 {
            bail!("{who}: `init_batch` must be at least 1");
        }
        if !(opts.ema_rate > 0.0 && opts.ema_rate <= 1.0) {
            bail!("{who}: `ema_rate` must be in (0, 1], got {}", opts.ema_rate);
        }
        let split = Split::draw(data, opts.labels, opts.val, seed, who)?;
        let labelled = LabelledSet::new(data, &split.labelled, device)?;
        let numel = data.shape.numel();
        let net = NoisyMlp::new(numel, &opts.widths, data.num_classes, vs)?;
        // Data-dependent init (Improved-GAN: the first 500 images of its shuffled training set).
        let mut rng = Rng::derive(seed, &format!("{who}-init"));
        let pick = rng.choose_distinct(data.len(), opts.init_batch.min(data.len()));
        net.init_on(&data.batch(&pick, device)?.x, vs, &mut rng)?;
        let avg_vs = VarStore::new(DType::F32, device, Rng::derive(seed, "init-classifier-avg"));
        let avg = NoisyMlp::new(numel, &opts.widths, data.num_classes, &avg_vs)?;
        let ema = Ema::new(avg_vs, vs, opts.ema_rate)?;
        let steps_per_epoch = data.len().div_ceil(batch_size.max(1));
        let eval_every = if opts.eval_every > 0 { opts.eval_every } else { steps_per_epoch };
        Ok(Self { net, avg, ema, split, labelled, device: device.clone(), eval_every, steps_per_epoch, curve: vec![] })
    }

    /// The network on its current weights.
    pub fn net(&self) -> &NoisyMlp {
        &self.net
    }

    /// The noisy training pass on `x` with fresh noise: (features, logits).
    pub fn classify(&self, x: &Tensor, rng: &mut Rng) -> Result<(Tensor, Tensor)> {
        let noise = self.net.draw_noise(x.dim(0)?, rng, &self.device)?;
        self.net.forward(x, Some(&noise))
    }

    /// Logits without noise (testing), on the averaged weights if `avg`.
    pub fn logits(&self, x: &Tensor, avg: bool) -> Result<Tensor> {
        Ok((if avg { &self.avg } else { &self.net }).forward(x, None)?.1)
    }

    /// The classification error on `rows` of `data`, without noise.
    pub fn error(&self, data: &Dataset, rows: &[usize], avg: bool) -> anyhow::Result<f64> {
        error_rate(data, rows, &self.device, &|x| self.logits(x, avg))
    }

    /// After each update of the weights in `vs`: the moving average follows them, and every
    /// `eval_every` steps the validation errors of both are recorded and logged.
    pub fn after_update(
        &mut self,
        vs: &VarStore,
        step: usize,
        data: &Dataset,
        st: &mut crate::StepStats,
    ) -> anyhow::Result<()> {
        self.ema.update(vs)?;
        if (step + 1).is_multiple_of(self.eval_every) && !self.split.val.is_empty() {
            let (raw, avg) = (self.error(data, &self.split.val, false)?, self.error(data, &self.split.val, true)?);
            self.curve.push((step + 1, raw, avg));
            st.push_periodic("val_error", raw);
            st.push_periodic("val_error_ema", avg);
        }
        Ok(())
    }

    /// The validation curve: (step, error of the weights, error of their average).
    pub fn curve(&self) -> &[(usize, f64, f64)] {
        &self.curve
    }

    /// `ssl_test_error` (the averaged weights) and `ssl_test_error_raw` on the test split where
    /// there is a labelled one; `ssl_val_error` and `ssl_val_error_raw` on the validation images.
    pub fn evaluate(&self, data: &Dataset) -> anyhow::Result<Vec<(String, f64)>> {
        let mut out = vec![];
        if let Some(t) = data.test.as_deref().filter(|t| t.labels.is_some()) {
            let rows: Vec<usize> = (0..t.len()).collect();
            out.push(("ssl_test_error".into(), self.error(t, &rows, true)?));
            out.push(("ssl_test_error_raw".into(), self.error(t, &rows, false)?));
        }
        if !self.split.val.is_empty() {
            out.push(("ssl_val_error".into(), self.error(data, &self.split.val, true)?));
            out.push(("ssl_val_error_raw".into(), self.error(data, &self.split.val, false)?));
        }
        Ok(out)
    }

    /// `val_error.png` in `dir`: the validation error against epochs, of the weights and of their
    /// average; `None` before the first measurement.
    pub fn figure(&self, dir: &std::path::Path) -> anyhow::Result<Option<std::path::PathBuf>> {
        if self.curve.is_empty() {
            return Ok(None);
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("val_error.png");
        let epoch = |s: usize| s as f64 / self.steps_per_epoch as f64;
        let series = [
            crate::viz::Series { name: "weights", points: self.curve.iter().map(|&(s, r, _)| (epoch(s), r)).collect() },
            crate::viz::Series {
                name: "moving average",
                points: self.curve.iter().map(|&(s, _, a)| (epoch(s), a)).collect(),
            },
        ];
        let png = crate::viz::line_plot("validation error", "epochs", &series, (640, 400))?;
        crate::checkpoint::atomic_write(&path, &png)?;
        Ok(Some(path))
    }

    /// The averaged weights under `prefix` and the curve, for a method's extra state.
    pub fn state(&self, prefix: &str) -> (std::collections::BTreeMap<String, Tensor>, serde_json::Value) {
        let tensors = self.ema.vs().tensors().into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)).collect();
        (tensors, serde_json::json!(self.curve))
    }

    /// Restores what [`SslClassifier::state`] saved; a malformed curve is an error.
    pub fn load_state(
        &mut self,
        tensors: &std::collections::BTreeMap<String, Tensor>,
        prefix: &str,
        curve: Option<&serde_json::Value>,
    ) -> anyhow::Result<()> {
        self.ema.vs().load(tensors, prefix)?;
        self.curve = match curve {
            Some(v) => serde_json::from_value(v.clone()).context("checkpoint meta `val_curve` is malformed")?,
            None => vec![],
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Toy, toy};

    #[test]
    fn split_is_balanced_disjoint_and_seeded() {
        let data = toy(Toy::Ring8, 0, 400);
        let s = Split::draw(&data, 16, 50, 3, "t").unwrap();
        assert_eq!(s.labelled.len(), 16);
        assert_eq!(s.val.len(), 50);
        assert!(s.labelled.iter().all(|i| !s.val.contains(i)));
        let y = data.labels.as_ref().unwrap();
        for c in 0..8 {
            assert_eq!(s.labelled.iter().filter(|&&i| y[i] == c).count(), 2);
        }
        assert_eq!(s, Split::draw(&data, 16, 50, 3, "t").unwrap());
        assert_ne!(s, Split::draw(&data, 16, 50, 4, "t").unwrap());
        assert!(Split::draw(&data, 4, 0, 0, "t").unwrap_err().to_string().contains("fewer than the 8 classes"));
        assert!(Split::draw(&data, 16, 390, 0, "t").is_err());
    }

    #[test]
    fn ema_by_hand() {
        let dev = Device::Cpu;
        let src = VarStore::new(DType::F32, &dev, Rng::new(0));
        let w = src.root().var("w", 2, Init::Const(1.0)).unwrap();
        src.root().buffer("b", 1, Init::Const(5.0)).unwrap();
        let shadow = VarStore::new(DType::F32, &dev, Rng::new(1));
        shadow.root().var("w", 2, Init::Const(0.0)).unwrap();
        shadow.root().buffer("b", 1, Init::Const(0.0)).unwrap();
        let ema = Ema::new(shadow, &src, 0.25).unwrap();
        src.set("w", &Tensor::new(&[3f32, -1.0], &dev).unwrap()).unwrap();
        src.set("b", &Tensor::new(&[7f32], &dev).unwrap()).unwrap();
        ema.update(&src).unwrap();
        let t = ema.vs().tensors();
        // 1 + 0.25 (3 - 1) = 1.5, 1 + 0.25 (-1 - 1) = 0.5; the buffer is copied.
        assert_eq!(t["w"].to_vec1::<f32>().unwrap(), [1.5, 0.5]);
        assert_eq!(t["b"].to_vec1::<f32>().unwrap(), [7.0]);
        assert_eq!(w.to_vec1::<f32>().unwrap(), [3.0, -1.0]);
    }

    #[test]
    fn data_dependent_init_standardises_the_first_batch() {
        let dev = Device::Cpu;
        let vs = VarStore::new(DType::F32, &dev, Rng::new(0));
        let net = NoisyMlp::new(6, &[5, 4], 3, &vs).unwrap();
        let mut rng = Rng::new(2);
        let x = rng.rand((64, 6), -1.0, 1.0, &dev).unwrap();
        let mut r = Rng::new(3);
        net.init_on(&x, &vs, &mut r).unwrap();
        // The same noise again: the first layer's pre-activations are standardised.
        let noise = net.draw_noise(64, &mut Rng::new(3), &dev).unwrap();
        let h = (NoisyMlp::input(&x).unwrap() + &noise[0]).unwrap();
        let a = net.hidden[0].forward(&h).unwrap();
        let m = a.mean(0).unwrap().abs().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        let v = a.sqr().unwrap().mean(0).unwrap().to_vec1::<f32>().unwrap();
        assert!(m < 1e-5, "mean {m}");
        assert!(v.iter().all(|v| (v - 1.0).abs() < 1e-4), "{v:?}");
        let (f, l) = net.forward(&x, Some(&noise)).unwrap();
        assert_eq!((f.dims(), l.dims()), (&[64, 4][..], &[64, 3][..]));
    }

    /// f64 copies of the noise of `rows` rows.
    fn noise64(net: &NoisyMlp, rows: usize, seed: u64) -> Vec<Tensor> {
        let n = net.draw_noise(rows, &mut Rng::new(seed), &Device::Cpu).unwrap();
        n.into_iter().map(|t| t.to_dtype(DType::F64).unwrap()).collect()
    }

    /// The weight-normalised layers' parameter gradients equal central finite differences (f64):
    /// theta of a hidden layer (where W = scale theta / ||theta||) and the output scale.
    #[test]
    fn noisy_mlp_parameter_gradients_match_finite_differences() {
        let dev = Device::Cpu;
        let vs = VarStore::new(DType::F64, &dev, Rng::new(0));
        let net = NoisyMlp::new(5, &[4, 3], 2, &vs).unwrap();
        let x = Rng::new(1).rand((6, 5), -1.0, 1.0, &dev).unwrap().to_dtype(DType::F64).unwrap();
        net.init_on(&x, &vs, &mut Rng::new(2)).unwrap();
        let noise = noise64(&net, 6, 3);
        let w = Tensor::new(&[[0.3f64, -1.1]], &dev).unwrap();
        let loss = || -> f64 {
            let (f, l) = net.forward(&x, Some(&noise)).unwrap();
            let v =
                (l.broadcast_mul(&w).unwrap().sum_all().unwrap() + f.sqr().unwrap().sum_all().unwrap() * 0.1).unwrap();
            v.to_scalar::<f64>().unwrap()
        };
        let (f, l) = net.forward(&x, Some(&noise)).unwrap();
        let total = (l.broadcast_mul(&w).unwrap().sum_all().unwrap()
            + (f.sqr().unwrap().sum_all().unwrap() * 0.1).unwrap())
        .unwrap();
        let grads = total.backward().unwrap();
        for name in ["h0.theta", "h1.bias", "out.scale"] {
            let (_, var, trainable) = vs.vars().into_iter().find(|(n, _, _)| n == name).unwrap();
            assert!(trainable, "{name}");
            let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let v0 = var.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let eps = 1e-5;
            for i in [0, v0.len() / 2, v0.len() - 1] {
                let set = |d: f64| {
                    let mut v = v0.clone();
                    v[i] += d;
                    var.set(&Tensor::from_vec(v, var.as_tensor().shape(), &dev).unwrap()).unwrap();
                };
                set(eps);
                let up = loss();
                set(-eps);
                let down = loss();
                set(0.0);
                let fd = (up - down) / (2.0 * eps);
                assert!((fd - g[i]).abs() < 1e-6 * (1.0 + fd.abs()), "{name}[{i}]: fd {fd} vs autograd {}", g[i]);
            }
        }
        // The hidden scales are fixed after the data-dependent init.
        assert!(!vs.vars().into_iter().any(|(n, _, t)| n == "h0.scale" && t));
    }

    /// With the noise shared between the two passes, a central difference of the noisy network is
    /// its directional derivative (what the manifold penalty needs); fresh noise is not.
    #[test]
    fn shared_noise_makes_central_differences_derivatives() {
        let dev = Device::Cpu;
        let vs = VarStore::new(DType::F64, &dev, Rng::new(4));
        let net = NoisyMlp::new(5, &[6, 4], 3, &vs).unwrap();
        let x = Rng::new(5).rand((8, 5), -1.0, 1.0, &dev).unwrap().to_dtype(DType::F64).unwrap();
        net.init_on(&x, &vs, &mut Rng::new(6)).unwrap();
        let v = Rng::new(7).rand((8, 5), -1.0, 1.0, &dev).unwrap().to_dtype(DType::F64).unwrap();
        let noise = noise64(&net, 8, 8);
        let at = |x: &Tensor, n: &[Tensor]| net.forward(x, Some(n)).unwrap().1;
        let xv = candle_core::Var::from_tensor(&x).unwrap();
        let l = at(xv.as_tensor(), &noise);
        let c = Tensor::new(&[[1.0f64, -0.5, 2.0]], &dev).unwrap();
        let grads = l.broadcast_mul(&c).unwrap().sum_all().unwrap().backward().unwrap();
        let exact = (grads.get(xv.as_tensor()).unwrap() * &v).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
        let d = 1e-5;
        let fd = |n2: &[Tensor]| -> f64 {
            let up = at(&(&x + (&v * d).unwrap()).unwrap(), &noise);
            let down = at(&(&x - (&v * d).unwrap()).unwrap(), n2);
            ((up - down).unwrap() / (2.0 * d))
                .unwrap()
                .broadcast_mul(&c)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        let shared = fd(&noise);
        assert!((shared - exact).abs() < 1e-6 * (1.0 + exact.abs()), "shared noise: {shared} vs {exact}");
        let fresh = fd(&noise64(&net, 8, 9));
        assert!((fresh - exact).abs() > 1e3 * (1.0 + exact.abs()), "fresh noise should swamp the difference: {fresh}");
    }
}
