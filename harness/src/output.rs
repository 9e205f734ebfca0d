//! Event output: the live view for people and JSON Lines for programs.

use std::io::{self, Write};

use crate::trace::event::Event;

/// Version of the JSON Lines schema written by `--out` (docs/events.md).
pub const SCHEMA_VERSION: u32 = 2;

/// One line per event: ms since the first event, monotonic timestamp,
/// container, pid/tid, comm, then the decoded event and how a syscall
/// returned.
pub struct LiveView<W: Write> {
    out: W,
    first_ns: Option<u64>,
}

impl<W: Write> LiveView<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        writeln!(
            out,
            "{:>10} {:>16} {:<16} {:>7} {:>7} {:<16} EVENT",
            "REL_MS", "MONOTONIC_S", "CONTAINER", "PID", "TID", "COMM"
        )?;
        Ok(Self {
            out,
            first_ns: None,
        })
    }

    pub fn write(&mut self, ev: &Event) -> io::Result<()> {
        let first = *self.first_ns.get_or_insert(ev.ts_ns);
        // Syscalls are reported at exit with their entry time: an event can
        // predate the first one shown.
        let rel_ms = (ev.ts_ns as i128 - first as i128) as f64 / 1e6;
        let container = match (&ev.container_id, ev.container) {
            (Some(id), _) => id.clone(),
            (None, 0) => "-".to_owned(),
            (None, key) => key.to_string(),
        };
        write!(
            self.out,
            "{rel_ms:>10.3} {:>6}.{:09} {container:<16.16} {:>7} {:>7} {:<16} {}",
            ev.ts_ns / 1_000_000_000,
            ev.ts_ns % 1_000_000_000,
            ev.pid,
            ev.tid,
            ev.comm,
            ev.detail
        )?;
        match &ev.returned {
            Some(r) => writeln!(self.out, " {r}"),
            None => writeln!(self.out),
        }
    }
}

/// JSON Lines: one object per event, with the schema version.
pub struct JsonLines<W: Write> {
    out: W,
}

#[derive(serde::Serialize)]
struct Line<'a> {
    v: u32,
    #[serde(flatten)]
    event: &'a Event,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        Self { out }
    }

    pub fn write(&mut self, ev: &Event) -> io::Result<()> {
        serde_json::to_writer(
            &mut self.out,
            &Line {
                v: SCHEMA_VERSION,
                event: ev,
            },
        )?;
        self.out.write_all(b"\n")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
