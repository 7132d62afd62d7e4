//! Unit tests: the margin, the cost family and each objective against hand-computed values,
//! the reductions to LS-GAN and WGAN, gradient isolation between the players, SSL algebra,
//! finite-difference gradients, shapes, resume equality and the figures.

use crate::config::{LsalConfig, Mode, Schedule};
use crate::method::Lsal;
use crate::model::{self, Arch, WnLinear};
use crate::objective::{self, SslActs};
use candle_core::{DType, Device, Tensor, Var};
use ganfold_core::data::{self, Dataset, Toy};
use ganfold_core::nn::VarStore;
use ganfold_core::optim::AdamConfig;
use ganfold_core::{BuildContext, Method, Rng};

type R = anyhow::Result<()>;

fn t1(v: &[f64]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap()
}

fn v1(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
}

fn s(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

fn ring() -> Dataset {
    data::toy(Toy::Ring8, 3, 512)
}

fn build(cfg: LsalConfig, data: &Dataset, dtype: DType, batch: usize) -> anyhow::Result<Lsal> {
    let table = toml::Table::new();
    let cx = BuildContext {
        config: &table,
        data,
        device: &Device::Cpu,
        seed: 7,
        batch_size: batch,
        total_steps: 10,
        purpose: ganfold_core::Purpose::Train,
    };
    Lsal::new(cfg, &cx, dtype)
}

fn no_dropout() -> LsalConfig {
    LsalConfig { dropout: 0.0, conv_dropout: 0.0, hidden: 16, width: 4, ..Default::default() }
}

// ---------------------------------------------------------------------------------------------
// Cost, margin, objectives on hand-built tensors

#[test]
fn cost_satisfies_the_papers_conditions_and_spot_values() -> R {
    let grid: Vec<f64> = (0..=100).map(|i| -5.0 + 0.1 * i as f64).collect();
    let a = t1(&grid);
    for eta in [-1.0, -0.5, 0.0, 0.2, 0.5, 1.0] {
        let c = v1(&objective::cost(&a, eta)?);
        for (x, y) in grid.iter().zip(&c) {
            assert!(*y >= *x - 1e-12, "C_{eta}({x}) = {y} < {x}");
            if *x >= 0.0 {
                assert!((y - x).abs() < 1e-12, "C_{eta}({x}) = {y} != {x}");
            }
        }
    }
    let at = |eta: f64, x: f64| s(&objective::cost(&t1(&[x]), eta).unwrap().squeeze(0).unwrap());
    assert_eq!(at(0.0, -2.0), 0.0);
    assert!((at(0.2, -2.0) + 0.4).abs() < 1e-12);
    assert_eq!(at(1.0, -2.0), -2.0);
    assert_eq!(at(-1.0, -2.0), 2.0);
    assert_eq!(at(0.5, 3.0), 3.0);
    assert!(objective::cost(&a, 1.5).is_err());
    Ok(())
}

#[test]
fn margin_matches_the_spec_example_and_its_properties() -> R {
    let dev = Device::Cpu;
    let x = Tensor::new(&[[0.0f64, 1.0]], &dev)?;
    let xt = Tensor::new(&[[1.0f64, 1.0]], &dev)?;
    let zh = Tensor::new(&[[0.5f64]], &dev)?;
    let z = Tensor::new(&[[-0.5f64]], &dev)?;
    let m = objective::margins(&x, &xt, &zh, &z, 0.004, 0.018)?;
    assert_eq!(m.delta.dims(), &[1]);
    assert!((v1(&m.delta)[0] - 0.022).abs() < 1e-15);
    // Zero on identical pairs, symmetric, linear in (mu, nu), a per-sample sum over (B, C, H, W).
    let mut rng = Rng::new(1);
    let a = rng.randn((3, 1, 2, 2), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
    let b = rng.randn((3, 1, 2, 2), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
    let za = rng.randn((3, 4), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
    let zb = rng.randn((3, 4), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
    assert_eq!(v1(&objective::margins(&a, &a, &za, &za, 0.3, 0.7)?.delta), vec![0.0; 3]);
    let ab = v1(&objective::margins(&a, &b, &za, &zb, 0.3, 0.7)?.delta);
    let ba = v1(&objective::margins(&b, &a, &zb, &za, 0.3, 0.7)?.delta);
    let m1 = objective::margins(&a, &b, &za, &zb, 1.0, 0.0)?;
    let m2 = objective::margins(&a, &b, &za, &zb, 0.0, 1.0)?;
    let (d1, d2) = (v1(&m1.delta), v1(&m2.delta));
    let av = a.flatten_all()?.to_vec1::<f64>()?;
    let bv = b.flatten_all()?.to_vec1::<f64>()?;
    for i in 0..3 {
        assert!((ab[i] - ba[i]).abs() < 1e-12);
        assert!((ab[i] - (0.3 * d1[i] + 0.7 * d2[i])).abs() < 1e-12);
        let hand: f64 = (0..4).map(|j| (av[4 * i + j] - bv[4 * i + j]).abs()).sum();
        assert!((d1[i] - hand).abs() < 1e-12);
    }
    Ok(())
}

#[test]
fn objectives_match_hand_computed_values() -> R {
    let delta = t1(&[0.5, 0.1]);
    let l_real = t1(&[1.0, -1.0]);
    let l_fake = t1(&[0.2, 0.3]);
    // a = Delta + l_real - l_fake = [1.3, -1.2].
    assert!((s(&objective::loss_l(&delta, &l_real, &l_fake, 0.0)?) - 0.65).abs() < 1e-12);
    assert!((s(&objective::loss_l(&delta, &l_real, &l_fake, 0.5)?) - 0.35).abs() < 1e-12);
    assert!((s(&objective::loss_l(&delta, &l_real, &l_fake, -1.0)?) - 1.25).abs() < 1e-12);
    // mean l_fake - mean l_real = 0.25 - 0.
    assert!((s(&objective::loss_gq(&l_real, &l_fake)?) - 0.25).abs() < 1e-12);
    Ok(())
}

#[test]
fn hinge_with_nu_zero_and_z_blind_loss_is_ls_gan_and_q_gets_no_gradient() -> R {
    // Hand-built players: Q(x) = x Wq, L(x, z) = x . w (ignores z), fakes x~ given.
    let dev = Device::Cpu;
    let mut rng = Rng::new(5);
    let x = rng.randn((4, 3), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
    let xt = rng.randn((4, 3), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
    let z = rng.randn((4, 2), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
    let wq = Var::from_tensor(&rng.randn((3, 2), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?)?;
    let w = Var::from_tensor(&rng.randn((3, 1), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?)?;
    let zh = x.matmul(wq.as_tensor())?;
    let lx = |t: &Tensor| t.matmul(w.as_tensor()).unwrap().squeeze(1).unwrap();
    let mu = 0.3;
    let m = objective::margins(&x, &xt, &zh, &z, mu, 0.0)?;
    let ours = objective::loss_l(&m.delta, &lx(&x), &lx(&xt), 0.0)?;
    // LS-GAN (gamma = 0): mean(max(0, mu ||x - x~||_1 + L(x) - L(x~))), written out by hand.
    let xv = x.to_vec2::<f64>()?;
    let xtv = xt.to_vec2::<f64>()?;
    let wv: Vec<f64> = w.as_tensor().flatten_all()?.to_vec1()?;
    let mut direct = 0.0;
    for i in 0..4 {
        let l1: f64 = (0..3).map(|j| (xv[i][j] - xtv[i][j]).abs()).sum();
        let lr: f64 = (0..3).map(|j| xv[i][j] * wv[j]).sum();
        let lf: f64 = (0..3).map(|j| xtv[i][j] * wv[j]).sum();
        direct += (mu * l1 + lr - lf).max(0.0) / 4.0;
    }
    assert!((s(&ours) - direct).abs() < 1e-12, "{} vs {direct}", s(&ours));
    for loss in [ours, objective::loss_gq(&lx(&x), &lx(&xt))?] {
        let g = loss.backward()?;
        let gq = g.get(wq.as_tensor()).map(|t| t.abs().unwrap().sum_all().unwrap());
        assert!(gq.is_none_or(|t| s(&t) == 0.0), "Q received a gradient");
    }
    Ok(())
}

#[test]
fn zero_margins_and_hinge_reduce_to_the_plain_loss_sensitive_form_on_the_real_networks() -> R {
    let d = ring();
    // The paper's plain hinge: without the margin-Lipschitz and latent-regression terms the defaults add.
    let cfg = LsalConfig {
        ambient_weight: 0.0,
        manifold_weight: 0.0,
        margin_lipschitz: 0.0,
        latent_regression: 0.0,
        ..no_dropout()
    };
    let m = build(cfg, &d, DType::F64, 8)?;
    let x = d.head(8, &Device::Cpu)?.to_dtype(DType::F64)?;
    let mut rng = Rng::new(2);
    let z = rng.randn((8, m.dz), 0.0, 1.0, &Device::Cpu)?.to_dtype(DType::F64)?;
    let f = m.forward_unsup(&x, &z, &mut rng)?;
    let lr = m.l.forward(&x, &m.q.forward(&x, true, None)?, None, false)?.squeeze(1)?;
    let lf = m.l.forward(&m.g.forward(&z, true)?, &z, None, false)?.squeeze(1)?;
    let plain = (&lr - &lf)?.relu()?.mean_all()?;
    assert!((s(&f.loss_l) - s(&plain)).abs() < 1e-12);
    assert!((s(&f.loss_gq) - s(&(lf.mean_all()? - lr.mean_all()?)?)).abs() < 1e-12);
    Ok(())
}

/// Gradients of `loss` w.r.t. every trainable variable of `vs`, flattened (zeros where absent).
fn grads_of(loss: &Tensor, vs: &VarStore) -> anyhow::Result<Vec<f64>> {
    let g = loss.backward()?;
    let mut out = vec![];
    for (_, v) in vs.trainable_vars() {
        match g.get(v.as_tensor()) {
            Some(t) => out.extend(t.flatten_all()?.to_vec1::<f64>()?),
            None => out.extend(vec![0.0; v.elem_count()]),
        }
    }
    Ok(out)
}

#[test]
fn slope_one_is_wgan_and_the_margin_drops_out_of_every_gradient() -> R {
    let d = ring();
    let x = d.head(8, &Device::Cpu)?.to_dtype(DType::F64)?;
    let mut gl = vec![];
    let mut ggq = vec![];
    for (mu, nu) in [(0.0, 0.0), (0.004, 0.018), (0.5, 0.9)] {
        // The margin-Lipschitz term depends on (mu, nu) by design; the claim is about the cost alone.
        let cfg = LsalConfig {
            cost_slope: 1.0,
            weight_clip: 10.0,
            ambient_weight: mu,
            manifold_weight: nu,
            margin_lipschitz: 0.0,
            latent_regression: 0.0,
            ..no_dropout()
        };
        let m = build(cfg, &d, DType::F64, 8)?;
        let mut rng = Rng::new(4);
        let z = rng.randn((8, m.dz), 0.0, 1.0, &Device::Cpu)?.to_dtype(DType::F64)?;
        let f = m.forward_unsup(&x, &z, &mut rng)?;
        let (lr, lf) = (f.stats.get("l_real").unwrap(), f.stats.get("l_fake").unwrap());
        let mean_delta = f.stats.get("margin_ambient_w").unwrap() + f.stats.get("margin_manifold_w").unwrap();
        assert!((s(&f.loss_l) - (mean_delta + lr - lf)).abs() < 1e-12);
        gl.push(grads_of(&f.loss_l, m.player_l.vs())?);
        let mut g = grads_of(&f.loss_gq, m.player_g.vs())?;
        g.extend(grads_of(&f.loss_gq, m.player_q.vs())?);
        ggq.push(g);
    }
    assert!(gl[0].iter().any(|v| *v != 0.0));
    for k in 1..3 {
        assert_eq!(gl[0], gl[k], "L gradients depend on the margin at eta = 1");
        assert_eq!(ggq[0], ggq[k], "G/Q gradients depend on the margin");
    }
    Ok(())
}

#[test]
fn inactive_hinges_give_zero_gradient_and_one_active_pair_its_own() -> R {
    let lr = Var::from_tensor(&t1(&[0.0, 1.0, -2.0, 0.5]))?;
    let lf = Var::from_tensor(&t1(&[1.0, 3.0, 0.0, 2.0]))?;
    let delta = t1(&[0.1, 0.2, 0.3, 0.4]);
    // All a < 0.
    let g = objective::loss_l(&delta, lr.as_tensor(), lf.as_tensor(), 0.0)?.backward()?;
    assert_eq!(v1(g.get(lr.as_tensor()).unwrap()), vec![0.0; 4]);
    // Only pair 1 active: d/dl_real = [0, 1/4, 0, 0], d/dl_fake = -that.
    let delta = t1(&[0.1, 2.5, 0.3, 0.4]);
    let g = objective::loss_l(&delta, lr.as_tensor(), lf.as_tensor(), 0.0)?.backward()?;
    assert_eq!(v1(g.get(lr.as_tensor()).unwrap()), vec![0.0, 0.25, 0.0, 0.0]);
    assert_eq!(v1(g.get(lf.as_tensor()).unwrap()), vec![0.0, -0.25, 0.0, 0.0]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Players' gradients

fn assert_isolated(loss_l: &Tensor, loss_gq: &Tensor, m: &Lsal) -> R {
    let gl = loss_l.backward()?;
    let ggq = loss_gq.backward()?;
    for (vs, name) in [(m.player_g.vs(), "G"), (m.player_q.vs(), "Q")] {
        for (k, v) in vs.trainable_vars() {
            assert!(gl.get(v.as_tensor()).is_none(), "loss_L reaches {name} parameter {k}");
        }
        let any = vs.trainable_vars().iter().any(|(_, v)| {
            ggq.get(v.as_tensor()).is_some_and(|t| {
                t.abs().unwrap().sum_all().unwrap().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap() > 0.0
            })
        });
        assert!(any, "loss_GQ does not reach {name}");
    }
    for (k, v) in m.player_l.vs().trainable_vars() {
        assert!(ggq.get(v.as_tensor()).is_none(), "loss_GQ reaches L parameter {k}");
    }
    assert!(
        m.player_l.vs().trainable_vars().iter().any(|(_, v)| gl.get(v.as_tensor()).is_some()),
        "loss_L does not reach L"
    );
    Ok(())
}

#[test]
fn each_players_loss_reaches_only_its_parameters_mlp_conv_and_ssl() -> R {
    let d = ring();
    let m = build(LsalConfig { hidden: 16, ..Default::default() }, &d, DType::F32, 8)?;
    let mut rng = Rng::new(3);
    let b = d.batch(&(0..8).collect::<Vec<_>>(), &Device::Cpu)?;
    let x = b.x.clone();
    let z = rng.randn((8, m.dz), 0.0, 1.0, &Device::Cpu)?;
    let f = m.forward_unsup(&x, &z, &mut rng)?;
    assert_isolated(&f.loss_l, &f.loss_gq, &m)?;

    let mnist = data::mnist_5k()?;
    let mc = build(LsalConfig { width: 4, ..Default::default() }, &mnist, DType::F32, 4)?;
    let x = mnist.head(4, &Device::Cpu)?;
    let z = rng.randn((4, mc.dz), 0.0, 1.0, &Device::Cpu)?;
    let f = mc.forward_unsup(&x, &z, &mut rng)?;
    assert_isolated(&f.loss_l, &f.loss_gq, &mc)?;

    let ms = build(
        LsalConfig { mode: Mode::SemiSupervised, labels: 16, val: 64, hidden: 16, ..Default::default() },
        &d,
        DType::F32,
        8,
    )?;
    let f = ms.forward_step_for_tests(&b, 0, &mut rng)?;
    assert_isolated(&f.loss_l, &f.loss_gq, &ms)?;

    // The margin-Lipschitz penalty's corner pass is L's alone, in both modes.
    for mode in [Mode::Unsupervised, Mode::SemiSupervised] {
        let cfg = LsalConfig { mode, labels: 16, val: 64, hidden: 16, margin_lipschitz: 10.0, ..Default::default() };
        let mm = build(cfg, &d, DType::F32, 8)?;
        let f = mm.forward_step_for_tests(&b, 0, &mut rng)?;
        assert_isolated(&f.loss_l, &f.loss_gq, &mm)?;
    }
    Ok(())
}

#[test]
fn one_step_on_loss_gq_lowers_fake_loss_and_raises_real_loss() -> R {
    let d = ring();
    // The adversarial terms (II)-(III) alone: the latent regression pulls Q elsewhere.
    let m = build(LsalConfig { latent_regression: 0.0, ..no_dropout() }, &d, DType::F64, 16)?;
    let x = d.head(16, &Device::Cpu)?.to_dtype(DType::F64)?;
    let mut rng = Rng::new(9);
    let z = rng.randn((16, m.dz), 0.0, 1.0, &Device::Cpu)?.to_dtype(DType::F64)?;
    let terms = |m: &Lsal| -> anyhow::Result<(f64, f64, Tensor)> {
        let lr = m.l.forward(&x, &m.q.forward(&x, true, None)?, None, false)?.mean_all()?;
        let lf = m.l.forward(&m.g.forward(&z, true)?, &z, None, false)?.mean_all()?;
        let gq = m.forward_unsup(&x, &z, &mut Rng::new(0))?.loss_gq;
        Ok((s(&lr), s(&lf), gq))
    };
    let (lr0, lf0, gq) = terms(&m)?;
    let g = gq.backward()?;
    for vs in [m.player_g.vs(), m.player_q.vs()] {
        for (_, v) in vs.trainable_vars() {
            if let Some(gr) = g.get(v.as_tensor()) {
                v.set(&(v.as_tensor() - (gr * 1e-3)?)?)?;
            }
        }
    }
    let (lr1, lf1, _) = terms(&m)?;
    assert!(lf1 < lf0, "G step did not lower L(G(z), z): {lf0} -> {lf1}");
    assert!(lr1 > lr0, "Q step did not raise L(x, Q(x)): {lr0} -> {lr1}");
    Ok(())
}

/// Central difference of `f` in element `i` of `v` (restored afterwards) against `g`, the
/// autograd gradient of the same element, to 1e-6 + 1e-4 |g|.
fn assert_central_difference(name: &str, v: &Var, i: usize, g: f64, eps: f64, f: &dyn Fn() -> f64) -> R {
    let base = v.as_tensor().flatten_all()?.to_vec1::<f64>()?;
    let set = |delta: f64| -> R {
        let mut p = base.clone();
        p[i] += delta;
        Ok(v.set(&Tensor::from_vec(p, v.shape(), &Device::Cpu)?)?)
    };
    set(eps)?;
    let up = f();
    set(-eps)?;
    let dn = f();
    set(0.0)?;
    let fd = (up - dn) / (2.0 * eps);
    assert!((fd - g).abs() < 1e-6 + 1e-4 * g.abs(), "{name}[{i}]: autograd {g} vs fd {fd}");
    Ok(())
}

#[test]
fn loss_gradients_match_finite_differences_in_f64() -> R {
    let d = ring();
    let x = d.head(8, &Device::Cpu)?.to_dtype(DType::F64)?;
    let eval = |m: &Lsal, z: &Tensor, which: usize| {
        s(&{
            let f = m.forward_unsup(&x, z, &mut Rng::new(0)).unwrap();
            if which == 0 { f.loss_l } else { f.loss_gq }
        })
    };
    // Without the latent regression for every player; with it (the default) for L and Q only,
    // since it detaches G(z) on purpose and so has no gradient to G that a difference would see.
    let plain = build(LsalConfig { latent_regression: 0.0, ..no_dropout() }, &d, DType::F64, 8)?;
    let dflt = build(no_dropout(), &d, DType::F64, 8)?;
    let z = Rng::new(11).randn((8, plain.dz), 0.0, 1.0, &Device::Cpu)?.to_dtype(DType::F64)?;
    let cases = [
        (&plain, 0, plain.player_l.vs()),
        (&plain, 1, plain.player_g.vs()),
        (&plain, 1, plain.player_q.vs()),
        (&dflt, 0, dflt.player_l.vs()),
        (&dflt, 1, dflt.player_q.vs()),
    ];
    for (m, which, vs) in cases {
        let f = m.forward_unsup(&x, &z, &mut Rng::new(0))?;
        let loss = if which == 0 { f.loss_l } else { f.loss_gq };
        let grads = loss.backward()?;
        for (name, v) in vs.trainable_vars().into_iter().filter(|(n, _)| !n.contains("bn")).take(3) {
            let g = grads.get(v.as_tensor()).unwrap().flatten_all()?.to_vec1::<f64>()?;
            let i = g.len() / 2;
            assert_central_difference(&name, &v, i, g[i], 1e-5, &|| eval(m, &z, which))?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Semi-supervised loss

#[test]
fn ssl_loss_algebra_and_stability() -> R {
    let dev = Device::Cpu;
    let a = Tensor::new(&[[0.3f64, -1.2, 2.0], [80.0, -80.0, 0.0], [-80.0, -80.0, -80.0]], &dev)?;
    let av = a.to_vec2::<f64>()?;
    let lu = v1(&objective::unlabelled_loss(&a)?);
    for (i, row) in av.iter().enumerate() {
        let mx = row.iter().cloned().fold(0.0f64, f64::max);
        let denom: f64 = (-mx).exp() + row.iter().map(|v| (v - mx).exp()).sum::<f64>();
        let mut min_l = f64::MAX;
        for y in 0..3u32 {
            let l = v1(&objective::class_loss(&a.narrow(0, i, 1)?, &Tensor::new(&[y], &dev)?)?)[0];
            // -log softmax([0, a])[y + 1]
            let want = -((row[y as usize] - mx) - denom.ln());
            assert!(l.is_finite() && (l - want).abs() < 1e-9, "row {i} y {y}: {l} vs {want}");
            assert!(lu[i] <= l + 1e-12);
            min_l = min_l.min(l);
        }
        assert!((lu[i] - min_l).abs() < 1e-12 && lu[i] >= 0.0);
    }
    assert_eq!(objective::predict(&a)?.to_vec1::<u32>()?[..2], [2, 0]);
    Ok(())
}

#[test]
fn ssl_objectives_match_hand_computed_values() -> R {
    let dev = Device::Cpu;
    // K = 2, one labelled and one unlabelled pair.
    let real_l = Tensor::new(&[[1.0f64, 0.0]], &dev)?;
    let fake_l = Tensor::new(&[[0.0f64, 0.5]], &dev)?;
    let real_u = Tensor::new(&[[2.0f64, -1.0]], &dev)?;
    let fake_u = Tensor::new(&[[0.0f64, 0.0]], &dev)?;
    let y_l = Tensor::new(&[0u32], &dev)?;
    let y_t = Tensor::new(&[1u32], &dev)?;
    let lse = |a: &[f64]| (1.0 + a.iter().map(|v| v.exp()).sum::<f64>()).ln();
    let (lrl, lfl) = (lse(&[1.0, 0.0]) - 1.0, lse(&[0.0, 0.5]) - 0.0);
    let (lru, lfu) = (lse(&[2.0, -1.0]) - 2.0, lse(&[0.0, 0.0]) - 0.0);
    let (dl, du, lambda) = (0.3, 0.2, 0.7);
    let want_l = (dl + lrl - lfl).max(0.0) + lambda * (du + lru - lfu).max(0.0);
    let acts = SslActs { real_l: &real_l, fake_l: &fake_l, y_l: &y_l, real_u: &real_u, fake_u: &fake_u };
    let got = s(&objective::ssl_loss_l(&acts, &t1(&[dl]), &t1(&[du]), lambda, 0.0)?);
    assert!((got - want_l).abs() < 1e-12, "{got} vs {want_l}");
    // T - R = [L_u(fake_u) + L(fake_u, y~)] - L_u(real_u) - L(real_l, y_l).
    let want_gq = (lfu + (lse(&[0.0, 0.0]) - 0.0)) - lru - lrl;
    let got = s(&objective::ssl_loss_gq(&acts, &y_t)?);
    assert!((got - want_gq).abs() < 1e-12, "{got} vs {want_gq}");
    Ok(())
}

#[test]
fn labelled_and_validation_images_come_from_the_shared_split() -> R {
    let mnist = data::mnist_5k()?;
    let labels = mnist.labels.clone().unwrap();
    let cfg = LsalConfig { mode: Mode::SemiSupervised, labels: 100, val: 200, width: 4, ..Default::default() };
    let m = build(cfg, &mnist, DType::F32, 8)?;
    let lab = m.labelled.as_ref().unwrap();
    let split = ganfold_core::ssl::Split::draw(&mnist, 100, 200, 7, "t")?;
    let mut want = split.labelled.clone();
    want.sort_unstable();
    assert_eq!(lab.index, want);
    for k in 0..10u32 {
        assert_eq!(lab.index.iter().filter(|&&i| labels[i] == k).count(), 10);
    }
    assert!(split.val.iter().all(|i| lab.index.binary_search(i).is_err()));
    let val_y: Vec<u32> = split.val.iter().map(|&i| labels[i]).collect();
    assert_eq!(lab.val_y, val_y);
    assert_eq!(lab.val_x.as_ref().unwrap().dims(), &[200, 1, 28, 28]);
    Ok(())
}

#[test]
fn validation_error_is_measured_every_eval_every_steps_and_survives_resume() -> R {
    let d = ring();
    let cfg =
        LsalConfig { mode: Mode::SemiSupervised, labels: 16, val: 64, eval_every: 2, hidden: 16, ..Default::default() };
    let mut m = build(cfg.clone(), &d, DType::F32, 8)?;
    let mut rng = Rng::new(5);
    let b = d.batch(&(0..8).collect::<Vec<_>>(), &Device::Cpu)?;
    let st0 = m.step(&b, 0, &mut rng)?;
    assert!(!st0.0.iter().any(|(k, _)| k == "val_error"));
    let st1 = m.step(&b, 1, &mut rng)?;
    let err = st1.0.iter().find(|(k, _)| k == "val_error").unwrap().1;
    assert!((0.0..=1.0).contains(&err));
    // By hand: the share of validation points whose argmax a(x, Q(x)) is not their label.
    let lab = m.labelled.as_ref().unwrap();
    let pred = objective::predict(&m.class_scores(lab.val_x.as_ref().unwrap())?)?.to_vec1::<u32>()?;
    let wrong = pred.iter().zip(&lab.val_y).filter(|(p, y)| p != y).count();
    assert_eq!(err, wrong as f64 / 64.0);
    assert_eq!(lab.curve, vec![(2, err)]);
    let saved = m.save()?;
    let mut again = build(cfg, &d, DType::F32, 8)?;
    again.load(&saved)?;
    assert_eq!(again.labelled.as_ref().unwrap().curve, vec![(2, err)]);
    Ok(())
}

#[test]
fn ssl_learning_rate_schedule() {
    let c = LsalConfig::default();
    assert!((c.ssl_lr_at(0.0) - 6e-4).abs() < 1e-15);
    assert!((c.ssl_lr_at(50.0) - 5.7e-4).abs() < 1e-12);
    assert!((c.ssl_lr_at(650.0) - 6e-4 * 0.95f64.powi(13)).abs() < 1e-12);
    assert!((c.ssl_lr_at(650.0) - 3.08e-4).abs() < 1e-6);
    assert_eq!(c.ssl_lr_at(700.0), 3e-4);
    assert_eq!(c.ssl_lr_at(10000.0), 3e-4);
}

// ---------------------------------------------------------------------------------------------
// Layers, shapes, config

#[test]
fn weight_norm_sets_unit_norms_to_g_and_ignores_the_scale_of_v() -> R {
    let dev = Device::Cpu;
    let mut rng = Rng::new(8);
    let v = rng.randn((3, 5), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
    let g = t1(&[0.5, 2.0, 1.5]);
    let b = t1(&[0.0, 0.1, -0.1]);
    let lin = WnLinear { v: v.clone(), g: Some(g.clone()), b: b.clone() };
    let norms = v1(&lin.weight(false)?.sqr()?.sum(1)?.sqrt()?);
    for (n, gv) in norms.iter().zip(v1(&g)) {
        assert!((n - gv).abs() < 1e-9);
    }
    let x = rng.randn((4, 5), 0.0, 1.0, &dev)?.to_dtype(DType::F64)?;
    let scaled = WnLinear { v: (v * 7.0)?, g: Some(g), b };
    let d = (lin.forward(&x, false)? - scaled.forward(&x, false)?)?.abs()?.max_all()?;
    assert!(s(&d) < 1e-12);
    Ok(())
}

#[test]
fn network_shapes_for_images_and_points() -> R {
    let mnist = data::mnist_5k()?;
    let m = build(LsalConfig { width: 4, ..Default::default() }, &mnist, DType::F32, 4)?;
    assert_eq!(m.dz, 64);
    let z = Rng::new(1).randn((3, 64), 0.0, 1.0, &Device::Cpu)?;
    let x = m.g.forward(&z, true)?;
    assert_eq!(x.dims(), &[3, 1, 28, 28]);
    assert_eq!(m.q.forward(&x, true, None)?.dims(), &[3, 64]);
    assert_eq!(m.l.forward(&x, &z, None, false)?.dims(), &[3, 1]);
    let r = ring();
    let m = build(
        LsalConfig { mode: Mode::SemiSupervised, labels: 16, val: 64, hidden: 8, ..Default::default() },
        &r,
        DType::F32,
        4,
    )?;
    let z = Rng::new(1).randn((3, 2), 0.0, 1.0, &Device::Cpu)?;
    let x = m.g.forward(&z, true)?;
    assert_eq!(x.dims(), &[3, 2]);
    assert_eq!(m.l.forward(&x, &m.q.forward(&x, true, None)?, None, false)?.dims(), &[3, 8]);
    assert!(Arch::for_shape(ganfold_core::SampleShape::Image { c: 1, h: 30, w: 30 }).is_err());
    Ok(())
}

#[test]
fn config_rejects_impossible_values_with_clear_messages() {
    let bad = |c: LsalConfig, want: &str| {
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    };
    bad(LsalConfig { cost_slope: 1.5, ..Default::default() }, "cost_slope");
    bad(LsalConfig { cost_slope: 0.5, margin_lipschitz: 0.0, ..Default::default() }, "weight_clip");
    bad(LsalConfig { ambient_weight: -1.0, ..Default::default() }, "ambient_weight");
    bad(
        LsalConfig { adam: AdamConfig { lr: -1.0, ..LsalConfig::default().adam }, ..Default::default() },
        "lsal `adam`",
    );
    bad(LsalConfig { dropout: 1.0, ..Default::default() }, "dropout");
    bad(LsalConfig { conv_dropout: -0.1, ..Default::default() }, "conv_dropout");
    bad(LsalConfig { lipschitz_penalty: -1.0, ..Default::default() }, "lipschitz_penalty");
    bad(LsalConfig { labelled_nll: f64::NAN, ..Default::default() }, "labelled_nll");
    bad(LsalConfig { margin_lipschitz: -1.0, ..Default::default() }, "margin_lipschitz");
    bad(LsalConfig { encoder_lr_scale: 0.0, ..Default::default() }, "encoder_lr_scale");
    bad(LsalConfig { joint_maxout: 0, ..Default::default() }, "joint_maxout");
    bad(LsalConfig { joint_layers: 0, ..Default::default() }, "joint_layers");
    bad(LsalConfig { latent_regression: -1.0, ..Default::default() }, "latent_regression");
    bad(LsalConfig { ssl_latent_regression: f64::INFINITY, ..Default::default() }, "ssl_latent_regression");
    bad(LsalConfig { reconstruction: -0.5, ..Default::default() }, "reconstruction");
    assert!(LsalConfig { cost_slope: 0.5, lipschitz_penalty: 10.0, ..Default::default() }.validate().is_ok());
    assert!(LsalConfig { cost_slope: 0.5, weight_clip: 0.04, ..Default::default() }.validate().is_ok());
    // SSL on unlabelled or wrongly sized subsets is a clear error.
    let d = ring();
    let e =
        build(LsalConfig { mode: Mode::SemiSupervised, labels: 4, val: 64, ..Default::default() }, &d, DType::F32, 4)
            .err()
            .unwrap();
    assert!(e.to_string().contains("fewer than the 8 classes"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Training, resume, figures

fn run_steps(m: &mut Lsal, d: &Dataset, from: usize, to: usize, rng: &mut Rng) -> anyhow::Result<Vec<f64>> {
    let mut last = vec![];
    for step in from..to {
        let idx: Vec<usize> = (0..8).map(|i| (step * 8 + i) % d.len()).collect();
        let b = d.batch(&idx, &Device::Cpu)?;
        last = m.step(&b, step, rng)?.0.iter().map(|(_, v)| *v).collect();
    }
    Ok(last)
}

fn flat(st: &ganfold_core::MethodState) -> anyhow::Result<Vec<f32>> {
    let mut v = vec![];
    for t in st.tensors.values() {
        v.extend(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(v)
}

#[test]
fn resume_equals_continuing_and_same_seed_same_result() -> R {
    let d = ring();
    for (cfg, tag) in [
        (LsalConfig { hidden: 16, ..Default::default() }, "unsup"),
        (LsalConfig { hidden: 16, mode: Mode::SemiSupervised, labels: 16, val: 64, ..Default::default() }, "ssl"),
        (LsalConfig { hidden: 16, schedule: Schedule::Alternating, ..Default::default() }, "alternating"),
    ] {
        let mut a = build(cfg.clone(), &d, DType::F32, 8)?;
        let mut ra = Rng::new(1);
        run_steps(&mut a, &d, 0, 3, &mut ra)?;
        // Deep copy: saved tensors share storage with the live variables (the trainer writes them to disk at once).
        let mut saved = a.save()?;
        for t in saved.tensors.values_mut() {
            *t = t.copy()?;
        }
        let rng_state = ra.state();
        let sa = run_steps(&mut a, &d, 3, 5, &mut ra)?;
        let mut b = build(cfg.clone(), &d, DType::F32, 8)?;
        b.load(&saved)?;
        let mut rb = Rng::from_state(rng_state);
        let sb = run_steps(&mut b, &d, 3, 5, &mut rb)?;
        assert_eq!(sa, sb, "{tag}: stats differ after resume");
        assert_eq!(flat(&a.save()?)?, flat(&b.save()?)?, "{tag}: state differs after resume");
        // An uninterrupted second run from the same seed is identical, and training moved the weights.
        let mut c = build(cfg, &d, DType::F32, 8)?;
        let before = flat(&c.save()?)?;
        run_steps(&mut c, &d, 0, 5, &mut Rng::new(1))?;
        assert_eq!(flat(&a.save()?)?, flat(&c.save()?)?, "{tag}: same seed, different result");
        assert_ne!(before, flat(&c.save()?)?);
    }
    // A checkpoint of another shape is an error naming the tensor.
    let mut other = build(LsalConfig { hidden: 8, ..Default::default() }, &d, DType::F32, 8)?;
    let st = build(LsalConfig { hidden: 16, ..Default::default() }, &d, DType::F32, 8)?.save()?;
    let e = other.load(&st).unwrap_err().to_string();
    assert!(e.contains("shape"), "{e}");
    Ok(())
}

#[test]
fn figures_and_evaluation_on_a_tiny_run() -> R {
    let mnist = data::mnist_5k()?;
    let mut m = build(
        LsalConfig { width: 4, mode: Mode::SemiSupervised, labels: 20, eval_every: 2, ..Default::default() },
        &mnist,
        DType::F32,
        8,
    )?;
    let run = tempfile::tempdir()?;
    let mut rng = Rng::new(2);
    let mut log = String::new();
    for step in 0..2 {
        let b = mnist.batch(&(step * 8..step * 8 + 8).collect::<Vec<_>>(), &Device::Cpu)?;
        let st = m.step(&b, step, &mut rng)?;
        let mut o = serde_json::Map::new();
        o.insert("step".into(), (step + 1).into());
        for (k, v) in &st.0 {
            o.insert(k.clone(), (*v).into());
            assert!(v.is_finite(), "{k} = {v}");
        }
        log.push_str(&format!("{}\n", serde_json::Value::Object(o)));
    }
    std::fs::write(run.path().join("metrics.jsonl"), log)?;
    let files = m.figures(&run.path().join("figures"), &mnist, &mut rng)?;
    for name in [
        "reconstructions.png",
        "interpolations.png",
        "margins.png",
        "margins_and_losses.png",
        "pullback.png",
        "val_error.png",
    ] {
        let p = run.path().join("figures").join(name);
        assert!(files.contains(&p) && std::fs::metadata(&p)?.len() > 100, "{name} missing");
    }
    let ev = m.evaluate(&mnist)?;
    let keys: Vec<&str> = ev.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "recon_mse_train",
            "recon_l2_ratio_train",
            "q_std_train",
            "q_mean_rms_train",
            "code_recovery_error",
            "recon_class_agreement_train",
            "ssl_error_unlabelled_train",
            "ssl_val_error",
        ]
    );
    let agree = ev.iter().find(|(k, _)| k == "recon_class_agreement_train").map(|(_, v)| *v);
    assert!(agree.is_some_and(|a| (0.0..=1.0).contains(&a)), "{agree:?}");
    assert!(ev.iter().all(|(_, v)| v.is_finite()));
    assert!(ev[5].1 > 0.0 && ev[5].1 <= 1.0);
    // Q o G on prior draws from a fixed seed: the same weights give the same value.
    let rec = m.code_recovery_error(700)?;
    assert!(rec > 0.0 && rec.is_finite() && rec == m.code_recovery_error(700)?, "{rec}");
    // The code statistics against a host computation over the same rows.
    let rows: Vec<usize> = (0..mnist.len().min(2000)).collect();
    let codes =
        m.q.forward(&mnist.batch(&rows, &Device::Cpu)?.x.to_dtype(m.dtype)?, false, None)?
            .to_dtype(DType::F64)?
            .to_vec2::<f64>()?;
    let (n, d) = (codes.len() as f64, codes[0].len());
    let (mut std, mut ms) = (0.0, 0.0);
    for k in 0..d {
        let mean = codes.iter().map(|r| r[k]).sum::<f64>() / n;
        std += (codes.iter().map(|r| (r[k] - mean).powi(2)).sum::<f64>() / n).sqrt() / d as f64;
        ms += mean * mean / d as f64;
    }
    assert!(
        (ev[2].1 - std).abs() < 1e-5 * (1.0 + std) && (ev[3].1 - ms.sqrt()).abs() < 1e-5,
        "{ev:?} vs {std} {}",
        ms.sqrt()
    );
    let _ = model::loss_net; // the constructor is public API for notebooks
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Lipschitz control, the Gaussian Q, the labelled NLL and the logged diagnostics

fn forward_with(cfg: LsalConfig, data: &Dataset, seed: u64) -> anyhow::Result<crate::method::Forward> {
    let m = build(cfg, data, DType::F64, 16)?;
    let rows: Vec<usize> = (0..16).collect();
    let batch = data.batch(&rows, &Device::Cpu)?;
    m.forward_step_for_tests(&batch, 0, &mut Rng::new(seed))
}

fn stat(f: &crate::method::Forward, k: &str) -> f64 {
    f.stats.0.iter().find(|(n, _)| n == k).unwrap_or_else(|| panic!("no `{k}` in {:?}", f.stats.0)).1
}

/// The penalty adds exactly w times its logged value to L's loss and leaves G/Q's loss alone;
/// the diagnostics are logged and in range.
#[test]
fn lipschitz_penalty_adds_to_the_loss_network_only() -> R {
    let d = ring();
    let off = forward_with(no_dropout(), &d, 3)?;
    let on = forward_with(LsalConfig { lipschitz_penalty: 10.0, ..no_dropout() }, &d, 3)?;
    let pen = stat(&on, "lipschitz_penalty");
    assert!(pen.is_finite() && pen >= 0.0, "{pen}");
    assert!((s(&on.loss_l) - s(&off.loss_l) - 10.0 * pen).abs() < 1e-9 * (1.0 + pen));
    assert_eq!(s(&on.loss_gq), s(&off.loss_gq));
    assert!(stat(&off, "q_std") > 0.0 && stat(&off, "q_mean_rms") >= 0.0);
    assert!(stat(&off, "l_code_gap").is_finite() && stat(&off, "l_code_sens") >= 0.0);
    Ok(())
}

#[test]
fn margin_lipschitz_penalty_by_hand_and_zero_for_a_lipschitz_score() -> R {
    // Bounds: nu * 10 = 0.18 on the code leg, mu * 100 = 0.2 on the image leg.
    let m = objective::Margins { ambient: t1(&[100.0, 100.0]), manifold: t1(&[10.0, 10.0]), delta: t1(&[0.0, 0.0]) };
    let (sr, sc, sf) = (t1(&[0.0, 1.0]), t1(&[0.5, 1.0]), t1(&[0.6, 3.0]));
    // Row 0: code leg 0.5 - 0.18 = 0.32 over; row 1: image leg 2 - 0.2 = 1.8 over.
    let p = s(&objective::margin_lipschitz_penalty(&sr, &sc, &sf, &m, 0.002, 0.018)?);
    assert!((p - (0.32f64.powi(2) + 1.8f64.powi(2)) / 2.0).abs() < 1e-12, "{p}");
    // s(x, z) = mu ||x||_1 - nu ||z||_1 is 1-Lipschitz in the margin's metric: no penalty.
    let dev = Device::Cpu;
    let mut rng = Rng::new(4);
    let r =
        |rng: &mut Rng, shape: (usize, usize)| rng.randn(shape, 0.0, 1.0, &dev).unwrap().to_dtype(DType::F64).unwrap();
    let (x, xf, zh, z) = (r(&mut rng, (6, 5)), r(&mut rng, (6, 5)), r(&mut rng, (6, 3)), r(&mut rng, (6, 3)));
    let (mu, nu) = (0.3, 0.7);
    let sc =
        |x: &Tensor, z: &Tensor| -> candle_core::Result<Tensor> { (x.abs()?.sum(1)? * mu)? - (z.abs()?.sum(1)? * nu)? };
    let mg = objective::margins(&x, &xf, &zh, &z, mu, nu)?;
    let p = objective::margin_lipschitz_penalty(&sc(&x, &zh)?, &sc(&x, &z)?, &sc(&xf, &z)?, &mg, mu, nu)?;
    assert_eq!(s(&p), 0.0);
    // Twice that score breaks the bound on every leg where the norms differ.
    let p2 = objective::margin_lipschitz_penalty(
        &(sc(&x, &zh)? * 2.0)?,
        &(sc(&x, &z)? * 2.0)?,
        &(sc(&xf, &z)? * 2.0)?,
        &mg,
        mu,
        nu,
    )?;
    assert!(s(&p2) > 0.0);
    Ok(())
}

/// The margin-Lipschitz term adds exactly w times its logged value to L's loss, leaves G/Q's
/// loss alone, and is logged with `l_prior_gap`.
#[test]
fn margin_lipschitz_adds_to_the_loss_network_only() -> R {
    let d = ring();
    let off = forward_with(no_dropout(), &d, 3)?;
    let on = forward_with(LsalConfig { margin_lipschitz: 10.0, ..no_dropout() }, &d, 3)?;
    let pen = stat(&on, "margin_lipschitz_penalty");
    assert!(pen.is_finite() && pen >= 0.0, "{pen}");
    assert!((s(&on.loss_l) - s(&off.loss_l) - 10.0 * pen).abs() < 1e-9 * (1.0 + pen));
    assert_eq!(s(&on.loss_gq), s(&off.loss_gq));
    assert!(stat(&off, "l_prior_gap").is_finite());
    Ok(())
}

#[test]
fn encoder_learning_rate_is_scaled_in_both_modes() -> R {
    let d = ring();
    let mut m = build(LsalConfig { encoder_lr_scale: 0.1, hidden: 16, ..Default::default() }, &d, DType::F32, 8)?;
    assert!((m.player_q.lr() - 1e-5).abs() < 1e-15 && m.player_l.lr() == 1e-4 && m.player_g.lr() == 1e-4);
    let b = d.batch(&(0..8).collect::<Vec<_>>(), &Device::Cpu)?;
    m.step(&b, 0, &mut Rng::new(1))?;
    assert!((m.player_q.lr() - 1e-5).abs() < 1e-15);
    let cfg = LsalConfig {
        mode: Mode::SemiSupervised,
        labels: 16,
        val: 64,
        hidden: 16,
        encoder_lr_scale: 0.5,
        ..Default::default()
    };
    let mut ms = build(cfg, &d, DType::F32, 8)?;
    ms.step(&b, 0, &mut Rng::new(1))?;
    assert!((ms.player_q.lr() - 3e-4).abs() < 1e-12 && (ms.player_l.lr() - 6e-4).abs() < 1e-12);
    Ok(())
}

/// The penalty is (slope - 1)^2: where every real pair equals its fake pair, the two points of
/// each row coincide, L's slope between them is 0 and the penalty is exactly 1.
#[test]
fn lipschitz_penalty_is_the_squared_slope_error() -> R {
    let d = ring();
    let m = build(LsalConfig { lipschitz_penalty: 1.0, ..no_dropout() }, &d, DType::F64, 16)?;
    let x = d.batch(&(0..16).collect::<Vec<_>>(), &Device::Cpu)?.x.to_dtype(DType::F64)?;
    let z = Rng::new(1).randn((16, 2), 0.0, 1.0, &Device::Cpu)?.to_dtype(DType::F64)?;
    let zero = Tensor::zeros((), DType::F64, &Device::Cpu)?;
    let mut st = ganfold_core::StepStats::default();
    let score = |o: &Tensor| o.squeeze(1);
    let l = m.add_lipschitz(zero, [&x, &z], [&x, &z], &score, &mut Rng::new(2), &mut st)?;
    assert!((s(&l) - 1.0).abs() < 1e-12, "{}", s(&l));
    Ok(())
}

#[test]
fn gaussian_q_samples_in_training_and_uses_its_mean_otherwise() -> R {
    let d = ring();
    let cfg = LsalConfig { encoder: crate::config::EncoderKind::Gaussian, ..no_dropout() };
    let m = build(cfg, &d, DType::F64, 16)?;
    let x = d.batch(&(0..8).collect::<Vec<_>>(), &Device::Cpu)?.x.to_dtype(DType::F64)?;
    let mean = m.q.forward(&x, false, None)?;
    assert_eq!(mean.dims(), &[8, 2]);
    let a = m.q.forward(&x, true, Some(&mut Rng::new(4)))?;
    let b = m.q.forward(&x, true, Some(&mut Rng::new(4)))?;
    assert_eq!(v1(&a.flatten_all()?), v1(&b.flatten_all()?), "seeded");
    // Training draws around the mean of the same (batch-statistics) pass; without noise it is that mean.
    let train_mean = m.q.forward(&x, true, None)?;
    assert_eq!(train_mean.dims(), &[8, 2]);
    assert!(s(&(a - &train_mean)?.abs()?.sum_all()?) > 0.0, "training draws around the mean");
    Ok(())
}

/// The optional labelled NLL adds w * mean L(x_l, Q(x_l), y_l) to L's loss.
#[test]
fn labelled_nll_adds_the_labelled_loss() -> R {
    let d = ring();
    let ssl = LsalConfig { mode: Mode::SemiSupervised, labels: 16, val: 64, labelled_nll: 0.0, ..no_dropout() };
    let off = forward_with(ssl.clone(), &d, 5)?;
    let on = forward_with(LsalConfig { labelled_nll: 2.0, ..ssl }, &d, 5)?;
    let nll = stat(&off, "l_real_labelled");
    assert!((s(&on.loss_l) - s(&off.loss_l) - 2.0 * nll).abs() < 1e-9, "{} {} {nll}", s(&on.loss_l), s(&off.loss_l));
    Ok(())
}

/// Dropout on the image and conv inputs: masks of the inputs' shapes, shared by the two passes.
#[test]
fn conv_dropout_masks_have_the_conv_inputs_shapes() -> R {
    let mnist = data::mnist_5k()?;
    let cfg = LsalConfig { conv_dropout: 0.2, dropout: 0.0, width: 4, ..Default::default() };
    let m = build(cfg, &mnist, DType::F32, 4)?;
    let masks = m.l.draw_masks(3, &mut Rng::new(0), DType::F32, &Device::Cpu)?.expect("masks");
    assert!(masks.fc.is_empty());
    let dims: Vec<Vec<usize>> = masks.conv.iter().map(|t| t.dims().to_vec()).collect();
    assert_eq!(dims, vec![vec![3, 1, 28, 28], vec![3, 4, 14, 14]]);
    let kept = v1(&masks.conv[0].flatten_all()?);
    assert!(kept.iter().all(|&v| v == 0.0 || (v - 1.25).abs() < 1e-6));
    let none =
        build(LsalConfig { conv_dropout: 0.0, dropout: 0.0, width: 4, ..Default::default() }, &mnist, DType::F32, 4)?;
    assert!(none.l.draw_masks(3, &mut Rng::new(0), DType::F32, &Device::Cpu)?.is_none());
    Ok(())
}

/// L(x, z) depends on z: at init, swapping the codes of a batch changes L by a visible amount.
#[test]
fn loss_network_depends_on_its_code() -> R {
    let mnist = data::mnist_5k()?;
    let m = build(LsalConfig::default(), &mnist, DType::F32, 8)?;
    let x = mnist.batch(&(0..8).collect::<Vec<_>>(), &Device::Cpu)?.x;
    let z1 = Rng::new(1).randn((8, 64), 0.0, 1.0, &Device::Cpu)?;
    let z2 = Rng::new(2).randn((8, 64), 0.0, 1.0, &Device::Cpu)?;
    let a = m.l.forward(&x, &z1, None, false)?;
    let b = m.l.forward(&x, &z2, None, false)?;
    // As much as another batch of images moves it (both are of the order of L itself at init).
    let x2 = mnist.batch(&(8..16).collect::<Vec<_>>(), &Device::Cpu)?.x;
    let c = m.l.forward(&x2, &z1, None, false)?;
    let (dz, dx) = (s(&(&a - &b)?.abs()?.mean_all()?), s(&(&a - &c)?.abs()?.mean_all()?));
    assert!(dz > 0.2 * dx && dz > 0.1 * s(&a.abs()?.mean_all()?), "z moves L by {dz}, x by {dx}");
    Ok(())
}

/// The joint head's layout: 1 hidden layer by default for images and points (the names of the
/// published models' tensors), maxout widening each hidden layer; and L's gradients through two
/// maxout layers match finite differences (f64).
#[test]
fn joint_head_layouts_and_maxout_gradients() -> R {
    let names = |m: &Lsal| -> Vec<(String, Vec<usize>)> {
        let mut v: Vec<_> = m
            .player_l
            .vs()
            .trainable_vars()
            .into_iter()
            .filter(|(n, _)| n.contains("jfc") && n.ends_with(".v"))
            .map(|(n, v)| (n, v.dims().to_vec()))
            .collect();
        v.sort();
        v
    };
    let d = ring();
    let pts = build(no_dropout(), &d, DType::F32, 4)?;
    let got: Vec<String> = names(&pts).into_iter().map(|(n, _)| n).collect();
    assert_eq!(got.len(), 2, "{got:?}");
    let mnist = data::mnist_5k()?;
    let img = build(LsalConfig { width: 4, ..Default::default() }, &mnist, DType::F32, 4)?;
    assert_eq!(names(&img).len(), 2, "{:?}", names(&img));
    let cfg = LsalConfig { joint_layers: 2, joint_maxout: 2, ..no_dropout() };
    let mo = build(cfg, &d, DType::F64, 8)?;
    let shapes: Vec<Vec<usize>> = names(&mo).into_iter().map(|(_, s)| s).collect();
    // hidden 16: (2 * 16, 16 + 16), (2 * 16, 16), then the output (1, 16).
    assert_eq!(shapes, vec![vec![32, 32], vec![32, 16], vec![1, 16]]);

    let x = d.head(8, &Device::Cpu)?.to_dtype(DType::F64)?;
    let z = Rng::new(11).randn((8, mo.dz), 0.0, 1.0, &Device::Cpu)?.to_dtype(DType::F64)?;
    let loss = |m: &Lsal| s(&m.forward_unsup(&x, &z, &mut Rng::new(0)).unwrap().loss_l);
    let grads = mo.forward_unsup(&x, &z, &mut Rng::new(0))?.loss_l.backward()?;
    for (name, v) in mo.player_l.vs().trainable_vars().into_iter().filter(|(n, _)| n.contains("jfc")) {
        let g = grads.get(v.as_tensor()).unwrap().flatten_all()?.to_vec1::<f64>()?;
        let i = g.len() / 3;
        // 1e-6, not 1e-5: a maxout or hinge kink lies within 1e-5 of this point (the gap shrinks with eps).
        assert_central_difference(&name, &v, i, g[i], 1e-6, &|| loss(&mo))?;
    }
    Ok(())
}

/// The latent-regression and reconstruction terms' mean |a - b|, by hand.
#[test]
fn mean_abs_error_by_hand() -> R {
    let z_rec = Tensor::new(&[[0.5f64, -1.0], [2.0, 0.0]], &Device::Cpu)?;
    let z = Tensor::new(&[[0.0f64, 1.0], [1.5, -0.5]], &Device::Cpu)?;
    // |0.5| + |-2| + |0.5| + |0.5| = 3.5 over 4 entries.
    assert!((s(&objective::mean_abs_error(&z_rec, &z)?) - 0.875).abs() < 1e-15);
    let x_rec = Tensor::new(&[[0.5f64, -1.0], [0.25, 0.0]], &Device::Cpu)?;
    let x = Tensor::new(&[[1.0f64, -1.0], [-0.25, 1.0]], &Device::Cpu)?;
    // |-0.5| + 0 + |0.5| + |-1| = 2 over 4 entries.
    assert!((s(&objective::mean_abs_error(&x_rec, &x)?) - 0.5).abs() < 1e-15);
    Ok(())
}

/// The latent-regression term adds exactly w times its logged value to G/Q's loss, leaves L's
/// loss alone, and its gradient reaches Q but not G (the fakes are detached) nor L, in both modes.
#[test]
fn latent_regression_adds_to_the_encoder_only() -> R {
    let d = ring();
    let off = forward_with(LsalConfig { latent_regression: 0.0, ..no_dropout() }, &d, 3)?;
    let on = forward_with(LsalConfig { latent_regression: 2.0, ..no_dropout() }, &d, 3)?;
    let t = stat(&on, "latent_regression");
    assert!(t.is_finite() && t > 0.0, "{t}");
    assert!((s(&on.loss_gq) - s(&off.loss_gq) - 2.0 * t).abs() < 1e-9 * (1.0 + t));
    assert_eq!(s(&on.loss_l), s(&off.loss_l));
    assert!(off.stats.0.iter().all(|(k, _)| k != "latent_regression"));

    let b = d.batch(&(0..8).collect::<Vec<_>>(), &Device::Cpu)?;
    // By default the term is on in unsupervised mode and off in SSL mode.
    for (mode, on) in [(Mode::Unsupervised, true), (Mode::SemiSupervised, false)] {
        let m = build(LsalConfig { mode, labels: 16, val: 64, hidden: 16, ..Default::default() }, &d, DType::F32, 8)?;
        let f = m.forward_step_for_tests(&b, 0, &mut Rng::new(4))?;
        assert_eq!(f.stats.0.iter().any(|(k, _)| k == "latent_regression"), on, "{mode:?}");
    }
    for mode in [Mode::Unsupervised, Mode::SemiSupervised] {
        let cfg = LsalConfig {
            mode,
            labels: 16,
            val: 64,
            hidden: 16,
            latent_regression: 1.0,
            ssl_latent_regression: 1.0,
            ..Default::default()
        };
        let m = build(cfg, &d, DType::F32, 8)?;
        let f = m.forward_step_for_tests(&b, 0, &mut Rng::new(4))?;
        assert_isolated(&f.loss_l, &f.loss_gq, &m)?;
        // The term alone: its gradient reaches Q and nothing else.
        let x_fake = m.g.forward(&m.prior(8, &mut Rng::new(5))?, true)?;
        let z = m.prior(8, &mut Rng::new(5))?;
        let term = objective::mean_abs_error(&m.q.forward(&x_fake.detach(), true, None)?, &z)?;
        let g = term.backward()?;
        for (vs, reach) in [(m.player_g.vs(), false), (m.player_q.vs(), true), (m.player_l.vs(), false)] {
            let any = vs.trainable_vars().iter().any(|(_, v)| g.get(v.as_tensor()).is_some());
            assert_eq!(any, reach);
        }
    }
    Ok(())
}

/// The reconstruction term adds exactly w times its logged value to G/Q's loss and leaves L's
/// loss and G's running statistics alone; alone, its gradient reaches Q only and matches finite
/// differences (f64); SSL mode ignores it, and it is off by default.
#[test]
fn reconstruction_adds_to_the_encoder_only() -> R {
    let d = ring();
    let build16 = |w: f64| build(LsalConfig { reconstruction: w, ..no_dropout() }, &d, DType::F64, 16);
    let (m_off, m_on) = (build16(0.0)?, build16(2.0)?);
    let batch = d.batch(&(0..16).collect::<Vec<_>>(), &Device::Cpu)?;
    let off = m_off.forward_step_for_tests(&batch, 0, &mut Rng::new(3))?;
    let on = m_on.forward_step_for_tests(&batch, 0, &mut Rng::new(3))?;
    let t = stat(&on, "reconstruction");
    assert!(t.is_finite() && t > 0.0, "{t}");
    assert!((s(&on.loss_gq) - s(&off.loss_gq) - 2.0 * t).abs() < 1e-9 * (1.0 + t));
    assert_eq!(s(&on.loss_l), s(&off.loss_l));
    assert!(off.stats.0.iter().all(|(k, _)| k != "reconstruction"));
    assert_eq!(LsalConfig::default().reconstruction, 0.0);
    let (g_on, g_off) = (m_on.player_g.vs().tensors(), m_off.player_g.vs().tensors());
    for (k, v) in &g_on {
        assert_eq!(v.flatten_all()?.to_vec1::<f64>()?, g_off[k].flatten_all()?.to_vec1::<f64>()?, "G's {k}");
    }
    assert_isolated(&on.loss_l, &on.loss_gq, &m_on)?;

    // The term alone, as `add_reconstruction` forms it.
    let x = batch.x.to_dtype(DType::F64)?;
    let term = |m: &Lsal| -> anyhow::Result<Tensor> {
        let z_hat = m.q.forward(&x, true, None)?;
        Ok(objective::mean_abs_error(&ganfold_core::nn::frozen(|| m.g.forward(&z_hat, false))?, &x)?)
    };
    assert_reaches_q_only_and_ssl_ignores(
        &m_on,
        &term,
        LsalConfig { reconstruction: 1.0, ..ssl_small() },
        "reconstruction",
    )
}

/// A small SSL config for the encoder terms' tests.
fn ssl_small() -> LsalConfig {
    LsalConfig { mode: Mode::SemiSupervised, labels: 16, val: 64, hidden: 16, ..Default::default() }
}

/// An encoder-only term of `m` (`term`, on the ring batch): its gradient reaches Q's parameters
/// and no other player's and matches central finite differences (f64); and the SSL step built
/// from `ssl` (the term on) logs no `key`, since the term is unsupervised only.
fn assert_reaches_q_only_and_ssl_ignores(
    m: &Lsal,
    term: &dyn Fn(&Lsal) -> anyhow::Result<Tensor>,
    ssl: LsalConfig,
    key: &str,
) -> R {
    let grads = term(m)?.backward()?;
    for (vs, reach) in [(m.player_g.vs(), false), (m.player_q.vs(), true), (m.player_l.vs(), false)] {
        let any = vs.trainable_vars().iter().any(|(_, v)| grads.get(v.as_tensor()).is_some());
        assert_eq!(any, reach, "{key}");
    }
    for (name, v) in m.player_q.vs().trainable_vars().into_iter().filter(|(n, _)| !n.contains("bn")).take(3) {
        let g = grads.get(v.as_tensor()).unwrap().flatten_all()?.to_vec1::<f64>()?;
        let i = g.len() / 2;
        assert_central_difference(&name, &v, i, g[i], 1e-5, &|| s(&term(m).unwrap()))?;
    }
    let d = ring();
    let f = build(ssl, &d, DType::F32, 8)?.forward_step_for_tests(
        &d.batch(&(0..8).collect::<Vec<_>>(), &Device::Cpu)?,
        0,
        &mut Rng::new(4),
    )?;
    assert!(f.stats.0.iter().all(|(k, _)| k != key), "{key} logged in SSL mode");
    Ok(())
}

/// AGE's per-dimension KL to N(0, 1), by hand: 0 at mean 0 and variance 1, and
/// 0.5 (m^2 + s^2 - 1) - log s otherwise, averaged over the dimensions.
#[test]
fn code_prior_kl_by_hand() -> R {
    let kl = |rows: [[f64; 2]; 2]| s(&objective::code_prior_kl(&Tensor::new(&rows, &Device::Cpu).unwrap()).unwrap());
    // Both dimensions have mean 0 and biased variance 1.
    assert!(kl([[1.0, -1.0], [-1.0, 1.0]]).abs() < 1e-7);
    // Dimension 0: m = 2, s^2 = 1 gives 2; dimension 1: m = 1, s^2 = 1 gives 0.5.
    assert!((kl([[1.0, 0.0], [3.0, 2.0]]) - 1.25).abs() < 1e-7);
    // m = 0, s^2 = 0.25 gives -0.375 + ln 2 in each dimension.
    assert!((kl([[0.5, 0.5], [-0.5, -0.5]]) - (-0.375 + std::f64::consts::LN_2)).abs() < 1e-7);
    Ok(())
}

/// The code-prior term adds exactly w times its logged value to G/Q's loss and leaves L's loss
/// alone; alone, its gradient reaches Q only and matches finite differences (f64); SSL mode
/// ignores it, and it is off by default.
#[test]
fn code_prior_adds_to_the_encoder_only() -> R {
    let d = ring();
    let build16 = |w: f64| build(LsalConfig { code_prior: w, ..no_dropout() }, &d, DType::F64, 16);
    let (m_off, m_on) = (build16(0.0)?, build16(2.0)?);
    let batch = d.batch(&(0..16).collect::<Vec<_>>(), &Device::Cpu)?;
    let off = m_off.forward_step_for_tests(&batch, 0, &mut Rng::new(3))?;
    let on = m_on.forward_step_for_tests(&batch, 0, &mut Rng::new(3))?;
    let t = stat(&on, "code_prior_kl");
    assert!(t.is_finite() && t > 0.0, "{t}");
    assert!((s(&on.loss_gq) - s(&off.loss_gq) - 2.0 * t).abs() < 1e-9 * (1.0 + t));
    assert_eq!(s(&on.loss_l), s(&off.loss_l));
    assert!(off.stats.0.iter().all(|(k, _)| k != "code_prior_kl"));
    assert_eq!(LsalConfig::default().code_prior, 0.0);
    assert_isolated(&on.loss_l, &on.loss_gq, &m_on)?;

    let x = batch.x.to_dtype(DType::F64)?;
    let term = |m: &Lsal| -> anyhow::Result<Tensor> { Ok(objective::code_prior_kl(&m.q.forward(&x, true, None)?)?) };
    assert_reaches_q_only_and_ssl_ignores(&m_on, &term, LsalConfig { code_prior: 1.0, ..ssl_small() }, "code_prior_kl")
}
