//! `boxtrace trace -- CMD...`

use std::{
    fs::File,
    io::{self, BufWriter},
    os::unix::process::ExitStatusExt as _,
    process::{ExitCode, ExitStatus},
};

use anyhow::Context as _;
use boxtrace::{
    output::{JsonLines, LiveView},
    trace::{
        preflight,
        probes::Probes,
        session::{Summary, trace_command},
        tracefs::with_tracefs,
    },
};

use super::{EXIT_TOOL_ERROR, TraceArgs};

pub fn run(args: TraceArgs) -> anyhow::Result<ExitCode> {
    // Open the output first: a bad path should fail before any kernel work.
    let mut json = match &args.out {
        Some(path) => Some(JsonLines::new(BufWriter::new(
            File::create(path).with_context(|| format!("cannot write --out {}", path.display()))?,
        ))),
        None => None,
    };
    preflight::check()?;
    // Before any thread exists: with_tracefs may switch mount namespaces.
    let mut probes = with_tracefs(Probes::attach)??;

    let mut live = if args.quiet {
        None
    } else {
        Some(LiveView::new(io::stderr().lock())?)
    };
    let mut sink = |ev: &_| -> io::Result<()> {
        if let Some(live) = live.as_mut() {
            live.write(ev)?;
        }
        if let Some(json) = json.as_mut() {
            json.write(ev)?;
        }
        Ok(())
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("starting the event loop")?;
    let summary = rt.block_on(trace_command(&mut probes, &args.command, &mut sink))?;
    drop(live);
    if let Some(json) = json.as_mut() {
        json.flush().context("writing --out")?;
    }
    report(&summary);
    if args.fail_on_loss && summary.lost > 0 {
        eprintln!("boxtrace: --fail-on-loss: {} events lost", summary.lost);
        return Ok(ExitCode::from(EXIT_TOOL_ERROR));
    }
    Ok(ExitCode::from(exit_code(summary.status)))
}

fn report(s: &Summary) {
    let mut line = format!(
        "boxtrace: {} events, {} lost; command {}",
        s.events,
        s.lost,
        describe(s.status)
    );
    if s.undecodable > 0 {
        line.push_str(&format!("; {} undecodable records", s.undecodable));
    }
    eprintln!("{line}");
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "ended".to_owned(),
    }
}

/// The traced command's status, as a shell reports it (128+N on signal N).
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(sig)) => 128u8.saturating_add(sig as u8),
        _ => EXIT_TOOL_ERROR,
    }
}
