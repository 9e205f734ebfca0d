//! What a container is between commands: one directory per container under
//! the state root (`--root`, default /run/boxrun), holding `state.json`
//! and, until `start`, the `exec.fifo` the init process waits on.
//!
//! `create` makes the directory with mkdir(2), which fails if it exists, so
//! two creates of one id cannot both win; every other command holds an
//! exclusive flock(2) on the directory while it reads or changes it.

use std::{
    fs::{self, File},
    io,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
};

use std::os::unix::fs::DirBuilderExt as _;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub const DEFAULT_ROOT: &str = "/run/boxrun";
const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";

#[derive(Debug, Error)]
pub enum StateError {
    #[error("container `{0}` already exists")]
    Exists(String),
    #[error("container `{0}` does not exist")]
    NotFound(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: corrupt state: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// OCI status of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

/// What boxrun keeps of a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    /// Host pid of the container's init process (0 before it exists).
    pub pid: i32,
    pub bundle: PathBuf,
    #[serde(default)]
    pub annotations: std::collections::HashMap<String, String>,
    /// Start time of the init (field 22 of /proc/PID/stat): tells a live
    /// init from a recycled pid.
    #[serde(default)]
    pub init_start_time: u64,
    /// Every cgroup directory boxrun created for the container.
    #[serde(default)]
    pub cgroups: Vec<PathBuf>,
    /// Whether boxrun created the cgroups (and so removes them).
    #[serde(default)]
    pub owns_cgroups: bool,
    /// CLOCK_MONOTONIC of creation, ns.
    #[serde(default)]
    pub created_ns: u64,
    /// The spec's hooks: poststop runs at `delete`, when the bundle may
    /// have changed or gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<oci_spec::runtime::Hooks>,
}

/// The OCI `state` output: only the standard fields.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub bundle: &'a Path,
    pub annotations: &'a std::collections::HashMap<String, String>,
}

impl State {
    /// The OCI state JSON, as hooks get it on stdin.
    pub fn oci_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.oci()).unwrap_or_default()
    }

    pub fn oci(&self) -> OciState<'_> {
        OciState {
            oci_version: &self.oci_version,
            id: &self.id,
            status: self.status,
            pid: (self.status != Status::Stopped && self.pid > 0).then_some(self.pid),
            bundle: &self.bundle,
            annotations: &self.annotations,
        }
    }
}

/// The state root.
#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
}

/// A container's directory, locked for the lifetime of this value.
#[derive(Debug)]
pub struct Locked {
    pub dir: PathBuf,
    pub id: String,
    _lock: File,
}

impl Root {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes the container's directory; fails if the id is taken.
    pub fn create(&self, id: &str) -> Result<Locked, StateError> {
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let dir = self.dir.join(id);
        // Private: the exec fifo inside may be written by anyone who
        // reaches it.
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StateError::Exists(id.to_owned()));
            }
            Err(e) => return Err(io_err(&dir)(e)),
        }
        lock(dir, id)
    }

    /// Opens and locks an existing container's directory.
    pub fn open(&self, id: &str) -> Result<Locked, StateError> {
        let dir = self.dir.join(id);
        if !dir.is_dir() {
            return Err(StateError::NotFound(id.to_owned()));
        }
        lock(dir, id)
    }

    /// Ids of every container under the root.
    pub fn list(&self) -> Result<Vec<String>, StateError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.dir)(e)),
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

fn lock(dir: PathBuf, id: &str) -> Result<Locked, StateError> {
    let f = File::open(&dir).map_err(io_err(&dir))?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io_err(&dir)(io::Error::last_os_error()));
    }
    Ok(Locked {
        dir,
        id: id.to_owned(),
        _lock: f,
    })
}

impl Locked {
    /// The fd holding the lock; a forked child must close it, or it would
    /// keep the container locked for as long as it lives.
    pub fn lock_fd(&self) -> std::os::fd::RawFd {
        self._lock.as_raw_fd()
    }

    pub fn load(&self) -> Result<State, StateError> {
        let path = self.dir.join(STATE_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StateError::NotFound(self.id.clone()));
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        serde_json::from_str(&text).map_err(|source| StateError::Corrupt { path, source })
    }

    /// Writes the state atomically (temp file + rename).
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(".state.json.tmp");
        let data = serde_json::to_vec_pretty(state).expect("state serializes");
        fs::write(&tmp, data).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))
    }

    pub fn fifo(&self) -> PathBuf {
        self.dir.join(EXEC_FIFO)
    }

    /// Removes the directory and everything in it.
    pub fn remove(self) -> Result<(), StateError> {
        fs::remove_dir_all(&self.dir).map_err(io_err(&self.dir))
    }
}

/// Start time of `pid` in clock ticks since boot, if it lives.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may hold spaces and parentheses: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process `state` names still is that container's init.
pub fn init_alive(state: &State) -> bool {
    state.pid > 0
        && start_time(state.pid).is_some_and(|t| t == state.init_start_time)
        && !is_zombie(state.pid)
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_is_exclusive_and_state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path().join("state"));
        let c = root.create("a").unwrap();
        assert!(matches!(root.create("a"), Err(StateError::Exists(_))));
        let s = State {
            oci_version: "1.0.2".into(),
            id: "a".into(),
            status: Status::Created,
            pid: 42,
            bundle: "/b".into(),
            annotations: Default::default(),
            init_start_time: 7,
            cgroups: vec!["/sys/fs/cgroup/pids/a".into()],
            owns_cgroups: true,
            created_ns: 1,
            hooks: None,
        };
        c.save(&s).unwrap();
        drop(c);
        let c = root.open("a").unwrap();
        let back = c.load().unwrap();
        assert_eq!(back.pid, 42);
        assert_eq!(back.status, Status::Created);
        let oci = serde_json::to_value(back.oci()).unwrap();
        assert_eq!(oci["status"], "created");
        assert_eq!(oci["ociVersion"], "1.0.2");
        assert_eq!(root.list().unwrap(), vec!["a".to_owned()]);
        c.remove().unwrap();
        assert!(matches!(root.open("a"), Err(StateError::NotFound(_))));
    }

    #[test]
    fn own_start_time_is_readable() {
        let me = std::process::id() as i32;
        assert!(start_time(me).is_some());
        assert_eq!(start_time(i32::MAX), None);
    }
}
