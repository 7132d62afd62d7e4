//! Method-level tests: stages, checkpoints, frozen bases, both network families.

use crate::LccganConfig;
use crate::method::Lccgan;
use candle_core::{DType, Device, Tensor};
use ganfold_core::data::{EpochSampler, Toy, toy};
use ganfold_core::{BuildContext, Dataset, Method, MethodState, Rng, StepStats, checkpoint};
use std::collections::BTreeMap;

fn table(over: &[(&str, toml::Value)]) -> toml::Table {
    let mut t = ganfold_core::config::table_of::<LccganConfig>();
    for (k, v) in over {
        // `opt_ae.lr`: a key of a nested table.
        let (sub, leaf) = match k.split_once('.') {
            Some((h, l)) => (t.get_mut(h).and_then(|x| x.as_table_mut()).expect("a nested table"), l),
            None => (&mut t, *k),
        };
        assert!(sub.contains_key(leaf), "unknown key {k}");
        sub.insert(leaf.to_string(), v.clone());
    }
    t
}

fn toy_cfg() -> toml::Table {
    use toml::Value::{Float, Integer};
    table(&[
        ("ae_steps", Integer(4)),
        ("lcc_rounds", Integer(3)),
        ("bases", Integer(8)),
        ("ae_latent_dim", Integer(3)),
        ("latent_dim", Integer(2)),
        ("lcc_points", Integer(64)),
        ("knn_k", Integer(8)),
        ("hidden", Integer(16)),
        ("opt_ae.lr", Float(1e-3)),
        ("lcc_tol", Float(0.0)),
    ])
}

fn build(cfg: &toml::Table, data: &Dataset, total: usize, batch: usize) -> anyhow::Result<Lccgan> {
    let cx = BuildContext {
        config: cfg,
        data,
        device: &Device::Cpu,
        seed: 7,
        batch_size: batch,
        total_steps: total,
        purpose: ganfold_core::Purpose::Train,
    };
    Lccgan::new(&cx)
}

/// Runs steps `[from, to)` the way the trainer does (batches from the seeded epoch sampler).
fn run(
    m: &mut Lccgan,
    data: &Dataset,
    batch: usize,
    from: usize,
    to: usize,
    rng: &mut Rng,
) -> anyhow::Result<Vec<StepStats>> {
    let mut s = EpochSampler::new(data.len(), batch, 7)?;
    let mut out = vec![];
    for step in from..to {
        let b = data.batch(&s.indices(step), &Device::Cpu)?;
        out.push(m.step(&b, step, rng)?);
    }
    Ok(out)
}

fn bits(t: &Tensor) -> anyhow::Result<Vec<u64>> {
    Ok(match t.dtype() {
        DType::U32 => t.flatten_all()?.to_vec1::<u32>()?.into_iter().map(|x| x as u64).collect(),
        DType::F64 => t.flatten_all()?.to_vec1::<f64>()?.into_iter().map(f64::to_bits).collect(),
        _ => t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?.into_iter().map(|x| x.to_bits() as u64).collect(),
    })
}

/// Deep copies (`save()` tensors share storage with the live variables).
fn snapshot(t: &BTreeMap<String, Tensor>) -> BTreeMap<String, Tensor> {
    t.iter().map(|(k, v)| (k.clone(), v.copy().unwrap())).collect()
}

fn assert_same(a: &BTreeMap<String, Tensor>, b: &BTreeMap<String, Tensor>, what: &str) -> anyhow::Result<()> {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "{what}: tensor names differ");
    for (k, t) in a {
        assert_eq!(bits(t)?, bits(&b[k])?, "{what}: tensor {k} differs");
    }
    Ok(())
}

/// A checkpoint of any stage resumes: one written (through the on-disk format) in
/// the autoencoder stage, in the middle of the LCC alternations, and in the GAN stage resumes
/// to exactly the state of an uninterrupted run (weights, Adam moments, H, V, J, kNN table).
#[test]
fn checkpoint_in_every_stage_resumes_bit_for_bit() -> anyhow::Result<()> {
    let data = toy(Toy::Ring8, 0, 512);
    let cfg = toy_cfg();
    let (total, batch) = (12, 16);
    let mut full = build(&cfg, &data, total, batch)?;
    let mut rng = Rng::new(11);
    let mut phases = vec![];
    let mut s = EpochSampler::new(data.len(), batch, 7)?;
    let mut full_stats = vec![];
    for step in 0..total {
        phases.push(full.phase().unwrap());
        let b = data.batch(&s.indices(step), &Device::Cpu)?;
        full_stats.push(full.step(&b, step, &mut rng)?);
    }
    assert_eq!(&phases[..4], ["autoencoder"; 4]);
    assert_eq!(&phases[4..8], ["lcc"; 4]);
    assert_eq!(&phases[8..], ["gan"; 4]);
    let want = MethodState { tensors: snapshot(&full.save()?.tensors), meta: full.save()?.meta };
    // A second uninterrupted run is identical (same seed, same result).
    let mut again = build(&cfg, &data, total, batch)?;
    run(&mut again, &data, batch, 0, total, &mut Rng::new(11))?;
    assert_same(&want.tensors, &again.save()?.tensors, "rerun")?;

    for cut in [2, 4, 6, 8, 10] {
        let mut a = build(&cfg, &data, total, batch)?;
        let mut rng = Rng::new(11);
        run(&mut a, &data, batch, 0, cut, &mut rng)?;
        let st = a.save()?;
        let meta = checkpoint::CheckpointMeta {
            format: checkpoint::FORMAT,
            method: "lccgan".into(),
            step: cut,
            rng: rng.state(),
            data_shape: data.shape,
            method_meta: st.meta.clone(),
        };
        let bytes = checkpoint::to_bytes(&meta, &st.tensors)?;
        let ck = checkpoint::from_bytes(&bytes, &Device::Cpu)?;
        let mut b = build(&cfg, &data, total, batch)?;
        b.load(&MethodState { tensors: ck.state.tensors, meta: ck.meta.method_meta })?;
        let mut rng2 = Rng::from_state(ck.meta.rng);
        let stats = run(&mut b, &data, batch, cut, total, &mut rng2)?;
        assert_eq!(stats, full_stats[cut..], "stats after resuming at step {cut}");
        assert_same(&want.tensors, &b.save()?.tensors, &format!("resumed at step {cut}"))?;
    }
    Ok(())
}

/// Stage separation: V and the kNN table do not change during GAN
/// steps; the AE does not move during the GAN stage and G/D do not move before it.
#[test]
fn stages_touch_only_their_own_state() -> anyhow::Result<()> {
    let data = toy(Toy::Ring8, 0, 512);
    let mut m = build(&toy_cfg(), &data, 12, 16)?;
    let mut rng = Rng::new(3);
    let before = snapshot(&m.save()?.tensors);
    run(&mut m, &data, 16, 0, 8, &mut rng)?;
    let after_pre = snapshot(&m.save()?.tensors);
    let gd = |t: &BTreeMap<String, Tensor>| {
        t.iter()
            .filter(|(k, _)| k.starts_with("g.") || k.starts_with("d."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    let ae = |t: &BTreeMap<String, Tensor>| {
        t.iter().filter(|(k, _)| k.starts_with("ae.")).map(|(k, v)| (k.clone(), v.clone())).collect::<BTreeMap<_, _>>()
    };
    assert_same(&gd(&before), &gd(&after_pre), "G/D during stages 1-2")?;
    assert!(bits(&before["ae.enc.l1.weight"])? != bits(&after_pre["ae.enc.l1.weight"])?, "AE did not train");
    let (v, knn) = (m.bases().to_vec(), m.knn().to_vec());
    assert_eq!(v.len(), 8 * 3);
    assert_eq!(knn.len(), 8 * 2);
    run(&mut m, &data, 16, 8, 12, &mut rng)?;
    let after_gan = m.save()?.tensors;
    assert_eq!(m.bases(), v.as_slice(), "V changed during GAN training");
    assert_eq!(m.knn(), knn.as_slice());
    assert_same(&ae(&after_pre), &ae(&after_gan), "AE during the GAN stage")?;
    assert!(bits(&after_pre["g.l1.weight"])? != bits(&after_gan["g.l1.weight"])?, "G did not train");
    assert!(bits(&after_pre["d.l1.weight"])? != bits(&after_gan["d.l1.weight"])?, "D did not train");
    // Every LCC-stage latent is in the span of d bases: the generator input has dB columns.
    assert_eq!(m.latent(5, None, &mut rng)?.dims(), &[5, 3]);
    Ok(())
}

#[test]
fn gaussian_baseline_and_config_errors() -> anyhow::Result<()> {
    let data = toy(Toy::Ring8, 0, 256);
    let mut cfg = toy_cfg();
    cfg.insert("sampler".into(), toml::Value::String("gaussian".into()));
    let mut m = build(&cfg, &data, 3, 16)?;
    assert_eq!(m.phase().as_deref(), Some("gan"));
    run(&mut m, &data, 16, 0, 3, &mut Rng::new(0))?;
    assert_eq!(m.latent(4, None, &mut Rng::new(0))?.dims(), &[4, 2]);
    assert!(!m.save()?.tensors.keys().any(|k| k.starts_with("ae.") || k.starts_with("lcc.")));
    let err = build(&toy_cfg(), &data, 7, 16).err().unwrap().to_string();
    assert!(err.contains("ends inside stages 1-2"), "{err}");
    let mut bad = toy_cfg();
    bad.insert("latent_dim".into(), toml::Value::Integer(9));
    assert!(build(&bad, &data, 20, 16).err().unwrap().to_string().contains("cannot exceed"));
    Ok(())
}

/// The image path end to end on real MNIST digits (tiny widths): every stage runs, samples
/// have the data's shape and range, the figures are written and the proxies are finite.
#[test]
fn conv_networks_run_all_stages_on_mnist() -> anyhow::Result<()> {
    use toml::Value::Integer;
    let data = ganfold_core::data::mnist_5k()?;
    let cfg = table(&[
        ("ae_steps", Integer(2)),
        ("lcc_rounds", Integer(2)),
        ("bases", Integer(16)),
        ("ae_latent_dim", Integer(8)),
        ("latent_dim", Integer(3)),
        ("lcc_points", Integer(64)),
        ("knn_k", Integer(8)),
        ("ngf", Integer(4)),
        ("ndf", Integer(4)),
        ("eval_samples", Integer(20)),
    ]);
    let mut m = build(&cfg, &data, 7, 8)?;
    let mut rng = Rng::new(0);
    let pre = m.sample(4, &mut rng)?;
    assert_eq!(pre.dims(), &[4, 1, 28, 28], "stage-1 preview = reconstructions");
    run(&mut m, &data, 8, 0, 7, &mut rng)?;
    let x = m.sample(6, &mut rng)?;
    assert_eq!(x.dims(), &[6, 1, 28, 28]);
    assert!(x.abs()?.max_all()?.to_scalar::<f32>()? <= 1.0);
    let dir = tempfile::tempdir()?;
    let files = m.figures(dir.path(), &data, &mut rng)?;
    let names: Vec<String> = files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for want in [
        "lcc_embedding.png",
        "samples_lccgan_paper_d3.png",
        "fixed_anchor_lccgan_paper_d3.png",
        "lcc_bases_decoded.png",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    let ev = m.evaluate(&data)?;
    assert!(ev.iter().any(|(k, _)| k == "proxy_nn_fake_to_real"));
    assert!(ev.iter().all(|(_, v)| v.is_finite()), "{ev:?}");
    Ok(())
}

#[test]
fn nn_dist_matches_brute_force() -> anyhow::Result<()> {
    let mut r = Rng::new(9);
    let a = r.randn((7, 5), 0.0, 1.0, &Device::Cpu)?;
    let b = r.randn((11, 5), 0.0, 1.0, &Device::Cpu)?;
    let (d, i) = crate::method::nn_dist(&a, &b)?;
    let (av, bv) = (a.to_vec2::<f32>()?, b.to_vec2::<f32>()?);
    for (k, row) in av.iter().enumerate() {
        let ds: Vec<f64> =
            bv.iter().map(|q| row.iter().zip(q).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>().sqrt()).collect();
        let j = (0..11).min_by(|&x, &y| ds[x].total_cmp(&ds[y])).unwrap();
        assert_eq!(i[k], j);
        assert!((d[k] - ds[j]).abs() < 1e-4);
    }
    Ok(())
}

fn save_run(m: &Lccgan, dir: &std::path::Path, step: usize, data: &Dataset) -> anyhow::Result<()> {
    let st = m.save()?;
    let meta = checkpoint::CheckpointMeta {
        format: checkpoint::FORMAT,
        method: "lccgan".into(),
        step,
        rng: Rng::new(1).state(),
        data_shape: data.shape,
        method_meta: st.meta.clone(),
    };
    let path = ganfold_core::train::checkpoint_file(dir);
    std::fs::create_dir_all(path.parent().unwrap())?;
    checkpoint::save(&path, &meta, &st.tensors)
}

fn with(cfg: &toml::Table, over: &[(&str, toml::Value)]) -> toml::Table {
    let mut c = cfg.clone();
    for (k, v) in over {
        c.insert(k.to_string(), v.clone());
    }
    c
}

/// Stages 1-2 fitted once serve every arm of a sweep: a run with `init_from` adopts the
/// source's autoencoder weights and bases bit for bit (random bases keep their norms), starts
/// in the GAN stage, resumes bit for bit, and refuses unfinished or mismatched sources; the
/// mixture-of-Gaussians control draws near its M means without any stage 1-2 state.
#[test]
fn controls_share_stages_one_and_two() -> anyhow::Result<()> {
    use toml::Value::{Integer, String as S};
    let data = toy(Toy::Ring8, 0, 512);
    let tmp = tempfile::tempdir()?;
    let (src_dir, early_dir) = (tmp.path().join("stages"), tmp.path().join("early"));
    // A run of exactly ae_steps + lcc_rounds + 1 steps fits the bases only.
    let mut src = build(&toy_cfg(), &data, 8, 16)?;
    run(&mut src, &data, 16, 0, 8, &mut Rng::new(3))?;
    save_run(&src, &src_dir, 8, &data)?;
    let eval: Vec<String> = src.evaluate(&data)?.into_iter().map(|(k, _)| k).collect();
    assert_eq!(eval, ["lcc_nnz", "twonn_dim"], "an untrained G is not measured");
    let mut early = build(&toy_cfg(), &data, 8, 16)?;
    run(&mut early, &data, 16, 0, 3, &mut Rng::new(3))?;
    save_run(&early, &early_dir, 3, &data)?;
    let src_t = src.save()?.tensors;
    let from = |d: &std::path::Path| S(d.display().to_string());

    for sampler in ["paper", "random_bases"] {
        let cfg = with(
            &toy_cfg(),
            &[("init_from", from(&src_dir)), ("sampler", S(sampler.into())), ("latent_dim", Integer(3))],
        );
        let mut m = build(&cfg, &data, 4, 16)?;
        assert_eq!(m.phase().as_deref(), Some("gan"));
        let stats = run(&mut m, &data, 16, 0, 4, &mut Rng::new(4))?;
        assert!(stats.iter().all(|s| s.get("stage") == Some(3.0)));
        let t = m.save()?.tensors;
        for (k, v) in src_t.iter().filter(|(k, _)| k.starts_with("ae.") || *k == "lcc.h") {
            assert_eq!(bits(v)?, bits(&t[k])?, "{sampler}: {k} is adopted");
        }
        assert_eq!(m.knn().len(), 8 * 3);
        let (v0, v1) = (tensor_rows(&src_t["lcc.v"])?, tensor_rows(&t["lcc.v"])?);
        for (a, b) in v0.iter().zip(&v1) {
            let n = |r: &[f64]| r.iter().map(|x| x * x).sum::<f64>().sqrt();
            if sampler == "paper" {
                assert_eq!(a, b);
            } else {
                assert!((n(a) - n(b)).abs() < 1e-9 * n(a).max(1.0) && a != b, "random bases keep their norms");
            }
        }
        // Resuming an adopted run does not adopt again: the checkpoint wins.
        let mut a = build(&cfg, &data, 4, 16)?;
        let mut rng = Rng::new(4);
        run(&mut a, &data, 16, 0, 2, &mut rng)?;
        let st = MethodState { tensors: snapshot(&a.save()?.tensors), meta: a.save()?.meta };
        let mut b = build(&with(&cfg, &[("init_from", from(&early_dir))]), &data, 4, 16)?;
        b.load(&st)?;
        run(&mut b, &data, 16, 2, 4, &mut rng)?;
        assert_same(&t, &b.save()?.tensors, &format!("{sampler} resumed"))?;
    }

    let err = |over: &[(&str, toml::Value)]| -> String {
        let mut m = build(&with(&toy_cfg(), over), &data, 4, 16).unwrap();
        format!("{:#}", run(&mut m, &data, 16, 0, 1, &mut Rng::new(0)).unwrap_err())
    };
    assert!(err(&[("init_from", from(&early_dir))]).contains("not finished"));
    assert!(err(&[("init_from", from(&tmp.path().join("none")))]).contains("init_from"));
    assert!(err(&[("init_from", from(&src_dir)), ("bases", Integer(9))]).contains("bases"));

    let cfg = with(
        &toy_cfg(),
        &[("sampler", S("mog".into())), ("latent_dim", Integer(3)), ("mog_sigma", toml::Value::Float(0.01))],
    );
    let mut m = build(&cfg, &data, 3, 16)?;
    run(&mut m, &data, 16, 0, 3, &mut Rng::new(0))?;
    assert!(!m.save()?.tensors.keys().any(|k| k.starts_with("ae.") || k.starts_with("lcc.")));
    let z = m.latent(200, None, &mut Rng::new(1))?.to_vec2::<f32>()?;
    // Each draw sits within 6 sigma of one of M = 8 means in [-1, 1]^3, and several means are used.
    let mut near = std::collections::BTreeSet::new();
    for zi in &z {
        assert!(zi.iter().all(|x| x.abs() <= 1.06));
        near.insert(zi.iter().map(|x| (x * 10.0).round() as i64).collect::<Vec<_>>());
    }
    assert!((2..=24).contains(&near.len()), "{} clusters", near.len());
    Ok(())
}

fn tensor_rows(t: &Tensor) -> anyhow::Result<Vec<Vec<f64>>> {
    Ok(t.to_vec2::<f64>()?)
}
