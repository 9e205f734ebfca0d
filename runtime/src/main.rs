//! `boxrun`: command-line entry point, in runc's shape.

mod cli;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    cli::init_logging(args.debug);
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("boxrun: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
