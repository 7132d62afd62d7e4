//! Improved-GAN's training step, state and evaluation on small networks.

use candle_core::Device;
use ganfold_core::{BuildContext, Dataset, Method, Rng, data};
use ganfold_improved_gan::{ImprovedGan, ImprovedGanConfig};

type R = anyhow::Result<()>;

fn build(data: &Dataset, sets: &[(&str, &str)], seed: u64) -> anyhow::Result<ImprovedGan> {
    let mut table = ganfold_core::config::table_of::<ImprovedGanConfig>();
    let small = [("widths", "[16, 8]"), ("gen_width", "16"), ("latent_dim", "4"), ("labels", "20")];
    for (k, v) in small.iter().chain([("val", "100"), ("init_batch", "50"), ("eval_every", "2")].iter()).chain(sets) {
        table.insert(k.to_string(), toml::from_str::<toml::Table>(&format!("v = {v}"))?["v"].clone());
    }
    let cx = BuildContext {
        config: &table,
        data,
        device: &Device::Cpu,
        seed,
        batch_size: 20,
        total_steps: 10,
        purpose: ganfold_core::Purpose::Train,
    };
    ImprovedGan::new(&cx)
}

fn run(m: &mut ImprovedGan, data: &Dataset, from: usize, to: usize, rng: &mut Rng) -> R {
    for step in from..to {
        let idx: Vec<usize> = (0..20).map(|i| (step * 20 + i * 7) % data.len()).collect();
        let st = m.step(&data.batch(&idx, &Device::Cpu)?, step, rng)?;
        assert!(st.non_finite().is_none(), "{st:?}");
    }
    Ok(())
}

fn logits_sum(m: &ImprovedGan, data: &Dataset) -> anyhow::Result<Vec<f32>> {
    let x = m.sample(6, &mut Rng::new(9))?.flatten_all()?.to_vec1::<f32>()?;
    let e = m.error(data, &(0..50).collect::<Vec<_>>(), true)? as f32;
    Ok([x, vec![e]].concat())
}

/// Training from a checkpoint gives bit for bit what training straight through gives (weights,
/// moments, the moving average, the validation curve), and the same seed the same run.
#[test]
fn resume_equals_continuing_and_same_seed_same_result() -> R {
    let data = data::mnist_5k()?;
    let mut a = build(&data, &[], 3)?;
    run(&mut a, &data, 0, 4, &mut Rng::new(1))?;
    let state = a.save()?;
    let mut rng = Rng::new(2);
    run(&mut a, &data, 4, 6, &mut rng)?;
    let mut b = build(&data, &[], 3)?;
    b.load(&state)?;
    assert_eq!(b.curve(), &a.curve()[..2]);
    run(&mut b, &data, 4, 6, &mut Rng::new(2))?;
    assert_eq!(logits_sum(&a, &data)?, logits_sum(&b, &data)?);
    assert_eq!(a.curve(), b.curve());
    assert_eq!(a.curve().len(), 3);
    let mut c = build(&data, &[], 3)?;
    run(&mut c, &data, 0, 4, &mut Rng::new(1))?;
    run(&mut c, &data, 4, 6, &mut Rng::new(2))?;
    assert_eq!(logits_sum(&a, &data)?, logits_sum(&c, &data)?);
    Ok(())
}

/// The supervised baseline (unlabelled weight 0) fits its labelled images and trains no G;
/// the full method reports its unsupervised and feature-matching terms; evaluation reports the
/// validation error of the weights and of their average, and the curve is drawn.
#[test]
fn steps_evaluation_and_figures() -> R {
    let data = data::mnist_5k()?;
    let mut sup = build(
        &data,
        &[
            ("unlabelled_weight", "0.0"),
            ("opt_d", "{ lr = 0.01, beta1 = 0.5, beta2 = 0.999, eps = 1e-4, weight_decay = 0.0 }"),
        ],
        0,
    )?;
    let g_before = sup.sample(4, &mut Rng::new(1))?.flatten_all()?.to_vec1::<f32>()?;
    let mut rng = Rng::new(4);
    let first = sup.step(&data.batch(&(0..20).collect::<Vec<_>>(), &Device::Cpu)?, 0, &mut rng)?;
    assert!(first.get("loss_unl").is_none() && first.get("g_fm").is_none(), "{first:?}");
    run(&mut sup, &data, 1, 30, &mut rng)?;
    let last = sup.step(&data.batch(&(0..20).collect::<Vec<_>>(), &Device::Cpu)?, 30, &mut rng)?;
    assert!(last.get("loss_lab").unwrap() < 0.5 * first.get("loss_lab").unwrap(), "{first:?} -> {last:?}");
    assert_eq!(g_before, sup.sample(4, &mut Rng::new(1))?.flatten_all()?.to_vec1::<f32>()?);

    let mut m = build(&data, &[], 0)?;
    let st = m.step(&data.batch(&(0..20).collect::<Vec<_>>(), &Device::Cpu)?, 1, &mut Rng::new(5))?;
    for k in ["loss_unl", "loss_lab", "g_fm", "val_error", "val_error_ema"] {
        assert!(st.get(k).is_some_and(f64::is_finite), "{k}: {st:?}");
    }
    let ev = m.evaluate(&data)?;
    let keys: Vec<&str> = ev.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["ssl_val_error", "ssl_val_error_raw"], "mnist-5k has no test split");
    assert!(ev.iter().all(|(_, v)| (0.0..=1.0).contains(v)));
    let dir = tempfile::tempdir()?;
    let files = m.figures(dir.path(), &data, &mut Rng::new(0))?;
    assert_eq!(files.len(), 1);
    assert!(std::fs::read(&files[0])?.starts_with(b"\x89PNG"));
    assert_eq!(m.sample(3, &mut Rng::new(0))?.dims(), &[3, 1, 28, 28]);
    Ok(())
}

#[test]
fn config_errors_name_the_key() {
    let data = data::mnist_5k().unwrap();
    for (k, v, want) in [
        ("ema_rate", "0.0", "ema_rate"),
        ("widths", "[]", "widths"),
        ("unlabelled_weight", "-1.0", "unlabelled_weight"),
        ("labels", "5", "fewer than the 10 classes"),
        ("val", "5000", "do not fit"),
    ] {
        let err = build(&data, &[(k, v)], 0).err().unwrap_or_else(|| panic!("{k} = {v} accepted")).to_string();
        assert!(err.contains(want), "{k} = {v}: {err}");
    }
}

/// Through the shared trainer: a validation error measured every 3 steps reaches metrics.jsonl
/// even when it falls between the trainer's `log_every` (5) steps.
#[test]
fn validation_errors_between_log_steps_are_logged() -> R {
    let mut c = ganfold_core::RunConfig::defaults("improved-gan")?;
    c.train.data = "mnist-5k".into();
    c.train.steps = 7;
    c.train.batch_size = 20;
    c.train.log_every = 5;
    c.train.sample_every = 100;
    c.train.checkpoint_every = 100;
    for kv in
        ["widths=[16, 8]", "gen_width=16", "latent_dim=4", "labels=20", "val=100", "init_batch=50", "eval_every=3"]
    {
        c.set(kv)?;
    }
    let dir = tempfile::tempdir()?;
    ganfold_core::train::train(c, Some(dir.path().join("run")), false)?;
    let log = std::fs::read_to_string(dir.path().join("run/metrics.jsonl"))?;
    let rows: Vec<serde_json::Value> = log.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    let steps: Vec<u64> = rows.iter().filter_map(|r| r["step"].as_u64()).collect();
    assert_eq!(steps, [3, 5, 6, 7], "{log}");
    let measured: Vec<u64> =
        rows.iter().filter(|r| r["val_error"].is_f64()).filter_map(|r| r["step"].as_u64()).collect();
    assert_eq!(measured, [3, 6], "{log}");
    Ok(())
}
