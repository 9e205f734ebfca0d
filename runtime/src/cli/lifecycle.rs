//! Commands that change a container: create, start, run, kill, delete,
//! pause, resume.

use std::{
    os::{
        fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::net::UnixStream,
    },
    path::Path,
    process::ExitCode,
    sync::atomic::{AtomicBool, AtomicI32, Ordering},
};

use anyhow::{Context as _, bail};
use boxrun::{
    bundle::Bundle,
    container::{self, CreateOptions, ExecOptions, cgroup_of, current_status, exec},
    hooks::Kind,
    id,
    phases::Marks,
    state::{Root, StateError, Status},
    terminal,
};
use nix::{
    sys::{
        signal::Signal,
        wait::{WaitStatus, waitpid},
    },
    unistd::Pid,
};

use oci_spec::runtime::Process;

use super::{CreateArgs, ExecArgs, RunArgs};

fn open_marks(c: &CreateArgs) -> anyhow::Result<Marks> {
    let mut marks = Marks::open(c.phase_marks.as_deref())
        .with_context(|| format!("--phase-marks {:?}", c.phase_marks))?;
    marks.mark("started");
    Ok(marks)
}

/// Creates the container; with `foreground` and a terminal but no
/// --console-socket, also returns our end of a socket that receives the
/// pty.
fn do_create(
    root: &Root,
    c: &CreateArgs,
    foreground: bool,
    mut marks: Marks,
) -> anyhow::Result<(container::Created, Option<UnixStream>)> {
    id::check(&c.id)?;
    let bundle = Bundle::load(&c.bundle)?;
    marks.mark("spec_parsed");
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .is_some_and(|p| p.terminal() == Some(true));
    let (ours, console) = match &c.console_socket {
        Some(path) => (None, Some(terminal::connect(path)?)),
        None => foreground_console(terminal && foreground)?,
    };
    let opts = CreateOptions {
        console,
        preserve_fds: c.preserve_fds,
        no_new_keyring: c.no_new_keyring,
        no_pivot: c.no_pivot,
    };
    let dir = root.create(&c.id)?;
    let created = container::create(dir, &bundle, &opts, marks)?;
    if let Some(p) = &c.pid_file {
        write_pid_file(p, created.pid)?;
    }
    Ok((created, ours))
}

/// Written whole, then renamed: a reader (containerd's shim) never sees
/// a partial pid.
fn write_pid_file(path: &Path, pid: i32) -> anyhow::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.boxrun"));
    std::fs::write(&tmp, pid.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing --pid-file {}", path.display()))
}

pub fn create(root: &Root, c: &CreateArgs) -> anyhow::Result<ExitCode> {
    do_create(root, c, false, open_marks(c)?)?;
    Ok(ExitCode::SUCCESS)
}

pub fn start(root: &Root, id: &str) -> anyhow::Result<ExitCode> {
    let dir = root.open(id)?;
    let mut st = dir.load()?;
    container::start(&dir, &mut st)?;
    Ok(ExitCode::SUCCESS)
}

/// The init's pid, for the signal handler of `run`.
static INIT: AtomicI32 = AtomicI32::new(0);
/// Our window changed (SIGWINCH) since the relay last looked.
static WINCH: AtomicBool = AtomicBool::new(false);

extern "C" fn forward(sig: libc::c_int) {
    if sig == libc::SIGWINCH {
        WINCH.store(true, Ordering::Relaxed);
        return;
    }
    let pid = INIT.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Signals to us go to `pid`; SIGWINCH is noted for the terminal relay.
fn forward_signals(pid: i32) {
    INIT.store(pid, Ordering::Relaxed);
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
    ] {
        // SAFETY: installing a handler that only calls kill(2) or stores.
        unsafe { libc::signal(sig, forward as *const () as libc::sighandler_t) };
    }
}

/// A foreground terminal: our end of the console socket, and the one the
/// process's init gets.
fn foreground_console(wanted: bool) -> anyhow::Result<(Option<UnixStream>, Option<UnixStream>)> {
    if !wanted {
        return Ok((None, None));
    }
    let (a, b) = UnixStream::pair().context("socketpair for the terminal")?;
    Ok((Some(a), Some(b)))
}

/// Relays the pty from `ours` to our terminal until `pid` exits.
fn relay_terminal(ours: &UnixStream, pid: i32) -> anyhow::Result<()> {
    let (master, _) = terminal::recv_fd(ours.as_fd())?;
    // SAFETY: pidfd_open(2) returns a new fd or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(std::io::Error::last_os_error()).context("pidfd_open");
    }
    // SAFETY: a new fd we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    terminal::copy_window_size(master.as_fd());
    let _raw = terminal::RawMode::enter();
    terminal::relay(&master, pidfd.as_fd(), &|| {
        WINCH.swap(false, Ordering::Relaxed)
    });
    Ok(())
}

fn wait_status(pid: i32) -> anyhow::Result<u8> {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code as u8),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as u8),
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(anyhow::Error::from(e).context("waiting for the container")),
        }
    }
}

pub fn run(root: &Root, r: &RunArgs) -> anyhow::Result<ExitCode> {
    let c = &r.create;
    let mut marks = open_marks(c)?;
    let (mut created, ours) = do_create(
        root,
        c,
        !r.detach,
        marks.try_clone().context("--phase-marks")?,
    )?;
    let pid = created.pid;
    if r.detach {
        container::start(&created.dir, &mut created.state)?;
        return Ok(ExitCode::SUCCESS);
    }
    forward_signals(pid);
    let result = (|| {
        container::start(&created.dir, &mut created.state)?;
        // Unlocked while it runs: `state`, `ps` and `kill` must work.
        drop(created.dir);
        if let Some(ours) = &ours {
            relay_terminal(ours, pid)?;
        }
        // The init is our child: its status is the container's.
        wait_status(pid)
    })();
    marks.mark("exited");
    if r.keep {
        return Ok(ExitCode::from(result?));
    }
    let deleted = remove(root, &c.id, true);
    marks.mark("deleted");
    let code = result?;
    deleted?;
    Ok(ExitCode::from(code))
}

fn parse_signal(s: &str) -> anyhow::Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).with_context(|| format!("unknown signal {s}"));
    }
    let name = s.to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    name.parse::<Signal>()
        .with_context(|| format!("unknown signal `{s}`"))
}

pub fn kill(root: &Root, id: &str, signal: &str, all: bool) -> anyhow::Result<ExitCode> {
    let sig = parse_signal(signal)?;
    let dir = root.open(id)?;
    let st = dir.load()?;
    let status = current_status(&dir.dir, &st);
    if matches!(status, Status::Stopped) {
        bail!("container `{id}` is not running");
    }
    if all {
        for pid in cgroup_of(&st).pids()? {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
        }
    } else {
        nix::sys::signal::kill(Pid::from_raw(st.pid), sig)
            .with_context(|| format!("signalling pid {}", st.pid))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Kills what is left (with `force`), removes cgroups and the state dir.
fn remove(root: &Root, id: &str, force: bool) -> anyhow::Result<()> {
    let dir = match root.open(id) {
        Ok(d) => d,
        // Gone already: what --force asks for holds (runc says so too;
        // containerd's shim force-deletes after a container exited).
        Err(StateError::NotFound(_)) if force => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    // A killed `create` may have left no state.json: force cleans the dir.
    let st = match dir.load() {
        Ok(st) => st,
        Err(e) if force => {
            tracing::warn!("{e}; removing the state directory");
            dir.remove()?;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let status = current_status(&dir.dir, &st);
    if !force && !matches!(status, Status::Stopped | Status::Created) {
        bail!("container `{id}` is {status:?}: stop it first or use --force");
    }
    container::cleanup(&st);
    dir.remove()?;
    let mut stopped = st;
    stopped.status = Status::Stopped;
    boxrun::hooks::run_warn(Kind::Poststop, stopped.hooks.as_ref(), &stopped.oci_json());
    Ok(())
}

pub fn delete(root: &Root, id: &str, force: bool) -> anyhow::Result<ExitCode> {
    remove(root, id, force)?;
    Ok(ExitCode::SUCCESS)
}

pub fn pause(root: &Root, id: &str, freeze: bool) -> anyhow::Result<ExitCode> {
    let dir = root.open(id)?;
    let st = dir.load()?;
    let status = current_status(&dir.dir, &st);
    let cg = cgroup_of(&st);
    match (freeze, status) {
        (true, Status::Running) => cg.freeze()?,
        (false, Status::Paused) => cg.thaw()?,
        (true, s) => bail!("container `{id}` is {s:?}, not running"),
        (false, s) => bail!("container `{id}` is {s:?}, not paused"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The process `exec` runs: `--process` JSON, or the container's own
/// process with COMMAND and the flags' changes.
fn exec_process(st: &boxrun::state::State, e: &ExecArgs) -> anyhow::Result<Process> {
    if let Some(path) = &e.process {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --process {}", path.display()))?;
        return serde_json::from_str(&text).map_err(|err| {
            anyhow::anyhow!("{}:{}:{}: {err}", path.display(), err.line(), err.column())
        });
    }
    if e.command.is_empty() {
        bail!("exec: give a COMMAND or --process FILE");
    }
    let bundle = Bundle::load(&st.bundle)
        .with_context(|| format!("the container's bundle {}", st.bundle.display()))?;
    let mut p = bundle.spec.process().clone().unwrap_or_default();
    p.set_args(Some(e.command.clone()));
    p.set_terminal(Some(e.tty));
    if let Some(cwd) = &e.cwd {
        p.set_cwd(cwd.clone());
    }
    if !e.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        for kv in &e.env {
            if !kv.contains('=') {
                bail!("--env `{kv}`: expected NAME=VALUE");
            }
            env.push(kv.clone());
        }
        p.set_env(Some(env));
    }
    if let Some(u) = &e.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        let parse = |s: &str| {
            s.parse::<u32>()
                .with_context(|| format!("--user `{u}`: expected UID[:GID] numbers"))
        };
        let mut user = p.user().clone();
        user.set_uid(parse(uid)?);
        user.set_gid(parse(gid)?);
        p.set_user(user);
    }
    Ok(p)
}

pub fn exec(root: &Root, e: &ExecArgs) -> anyhow::Result<ExitCode> {
    let st = {
        let dir = root.open(&e.id)?;
        let st = dir.load()?;
        let status = current_status(&dir.dir, &st);
        if status != Status::Running {
            bail!("container `{}` is {status:?}, not running", e.id);
        }
        st
        // The lock goes here: an exec may run for long.
    };
    let mut process = exec_process(&st, e)?;
    if e.process.is_some() && e.tty {
        process.set_terminal(Some(true));
    }
    let terminal = process.terminal() == Some(true);
    if !terminal && e.console_socket.is_some() {
        bail!("--console-socket given but the process has no terminal (--tty)");
    }
    let bundle = Bundle::load(&st.bundle)
        .with_context(|| format!("the container's bundle {}", st.bundle.display()))?;
    let seccomp = match bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
    {
        Some(s) => Some(boxrun::seccomp::compile(
            s,
            process.no_new_privileges() == Some(true),
        )?),
        None => None,
    };
    let (ours, socket) = match &e.console_socket {
        Some(path) => (None, Some(terminal::connect(path)?)),
        None => foreground_console(terminal && !e.detach)?,
    };
    let opts = ExecOptions {
        console: socket.as_ref().map(|s| s.as_raw_fd()),
        preserve_fds: e.preserve_fds,
        seccomp: seccomp.as_ref(),
    };
    let child = exec::spawn(&st, &process, &opts)?;
    drop(socket);
    if let Some(p) = &e.pid_file {
        write_pid_file(p, child.as_raw())?;
    }
    if e.detach {
        return Ok(ExitCode::SUCCESS);
    }
    forward_signals(child.as_raw());
    if let Some(ours) = &ours {
        relay_terminal(ours, child.as_raw())?;
    }
    let code = exec::wait(child)?;
    Ok(ExitCode::from(code as u8))
}
