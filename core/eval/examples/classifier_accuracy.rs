//! Accuracy of the pinned MNIST classifier on any gzip'd IDX image/label pair.
//!
//! ```sh
//! cargo run --release -p ganfold-eval --example classifier_accuracy -- \
//!     DIR/t10k-images-idx3-ubyte.gz DIR/t10k-labels-idx1-ubyte.gz
//! ```

#[path = "../tests/common/idx.rs"]
mod idx;

use candle_core::Device;
use ganfold_eval::MnistClassifier;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let args: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    anyhow::ensure!(args.len() == 2, "usage: classifier_accuracy IMAGES.gz LABELS.gz");
    let images = idx::read_images(&args[0])?;
    let labels = idx::read_labels(&args[1])?;
    let n = labels.len();
    anyhow::ensure!(images.dim(0)? == n, "image and label counts differ");
    let net = MnistClassifier::pinned(&Device::Cpu)?;
    let mut correct = 0;
    for start in (0..n).step_by(1000) {
        let len = 1000.min(n - start);
        let pred = net.predict(&images.narrow(0, start, len)?)?;
        correct += pred.iter().zip(&labels[start..start + len]).filter(|(p, l)| **p == **l as u32).count();
    }
    println!("{correct}/{n} = {:.2} %", 100.0 * correct as f64 / n as f64);
    Ok(())
}
