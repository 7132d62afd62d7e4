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
    let err = build(&toy_cfg(), &data, 8, 16).err().unwrap().to_string();
    assert!(err.contains("leaves no GAN steps"), "{err}");
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
