//! Property tests of the LGAN plugin: the finite-difference Jacobian against autodiff, the
//! regularizer against hand values, the SSL step, resumption and determinism, figures, registry.

use candle_core::{DType, Device, Tensor, Var};
use ganfold_core::data::{self, Toy};
use ganfold_core::nn::VarStore;
use ganfold_core::{BuildContext, Dataset, LocalGenerator, Method, RegContext, Rng, SampleShape};
use ganfold_lgan as lgan;
use lgan::model::{GenOptions, LocalGen};
use lgan::reg::fd_jacobian;

type R = anyhow::Result<()>;

fn max_rel(a: &Tensor, b: &Tensor) -> anyhow::Result<f64> {
    let d = (a - b)?.abs()?.max_all()?.to_scalar::<f64>()?;
    let s = b.abs()?.max_all()?.to_scalar::<f64>()?;
    Ok(d / s.max(1e-12))
}

/// v^T J by finite differences equals v^T J by reverse-mode autodiff (VJP), f64, delta 1e-5,
/// for the 28x28 conv generator; and the full 2 x N Jacobian of the point MLP, row by row.
#[test]
fn fd_jacobian_matches_autodiff_f64() -> R {
    let dev = Device::Cpu;
    let mut rng = Rng::new(3);
    // Conv generator, N = 5, all coordinates.
    let vs = VarStore::new(DType::F64, &dev, Rng::new(1));
    let shape = SampleShape::Image { c: 1, h: 28, w: 28 };
    let g = LocalGen::new(shape, 5, 4, GenOptions { code_gain: Some(1.7), exact_locality: false }, &vs)?;
    let x = rng.randn((2, 1, 28, 28), 0.0, 0.5, &dev)?.to_dtype(DType::F64)?;
    let coords: Vec<usize> = (0..5).collect();
    let j = fd_jacobian(&g, &x, &coords, 1e-5, false)?; // (2, 5, 784)
    let v = rng.randn((2, 784), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
    let vj_fd = j.matmul(&v.unsqueeze(2)?)?.squeeze(2)?; // (2, 5)
    let z = Var::from_tensor(&Tensor::zeros((2, 5), DType::F64, &dev)?)?;
    let out = g.forward_local(&x, z.as_tensor(), false)?.flatten_from(1)?;
    let grads = (out * &v)?.sum_all()?.backward()?;
    let vj_ad = grads.get(z.as_tensor()).expect("gradient w.r.t. z");
    let e = max_rel(&vj_fd, vj_ad)?;
    assert!(e < 1e-6, "conv: relative error {e}");
    // A subset of coordinates picks the matching rows.
    let js = fd_jacobian(&g, &x, &[3, 1], 1e-5, false)?;
    assert!(max_rel(&js.get_on_dim(1, 0)?, &j.get_on_dim(1, 3)?)? < 1e-9);

    // Point MLP, N = 2, D = 2: the whole Jacobian from two VJPs.
    let vs = VarStore::new(DType::F64, &dev, Rng::new(2));
    let g = LocalGen::new(
        SampleShape::Points { dim: 2 },
        2,
        16,
        GenOptions { code_gain: None, exact_locality: false },
        &vs,
    )?;
    let x = rng.randn((3, 2), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
    let j = fd_jacobian(&g, &x, &[0, 1], 1e-5, false)?; // (3, N=2, D=2)
    for d in 0..2 {
        let z = Var::from_tensor(&Tensor::zeros((3, 2), DType::F64, &dev)?)?;
        let out = g.forward_local(&x, z.as_tensor(), false)?;
        let grads = out.narrow(1, d, 1)?.sum_all()?.backward()?;
        let row = grads.get(z.as_tensor()).expect("grad"); // (3, N): dG_d/dz_j
        let e = max_rel(&j.narrow(2, d, 1)?.squeeze(2)?, row)?;
        assert!(e < 1e-6, "mlp output {d}: relative error {e}");
    }
    Ok(())
}

/// G(x, z) = x + c + z A (A: N x D), a chart with known locality error |c|^2 and Gram A A^T.
struct Affine {
    a: Tensor,
    c: Tensor,
}

impl LocalGenerator for Affine {
    fn coord_dim(&self) -> usize {
        self.a.dim(0).unwrap()
    }
    fn forward_local(&self, x: &Tensor, z: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        (x.broadcast_add(&self.c)? + z.matmul(&self.a)?)?.contiguous()
    }
}

fn reg_from(mu: f64, eta: f64, subset: usize, reduction: &str) -> anyhow::Result<Box<dyn ganfold_core::Regularizer>> {
    let t: toml::Table = toml::from_str(&format!(
        "name = \"lgan-local\"\nweight = 1.0\nmu = {mu:?}\neta = {eta:?}\nsubset = {subset}\ndelta = 1e-5\nreduction = \"{reduction}\""
    ))?;
    let mut v = ganfold_core::registry::build_regularizers(&[t])?;
    Ok(v.remove(0).1)
}

fn penalty(r: &dyn ganfold_core::Regularizer, g: &Affine, x: &Tensor, seed: u64) -> anyhow::Result<f64> {
    let mut rng = Rng::new(seed);
    let mut cx = RegContext { real: x, fake: None, fake_features: None, local: Some(g), rng: &mut rng };
    Ok(r.penalty(&mut cx)?.to_scalar::<f64>()?)
}

#[test]
fn regularizer_is_zero_for_an_orthonormal_chart_through_x() -> R {
    let dev = Device::Cpu;
    // Orthonormal rows (a rotation's first two rows), no offset.
    let (c, s) = (0.6f64, 0.8f64);
    let a = Tensor::new(&[[c, -s, 0.0], [s, c, 0.0]], &dev)?;
    let g = Affine { a, c: Tensor::zeros(3, DType::F64, &dev)? };
    let x = Rng::new(0).randn((4, 3), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
    for (subset, red) in [(2, "sum"), (1, "mean"), (2, "auto")] {
        let p = penalty(reg_from(2.0, 3.0, subset, red)?.as_ref(), &g, &x, 1)?;
        assert!(p.abs() < 1e-9, "penalty {p} (subset {subset}, {red})");
    }
    Ok(())
}

/// L_G: psi_real - psi_fake = (1, -2, 0, 2) gives 9 summed (points) and 9/4 per feature (images).
#[test]
fn feature_matching_matches_hand_values() -> R {
    use lgan::reg::Reduction;
    let dev = Device::Cpu;
    let a = Tensor::new(&[1.5f64, 0.0, 3.0, -1.0], &dev)?;
    let b = Tensor::new(&[0.5f64, 2.0, 3.0, -3.0], &dev)?;
    let sum = lgan::method::feature_matching(&a, &b, Reduction::Sum)?.to_scalar::<f64>()?;
    let mean = lgan::method::feature_matching(&a, &b, Reduction::Mean)?.to_scalar::<f64>()?;
    assert_eq!((sum, mean), (9.0, 2.25));
    Ok(())
}

#[test]
fn regularizer_matches_hand_values() -> R {
    let dev = Device::Cpu;
    // A = [[2,0,0],[1,1,0]], c = (1,2,0): |c|^2 = 5; A A^T - I = [[3,2],[2,1]], |.|_F^2 = 18.
    let g = Affine {
        a: Tensor::new(&[[2.0f64, 0.0, 0.0], [1.0, 1.0, 0.0]], &dev)?,
        c: Tensor::new(&[1.0f64, 2.0, 0.0], &dev)?,
    };
    let x = Rng::new(0).randn((5, 3), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
    let p = penalty(reg_from(2.0, 3.0, 2, "sum")?.as_ref(), &g, &x, 1)?;
    assert!((p - (2.0 * 5.0 + 3.0 * 18.0)).abs() < 1e-6, "sum: {p}");
    let p = penalty(reg_from(2.0, 3.0, 2, "mean")?.as_ref(), &g, &x, 1)?;
    assert!((p - (2.0 * 5.0 / 3.0 + 3.0 * 18.0 / 4.0)).abs() < 1e-6, "mean: {p}");
    // One coordinate per minibatch: (|a_j|^2 - 1)^2 is 9 (j = 0) or 1 (j = 1); both get drawn.
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..20 {
        let p = penalty(reg_from(2.0, 3.0, 1, "sum")?.as_ref(), &g, &x, seed)?;
        let k = [10.0 + 27.0, 10.0 + 3.0].iter().position(|v| (p - v).abs() < 1e-6);
        assert!(k.is_some(), "subset 1: {p}");
        seen.insert(k);
    }
    assert_eq!(seen.len(), 2);
    Ok(())
}

#[test]
fn regularizer_without_local_generator_is_a_clear_error() -> R {
    let r = reg_from(1.0, 1.0, 2, "auto")?;
    let x = Tensor::zeros((2, 2), DType::F32, &Device::Cpu)?;
    let mut rng = Rng::new(0);
    let mut cx = RegContext { real: &x, fake: None, fake_features: None, local: None, rng: &mut rng };
    let e = r.penalty(&mut cx).unwrap_err().to_string();
    assert!(e.contains("lgan-local") && e.contains("local generator"), "{e}");
    Ok(())
}

fn build(data: &Dataset, sets: &[(&str, &str)], seed: u64) -> anyhow::Result<lgan::Lgan> {
    let mut table = ganfold_core::config::table_of::<lgan::LganConfig>();
    for (k, v) in sets {
        let val: toml::Value = toml::from_str::<toml::Table>(&format!("v = {v}"))?["v"].clone();
        // `opt_d.lr`: a key of a nested table.
        match k.split_once('.') {
            Some((h, l)) => table[h].as_table_mut().expect("a nested table").insert(l.to_string(), val),
            None => table.insert(k.to_string(), val),
        };
    }
    let cx = BuildContext {
        config: &table,
        data,
        device: &Device::Cpu,
        seed,
        batch_size: 16,
        total_steps: 10,
        purpose: ganfold_core::Purpose::Train,
    };
    lgan::Lgan::new(&cx)
}

fn run(m: &mut lgan::Lgan, data: &Dataset, from: usize, to: usize, b: usize, rng: &mut Rng) -> R {
    for step in from..to {
        let idx: Vec<usize> = (0..b).map(|i| (step * b + i * 7) % data.len()).collect();
        let batch = data.batch(&idx, &Device::Cpu)?;
        let st = m.step(&batch, step, rng)?;
        assert!(st.non_finite().is_none(), "{st:?}");
    }
    Ok(())
}

/// A few SSL steps on a tiny labelled problem (ring8, 16 labels) lower the labelled loss.
#[test]
fn ssl_steps_lower_the_labelled_loss() -> R {
    let data = data::toy(Toy::Ring8, 0, 2000);
    let mut m = build(
        &data,
        &[("mode", "\"ssl\""), ("labels", "16"), ("val", "100"), ("widths", "[32, 32]"), ("ngf", "16")],
        0,
    )?;
    let before = m.labelled_loss()?;
    let mut rng = Rng::new(5);
    run(&mut m, &data, 0, 15, 16, &mut rng)?;
    let after = m.labelled_loss()?;
    assert!(after < 0.8 * before, "labelled loss {before} -> {after}");
    Ok(())
}

fn sample_vec(m: &lgan::Lgan) -> anyhow::Result<Vec<f32>> {
    Ok(m.sample(8, &mut Rng::new(9))?.flatten_all()?.to_vec1::<f32>()?)
}

/// Saving, loading into a fresh model and continuing equals continuing without the break,
/// bit for bit; and the same seed gives the same run.
#[test]
fn resume_equals_continuing_and_same_seed_same_result() -> R {
    let data = data::toy(Toy::Ring8, 0, 2000);
    for mode in ["\"gen\"", "\"ssl\""] {
        let sets =
            [("mode", mode), ("labels", "16"), ("val", "100"), ("widths", "[32, 32]"), ("ngf", "16"), ("ndf", "16")];
        let mut a = build(&data, &sets, 7)?;
        let mut ra = Rng::new(11);
        run(&mut a, &data, 0, 3, 16, &mut ra)?;
        let state = a.save()?;
        let mut rb = ra.clone();
        run(&mut a, &data, 3, 5, 16, &mut ra)?;
        let mut b = build(&data, &sets, 7)?;
        b.load(&state)?;
        run(&mut b, &data, 3, 5, 16, &mut rb)?;
        assert_eq!(sample_vec(&a)?, sample_vec(&b)?, "{mode}: resumed run differs");
        // The classifier's moving average and validation curve resume too.
        assert_eq!(a.evaluate(&data)?, b.evaluate(&data)?, "{mode}: resumed evaluation differs");
        let mut c = build(&data, &sets, 7)?;
        let mut rc = Rng::new(11);
        run(&mut c, &data, 0, 5, 16, &mut rc)?;
        assert_eq!(sample_vec(&a)?, sample_vec(&c)?, "{mode}: same seed differs");
        // A wrong checkpoint is an error naming the tensor.
        let mut bad = state.clone();
        bad.tensors.remove("g.enc1.weight");
        assert!(b.load(&bad).unwrap_err().to_string().contains("g.enc1.weight"));
    }
    Ok(())
}

/// Image mode end to end on real digits: gen and ssl steps are finite, the figures are PNGs,
/// evaluation reports the tangent spectrum and the SSL error with its split in the key.
#[test]
fn image_steps_figures_and_evaluation() -> R {
    let data = data::mnist_5k()?;
    let dir = tempfile::tempdir()?;
    for mode in ["\"gen\"", "\"ssl\""] {
        let sets = [
            ("mode", mode),
            ("ngf", "4"),
            ("ndf", "4"),
            ("jac_subset", "2"),
            ("pool", "40"),
            ("labels", "20"),
            ("val", "50"),
            ("widths", "[16]"),
            ("eval_every", "1"),
        ];
        let mut m = build(&data, &sets, 0)?;
        run(&mut m, &data, 0, 2, 8, &mut Rng::new(0))?;
        let s = m.sample(5, &mut Rng::new(1))?;
        assert_eq!(s.dims(), &[5, 1, 28, 28]);
        let files = m.figures(dir.path(), &data, &mut Rng::new(2))?;
        // SSL adds the validation curve.
        assert_eq!(files.len(), if mode == "\"ssl\"" { 3 } else { 2 });
        for f in &files {
            assert_eq!(&std::fs::read(f)?[1..4], b"PNG", "{}", f.display());
        }
        let ev: std::collections::BTreeMap<_, _> = m.evaluate(&data)?.into_iter().collect();
        assert!(
            ev["local_median_min_eig"] >= -1e-3 && ev["local_median_min_eig"] <= ev["local_median_max_eig"],
            "{ev:?}"
        );
        // The default charts are exact (footnote 3): G(x, 0) is x to the bit.
        assert!(ev["local_class_agreement"] == 1.0 && ev["local_locality_rmse"] == 0.0, "{ev:?}");
        if mode == "\"ssl\"" {
            for k in ["ssl_val_error", "ssl_val_error_raw"] {
                assert!((0.0..=1.0).contains(&ev[k]), "{ev:?}");
            }
        }
    }
    Ok(())
}

#[test]
fn registry_and_config_errors() -> R {
    assert!(ganfold_core::registry::method("lgan").is_ok());
    assert!(ganfold_core::registry::regularizer("lgan-local").is_ok());
    let pts = data::toy(Toy::Ring8, 0, 100);
    let e = build(&pts, &[("latent_dim", "3")], 0).err().expect("3 tangents in 2-D").to_string();
    assert!(e.contains("latent_dim"), "{e}");
    let e = build(&pts, &[("mode", "\"foo\"")], 0).err().expect("bad mode").to_string();
    assert!(e.contains("mode"), "{e}");
    let e = build(&pts, &[("opt_g.lr", "-1.0")], 0).err().expect("negative lr").to_string();
    assert!(e.contains("opt_g"), "{e}");
    let e = build(&pts, &[("mode", "\"ssl\""), ("labels", "3")], 0).err().expect("too few labels").to_string();
    assert!(e.contains("labels"), "{e}");
    let sm = data::stacked_mnist(&data::mnist_5k()?, 0, 10)?;
    assert!(build(&sm, &[], 0).is_ok(), "3x28x28 is supported");
    Ok(())
}

/// G(x, z) = x + 0.5 + z a with a = (2, 0): G(x, 0) - x = (0.5, 0.5), J^T J = |a|^2 = 4.
struct Shifted;

impl LocalGenerator for Shifted {
    fn coord_dim(&self) -> usize {
        1
    }
    fn forward_local(&self, x: &Tensor, z: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        let a = Tensor::new(&[[2f64, 0.0]], x.device())?;
        (x + 0.5)? + z.matmul(&a)?
    }
}

/// Both distances of eq. (3) on a chart with known terms: squared (paper, sum reduction)
/// locality 0.5^2 + 0.5^2 = 0.5, orth (4 - 1)^2 = 9; abs (authors' code) locality 0.5, orth 3.
#[test]
fn squared_and_abs_distances_by_hand() -> R {
    use lgan::reg::{Distance, Reduction};
    let dev = Device::Cpu;
    let x = Tensor::new(&[[0.3f64, -1.0], [2.0, 0.1]], &dev)?;
    let mut rng = Rng::new(0);
    for (distance, loc, orth) in [(Distance::Squared, 0.5, 9.0), (Distance::Abs, 0.5, 3.0)] {
        let r = lgan::LganLocal { mu: 1.0, eta: 1.0, subset: 1, delta: 1e-4, reduction: Reduction::Sum, distance };
        let t = r.terms(&Shifted, &x, &mut rng, false)?;
        let (l, o) = (t.locality.to_scalar::<f64>()?, t.orth.to_scalar::<f64>()?);
        assert!((l - loc).abs() < 1e-9 && (o - orth).abs() < 1e-6, "{distance:?}: locality {l}, orth {o}");
    }
    Ok(())
}

/// Footnote 3: with exact locality G(x, 0) = x to the bit, and the tangents are those of the
/// plain network with the same weights.
#[test]
fn exact_locality_keeps_the_centre_and_the_tangents() -> R {
    let dev = Device::Cpu;
    let shape = SampleShape::Image { c: 1, h: 28, w: 28 };
    let build = |exact| -> anyhow::Result<LocalGen> {
        let vs = VarStore::new(DType::F64, &dev, Rng::new(5));
        LocalGen::new(shape, 3, 4, GenOptions { code_gain: Some(2.0), exact_locality: exact }, &vs)
    };
    let (plain, exact) = (build(false)?, build(true)?);
    let x = Rng::new(6).randn((2, 1, 28, 28), 0.0, 0.5, &dev)?.to_dtype(DType::F64)?;
    let z0 = Tensor::zeros((2, 3), DType::F64, &dev)?;
    let d = (exact.forward_local(&x, &z0, false)? - &x)?.abs()?.max_all()?.to_scalar::<f64>()?;
    assert!(d < 1e-12, "G(x, 0) - x = {d}");
    let (jp, je) =
        (fd_jacobian(&plain, &x, &[0, 1, 2], 1e-5, false)?, fd_jacobian(&exact, &x, &[0, 1, 2], 1e-5, false)?);
    assert!(max_rel(&je, &jp)? < 1e-8);
    Ok(())
}

/// A registered regularizer attached through `regularizers` sees LGAN's chart: a second
/// `lgan-local` with mu = 1, eta = 0 and LGAN's own reduction is exactly LGAN's locality term
/// at the same batch, and its weighted value enters G's loss.
#[test]
fn attached_regularizers_see_the_local_generator() -> R {
    let data = data::toy(Toy::Ring8, 0, 200);
    let spec = r#"[{ name = "lgan-local", weight = 2.0, mu = 1.0, eta = 0.0 }]"#;
    let mut m = build(&data, &[("exact_locality", "false"), ("regularizers", spec)], 0)?;
    let batch = data.batch(&(0..16).collect::<Vec<_>>(), &Device::Cpu)?;
    let st = m.step(&batch, 0, &mut Rng::new(1))?;
    let (own, attached) = (st.get("locality").unwrap(), st.get("lgan-local").unwrap());
    assert!(own > 0.0 && own == attached, "locality {own}, attached lgan-local {attached}");
    let err = build(&data, &[("regularizers", r#"[{ name = "no-such-penalty" }]"#)], 0).err().unwrap().to_string();
    assert!(err.contains("no-such-penalty"), "{err}");
    Ok(())
}

/// SSL draws z without the atom at 0 (with exact locality G(x, 0) = x would be a real image in
/// the fake class); generation keeps the paper's P_Z. The labelled subset and validation split
/// are `ganfold_core::ssl::Split`'s, so `improved-gan` run with the same seed sees the same labels.
#[test]
fn ssl_fakes_never_sit_at_the_chart_centre_and_share_the_split() -> R {
    let data = data::toy(Toy::Ring8, 0, 2000);
    let ssl = build(
        &data,
        &[("mode", "\"ssl\""), ("labels", "16"), ("val", "100"), ("widths", "[8]"), ("p_zero", "1.0")],
        3,
    )?;
    let generation = build(&data, &[("p_zero", "1.0")], 3)?;
    let z = ssl.sample_z(200, &mut Rng::new(0))?.abs()?.sum(1)?.to_vec1::<f32>()?;
    assert!(z.iter().all(|&s| s > 0.0), "an SSL z at 0");
    let z = generation.sample_z(200, &mut Rng::new(0))?.abs()?.sum_all()?.to_scalar::<f32>()?;
    assert_eq!(z, 0.0, "generation with p_zero = 1 samples the chart centre");
    let split = ganfold_core::ssl::Split::draw(&data, 16, 100, 3, "test")?;
    assert_eq!(ssl.classifier().expect("ssl").split, split);
    assert!(generation.classifier().is_none());
    Ok(())
}
