//! The stock `ganfold` binary: the command line of `ganfold_cli` with the built-in methods.

fn main() -> std::process::ExitCode {
    ganfold_cli::main()
}
