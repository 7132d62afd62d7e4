//! The pinned MNIST classifier: integrity, input checks and accuracy on real digits.

mod common;

use candle_core::{Device, Tensor};
use common::idx;
use ganfold_eval::{FeatureNet, MnistClassifier, extract};
use std::path::PathBuf;

fn mnist_5k() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/mnist-5k")
}

#[test]
fn classifier_is_accurate_on_real_mnist_digits() {
    // 5,000 real MNIST training digits committed in datasets/mnist-5k.
    let dir = mnist_5k();
    let images = idx::read_images(&dir.join("train-images-idx3-ubyte.gz")).unwrap();
    let labels = idx::read_labels(&dir.join("train-labels-idx1-ubyte.gz")).unwrap();
    assert_eq!(images.dims(), &[5000, 1, 28, 28]);
    let net = MnistClassifier::pinned(&Device::Cpu).unwrap();
    let mut correct = 0;
    for start in (0..5000).step_by(500) {
        let pred = net.predict(&images.narrow(0, start, 500).unwrap()).unwrap();
        correct += pred.iter().zip(&labels[start..start + 500]).filter(|(p, l)| **p == **l as u32).count();
    }
    let acc = correct as f64 / 5000.0;
    eprintln!("pinned MNIST classifier accuracy on mnist-5k: {correct}/5000 = {:.2} %", 100.0 * acc);
    assert!(acc >= 0.985, "accuracy {acc}");
}

#[test]
fn features_and_logits_have_the_documented_shapes() {
    let net = MnistClassifier::pinned(&Device::Cpu).unwrap();
    let x = Tensor::zeros((3, 1, 28, 28), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert_eq!(net.features(&x).unwrap().dims(), &[3, 128]);
    assert_eq!(net.logits(&x).unwrap().dims(), &[3, 10]);
    let e = extract(&net, &x, 2).unwrap();
    assert_eq!((e.features.rows, e.features.cols, e.probs.cols), (3, 128, 10));
    assert!(!net.name().is_empty());
}

#[test]
fn classifier_rejects_wrong_image_shapes_and_bad_files() {
    let net = MnistClassifier::pinned(&Device::Cpu).unwrap();
    let rgb = Tensor::zeros((2, 3, 28, 28), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(net.logits(&rgb).is_err());

    let dir = std::env::temp_dir().join(format!("ganfold-eval-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("broken.safetensors");
    std::fs::write(&bad, b"not a safetensors file").unwrap();
    let err = MnistClassifier::from_safetensors(&bad, &Device::Cpu).err().expect("must fail");
    assert!(format!("{err:#}").contains("broken.safetensors"));
    assert!(MnistClassifier::from_safetensors(dir.join("missing"), &Device::Cpu).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

/// Weights only from safetensors, with each tensor's shape and dtype checked by name.
#[test]
fn classifier_loader_rejects_pickles_and_names_bad_tensors() {
    let e = MnistClassifier::from_bytes(b"\x80\x04\x95\x10\x00\x00\x00", &Device::Cpu).err().expect("pickle");
    assert!(format!("{e:#}").contains("pickle"), "{e:#}");
    let e = MnistClassifier::from_bytes(b"PK\x03\x04archive/data.pkl", &Device::Cpu).err().expect("torch zip");
    assert!(format!("{e:#}").contains("never unpickled"), "{e:#}");

    let layout = ganfold_eval::classifier::LAYOUT;
    let save = |dtype_of: &dyn Fn(&str) -> candle_core::DType, shape_of: &dyn Fn(&str, &[usize]) -> Vec<usize>| {
        let m: std::collections::HashMap<String, Tensor> = layout
            .iter()
            .map(|(n, s)| (n.to_string(), Tensor::zeros(shape_of(n, s), dtype_of(n), &Device::Cpu).unwrap()))
            .collect();
        let dir = tempfile_dir();
        let p = dir.join("w.safetensors");
        candle_core::safetensors::save(&m, &p).unwrap();
        let b = std::fs::read(&p).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        b
    };
    let f32_all = |_: &str| candle_core::DType::F32;
    let same = |_: &str, s: &[usize]| s.to_vec();
    assert!(MnistClassifier::from_bytes(&save(&f32_all, &same), &Device::Cpu).is_ok());
    let f64_bias = |n: &str| if n == "classifier.2.bias" { candle_core::DType::F64 } else { candle_core::DType::F32 };
    let e = MnistClassifier::from_bytes(&save(&f64_bias, &same), &Device::Cpu).err().expect("dtype");
    assert!(format!("{e:#}").contains("classifier.2.bias has dtype F64"), "{e:#}");
    let wide = |n: &str, s: &[usize]| if n == "features.3.bias" { vec![65] } else { s.to_vec() };
    let e = MnistClassifier::from_bytes(&save(&f32_all, &wide), &Device::Cpu).err().expect("shape");
    assert!(format!("{e:#}").contains("features.3.bias has shape [65]"), "{e:#}");
}

fn tempfile_dir() -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("ganfold-eval-w-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn stacked_mnist_of_real_digits_reads_back_the_chosen_labels() {
    use ganfold_eval::modes::{build_stacked_mnist, stacked_mnist_digits};
    let dir = mnist_5k();
    let images = idx::read_images(&dir.join("train-images-idx3-ubyte.gz")).unwrap();
    let labels = idx::read_labels(&dir.join("train-labels-idx1-ubyte.gz")).unwrap();
    // mnist-5k is sorted by label, 500 per class: index 500·d + 7 is a digit d.
    let triples = [[500 * 3 + 7, 500 + 7, 500 * 4 + 7], [500 * 9 + 7, 7, 500 * 5 + 7]];
    let stacked = build_stacked_mnist(&images, &triples).unwrap();
    let net = MnistClassifier::pinned(&Device::Cpu).unwrap();
    let digits = stacked_mnist_digits(&net, &stacked, 64).unwrap();
    let want: Vec<[u8; 3]> = triples.iter().map(|t| [labels[t[0]], labels[t[1]], labels[t[2]]]).collect();
    assert_eq!(want, vec![[3, 1, 4], [9, 0, 5]]);
    assert_eq!(digits, want);
}
