//! `boxtrace`: command-line entry point.

mod cli;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
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
