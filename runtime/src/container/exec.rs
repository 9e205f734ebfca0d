//! `exec`: a new process in a running container. It joins the init's
//! namespaces (those that differ from boxrun's own) and cgroups, then
//! takes the process's user, capabilities and no_new_privs, as the init
//! did, and execs.

use std::{
    ffi::CString,
    fs::File,
    os::{fd::AsFd as _, unix::fs::MetadataExt as _},
    path::{Path, PathBuf},
};

use nix::{
    sched::{CloneFlags, setns},
    sys::wait::{WaitStatus, waitpid},
    unistd::{ForkResult, Gid, Pid, Uid, chdir, execvpe, fork, setresgid, setresuid},
};
use oci_spec::runtime::Process;
use thiserror::Error;

use super::init::{apply_capabilities, drop_bounding};
use crate::state::State;

#[derive(Debug, Error)]
pub enum ExecError {
    #[error("container `{0}` is not running")]
    NotRunning(String),
    #[error("opening {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("joining the container's {what} namespace: {source}")]
    Join { what: String, source: nix::Error },
    #[error("fork: {0}")]
    Fork(nix::Error),
    #[error("waiting for the process: {0}")]
    Wait(nix::Error),
    #[error("process.args is empty")]
    NoArgs,
    #[error("PR_SET_DUMPABLE: {0}")]
    Dumpable(nix::Error),
    #[error("process.terminal is true: give --tty in the foreground, or --console-socket")]
    NoConsoleSocket,
}

/// Namespaces to join, in order: the user namespace first (it owns the
/// others), mount last (after it, the host's paths are gone). pid is
/// joined by the parent before fork: it applies to children only.
const ORDER: &[(&str, CloneFlags)] = &[
    ("user", CloneFlags::CLONE_NEWUSER),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// The init's namespace `name`, when it is not the one we are in.
fn other_ns(pid: i32, name: &str) -> Result<Option<File>, ExecError> {
    let theirs = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
    let ours = PathBuf::from(format!("/proc/self/ns/{name}"));
    let ino = |p: &Path| std::fs::metadata(p).map(|m| m.ino());
    let open_err = |path: &Path| {
        let path = path.to_owned();
        move |source| ExecError::Open { path, source }
    };
    if ino(&theirs).map_err(open_err(&theirs))? == ino(&ours).map_err(open_err(&ours))? {
        return Ok(None);
    }
    Ok(Some(File::open(&theirs).map_err(open_err(&theirs))?))
}

fn cstrings(v: &[String]) -> Vec<CString> {
    // NUL bytes cannot reach exec; they end the string there.
    v.iter()
        .map(|s| CString::new(s.split('\0').next().unwrap_or_default()).unwrap_or_default())
        .collect()
}

/// What `exec` does beyond the process JSON.
#[derive(Default)]
pub struct ExecOptions<'a> {
    /// Where the pty master goes when `process.terminal` is set.
    pub console: Option<std::os::fd::RawFd>,
    /// `--preserve-fds`: fds 3..3+N stay open in the process.
    pub preserve_fds: u32,
    /// The container's seccomp filter: an exec'd process is held to it too.
    pub seccomp: Option<&'a crate::seccomp::Filter>,
}

/// Starts `process` in container `st`; returns its pid (our child).
pub fn spawn(st: &State, process: &Process, opts: &ExecOptions<'_>) -> Result<Pid, ExecError> {
    let pid = st.pid;
    if !crate::state::init_alive(st) {
        return Err(ExecError::NotRunning(st.id.clone()));
    }
    let args = process.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(ExecError::NoArgs);
    }
    if process.terminal() == Some(true) && opts.console.is_none() {
        return Err(ExecError::NoConsoleSocket);
    }
    let mut joins = Vec::new();
    for (name, flag) in ORDER {
        if let Some(f) = other_ns(pid, name)? {
            joins.push((*name, *flag, f));
        }
    }
    // Before anything of ours is visible in the container (see
    // `non_dumpable`).
    super::non_dumpable().map_err(ExecError::Dumpable)?;
    if let Some(f) = other_ns(pid, "pid")? {
        setns(&f, CloneFlags::CLONE_NEWPID).map_err(|source| ExecError::Join {
            what: "pid".to_owned(),
            source,
        })?;
    }
    // SAFETY: boxrun is single-threaded here; the child only runs the
    // code below and execs or exits.
    match unsafe { fork() }.map_err(ExecError::Fork)? {
        ForkResult::Child => {
            let e = child(st, process, &args, joins, opts);
            eprintln!("boxrun exec: {e}");
            // SAFETY: leave without running the parent's exit handlers.
            unsafe { libc::_exit(126) }
        }
        ForkResult::Parent { child } => Ok(child),
    }
}

/// Waits for a process [`spawn`] started; its exit status as a shell
/// reports it (128+N on signal N).
pub fn wait(child: Pid) -> Result<i32, ExecError> {
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(ExecError::Wait(e)),
        }
    }
}

/// In the forked child: cgroups, namespaces, identity, exec. Returns only
/// on failure, with what failed.
fn child(
    st: &State,
    process: &Process,
    args: &[String],
    joins: Vec<(&str, CloneFlags, File)>,
    opts: &ExecOptions<'_>,
) -> String {
    // While the host's cgroup files are still reachable. `tasks` on v1
    // moves just this (single-threaded) task, cheaply; v2 has no `tasks`.
    for d in &st.cgroups {
        let file = if d.join("tasks").exists() {
            d.join("tasks")
        } else {
            d.join("cgroup.procs")
        };
        if let Err(e) = std::fs::write(&file, "0") {
            return format!("joining cgroup {}: {e}", file.display());
        }
    }
    for (name, flag, f) in &joins {
        if let Err(e) = setns(f, *flag) {
            return format!("joining the container's {name} namespace: {e}");
        }
    }
    if let Err(e) = chdir(process.cwd()) {
        return format!("chdir {}: {e}", process.cwd().display());
    }
    if let Some(sock) = opts.console {
        // In the container's mount namespace now: its /dev/ptmx.
        let pty = match crate::terminal::open_pty() {
            Ok(p) => p,
            Err(e) => return e.to_string(),
        };
        let sent = crate::terminal::send_fd(sock, pty.master.as_fd(), &pty.name);
        if let Err(e) = sent.and_then(|()| crate::terminal::take_as_stdio(&pty.peer)) {
            return e.to_string();
        }
        let _ = nix::unistd::fchown(&pty.peer, Some(Uid::from_raw(process.user().uid())), None);
    }
    let nnp = process.no_new_privileges() == Some(true);
    if !nnp
        && let Some(f) = opts.seccomp
        && let Err(e) = f.load()
    {
        return e.to_string();
    }
    if let Err(e) = drop_bounding(process.capabilities().as_ref()) {
        return e.to_string();
    }
    let user = process.user();
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|&g| Gid::from_raw(g))
        .collect();
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    if let Err(e) = nix::unistd::setgroups(&gids) {
        return format!("setgroups: {e}");
    }
    let (gid, uid) = (Gid::from_raw(user.gid()), Uid::from_raw(user.uid()));
    if let Err(e) = setresgid(gid, gid, gid) {
        return format!("setgid {gid}: {e}");
    }
    if let Err(e) = setresuid(uid, uid, uid) {
        return format!("setuid {uid}: {e}");
    }
    if let Err(e) = apply_capabilities(process.capabilities().as_ref()) {
        return e.to_string();
    }
    if nnp {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return format!("PR_SET_NO_NEW_PRIVS: {}", nix::Error::last());
        }
    }
    let env = process.env().clone().unwrap_or_default();
    if let Some(path) = env.iter().find_map(|e| e.strip_prefix("PATH=")) {
        // SAFETY: single-threaded child; nothing reads the environment concurrently.
        unsafe { std::env::set_var("PATH", path) };
    }
    let (argv, envp) = (cstrings(args), cstrings(&env));
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 + opts.preserve_fds,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if nnp
        && let Some(f) = opts.seccomp
        && let Err(e) = f.load()
    {
        return e.to_string();
    }
    match execvpe(&argv[0], &argv, &envp) {
        Err(e) => format!("executing {:?}: {e}", args[0]),
        Ok(never) => match never {},
    }
}
