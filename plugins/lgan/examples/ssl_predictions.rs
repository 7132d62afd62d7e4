//! Compares the test-set predictions of SSL runs: per-run error, class histogram, and agreement.
//! `ssl_predictions RUN_DIR...` (with GANFOLD_DATA_DIR for full MNIST).
use candle_core::D;
use ganfold_lgan as _;

fn main() -> anyhow::Result<()> {
    let mut preds: Vec<Vec<u32>> = vec![];
    for dir in std::env::args().skip(1) {
        let run = ganfold_core::train::load_run(std::path::Path::new(&dir), None)?;
        let test = run.data.test.as_ref().expect("a test split");
        let d = run.method.discriminator().expect("classifier");
        let labels = test.labels.as_ref().expect("labels");
        let mut p = vec![];
        let rows: Vec<usize> = (0..test.len()).collect();
        for c in rows.chunks(500) {
            p.extend(d.forward_t(&test.batch(c, &run.device)?.x, false)?.argmax(D::Minus1)?.to_vec1::<u32>()?);
        }
        let err = p.iter().zip(labels).filter(|(a, b)| a != b).count();
        let mut hist = vec![0usize; run.data.num_classes];
        for &k in &p {
            hist[k as usize] += 1;
        }
        println!("{dir}: errors {err}/{}, predicted-class histogram {hist:?}", p.len());
        preds.push(p);
    }
    if preds.len() == 2 {
        let agree = preds[0].iter().zip(&preds[1]).filter(|(a, b)| a == b).count();
        println!("agreement {agree}/{}", preds[0].len());
    }
    Ok(())
}
