//! Running the probes over a command's tree, or over every container start
//! on the host, and streaming the decoded events.

use std::{ffi::OsString, io, process::ExitStatus, time::Duration};

use aya::maps::{MapData, RingBuf};
use thiserror::Error;
use tokio::{
    io::{Interest, unix::AsyncFd},
    process::{Child, Command},
    signal::unix::{Signal, SignalKind, signal},
};

use super::{
    attribution::Attribution,
    event::Event,
    filter::Filter,
    probes::{Losses, ProbeError, Probes},
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

/// What to trace.
#[derive(Debug, Clone)]
pub enum Target {
    /// A command and its whole process tree.
    Command(Vec<OsString>),
    /// Every container start on the host, until SIGINT/SIGTERM or the
    /// duration elapses.
    All { duration: Option<Duration> },
    /// Every container start on the host, until `stop` is notified. The
    /// caller handles signals (benchmarks stop cleanly on Ctrl-C).
    Until(std::sync::Arc<tokio::sync::Notify>),
}

/// What a traced run ended with.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The command's status (`Target::Command` only).
    pub status: Option<ExitStatus>,
    /// Events decoded.
    pub events: u64,
    /// Events passed to the sink (after filtering).
    pub shown: u64,
    /// Records the kernel could not deliver.
    pub losses: Losses,
    /// Records that did not decode (a bug, never expected).
    pub undecodable: u64,
    /// Containers seen, with the runtime's id where it was learnt.
    pub containers: Vec<(u32, String)>,
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
    filter: &'a Filter,
    attribution: Attribution,
    events: u64,
    shown: u64,
    undecodable: u64,
}

impl Reader<'_> {
    fn drain(&mut self, ring: &mut RingBuf<MapData>) -> Result<(), SessionError> {
        while let Some(item) = ring.next() {
            match Event::decode(&item) {
                Ok(mut ev) => {
                    self.events += 1;
                    self.attribution.observe(&mut ev);
                    if self.filter.matches(&ev) {
                        self.shown += 1;
                        self.sink.event(&ev).map_err(SessionError::Sink)?;
                    }
                }
                Err(e) => {
                    self.undecodable += 1;
                    tracing::warn!("{e}");
                }
            }
        }
        Ok(())
    }
}

struct Signals {
    int: Signal,
    quit: Signal,
    term: Signal,
}

impl Signals {
    fn new() -> Result<Self, SessionError> {
        let sig = |kind| signal(kind).map_err(SessionError::Signal);
        Ok(Self {
            int: sig(SignalKind::interrupt())?,
            quit: sig(SignalKind::quit())?,
            term: sig(SignalKind::terminate())?,
        })
    }
}

/// The next delivery of `signal`; never, without a handler.
async fn recv(signal: &mut Option<Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Starts `argv` so that it tracks itself between fork and exec.
fn spawn_tracked(probes: &Probes, argv: &[OsString]) -> Result<Child, SessionError> {
    let (program, args) = argv.split_first().ok_or(SessionError::NoCommand)?;
    let tracker = probes.self_tracker();
    let mut cmd = Command::new(program);
    cmd.args(args);
    // SAFETY: track_self only makes async-signal-safe syscalls.
    unsafe {
        cmd.pre_exec(move || tracker.track_self());
    }
    let child = cmd.spawn().map_err(|source| SessionError::Spawn {
        program: program.to_string_lossy().into_owned(),
        source,
    })?;
    tracing::debug!(pid = child.id(), "traced command started");
    Ok(child)
}

/// The child's exit; never, when there is no child.
async fn wait(child: &mut Option<Child>) -> io::Result<ExitStatus> {
    match child {
        Some(c) => c.wait().await,
        None => std::future::pending().await,
    }
}

/// Traces `target` and feeds every event that passes `filter` to `sink`.
///
/// With a command: SIGINT/SIGQUIT are left to it (the terminal sends them
/// to it too), SIGTERM is forwarded, and tracing ends when it exits. With
/// `--all`: SIGINT or SIGTERM ends tracing. Either way the ring buffer is
/// drained once more at the end, so nothing committed is dropped.
pub async fn trace(
    probes: &mut Probes,
    target: &Target,
    filter: &Filter,
    sink: &mut dyn EventSink,
) -> Result<Summary, SessionError> {
    let ring = probes.take_events().ok_or(SessionError::RingTaken)?;
    // SAFETY: the ring buffer owns its fd and keeps it open, unreplaced,
    // for as long as the AsyncFd owns the ring buffer.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| SessionError::Ring(e.into_parts().1))?;
    let mut reader = Reader {
        sink,
        filter,
        attribution: Attribution::default(),
        events: 0,
        shown: 0,
        undecodable: 0,
    };
    // Handlers only when tracing ends on a signal: registering them would
    // replace the caller's.
    let (mut int, mut quit, mut term) = match target {
        Target::Until(_) => (None, None, None),
        _ => {
            let s = Signals::new()?;
            (Some(s.int), Some(s.quit), Some(s.term))
        }
    };
    // Records are sent without waking us (see the probes' `send`): poll.
    let mut poll = tokio::time::interval(Duration::from_millis(boxtrace_common::POLL_MS));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let (mut child, duration) = match target {
        Target::Command(argv) => (Some(spawn_tracked(probes, argv)?), None),
        Target::All { duration } => (None, *duration),
        Target::Until(_) => (None, None),
    };
    let stop = async {
        match target {
            Target::Until(n) => n.notified().await,
            _ => std::future::pending().await,
        }
    };
    tokio::pin!(stop);
    // Read once: the select below borrows the child for waiting.
    let child_pid = child.as_ref().and_then(Child::id);
    let deadline = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let status = loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard.map_err(SessionError::Ring)?;
                reader.drain(guard.get_inner_mut())?;
                guard.clear_ready();
            }
            _ = poll.tick() => reader.drain(ring.get_mut())?,
            status = wait(&mut child) => break Some(status.map_err(SessionError::Wait)?),
            () = &mut deadline => break None,
            () = &mut stop => break None,
            // The terminal sends SIGINT/SIGQUIT to a traced command too: it
            // decides; with --all they end tracing.
            _ = recv(&mut int), if child_pid.is_none() => break None,
            _ = recv(&mut quit), if child_pid.is_none() => break None,
            _ = recv(&mut term) => match child_pid {
                // SAFETY: plain kill(2) on our own child.
                Some(pid) => unsafe { libc::kill(pid as i32, libc::SIGTERM); },
                None => break None,
            },
        }
    };
    // Every record of the command was committed before it could exit.
    reader.drain(ring.get_mut())?;
    let mut containers: Vec<(u32, String)> = reader
        .attribution
        .containers()
        .map(|(k, id)| (k, id.to_owned()))
        .collect();
    containers.sort();
    Ok(Summary {
        status,
        events: reader.events,
        shown: reader.shown,
        losses: probes.losses()?,
        undecodable: reader.undecodable,
        containers,
    })
}
