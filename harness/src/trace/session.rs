//! Running a command under the probes and streaming its events.

use std::{ffi::OsString, io, process::ExitStatus};

use aya::maps::{MapData, RingBuf};
use thiserror::Error;
use tokio::{
    io::{Interest, unix::AsyncFd},
    process::Command,
    signal::unix::{SignalKind, signal},
};

use super::{
    event::{DecodeError, Event},
    probes::{ProbeError, Probes},
};

#[derive(Debug, Error)]
pub enum SessionError {
    #[error("no command given to trace")]
    NoCommand,
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("the event ring buffer was already taken")]
    RingTaken,
    #[error("polling the event ring buffer: {0}")]
    Ring(#[source] io::Error),
    #[error("waiting for the traced command: {0}")]
    Wait(#[source] io::Error),
    #[error("installing a signal handler: {0}")]
    Signal(#[source] io::Error),
    #[error("writing events: {0}")]
    Sink(#[source] io::Error),
    #[error(transparent)]
    Probe(#[from] ProbeError),
}

/// What a traced run ended with.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub status: ExitStatus,
    /// Events decoded and passed to the sink.
    pub events: u64,
    /// Records the kernel could not write because the ring buffer was full.
    pub lost: u64,
    /// Records that did not decode (a bug, never expected).
    pub undecodable: u64,
}

/// Receives events as they are decoded.
pub trait EventSink {
    fn event(&mut self, event: &Event) -> io::Result<()>;
}

impl<F: FnMut(&Event) -> io::Result<()>> EventSink for F {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        self(event)
    }
}

struct Reader<'a> {
    sink: &'a mut dyn EventSink,
    events: u64,
    undecodable: u64,
}

impl Reader<'_> {
    fn drain(&mut self, ring: &mut RingBuf<MapData>) -> Result<(), SessionError> {
        while let Some(item) = ring.next() {
            match Event::decode(&item) {
                Ok(ev) => {
                    self.events += 1;
                    self.sink.event(&ev).map_err(SessionError::Sink)?;
                }
                Err(e @ (DecodeError::Short(_) | DecodeError::UnknownKind(_))) => {
                    self.undecodable += 1;
                    tracing::warn!("{e}");
                }
            }
        }
        Ok(())
    }
}

/// Runs `argv` with its whole process tree tracked and feeds every event to
/// `sink` until the command exits. SIGINT/SIGQUIT are left to the command
/// (the terminal sends them to it too); SIGTERM is forwarded to it.
pub async fn trace_command(
    probes: &mut Probes,
    argv: &[OsString],
    sink: &mut dyn EventSink,
) -> Result<Summary, SessionError> {
    let (program, args) = argv.split_first().ok_or(SessionError::NoCommand)?;
    let ring = probes.take_events().ok_or(SessionError::RingTaken)?;
    // SAFETY: the ring buffer owns its fd and keeps it open, unreplaced,
    // for as long as the AsyncFd owns the ring buffer.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| SessionError::Ring(e.into_parts().1))?;
    let mut reader = Reader {
        sink,
        events: 0,
        undecodable: 0,
    };

    let tracker = probes.self_tracker();
    let mut cmd = Command::new(program);
    cmd.args(args);
    // SAFETY: track_self only makes async-signal-safe syscalls.
    unsafe {
        cmd.pre_exec(move || tracker.track_self());
    }
    let mut child = cmd.spawn().map_err(|source| SessionError::Spawn {
        program: program.to_string_lossy().into_owned(),
        source,
    })?;
    tracing::debug!(pid = child.id(), "traced command started");

    let sig = |kind| signal(kind).map_err(SessionError::Signal);
    let mut sigint = sig(SignalKind::interrupt())?;
    let mut sigquit = sig(SignalKind::quit())?;
    let mut sigterm = sig(SignalKind::terminate())?;

    let status = loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard.map_err(SessionError::Ring)?;
                reader.drain(guard.get_inner_mut())?;
                guard.clear_ready();
            }
            status = child.wait() => break status.map_err(SessionError::Wait)?,
            _ = sigint.recv() => tracing::debug!("SIGINT: left to the traced command"),
            _ = sigquit.recv() => tracing::debug!("SIGQUIT: left to the traced command"),
            _ = sigterm.recv() => {
                if let Some(pid) = child.id() {
                    // SAFETY: plain kill(2) on our own child.
                    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
                }
            }
        }
    };
    // Every record of the command was committed before it could exit.
    reader.drain(ring.get_mut())?;
    Ok(Summary {
        status,
        events: reader.events,
        lost: probes.lost()?,
        undecodable: reader.undecodable,
    })
}
