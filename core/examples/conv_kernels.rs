//! Kernel benchmark: the DCGAN-28 convolution shapes (batch 64), forward and both backward
//! products, ganfold's GEMM kernels against Candle's. Median of 15 runs, release build:
//!
//!     cargo run --release -p ganfold-core --example conv_kernels

use candle_core::{Device, Tensor, Var};
use ganfold_core::Rng;
use ganfold_kernels::{self as ops, ConvCfg};
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn median_ms(mut f: impl FnMut() -> candle_core::Result<()>) -> candle_core::Result<f64> {
    f()?;
    let mut t: Vec<f64> = (0..15)
        .map(|_| {
            let s = Instant::now();
            f().map(|_| s.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<candle_core::Result<_>>()?;
    t.sort_by(f64::total_cmp);
    Ok(t[7])
}

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let mut rng = Rng::new(0);
    let cfg = ConvCfg::new(2, 1);
    println!("{:<34} {:>10} {:>10} {:>8} {:>9}", "kernel (batch 64)", "ganfold ms", "candle ms", "speedup", "GFLOP/s");
    // (name, conv?, x shape, w shape, GEMM FLOPs of the forward product)
    let cases: [(&str, bool, [usize; 4], [usize; 4]); 4] = [
        ("D conv 64->128, 14->7", true, [64, 64, 14, 14], [128, 64, 4, 4]),
        ("D conv 1->64, 28->14", true, [64, 1, 28, 28], [64, 1, 4, 4]),
        ("G convT 128->64, 7->14", false, [64, 128, 7, 7], [128, 64, 4, 4]),
        ("G convT 64->1, 14->28", false, [64, 64, 14, 14], [64, 1, 4, 4]),
    ];
    for (name, conv, xs, ws) in cases {
        let x = Var::from_tensor(&rng.randn(&xs[..], 0.0, 1.0, &dev)?)?;
        let w = Var::from_tensor(&rng.randn(&ws[..], 0.0, 0.05, &dev)?)?;
        let ours =
            |x: &Tensor, w: &Tensor| if conv { ops::conv2d(x, w, cfg) } else { ops::conv_transpose2d(x, w, cfg) };
        let theirs =
            |x: &Tensor, w: &Tensor| if conv { x.conv2d(w, 1, 2, 1, 1) } else { x.conv_transpose2d(w, 1, 0, 2, 1) };
        let y = ours(&x, &w)?;
        // Multiply-adds of one product: output elements x (C_in · k · k) of the forward conv.
        let macs = if conv { y.elem_count() * ws[1] * 16 } else { xs.iter().product::<usize>() * ws[1] * 16 };
        let gf = 2.0 * macs as f64 / 1e9;
        let r = rng.randn(y.dims(), 0.0, 1.0, &dev)?;
        for (pass, k) in [("forward", 1.0), ("forward+backward", 3.0)] {
            let run = |f: &dyn Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>| -> candle_core::Result<f64> {
                median_ms(|| {
                    let y = f(&x, &w)?;
                    if k > 1.0 {
                        (y * &r)?.sum_all()?.backward()?;
                    }
                    Ok(())
                })
            };
            let (a, b) = (run(&ours)?, run(&theirs)?);
            println!("{:<34} {a:>10.2} {b:>10.2} {:>7.1}x {:>9.0}", format!("{name} {pass}"), b / a, k * gf / a * 1e3);
        }
    }
    // The convolutions without a column matrix (AVX-512) against the column matrix + `gemm`
    // path: the G convT 128->64 (col2im fused into the GEMM) and the D conv 64->128 (rows read
    // from the image in place); both ganfold's, toggled by GANFOLD_IMPLICIT, alternating.
    let x = rng.randn((64, 128, 7, 7), 0.0, 1.0, &dev)?;
    let w = rng.randn((128, 64, 4, 4), 0.0, 0.05, &dev)?;
    let xc = rng.randn((64, 64, 14, 14), 0.0, 1.0, &dev)?;
    let cases: [(&str, &dyn Fn() -> candle_core::Result<Tensor>); 2] = [
        ("G convT 128->64 forward: fused col2im", &|| ops::conv_transpose2d(&x, &w, cfg)),
        ("D conv 64->128 forward: image in place", &|| ops::conv2d(&xc, &w, cfg)),
    ];
    for (name, f) in cases {
        let mut best = [f64::MAX; 2];
        for _ in 0..3 {
            for (i, v) in ["1", "0"].into_iter().enumerate() {
                // SAFETY: single-threaded here; the pool's workers are idle and read no environment.
                unsafe { std::env::set_var("GANFOLD_IMPLICIT", v) };
                best[i] = best[i].min(median_ms(|| f().map(drop))?);
            }
        }
        // SAFETY: as above.
        unsafe { std::env::remove_var("GANFOLD_IMPLICIT") };
        println!(
            "{name} {:.2} ms, column matrix {:.2} ms ({:.2}x){}",
            best[0],
            best[1],
            best[1] / best[0],
            if best[0] == best[1] { " (no AVX-512: same path)" } else { "" }
        );
    }
    Ok(())
}
