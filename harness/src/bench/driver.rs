//! Runtime drivers behind one trait: boxrun and any runc-compatible
//! binary (runc, crun, youki), driven through their command lines the way
//! containerd's shim drives them.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Duration,
};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DriverError {
    #[error("{runtime} {step} {id}: cannot run {bin}: {source}")]
    Spawn {
        runtime: String,
        step: &'static str,
        id: String,
        bin: PathBuf,
        source: io::Error,
    },
    #[error("{runtime} {step} {id} failed ({status}): {stderr}")]
    Failed {
        runtime: String,
        step: &'static str,
        id: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("{runtime} {id}: bad --pid-file: {detail}")]
    PidFile {
        runtime: String,
        id: String,
        detail: String,
    },
    #[error("waiting for the container's init {pid}: {source}")]
    Wait { pid: i32, source: io::Error },
}

/// What one timed start measured, on CLOCK_MONOTONIC.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// When the runtime was spawned (before any artificial delay).
    pub begin_ns: u64,
    /// When the last step (delete, or `run`'s exit) finished.
    pub end_ns: u64,
}

impl Timing {
    pub fn millis(&self) -> f64 {
        (self.end_ns - self.begin_ns) as f64 / 1e6
    }
}

/// A container runtime the benchmarks can drive.
pub trait Runtime: Send + Sync {
    fn name(&self) -> &str;
    fn bin(&self) -> &Path;
    /// `run`: create, start, wait and delete in one command.
    fn run(&self, bundle: &Path, id: &str, marks: Option<&Path>) -> Result<Timing, DriverError>;
    /// `create`, `start`, wait for the init to exit, `delete`.
    fn lifecycle(
        &self,
        bundle: &Path,
        id: &str,
        marks: Option<&Path>,
    ) -> Result<Timing, DriverError>;
    /// Best effort: whatever of `id` is left after a failure or Ctrl-C.
    fn force_delete(&self, id: &str);
    /// Whether it writes boxrun's `--phase-marks`.
    fn has_phase_marks(&self) -> bool;
}

pub fn now_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always there");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// A runc-compatible command line (boxrun is one too).
#[derive(Debug, Clone)]
pub struct Cli {
    pub name: String,
    pub bin: PathBuf,
    /// `--root`: its own state directory.
    pub root: PathBuf,
    /// Pid files and error logs (not in `root`: runtimes list that).
    pub files: PathBuf,
    /// Added to every start, inside the timed window: to check that
    /// `compare` notices a slowdown.
    pub delay: Duration,
}

/// Finds `name_or_path`: a path as given, else in PATH, else next to this
/// executable (boxrun of the same build).
pub fn find_binary(name_or_path: &str) -> Option<PathBuf> {
    let p = Path::new(name_or_path);
    if name_or_path.contains('/') {
        return p.is_file().then(|| p.to_owned());
    }
    let in_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(name_or_path))
            .find(|c| c.is_file())
    });
    in_path.or_else(|| {
        let exe = std::env::current_exe().ok()?;
        let sibling = exe.parent()?.join(name_or_path);
        sibling.is_file().then_some(sibling)
    })
}

impl Cli {
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(&self.root);
        c
    }

    fn check(
        &self,
        step: &'static str,
        id: &str,
        out: io::Result<Output>,
    ) -> Result<(), DriverError> {
        let out = out.map_err(|source| DriverError::Spawn {
            runtime: self.name.clone(),
            step,
            id: id.to_owned(),
            bin: self.bin.clone(),
            source,
        })?;
        if out.status.success() {
            return Ok(());
        }
        Err(DriverError::Failed {
            runtime: self.name.clone(),
            step,
            id: id.to_owned(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }

    /// `create`: returns the init's pid. The init inherits create's stdio:
    /// a pipe would stay open until the container exits, so its stdout
    /// goes to `stdout` (or /dev/null) and errors to a file.
    pub fn create(
        &self,
        bundle: &Path,
        id: &str,
        marks: Option<&Path>,
        stdout: Option<std::fs::File>,
    ) -> Result<i32, DriverError> {
        let pid_file = self.files.join(format!("{id}.pid"));
        let mut c = self.cmd();
        c.args(["create", "--bundle"]).arg(bundle);
        c.arg("--pid-file").arg(&pid_file);
        if let Some(m) = marks.filter(|_| self.has_phase_marks()) {
            c.arg("--phase-marks").arg(m);
        }
        let err_path = self.files.join(format!("{id}.err"));
        let spawn_err = |bin: &Path, source| DriverError::Spawn {
            runtime: self.name.clone(),
            step: "create",
            id: id.to_owned(),
            bin: bin.to_owned(),
            source,
        };
        let err_file = std::fs::File::create(&err_path).map_err(|e| spawn_err(&err_path, e))?;
        c.arg(id)
            .stdin(Stdio::null())
            .stdout(stdout.map_or_else(Stdio::null, Stdio::from))
            .stderr(err_file);
        let status = c.status();
        let created = match status {
            Ok(st) if !st.success() => Err(DriverError::Failed {
                runtime: self.name.clone(),
                step: "create",
                id: id.to_owned(),
                status: st,
                stderr: std::fs::read_to_string(&err_path)
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            }),
            Ok(_) => Ok(()),
            Err(source) => Err(spawn_err(&self.bin, source)),
        };
        let _ = std::fs::remove_file(&err_path);
        created?;
        let pid_text = std::fs::read_to_string(&pid_file).map_err(|e| DriverError::PidFile {
            runtime: self.name.clone(),
            id: id.to_owned(),
            detail: format!("{}: {e}", pid_file.display()),
        })?;
        let _ = std::fs::remove_file(&pid_file);
        pid_text.trim().parse().map_err(|_| DriverError::PidFile {
            runtime: self.name.clone(),
            id: id.to_owned(),
            detail: format!("`{}` is not a pid", pid_text.trim()),
        })
    }

    /// A command on container `id` (start, delete, pause, resume), with
    /// `flags` before the id as runc's parser wants them.
    pub fn step(&self, step: &'static str, id: &str, flags: &[&str]) -> Result<(), DriverError> {
        let mut c = self.cmd();
        c.arg(step).args(flags).arg(id);
        self.check(step, id, c.output())
    }

    fn delay(&self) {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
    }
}

/// Blocks until process `pid` (not our child) exits.
pub fn wait_exit(pid: i32) -> Result<(), DriverError> {
    let err = |source| DriverError::Wait { pid, source };
    // SAFETY: pidfd_open takes a pid and flags; the fd is owned below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        // Already gone and reaped.
        return if e.raw_os_error() == Some(libc::ESRCH) {
            Ok(())
        } else {
            Err(err(e))
        };
    }
    // SAFETY: a fresh fd from pidfd_open.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, -1) };
        if r >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(err(e));
        }
    }
}

impl Runtime for Cli {
    fn name(&self) -> &str {
        &self.name
    }

    fn bin(&self) -> &Path {
        &self.bin
    }

    fn has_phase_marks(&self) -> bool {
        self.name == "boxrun"
    }

    fn run(&self, bundle: &Path, id: &str, marks: Option<&Path>) -> Result<Timing, DriverError> {
        let mut c = self.cmd();
        c.args(["run", "--bundle"]).arg(bundle);
        if let Some(m) = marks.filter(|_| self.has_phase_marks()) {
            c.arg("--phase-marks").arg(m);
        }
        c.arg(id).stdin(Stdio::null()).stdout(Stdio::null());
        let begin_ns = now_ns();
        self.delay();
        let out = c.output();
        let end_ns = now_ns();
        self.check("run", id, out)?;
        Ok(Timing { begin_ns, end_ns })
    }

    fn lifecycle(
        &self,
        bundle: &Path,
        id: &str,
        marks: Option<&Path>,
    ) -> Result<Timing, DriverError> {
        let begin_ns = now_ns();
        self.delay();
        let pid = self.create(bundle, id, marks, None)?;
        self.step("start", id, &[])?;
        wait_exit(pid)?;
        self.step("delete", id, &[])?;
        Ok(Timing {
            begin_ns,
            end_ns: now_ns(),
        })
    }

    fn force_delete(&self, id: &str) {
        let _ = self
            .cmd()
            .args(["delete", "--force", id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn finds_binaries_by_path_and_name() {
        assert_eq!(find_binary("/bin/sh"), Some(PathBuf::from("/bin/sh")));
        assert!(find_binary("sh").is_some());
        assert_eq!(find_binary("no-such-runtime-here"), None);
        assert_eq!(find_binary("/no/such/runc"), None);
    }

    #[test]
    fn waits_for_a_process_that_is_not_a_child() {
        let mut child = Command::new("sleep").arg("0.2").spawn().unwrap();
        let t = Instant::now();
        wait_exit(child.id() as i32).unwrap();
        assert!(t.elapsed() >= Duration::from_millis(150));
        child.wait().unwrap();
        // Reaped: nothing to wait for.
        wait_exit(child.id() as i32).unwrap();
    }
}
