//! The `ganfold` command line. (Interim: only `eval` until the foundation's CLI lands.)

mod eval;

use clap::Parser;

#[derive(Parser)]
#[command(name = "ganfold", about = "Manifold-aware GANs")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Evaluate a run (or real data against itself) and print a JSON report.
    Eval(eval::EvalArgs),
}

fn main() -> anyhow::Result<()> {
    use ganfold_plugins as _;
    match Cli::parse().cmd {
        Cmd::Eval(a) => eval::main(&a),
    }
}
