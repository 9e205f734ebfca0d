//! summary.json: what a benchmark run measured, with every sample, so
//! `compare` can resample it later.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::startup::{Mode, RuntimeResult};

pub const SCHEMA: u32 = 1;

#[derive(Debug, Error)]
pub enum SummaryError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: not a boxtrace summary: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: summary schema {found}, this boxtrace reads {SCHEMA}")]
    Schema { path: PathBuf, found: u32 },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    pub kernel: String,
    /// `v1` (hybrid or legacy: controllers on v1) or `v2`.
    pub cgroup: String,
    pub cpus: usize,
}

impl Host {
    pub fn this() -> Self {
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        let v2 = nix::sys::statfs::statfs("/sys/fs/cgroup")
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
        Self {
            kernel,
            cgroup: if v2 { "v2" } else { "v1" }.to_owned(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Skipped {
    pub runtime: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub schema: u32,
    pub scenario: String,
    pub mode: Mode,
    pub image: String,
    pub n: usize,
    pub warmup: usize,
    pub concurrency: usize,
    /// Seconds since the epoch when the run began.
    pub started_unix: u64,
    pub host: Host,
    /// True when Ctrl-C stopped the run: the samples are partial.
    pub interrupted: bool,
    pub runtimes: Vec<RuntimeResult>,
    pub skipped: Vec<Skipped>,
    /// The tracer's counts, when the run was traced.
    #[serde(default)]
    pub trace: Option<TraceInfo>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct TraceInfo {
    pub events: u64,
    pub lost: u64,
}

impl Summary {
    pub fn load(path: &Path) -> Result<Self, SummaryError> {
        let text = std::fs::read_to_string(path).map_err(|source| SummaryError::Read {
            path: path.to_owned(),
            source,
        })?;
        let s: Self = serde_json::from_str(&text).map_err(|e| SummaryError::Parse {
            path: path.to_owned(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        if s.schema != SCHEMA {
            return Err(SummaryError::Schema {
                path: path.to_owned(),
                found: s.schema,
            });
        }
        Ok(s)
    }

    pub fn save(&self, path: &Path) -> Result<(), SummaryError> {
        let text = serde_json::to_vec_pretty(self).expect("a summary serializes");
        std::fs::write(path, text).map_err(|source| SummaryError::Write {
            path: path.to_owned(),
            source,
        })
    }

    pub fn runtime(&self, name: &str) -> Option<&RuntimeResult> {
        self.runtimes.iter().find(|r| r.name == name)
    }
}
