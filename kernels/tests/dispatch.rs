//! No CPU-only op is reachable on a CUDA device. ganfold's custom ops (`CustomOp*`,
//! `InplaceOp*`) have CPU kernels only; Candle would fail a CUDA tensor that reached one. Two
//! checks that need no GPU:
//! 1. the dispatch rule [`ganfold_kernels::fused`] sends every non-CPU device to Candle's ops;
//! 2. every call site that applies a custom op, in every crate of the workspace, sits behind
//!    that rule (or is the backward of an op whose forward did), read from the sources.

use candle_core::{DType, DeviceLocation};
use std::path::{Path, PathBuf};

#[test]
fn only_cpu_f32_and_f64_take_the_fused_kernels() {
    let gpus =
        [DeviceLocation::Cuda { gpu_id: 0 }, DeviceLocation::Cuda { gpu_id: 3 }, DeviceLocation::Metal { gpu_id: 0 }];
    for dt in [DType::F32, DType::F64, DType::F16, DType::BF16, DType::U32] {
        for loc in gpus {
            assert!(!ganfold_kernels::fused(loc, dt), "{loc:?} {dt:?} would reach a CPU-only op");
        }
        let cpu = matches!(dt, DType::F32 | DType::F64) && !ganfold_kernels::candle_kernels_forced();
        assert_eq!(ganfold_kernels::fused(DeviceLocation::Cpu, dt), cpu, "{dt:?} on CPU");
    }
}

/// Functions that apply a custom op without a guard of their own, and why that is safe.
const UNGUARDED: &[(&str, &str, &str)] = &[
    ("kernels/src/conv.rs", "bwd", "backward of a fused op: runs only where its forward did (CPU)"),
    ("kernels/src/conv.rs", "op", "called only from the conv ops' `bwd`"),
    ("kernels/src/conv.rs", "biased", "called only after `fast_path` and `fast` held"),
    ("kernels/src/linear.rs", "bwd", "backward of a fused op"),
    ("kernels/src/norm.rs", "bwd", "backward of a fused op"),
    ("kernels/src/pointwise.rs", "bwd", "backward of a fused op"),
];

/// Words that show a function checked the dispatch rule before applying its op.
const GUARDS: &[&str] = &["fast(", "fast_path(", "is_cpu()"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if p.is_dir() && !["target", ".git", "datasets", "results", "runs"].contains(&name) {
            rust_files(&p, out);
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

/// The name of the `fn` whose body holds line `i`, and that body's text up to line `i`.
fn enclosing_fn(lines: &[&str], i: usize) -> (String, String) {
    for j in (0..=i).rev() {
        let t = lines[j].trim_start();
        let t = t.strip_prefix("pub(crate) ").or_else(|| t.strip_prefix("pub ")).unwrap_or(t);
        if let Some(rest) = t.strip_prefix("fn ") {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            return (name, lines[j..=i].join("\n"));
        }
    }
    (String::new(), String::new())
}

#[test]
fn every_custom_op_call_site_is_behind_the_dispatch_rule() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let mut files = vec![];
    rust_files(&root, &mut files);
    let mut sites = 0;
    let mut bad = vec![];
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        if rel.starts_with("kernels/tests/") {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // Test modules run on CPU only; the scan covers what a method's step can reach.
        let end = lines.iter().position(|l| l.trim() == "#[cfg(test)]").unwrap_or(lines.len());
        for (i, l) in lines[..end].iter().enumerate() {
            let code = l.split("//").next().unwrap_or_default();
            let applies = ["apply_op1(", "apply_op2(", "apply_op3(", "inplace_op1(", "inplace_op2(", "inplace_op3("]
                .iter()
                .any(|p| code.contains(p));
            if !applies {
                continue;
            }
            sites += 1;
            let (name, body) = enclosing_fn(&lines[..end], i);
            let guarded = GUARDS.iter().any(|g| body.contains(g));
            let allowed = UNGUARDED.iter().any(|(file, fname, _)| *file == rel && *fname == name);
            if !guarded && !allowed {
                bad.push(format!("{rel}:{}: `fn {name}` applies a custom op without checking `fused`", i + 1));
            }
        }
    }
    assert!(sites >= 15, "the scan found only {sites} call sites: is it reading the sources?");
    assert!(bad.is_empty(), "custom ops reachable on CUDA:\n{}", bad.join("\n"));
}
