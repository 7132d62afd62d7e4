//! Training speed through the library, as a notebook or another program trains: no CLI in
//! between. Compare its images/s with `ganfold train` on the same run:
//!
//!   cargo run --release -p ganfold-plugins --example library_speed -- dcgan mnist-5k 200
//!   ganfold train dcgan --data mnist-5k --steps 200 --out /tmp/cli-speed -q   # summary.json

use ganfold_core::{RunConfig, train};
use ganfold_plugins as _;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (method, data, steps) = match args.as_slice() {
        [m, d, s] => (m.as_str(), d.as_str(), s.parse::<usize>()?),
        _ => anyhow::bail!("usage: library_speed METHOD DATA STEPS"),
    };
    let mut cfg = RunConfig::defaults(method)?;
    cfg.set(&format!("data={data}"))?;
    cfg.set(&format!("steps={steps}"))?;
    let out = std::env::temp_dir().join(format!("ganfold-library-speed-{}", std::process::id()));
    let summary = train::train(cfg, Some(out.clone()), false)?;
    println!("{method} on {data}, {steps} steps through the library: {:.1} images/s", summary.images_per_second);
    std::fs::remove_dir_all(&out)?;
    Ok(())
}
