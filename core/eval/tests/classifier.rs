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

#[test]
fn stacked_mnist_of_real_digits_reads_back_the_chosen_labels() {
    use ganfold_eval::modes::{build_stacked_mnist, stacked_mnist_digits};
    let dir = mnist_5k();
    let images = idx::read_images(&dir.join("train-images-idx3-ubyte.gz")).unwrap();
    let labels = idx::read_labels(&dir.join("train-labels-idx1-ubyte.gz")).unwrap();
    // mnist-5k is sorted by label, 500 per class: index 500·d + 7 is a digit d.
    let triples = [[500 * 3 + 7, 500 * 1 + 7, 500 * 4 + 7], [500 * 9 + 7, 7, 500 * 5 + 7]];
    let stacked = build_stacked_mnist(&images, &triples).unwrap();
    let net = MnistClassifier::pinned(&Device::Cpu).unwrap();
    let digits = stacked_mnist_digits(&net, &stacked, 64).unwrap();
    let want: Vec<[u8; 3]> = triples.iter().map(|t| [labels[t[0]], labels[t[1]], labels[t[2]]]).collect();
    assert_eq!(want, vec![[3, 1, 4], [9, 0, 5]]);
    assert_eq!(digits, want);
}
