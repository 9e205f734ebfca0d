//! Where a benchmark run keeps the runtimes' state and its own files:
//! `/run/boxtrace/bench-<pid>` (a tmpfs, like the runtimes' own /run
//! roots). A run killed with SIGKILL cannot clean up after itself; the
//! next run finds its directory, force-deletes the containers left in it
//! with the runtime that made them, and removes it.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use thiserror::Error;

use super::driver::find_binary;

pub const BASE: &str = "/run/boxtrace";

#[derive(Debug, Error)]
#[error("making the scratch directory {path}: {source}")]
pub struct ScratchError {
    path: PathBuf,
    source: std::io::Error,
}

/// This run's directory, removed when dropped.
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    pub fn create() -> Result<Self, ScratchError> {
        Self::create_in(Path::new(BASE))
    }

    pub fn create_in(base: &Path) -> Result<Self, ScratchError> {
        for line in clean_stale(base) {
            eprintln!("boxtrace: {line}");
        }
        let dir = base.join(format!("bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|source| ScratchError {
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// `--root` of runtime `name`.
    pub fn root(&self, name: &str) -> PathBuf {
        self.dir.join(format!("root-{name}"))
    }

    /// Pid files, error logs and phase marks of runtime `name`.
    pub fn files(&self, name: &str) -> PathBuf {
        self.dir.join(format!("files-{name}"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Cleans the directories of runs whose process is gone; says what it did.
pub fn clean_stale(base: &Path) -> Vec<String> {
    let mut said = Vec::new();
    let Ok(entries) = std::fs::read_dir(base) else {
        return said;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("bench-")
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let mut removed = 0;
        for r in std::fs::read_dir(e.path()).into_iter().flatten().flatten() {
            let rname = r.file_name().to_string_lossy().into_owned();
            let Some(runtime) = rname.strip_prefix("root-") else {
                continue;
            };
            let Some(bin) = find_binary(runtime) else {
                said.push(format!(
                    "{runtime} is gone: cannot delete what it left in {}",
                    r.path().display()
                ));
                continue;
            };
            for c in std::fs::read_dir(r.path()).into_iter().flatten().flatten() {
                if !c.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let st = Command::new(&bin)
                    .arg("--root")
                    .arg(r.path())
                    .args(["delete", "--force"])
                    .arg(c.file_name())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                if st.is_ok_and(|s| s.success()) {
                    removed += 1;
                }
            }
        }
        let _ = std::fs::remove_dir_all(e.path());
        said.push(format!(
            "removed {removed} container(s) left by an earlier run (pid {pid}) in {}",
            e.path().display()
        ));
    }
    said
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_runs_directory_is_removed_a_live_ones_kept() {
        let base = tempfile::tempdir().unwrap();
        // pid 0x7ffffffe: above any real pid_max default, so never alive.
        let dead = base.path().join("bench-2147483646");
        std::fs::create_dir_all(dead.join("root-no-such-runtime/c1")).unwrap();
        let live = base.path().join(format!("bench-{}", std::process::id()));
        std::fs::create_dir_all(&live).unwrap();
        let said = clean_stale(base.path());
        assert!(!dead.exists());
        assert!(live.exists());
        assert!(
            said.iter().any(|s| s.contains("no-such-runtime is gone")),
            "{said:?}"
        );
        let s = Scratch::create_in(base.path()).unwrap();
        assert!(s.path().is_dir());
        let p = s.path().to_owned();
        drop(s);
        assert!(!p.exists());
    }
}
