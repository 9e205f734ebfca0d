//! `boxtrace trace [--all] -- CMD...`

use std::{
    fs::File,
    io::{self, BufWriter},
    os::unix::process::ExitStatusExt as _,
    process::{ExitCode, ExitStatus},
    time::Duration,
};

use anyhow::{Context as _, bail};
use boxtrace::{
    output::{JsonLines, LiveView},
    trace::{
        filter::{Filter, parse_kinds},
        preflight,
        probes::{Options, Probes, check_ring_bytes},
        session::{Summary, Target, trace},
        tracefs::with_tracefs,
    },
};

use super::{EXIT_TOOL_ERROR, TraceArgs};

pub fn run(args: TraceArgs) -> anyhow::Result<ExitCode> {
    // Check all input before any kernel work.
    let filter = Filter {
        kinds: args.kind.as_deref().map(parse_kinds).transpose()?,
        containers: args.container.clone(),
        no_threads: args.no_threads,
    };
    let target = if args.all {
        let duration = match args.duration {
            Some(s) if !(s.is_finite() && s > 0.0) => {
                bail!("--duration must be a positive number of seconds, got {s}")
            }
            Some(s) => Some(Duration::from_secs_f64(s)),
            None => None,
        };
        Target::All { duration }
    } else {
        Target::Command(args.command.clone())
    };
    let ring_bytes = check_ring_bytes(args.ring_kib.saturating_mul(1024))
        .with_context(|| format!("--ring-kib {}", args.ring_kib))?;
    let mut json = match &args.out {
        Some(path) => Some(JsonLines::new(BufWriter::new(
            File::create(path).with_context(|| format!("cannot write --out {}", path.display()))?,
        ))),
        None => None,
    };
    preflight::check()?;
    let opts = Options {
        all: args.all,
        sched_switch: args.sched,
        ring_bytes,
    };
    // Before any thread exists: with_tracefs may switch mount namespaces.
    let mut probes = with_tracefs(|fs| Probes::attach(fs, opts))??;
    if args.all {
        eprintln!("boxtrace: tracing every container start; Ctrl-C to stop");
    }

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
        .enable_time()
        .build()
        .context("starting the event loop")?;
    let summary = rt.block_on(trace(&mut probes, &target, &filter, &mut sink))?;
    drop(live);
    if let Some(json) = json.as_mut() {
        json.flush().context("writing --out")?;
    }
    report(&summary);
    if args.fail_on_loss && summary.losses.total() > 0 {
        eprintln!(
            "boxtrace: --fail-on-loss: {} events lost",
            summary.losses.total()
        );
        return Ok(ExitCode::from(EXIT_TOOL_ERROR));
    }
    Ok(ExitCode::from(summary.status.map_or(0, exit_code)))
}

fn report(s: &Summary) {
    let l = &s.losses;
    let mut line = format!("boxtrace: {} events", s.events);
    if s.shown != s.events {
        line.push_str(&format!(" ({} shown)", s.shown));
    }
    line.push_str(&format!(", {} lost", l.total()));
    if l.total() > 0 {
        line.push_str(&format!(
            " (ring buffer full: {} per CPU {:?}; tracking table full: {}; syscall table full: {})",
            l.ring_full, l.ring_full_per_cpu, l.track_full, l.pending_full
        ));
    }
    if s.undecodable > 0 {
        line.push_str(&format!(", {} undecodable records", s.undecodable));
    }
    if !s.containers.is_empty() {
        let list: Vec<String> = s
            .containers
            .iter()
            .map(|(k, id)| format!("{id} (key {k})"))
            .collect();
        line.push_str(&format!("; containers: {}", list.join(", ")));
    }
    if let Some(status) = s.status {
        line.push_str(&format!("; command {}", describe(status)));
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
