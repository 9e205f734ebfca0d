//! `boxrun`: command-line entry point, in runc's shape.

mod cli;

use std::{io::Write as _, path::Path, process::ExitCode};

use clap::Parser as _;

/// Appends the error to `--log` as runc does: containerd's shim reads the
/// last `"level":"error"` line of its log.json to say why a command
/// failed.
fn log_error(path: &Path, json: bool, msg: &str) {
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    let line = if json {
        serde_json::json!({"level": "error", "msg": msg, "time": time}).to_string()
    } else {
        format!("time={time:.3} level=error msg={msg:?}")
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

fn main() -> ExitCode {
    let args = cli::Args::parse();
    cli::init_logging(args.debug);
    let log = args.log.clone();
    let json = args.log_format.as_deref() == Some("json");
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            let msg = format!("{err:#}");
            eprintln!("boxrun: error: {msg}");
            if let Some(path) = &log {
                log_error(path, json, &msg);
            }
            ExitCode::FAILURE
        }
    }
}
