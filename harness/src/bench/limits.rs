//! Limit-enforcement scenarios: a container with limits set through the
//! bundle's `linux.resources` (so any OCI runtime can be compared), its
//! cgroup files sampled from the host at a high rate while the workload
//! pushes against the limit.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::driver::{Cli, DriverError, Runtime as _, now_ns, wait_exit};

#[derive(Debug, Error)]
pub enum LimitsError {
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error("reading /proc/{pid}/cgroup: {source}")]
    Cgroup { pid: i32, source: std::io::Error },
    #[error("the container's {controller} cgroup was not found in /proc/{pid}/cgroup")]
    NoController { pid: i32, controller: String },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The container's cgroup directory for `controller` (v1), or its only one
/// (v2), from the init's /proc entry.
pub fn cgroup_dir(pid: i32, controller: &str) -> Result<PathBuf, LimitsError> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|source| LimitsError::Cgroup { pid, source })?;
    let v2 = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        let rel = path.trim_start_matches('/');
        if v2 && ctrls.is_empty() {
            return Ok(Path::new("/sys/fs/cgroup").join(rel));
        }
        if !v2 && ctrls.split(',').any(|c| c == controller) {
            return Ok(Path::new("/sys/fs/cgroup").join(controller).join(rel));
        }
    }
    Err(LimitsError::NoController {
        pid,
        controller: controller.to_owned(),
    })
}

pub fn read(path: &Path) -> Result<String, LimitsError> {
    std::fs::read_to_string(path).map_err(|source| LimitsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// A number from a one-value file.
pub fn read_u64(path: &Path) -> Result<u64, LimitsError> {
    Ok(read(path)?.trim().parse().unwrap_or(0))
}

/// A `key value` line of a flat-keyed file (cpu.stat, memory.events...).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// A container made for a scenario, deleted (forcibly) when dropped.
pub struct Container<'a> {
    pub rt: &'a Cli,
    pub id: String,
    pub pid: i32,
    pub stdout: PathBuf,
}

impl<'a> Container<'a> {
    pub fn create(rt: &'a Cli, bundle: &Path, id: &str) -> Result<Self, LimitsError> {
        let stdout = rt.files.join(format!("{id}.out"));
        let f = std::fs::File::create(&stdout).map_err(|source| LimitsError::Read {
            path: stdout.clone(),
            source,
        })?;
        let pid = rt.create(bundle, id, None, Some(f))?;
        Ok(Self {
            rt,
            id: id.to_owned(),
            pid,
            stdout,
        })
    }

    pub fn start(&self) -> Result<u64, LimitsError> {
        self.rt.step("start", &self.id, &[])?;
        Ok(now_ns())
    }

    /// What the workload printed.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Waits for the init to exit; the time it was seen gone.
    pub fn wait(&self) -> Result<u64, LimitsError> {
        wait_exit(self.pid)?;
        Ok(now_ns())
    }

    /// Whether the init still runs (a zombie counts as gone).
    pub fn alive(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).is_ok_and(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, r)| !r.starts_with('Z'))
        })
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        self.rt.force_delete(&self.id);
        let _ = std::fs::remove_file(&self.stdout);
    }
}

/// Samples `f` every `every` until it returns None or `until` passes.
pub fn sample<T>(every: Duration, until: Instant, mut f: impl FnMut(u64) -> Option<T>) -> Vec<T> {
    let mut out = Vec::new();
    while Instant::now() < until {
        match f(now_ns()) {
            Some(v) => out.push(v),
            None => break,
        }
        std::thread::sleep(every);
    }
    out
}

/// One point of a time series: milliseconds since the start, value.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Point {
    pub ms: f64,
    pub value: f64,
}
