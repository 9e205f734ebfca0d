//! cgroups behind one interface with two drivers: v1 (one directory per
//! hierarchy) and v2 (one directory in the unified tree). Auto-detected:
//! a host whose /sys/fs/cgroup is cgroup2 is pure v2; a hybrid host uses
//! its v1 hierarchies for controllers.

pub mod device_filter;
mod settings;
mod v1;
mod v2;

use std::{
    fs, io,
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use settings::{Setting, shares_to_weight};

#[derive(Debug, Error)]
pub enum CgroupError {
    #[error("cannot create cgroup {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("writing `{value}` to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cgroup controller `{0}` is needed for the limits asked but is not available here")]
    MissingController(&'static str),
    #[error("`linux.resources.unified` needs cgroup v2; this host uses v1 for controllers")]
    UnifiedOnV1,
    #[error(
        "`linux.resources.unified`: `{0}` is not a file of this cgroup (controller not enabled?)"
    )]
    UnifiedFile(String),
    #[error("cgroup {path}: {what}: {source}")]
    DeviceFilter {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
    #[error("cannot read this process's cgroups from /proc/self: {0}")]
    Proc(io::Error),
    #[error("cgroup {path} still has processes after SIGKILL")]
    Busy { path: PathBuf },
    #[error("cannot remove cgroup {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
}

/// The OCI default devices every container may use, char devices as
/// (major, minor; None for all minors): null, zero, full, random,
/// urandom, tty, ptmx, and the ptys.
pub(crate) const DEFAULT_DEVICES: &[(u32, Option<u32>)] = &[
    (1, Some(3)),
    (1, Some(5)),
    (1, Some(7)),
    (1, Some(8)),
    (1, Some(9)),
    (5, Some(0)),
    (5, Some(2)),
    (136, None),
];

/// Which kernel interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Driver {
    V1,
    V2,
}

/// Detects the driver of this host.
pub fn detect() -> Driver {
    // CGROUP2_SUPER_MAGIC on /sys/fs/cgroup itself means pure v2.
    match nix::sys::statfs::statfs("/sys/fs/cgroup") {
        Ok(s) if s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC => Driver::V2,
        _ => Driver::V1,
    }
}

/// A container's cgroup: its directories (one per v1 hierarchy, or one).
#[derive(Debug, Clone)]
pub struct Cgroup {
    pub driver: Driver,
    pub dirs: Vec<PathBuf>,
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_owned(),
        value: value.to_owned(),
        source,
    })
}

fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_owned(),
        source,
    })
}

impl Cgroup {
    /// Where the cgroup for `cgroups_path` goes (absolute: from the
    /// hierarchy root; relative: below boxrun's own cgroup). Nothing is
    /// created: the caller records the directories first, so that a
    /// boxrun killed while creating them leaves a state that finds them.
    pub fn plan(driver: Driver, cgroups_path: &Path) -> Result<Self, CgroupError> {
        let dirs = match driver {
            Driver::V1 => v1::plan(cgroups_path)?,
            Driver::V2 => vec![v2::plan(cgroups_path)?],
        };
        Ok(Self { driver, dirs })
    }

    /// Whether any planned directory exists already (then it is not ours
    /// to remove).
    pub fn exists(&self) -> bool {
        self.dirs.iter().any(|d| d.exists())
    }

    /// Creates the planned directories and applies `resources`. On
    /// failure the caller removes them, if they are its own.
    pub fn create(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        match self.driver {
            Driver::V1 => v1::make(self)?,
            Driver::V2 => {
                // A cgroup that already existed (shared) keeps its filter.
                let fresh = !self.exists();
                v2::make(self)?;
                if fresh {
                    v2::attach_devices(self, resources)?;
                }
            }
        }
        resources.map_or(Ok(()), |r| self.apply(r))
    }

    /// Writes the limits of `resources` (also used by `update`).
    pub fn apply(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        match self.driver {
            Driver::V1 => v1::apply(self, r),
            Driver::V2 => v2::apply(self, r),
        }
    }

    /// Moves `pid` into the cgroup.
    pub fn add(&self, pid: i32) -> Result<(), CgroupError> {
        for d in &self.dirs {
            write(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// The v2 directory fd for clone3(CLONE_INTO_CGROUP), when on v2.
    pub fn v2_dir(&self) -> Option<&Path> {
        (self.driver == Driver::V2).then(|| self.dirs[0].as_path())
    }

    /// Pids in the cgroup.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let Some(d) = self.dirs.first() else {
            return Ok(Vec::new());
        };
        let text = match fs::read_to_string(d.join("cgroup.procs")) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(CgroupError::Read {
                    path: d.join("cgroup.procs"),
                    source,
                });
            }
        };
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    pub fn freeze(&self) -> Result<(), CgroupError> {
        match self.driver {
            Driver::V1 => v1::set_frozen(self, true),
            Driver::V2 => v2::set_frozen(self, true),
        }
    }

    pub fn thaw(&self) -> Result<(), CgroupError> {
        match self.driver {
            Driver::V1 => v1::set_frozen(self, false),
            Driver::V2 => v2::set_frozen(self, false),
        }
    }

    /// Times the kernel OOM-killed a task of this cgroup.
    pub fn oom_kills(&self) -> Result<u64, CgroupError> {
        match self.driver {
            Driver::V1 => v1::oom_kills(self),
            Driver::V2 => v2::oom_kills(self),
        }
    }

    /// Kills every process left and removes every directory. Idempotent.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        // A frozen cgroup cannot die: thaw first.
        let _ = self.thaw();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = self.pids()?;
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if Instant::now() > deadline {
                return Err(CgroupError::Busy {
                    path: self.dirs[0].clone(),
                });
            }
            thread::sleep(Duration::from_millis(5));
        }
        for d in &self.dirs {
            remove_dir(d, deadline)?;
        }
        Ok(())
    }
}

/// rmdir, retried while the kernel still finishes exiting tasks (EBUSY).
fn remove_dir(d: &Path, deadline: Instant) -> Result<(), CgroupError> {
    loop {
        match fs::remove_dir(d) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(2));
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: d.to_owned(),
                    source,
                });
            }
        }
    }
}

/// Joins a cgroups path to a base: absolute from `root`, relative from
/// `own` (the caller's cgroup in that hierarchy).
pub fn resolve(root: &Path, own: &str, cgroups_path: &Path) -> PathBuf {
    let rel = cgroups_path.strip_prefix("/").unwrap_or(cgroups_path);
    if cgroups_path.is_absolute() {
        root.join(rel)
    } else {
        root.join(own.trim_start_matches('/')).join(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_absolute_and_relative_paths() {
        let root = Path::new("/sys/fs/cgroup/memory");
        assert_eq!(
            resolve(root, "/process_api/x", Path::new("/boxrun/a")),
            PathBuf::from("/sys/fs/cgroup/memory/boxrun/a")
        );
        assert_eq!(
            resolve(root, "/process_api/x", Path::new("a")),
            PathBuf::from("/sys/fs/cgroup/memory/process_api/x/a")
        );
        assert_eq!(
            resolve(root, "/", Path::new("a")),
            PathBuf::from("/sys/fs/cgroup/memory/a")
        );
    }
}
