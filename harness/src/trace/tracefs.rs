//! Locating tracefs, mounting it when it is missing, and reading event
//! record formats.
//!
//! When tracefs is not mounted, boxtrace mounts it inside a private mount
//! namespace only for the time it needs it (attaching the probes), then
//! returns to the original namespace: the host's mount table is never
//! touched and nothing is left behind, even if boxtrace is killed.

use std::{
    fs::{self, File},
    os::fd::AsFd,
    path::{Path, PathBuf},
};

use nix::{
    mount::{MsFlags, mount},
    sched::{CloneFlags, setns, unshare},
    unistd::{chroot, fchdir},
};
use thiserror::Error;

/// Where the kernel documents tracefs; aya looks there first.
const TRACEFS_MOUNTPOINT: &str = "/sys/kernel/tracing";
const LEGACY_MOUNTPOINT: &str = "/sys/kernel/debug/tracing";

#[derive(Debug, Error)]
pub enum TracefsError {
    #[error(
        "tracefs is not mounted and boxtrace cannot mount it ({step}: {source}); \
         this needs CAP_SYS_ADMIN: run boxtrace as root, or mount it once with \
         `mount -t tracefs nodev {TRACEFS_MOUNTPOINT}`"
    )]
    Mount {
        step: &'static str,
        source: nix::Error,
    },
    #[error("cannot return to the original mount namespace ({step}: {source})")]
    Restore {
        step: &'static str,
        source: nix::Error,
    },
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "this kernel has no tracepoint {category}/{name} ({path} is missing); \
         boxtrace needs a kernel built with CONFIG_FTRACE_SYSCALLS and sched tracepoints"
    )]
    MissingTracepoint {
        category: String,
        name: String,
        path: PathBuf,
    },
    #[error("{path}: no field `{field}` with an offset in the event format")]
    MissingField { path: PathBuf, field: String },
}

/// A mounted tracefs.
#[derive(Debug, Clone)]
pub struct Tracefs {
    root: PathBuf,
}

impl Tracefs {
    /// The tracefs already mounted at one of the usual places, if any.
    pub fn find() -> Option<Self> {
        [TRACEFS_MOUNTPOINT, LEGACY_MOUNTPOINT]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.join("events").is_dir())
            .map(|root| Self { root })
    }

    /// Tracefs at an explicit root (for reading saved format files).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn event_dir(&self, category: &str, name: &str) -> PathBuf {
        self.root.join("events").join(category).join(name)
    }

    /// Fails with a message naming the tracepoint when the kernel lacks it.
    pub fn require(&self, category: &str, name: &str) -> Result<(), TracefsError> {
        let path = self.event_dir(category, name).join("id");
        if path.is_file() {
            Ok(())
        } else {
            Err(TracefsError::MissingTracepoint {
                category: category.to_owned(),
                name: name.to_owned(),
                path,
            })
        }
    }

    /// The format file of `category/name`.
    pub fn format(&self, category: &str, name: &str) -> Result<Format, TracefsError> {
        self.require(category, name)?;
        let path = self.event_dir(category, name).join("format");
        let text = fs::read_to_string(&path).map_err(|source| TracefsError::Open {
            path: path.clone(),
            source,
        })?;
        Ok(Format { path, text })
    }

    /// Byte offset of `field` in the record of `category/name`.
    pub fn field_offset(
        &self,
        category: &str,
        name: &str,
        field: &str,
    ) -> Result<usize, TracefsError> {
        self.format(category, name)?
            .require(field)
            .map(|f| f.offset)
    }
}

/// One tracepoint's record format.
#[derive(Debug, Clone)]
pub struct Format {
    path: PathBuf,
    text: String,
}

impl Format {
    /// The field, if this kernel's record has it.
    pub fn field(&self, name: &str) -> Option<Field> {
        parse_field(&self.text, name)
    }

    /// The field, or an error naming the format file and the field.
    pub fn require(&self, name: &str) -> Result<Field, TracefsError> {
        self.field(name).ok_or_else(|| TracefsError::MissingField {
            path: self.path.clone(),
            field: name.to_owned(),
        })
    }
}

/// Where a field sits in a tracepoint record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub offset: usize,
    /// A `__data_loc` string: the field holds (len << 16 | offset).
    pub data_loc: bool,
}

/// Finds the `field:` line whose declaration names `field`.
pub fn parse_field(format: &str, field: &str) -> Option<Field> {
    format.lines().find_map(|line| {
        let line = line.trim();
        let decl = line.strip_prefix("field:")?.split(';').next()?;
        // The declaration is "type name" or "type name[N]".
        let name = decl.rsplit([' ', '*']).next()?;
        let name = name.split('[').next()?;
        if name != field {
            return None;
        }
        let off = line.split("offset:").nth(1)?.split(';').next()?;
        Some(Field {
            offset: off.trim().parse().ok()?,
            data_loc: decl.starts_with("__data_loc"),
        })
    })
}

/// Byte offset of `field` in a format text.
pub fn parse_field_offset(format: &str, field: &str) -> Option<usize> {
    parse_field(format, field).map(|f| f.offset)
}

/// Runs `f` with a mounted tracefs.
///
/// Uses the host's tracefs when mounted; otherwise mounts one in a private
/// mount namespace and comes back once `f` returns. The private namespace
/// switch requires a single-threaded process, so call this before starting
/// any thread (boxtrace's main does).
pub fn with_tracefs<T>(f: impl FnOnce(&Tracefs) -> T) -> Result<T, TracefsError> {
    if let Some(fs) = Tracefs::find() {
        return Ok(f(&fs));
    }
    tracing::debug!("tracefs not mounted; mounting it in a private mount namespace");
    let open = |p: &str| {
        File::open(p).map_err(|source| TracefsError::Open {
            path: p.into(),
            source,
        })
    };
    let host_ns = open("/proc/self/ns/mnt")?;
    let host_root = open("/")?;
    let host_cwd = open(".")?;

    let mount_err = |step| move |source| TracefsError::Mount { step, source };
    unshare(CloneFlags::CLONE_NEWNS).map_err(mount_err("unshare(CLONE_NEWNS)"))?;
    let mounted = (|| {
        // Keep our tracefs mount from propagating back to the host.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_SLAVE,
            None::<&str>,
        )
        .map_err(mount_err("make / a slave mount"))?;
        mount(
            Some("nodev"),
            TRACEFS_MOUNTPOINT,
            Some("tracefs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .map_err(mount_err("mount tracefs"))
    })();
    let result = mounted.map(|()| f(&Tracefs::at(TRACEFS_MOUNTPOINT)));

    // setns resets root and cwd to the namespace's root: restore both.
    let restore = |step| move |source| TracefsError::Restore { step, source };
    setns(host_ns.as_fd(), CloneFlags::CLONE_NEWNS).map_err(restore("setns"))?;
    fchdir(host_root.as_fd()).map_err(restore("fchdir(root)"))?;
    chroot(".").map_err(restore("chroot"))?;
    fchdir(host_cwd.as_fd()).map_err(restore("fchdir(cwd)"))?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORK_6_18: &str = "name: sched_process_fork
ID: 366
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;
\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;
";

    const FORK_5_10: &str = "format:
\tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:1;
\tfield:pid_t parent_pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:1;
\tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;
";

    #[test]
    fn finds_child_pid_on_new_and_old_layouts() {
        assert_eq!(parse_field_offset(FORK_6_18, "child_pid"), Some(20));
        assert_eq!(parse_field_offset(FORK_5_10, "child_pid"), Some(44));
        assert_eq!(parse_field_offset(FORK_5_10, "child_comm"), Some(28));
        assert!(parse_field(FORK_6_18, "child_comm").unwrap().data_loc);
        assert!(!parse_field(FORK_5_10, "child_comm").unwrap().data_loc);
    }

    #[test]
    fn pointer_fields_and_missing_fields() {
        let f = "\tfield:struct clone_args * uargs;\toffset:16;\tsize:8;\tsigned:0;";
        assert_eq!(parse_field_offset(f, "uargs"), Some(16));
        assert_eq!(parse_field_offset(FORK_6_18, "child"), None);
        assert_eq!(parse_field_offset("garbage", "child_pid"), None);
    }

    #[test]
    fn missing_tracepoint_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = Tracefs::at(dir.path())
            .require("syscalls", "sys_enter_nope")
            .unwrap_err()
            .to_string();
        assert!(err.contains("syscalls/sys_enter_nope"), "{err}");
    }
}
