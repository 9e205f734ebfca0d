//! OCI hooks: programs run at the lifecycle's points with the container's
//! state JSON on stdin. Where each kind runs is the caller's business
//! (boxrun for prestart, createRuntime, poststart and poststop; the init,
//! in the container's namespaces, for createContainer and startContainer).

use std::{
    io::{Read as _, Seek as _, Write as _},
    os::{
        fd::FromRawFd as _,
        unix::process::{CommandExt as _, ExitStatusExt as _},
    },
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use oci_spec::runtime::{Hook, Hooks};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum HookError {
    #[error("{kind} hook {path}: {source}")]
    Spawn {
        kind: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{kind} hook {path} exited with {status}{}", output_suffix(.output))]
    Failed {
        kind: &'static str,
        path: PathBuf,
        status: String,
        /// The start of what it printed.
        output: String,
    },
    #[error("{kind} hook {path} timed out after {secs} s (hooks[].timeout) and was killed")]
    Timeout {
        kind: &'static str,
        path: PathBuf,
        secs: i64,
    },
}

fn output_suffix(s: &str) -> String {
    let s = s.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

/// The hook kinds, in lifecycle order, with their config.json names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Prestart,
        Kind::CreateRuntime,
        Kind::CreateContainer,
        Kind::StartContainer,
        Kind::Poststart,
        Kind::Poststop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    pub fn of(self, hooks: Option<&Hooks>) -> &[Hook] {
        let Some(h) = hooks else { return &[] };
        let list = match self {
            #[allow(deprecated)]
            Kind::Prestart => h.prestart(),
            Kind::CreateRuntime => h.create_runtime(),
            Kind::CreateContainer => h.create_container(),
            Kind::StartContainer => h.start_container(),
            Kind::Poststart => h.poststart(),
            Kind::Poststop => h.poststop(),
        };
        list.as_deref().unwrap_or_default()
    }
}

/// Runs every hook of `kind` in order, each with `state` (the OCI state
/// JSON) on stdin; stops at the first failure.
pub fn run(kind: Kind, hooks: Option<&Hooks>, state: &[u8]) -> Result<(), HookError> {
    for h in kind.of(hooks) {
        run_one(kind.name(), h, state)?;
    }
    Ok(())
}

/// Runs the hooks of a kind whose failures the spec says only to warn of
/// (poststart, poststop): all of them run.
pub fn run_warn(kind: Kind, hooks: Option<&Hooks>, state: &[u8]) {
    for h in kind.of(hooks) {
        if let Err(e) = run_one(kind.name(), h, state) {
            tracing::warn!("{e}");
        }
    }
}

fn run_one(kind: &'static str, h: &Hook, state: &[u8]) -> Result<(), HookError> {
    let path = h.path().clone();
    let spawn_err = |source| HookError::Spawn {
        kind,
        path: path.clone(),
        source,
    };
    let args = h.args().clone().unwrap_or_default();
    // Its output goes to an anonymous file, not a pipe: a pipe would stall
    // a talkative hook while we wait for it, and reading it would need a
    // thread (the init must stay single-threaded).
    // SAFETY: memfd_create with a constant name.
    let out = unsafe { libc::memfd_create(c"boxrun-hook".as_ptr(), libc::MFD_CLOEXEC) };
    if out < 0 {
        return Err(spawn_err(std::io::Error::last_os_error()));
    }
    // SAFETY: a new fd we own.
    let mut out = std::fs::File::from(unsafe { std::os::fd::OwnedFd::from_raw_fd(out) });
    let mut cmd = Command::new(&path);
    if let Some(a0) = args.first() {
        cmd.arg0(a0);
    }
    cmd.args(args.iter().skip(1))
        .env_clear()
        .envs(h.env().iter().flatten().filter_map(|kv| kv.split_once('=')))
        .stdin(Stdio::piped())
        .stdout(out.try_clone().map_err(spawn_err)?)
        .stderr(out.try_clone().map_err(spawn_err)?);
    let mut child = cmd.spawn().map_err(spawn_err)?;
    // A hook may exit without reading its stdin: EPIPE is not a failure.
    if let Some(mut stdin) = child.stdin.take()
        && let Err(e) = stdin.write_all(state)
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        let _ = child.kill();
        let _ = child.wait();
        return Err(spawn_err(e));
    }
    let deadline = h
        .timeout()
        .map(|s| Instant::now() + Duration::from_secs(s.max(1) as u64));
    let status = loop {
        if let Some(st) = child.try_wait().map_err(spawn_err)? {
            break st;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HookError::Timeout {
                kind,
                path,
                secs: h.timeout().unwrap_or_default(),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    let _ = out.seek(std::io::SeekFrom::Start(0));
    let _ = out.take(4096).read_to_string(&mut stderr);
    let status = match (status.code(), status.signal()) {
        (Some(c), _) => format!("status {c}"),
        (_, Some(s)) => format!("signal {s}"),
        _ => status.to_string(),
    };
    Err(HookError::Failed {
        kind,
        path,
        status,
        output: stderr,
    })
}
