//! `boxtrace`: command-line entry point.

mod cli;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    // Piped into `head`, end quietly as other command-line tools do
    // (Rust's runtime ignores SIGPIPE, which turns into a panic on print).
    // SAFETY: restoring the default disposition of one signal.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let args = cli::Args::parse();
    cli::init_logging(args.verbose);
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("boxtrace: error: {err:#}");
            ExitCode::from(cli::EXIT_TOOL_ERROR)
        }
    }
}
