//! The fuzz targets' logic (`ganfold_tests::fuzz`) over the checked-in seed corpus, every input
//! that ever crashed a target (`fuzz/regressions/<target>/`), and a few thousand seeded
//! mutations of the seeds, so the fuzzers' findings stay fixed in a plain `cargo test`.

use ganfold_core::Rng;
use ganfold_tests::fuzz;
use std::path::{Path, PathBuf};

type Target = (&'static str, fn(&[u8]));

const TARGETS: &[Target] =
    &[("idx", fuzz::idx), ("config", fuzz::config), ("checkpoint", fuzz::checkpoint), ("manifest", fuzz::manifest)];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("fuzz")
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    out.sort();
    out.into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

/// Byte-level mutations like libFuzzer's: flip, overwrite, insert, delete, truncate, splice.
fn mutate(base: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let n = b.len().max(1);
        match rng.below(6) {
            0 if !b.is_empty() => {
                let i = rng.below(n);
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let i = rng.below(n);
                b[i] = [0, 0xff, 0x7f, 0x80, b'9', b'"'][rng.below(6)];
            }
            2 => {
                let i = rng.below(n + 1).min(b.len());
                b.insert(i, rng.below(256) as u8);
            }
            3 if !b.is_empty() => {
                let i = rng.below(n);
                b.remove(i);
            }
            4 => {
                let i = rng.below(n + 1).min(b.len());
                b.truncate(i);
            }
            _ if !other.is_empty() => {
                let (i, j) = (rng.below(b.len() + 1), rng.below(other.len()));
                let k = (j + 1 + rng.below(64)).min(other.len());
                b.splice(i..i, other[j..k].iter().copied());
            }
            _ => {}
        }
    }
    b
}

#[test]
fn seeds_and_regressions_replay_without_panics() {
    for (name, f) in TARGETS {
        let seeds = files(&fuzz_dir().join("seeds").join(name));
        assert!(!seeds.is_empty(), "fuzz/seeds/{name} is empty");
        for (p, b) in seeds.iter().chain(&files(&fuzz_dir().join("regressions").join(name))) {
            let r = std::panic::catch_unwind(|| f(b));
            assert!(r.is_ok(), "target {name} panics on {}", p.display());
        }
    }
}

#[test]
fn seeded_mutations_of_the_seeds_never_panic() {
    let mut rng = Rng::new(0x5eed);
    for (name, f) in TARGETS {
        let mut seeds = files(&fuzz_dir().join("seeds").join(name));
        if *name == "checkpoint" {
            // Fresh ones too, so the mutations reach the models' loaders even if the layout changed.
            seeds.extend(fuzz::seed_checkpoints().into_iter().map(|(n, b)| (PathBuf::from(n), b)));
        }
        // The checkpoint target builds models for each parsable input: fewer, bigger inputs.
        let rounds = if *name == "checkpoint" { 150 } else { 1500 };
        for _ in 0..rounds {
            let a = &seeds[rng.below(seeds.len())].1;
            let b = &seeds[rng.below(seeds.len())].1;
            let input = mutate(a, b, &mut rng);
            if std::panic::catch_unwind(|| f(&input)).is_err() {
                let dir = std::env::temp_dir().join(format!("ganfold-fuzz-{name}"));
                std::fs::create_dir_all(&dir).unwrap();
                let p = dir.join(format!("crash-{:016x}", Rng::derive(input.len() as u64, "name").next_u64()));
                std::fs::write(&p, &input).unwrap();
                panic!("target {name} panics on a mutated seed, saved to {}", p.display());
            }
        }
    }
}

/// Writes the checkpoint target's seeds (real checkpoints of `fuzz::MODELS`):
/// `cargo test -p ganfold-tests --test fuzz_corpus -- --ignored write_checkpoint_seeds`.
#[test]
#[ignore]
fn write_checkpoint_seeds() {
    let dir = fuzz_dir().join("seeds").join("checkpoint");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in fuzz::seed_checkpoints() {
        std::fs::write(dir.join(format!("{name}.safetensors")), &bytes).unwrap();
    }
}
