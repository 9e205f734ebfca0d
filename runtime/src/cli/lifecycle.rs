//! Commands that change a container: create, start, run, kill, delete,
//! pause, resume.

use std::{
    process::ExitCode,
    sync::atomic::{AtomicI32, Ordering},
};

use anyhow::{Context as _, bail};
use boxrun::{
    bundle::Bundle,
    container::{self, cgroup_of, current_status},
    id,
    phases::Marks,
    state::{Root, Status},
};
use nix::{
    sys::{
        signal::Signal,
        wait::{WaitStatus, waitpid},
    },
    unistd::Pid,
};

use oci_spec::runtime::Process;

use super::{CreateArgs, ExecArgs};

fn open_marks(c: &CreateArgs) -> anyhow::Result<Marks> {
    let mut marks = Marks::open(c.phase_marks.as_deref())
        .with_context(|| format!("--phase-marks {:?}", c.phase_marks))?;
    marks.mark("started");
    Ok(marks)
}

fn do_create(root: &Root, c: &CreateArgs, mut marks: Marks) -> anyhow::Result<container::Created> {
    id::check(&c.id)?;
    let bundle = Bundle::load(&c.bundle)?;
    marks.mark("spec_parsed");
    let dir = root.create(&c.id)?;
    let created = container::create(dir, &bundle, marks)?;
    if let Some(p) = &c.pid_file {
        std::fs::write(p, created.pid.to_string())
            .with_context(|| format!("writing --pid-file {}", p.display()))?;
    }
    Ok(created)
}

pub fn create(root: &Root, c: &CreateArgs) -> anyhow::Result<ExitCode> {
    do_create(root, c, open_marks(c)?)?;
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

extern "C" fn forward(sig: libc::c_int) {
    let pid = INIT.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

pub fn run(root: &Root, c: &CreateArgs) -> anyhow::Result<ExitCode> {
    let mut marks = open_marks(c)?;
    let mut created = do_create(root, c, marks.try_clone().context("--phase-marks")?)?;
    let pid = created.pid;
    INIT.store(pid, Ordering::Relaxed);
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        // SAFETY: installing a handler that only calls kill(2).
        unsafe { libc::signal(sig, forward as *const () as libc::sighandler_t) };
    }
    let result = (|| {
        container::start(&created.dir, &mut created.state)?;
        // Unlocked while it runs: `state`, `ps` and `kill` must work.
        drop(created.dir);
        // The init is our child: its status is the container's.
        loop {
            match waitpid(Pid::from_raw(pid), None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(code as u8),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as u8),
                Ok(_) => continue,
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(anyhow::Error::from(e).context("waiting for the container")),
            }
        }
    })();
    marks.mark("exited");
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
    let dir = root.open(id)?;
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
    p.set_terminal(Some(false));
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
    let process = exec_process(&st, e)?;
    let code = container::exec(&st, &process)?;
    Ok(ExitCode::from(code as u8))
}
