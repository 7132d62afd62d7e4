//! The `ganfold` command line with WGAN-GP linked in: every subcommand (`train`, `sample`,
//! `eval`, `experiment`, `hub`, `list`) sees the method `wgan-gp` beside the built-in ones.

use wgan_gp as _; // links the plugin, so its `inventory` registration is seen

fn main() -> std::process::ExitCode {
    // SAFETY: the first statement of main, before any other thread exists. The gradient penalty
    // differentiates a gradient, which Candle drops unless this is on for the whole process.
    unsafe { ganfold_core::nn::enable_second_order() };
    ganfold_cli::main()
}
