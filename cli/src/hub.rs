//! `ganfold hub`: pack a run as a Hub model repository, verify one, install into the local cache.

use anyhow::bail;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args)]
pub struct HubArgs {
    #[command(subcommand)]
    cmd: HubCmd,
}

#[derive(Subcommand)]
enum HubCmd {
    /// Make a model repository folder (ready to upload to the Hub) from a finished run.
    Pack {
        #[arg(value_name = "RUN_DIR")]
        run: PathBuf,
        /// The model id it will be published as, `org/name`.
        #[arg(long)]
        id: String,
        /// Output folder (must not exist or be empty).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check model folders against their manifests (sha256 of every file).
    Verify {
        #[arg(value_name = "MODEL_DIR", required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Install model folders into the local Hub cache, so `--model org/name` resolves offline.
    /// With no folder: every folder under ./pretrained.
    Install {
        #[arg(value_name = "MODEL_DIR")]
        dirs: Vec<PathBuf>,
        /// Cache directory (default: HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
}

pub fn main(args: &HubArgs) -> anyhow::Result<()> {
    match &args.cmd {
        HubCmd::Pack { run, id, out } => {
            let m = ganfold_hub::pack(run, id, out)?;
            println!(
                "packed {} ({} at step {}, {} files) into {}",
                m.id,
                m.method,
                m.steps,
                m.files.len() + 1,
                out.display()
            );
            Ok(())
        }
        HubCmd::Verify { dirs } => {
            for d in dirs {
                let (m, _) = ganfold_hub::verify_dir(d)?;
                println!("ok {} ({} files) {}", m.id, m.files.len(), d.display());
            }
            Ok(())
        }
        HubCmd::Install { dirs, cache_dir } => {
            let dirs = if dirs.is_empty() { shipped()? } else { dirs.clone() };
            let cache = cache_dir.clone().unwrap_or_else(ganfold_hub::default_cache_dir);
            for d in &dirs {
                let (m, _) = ganfold_hub::verify_dir(d)?;
                let snap = ganfold_hub::install(d, &cache)?;
                println!("installed {} -> {}", m.id, snap.display());
            }
            Ok(())
        }
    }
}

fn shipped() -> anyhow::Result<Vec<PathBuf>> {
    let root = PathBuf::from("pretrained");
    let Ok(rd) = std::fs::read_dir(&root) else {
        bail!("no model folder given and ./pretrained does not exist (run from the repository root, or name folders)");
    };
    let mut v: Vec<PathBuf> =
        rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join(ganfold_hub::MANIFEST).is_file()).collect();
    v.sort();
    if v.is_empty() {
        bail!("./pretrained holds no model folders");
    }
    Ok(v)
}
