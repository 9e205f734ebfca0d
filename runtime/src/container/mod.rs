//! Creating a container: its cgroup, its process in new namespaces, and
//! the split between `create` (init waits before exec) and `start`.

pub mod exec;
mod init;
pub mod mount_opts;
mod paths;
mod rootfs;

use std::{
    io::{Read as _, Write as _},
    os::{
        fd::{AsRawFd as _, FromRawFd as _},
        unix::{fs::OpenOptionsExt as _, net::UnixStream},
    },
    path::{Path, PathBuf},
};

use nix::{sys::stat::Mode, unistd::mkfifo};
use oci_spec::runtime::LinuxNamespaceType;
use thiserror::Error;

use crate::{
    bundle::Bundle,
    cgroup::{self, Cgroup, CgroupError},
    hooks::Kind,
    phases::{Marks, now_ns},
    state::{self, Locked, State, StateError, Status},
};

pub use exec::{ExecError, ExecOptions};
pub use paths::{PathError, resolve_in_root};

#[derive(Debug, Error)]
pub enum ContainerError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("clone3: {0}")]
    Clone(nix::Error),
    #[error("writing {path}: {source}")]
    IdMap {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the pid namespace {path} (linux.namespaces) has no init any more: its container has stopped"
    )]
    PidNsGone { path: PathBuf },
    #[error("container init failed: {0}")]
    Init(String),
    #[error("container init exited before it was ready")]
    InitDied,
    #[error("joining the pid namespace {path} (linux.namespaces): {source}")]
    JoinPid {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error("process.terminal is true: give --console-socket (or `run` in the foreground)")]
    NoConsoleSocket,
    #[error("--console-socket given but process.terminal is not true")]
    ConsoleWithoutTerminal,
    #[error("container `{id}` is {status:?}, not created")]
    NotCreated { id: String, status: Status },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ContainerError {
    let what = what.into();
    move |source| ContainerError::Io { what, source }
}

/// `struct clone_args` of clone3(2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
const CLONE_NEWCGROUP: u64 = libc::CLONE_NEWCGROUP as u64;

/// How `create` sets up the process beyond what config.json says.
#[derive(Debug, Default)]
pub struct CreateOptions {
    /// Connected to `--console-socket` (or boxrun's own end for a
    /// foreground `run`): the pty master goes there.
    pub console: Option<UnixStream>,
    /// `--preserve-fds`: fds 3..3+N stay open in the workload.
    pub preserve_fds: u32,
    /// `--no-new-keyring`: keep the caller's session keyring.
    pub no_new_keyring: bool,
    /// `--no-pivot`: MS_MOVE + chroot instead of pivot_root.
    pub no_pivot: bool,
}

/// A created container whose init waits for `start`.
#[derive(Debug)]
pub struct Created {
    pub state: State,
    /// The init's pid (our child when created in this process).
    pub pid: i32,
    /// The container's directory, still locked: `run` starts it at once.
    pub dir: Locked,
}

/// The cgroup path of a container: the spec's, or its id below ours.
fn cgroups_path(bundle: &Bundle, id: &str) -> PathBuf {
    bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .unwrap_or_else(|| PathBuf::from(id))
}

/// Creates container `id` from `bundle` under `dir`: returns once its init
/// is set up and waiting on the exec fifo. On any failure everything made
/// so far is removed.
pub fn create(
    dir: Locked,
    bundle: &Bundle,
    opts: &CreateOptions,
    mut marks: Marks,
) -> Result<Created, ContainerError> {
    let id = dir.id.clone();
    let mut st = State {
        oci_version: bundle.spec.version().clone(),
        id: id.clone(),
        status: Status::Creating,
        pid: 0,
        bundle: bundle.dir.clone(),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        init_start_time: 0,
        cgroups: Vec::new(),
        owns_cgroups: true,
        created_ns: now_ns(),
        hooks: bundle.spec.hooks().clone(),
    };
    // Saved first, with the cgroups it will make, so that `delete
    // --force` finds whatever a killed create leaves behind.
    let planned = Cgroup::plan(cgroup::detect(), &cgroups_path(bundle, &id))
        .map_err(ContainerError::from)
        .and_then(|cg| {
            st.cgroups = cg.dirs.clone();
            st.owns_cgroups = !cg.exists();
            dir.save(&st)?;
            Ok(cg)
        });
    let cg = match planned {
        Ok(cg) => cg,
        Err(e) => {
            let _ = dir.remove();
            return Err(e);
        }
    };
    match create_inner(&cg, &dir, bundle, opts, &mut st, &mut marks) {
        Ok(pid) => Ok(Created {
            state: st,
            pid,
            dir,
        }),
        Err(e) => {
            cleanup(&st);
            let _ = dir.remove();
            Err(e)
        }
    }
}

/// Kills the init and removes the cgroups of `st`.
pub fn cleanup(st: &State) {
    if st.pid > 0 && state::init_alive(st) {
        // SAFETY: pidfd_open(2) returns a new fd or -1.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, st.pid, 0) } as i32;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(st.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        if pidfd >= 0 {
            // SAFETY: a new fd we own.
            let pidfd = unsafe { std::os::fd::OwnedFd::from_raw_fd(pidfd) };
            // A pid namespace's init first kills and waits for every other
            // process in it: done when the pidfd says it exited, so that
            // nothing of the container outlives `delete`.
            let mut fds = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&pidfd),
                nix::poll::PollFlags::POLLIN,
            )];
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(5000u16));
        }
    }
    if st.owns_cgroups && !st.cgroups.is_empty() {
        let cg = Cgroup {
            driver: driver_of(st),
            dirs: st.cgroups.clone(),
        };
        if let Err(e) = cg.destroy() {
            tracing::warn!("{e}");
        }
    }
}

pub fn driver_of(st: &State) -> cgroup::Driver {
    if st.cgroups.len() == 1 && !st.cgroups[0].starts_with("/sys/fs/cgroup/memory") {
        cgroup::detect()
    } else {
        cgroup::Driver::V1
    }
}

fn create_inner(
    cg: &Cgroup,
    dir: &Locked,
    bundle: &Bundle,
    opts: &CreateOptions,
    st: &mut State,
    marks: &mut Marks,
) -> Result<i32, ContainerError> {
    let spec = &bundle.spec;
    let terminal = spec
        .process()
        .as_ref()
        .is_some_and(|p| p.terminal() == Some(true));
    match (terminal, &opts.console) {
        (true, None) => return Err(ContainerError::NoConsoleSocket),
        (false, Some(_)) => return Err(ContainerError::ConsoleWithoutTerminal),
        _ => {}
    }
    let linux = spec.linux().as_ref();
    let fifo = dir.fifo();
    mkfifo(&fifo, Mode::from_bits_truncate(0o600))
        .map_err(|e| io(format!("mkfifo {}", fifo.display()))(e.into()))?;
    // The init opens it for writing after it took the container's user
    // (maybe unprivileged, maybe in a user namespace), through an fd it
    // already holds: others may write; the state dir keeps strangers out.
    std::fs::set_permissions(&fifo, std::os::unix::fs::PermissionsExt::from_mode(0o622))
        .map_err(io(format!("chmod {}", fifo.display())))?;

    let v2 = cg.driver == cgroup::Driver::V2;
    let resources = with_spec_devices(linux);
    let resources = resources.as_ref();
    if v2 {
        // clone3 puts the init straight into it (CLONE_INTO_CGROUP).
        cg.create(resources)?;
        marks.mark("cgroup_ready");
    }

    let mut flags = 0u64;
    let mut join = Vec::new();
    let mut user_ns = false;
    let mut joined_pid = None;
    for ns in linux
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
    {
        match ns.path() {
            // A pid namespace only applies to children: boxrun joins it
            // itself, so that clone3 puts the init in it.
            Some(p) if ns.typ() == LinuxNamespaceType::Pid => {
                join_pid(p)?;
                joined_pid = Some(p.clone());
            }
            Some(p) => join.push((ns.typ(), p.clone())),
            None => {
                flags |= ns.typ() as u64;
                user_ns |= ns.typ() == LinuxNamespaceType::User;
            }
        }
    }
    // A new cgroup namespace is rooted at the cgroup its creator is in. On
    // v1 the init joins its cgroups after clone3, so it makes the namespace
    // itself once it is in them (runc defers it the same way); on v2
    // clone3 puts it there first.
    let new_cgroupns = flags & CLONE_NEWCGROUP != 0;
    let defer_cgroupns = new_cgroupns && !v2;
    if defer_cgroupns {
        flags &= !CLONE_NEWCGROUP;
    }
    let process = spec.process().as_ref().expect("checked by Bundle::load");
    let seccomp = match linux.and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(crate::seccomp::compile(
            s,
            process.no_new_privileges() == Some(true),
        )?),
        None => None,
    };
    // The init joins a user namespace first: the others' owners live in it.
    join.sort_by_key(|(t, _)| *t != LinuxNamespaceType::User);
    let has = |t: LinuxNamespaceType| flags & t as u64 != 0 || join.iter().any(|(j, _)| *j == t);
    // The init runs createContainer and startContainer: it gets the state.
    let ctx_needs_state = [Kind::CreateContainer, Kind::StartContainer]
        .iter()
        .any(|k| !k.of(spec.hooks().as_ref()).is_empty());
    let ctx = init::InitContext {
        spec,
        rootfs: &bundle.rootfs,
        cgroup_dirs: &cg.dirs,
        cgroup_v2: v2,
        self_attach: !v2 && !user_ns,
        unshare_cgroupns: defer_cgroupns,
        has_mount_ns: has(LinuxNamespaceType::Mount),
        has_uts_ns: has(LinuxNamespaceType::Uts),
        has_user_ns: has(LinuxNamespaceType::User),
        join,
        fifo: &fifo,
        seccomp: seccomp.as_ref(),
        marks: marks.try_clone().map_err(io("phase marks"))?,
        close: vec![dir.lock_fd()],
        console: opts.console.as_ref().map(|c| c.as_raw_fd()),
        preserve_fds: opts.preserve_fds,
        needs_state: ctx_needs_state,
        no_pivot: opts.no_pivot,
        new_keyring: (!opts.no_new_keyring)
            .then(|| std::ffi::CString::new(format!("_ses.{}", st.id)).ok())
            .flatten(),
    };

    let (mut parent_sock, child_sock) = UnixStream::pair().map_err(io("socketpair"))?;
    let cgroup_fd = match cg.v2_dir() {
        Some(d) => Some(std::fs::File::open(d).map_err(io(format!("open {}", d.display())))?),
        None => None,
    };
    let mut args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(f) = &cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = f.as_raw_fd() as u64;
    }
    non_dumpable().map_err(|e| io("PR_SET_DUMPABLE")(e.into()))?;
    // SAFETY: clone3 without CLONE_VM is a fork; boxrun is single-threaded,
    // so the child may run ordinary code until it execs or exits.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid < 0 {
        let e = nix::Error::last();
        // The kernel says ENOMEM when the pid namespace's init is gone.
        return Err(match joined_pid {
            Some(path) if e == nix::Error::ENOMEM => ContainerError::PidNsGone { path },
            _ => ContainerError::Clone(e),
        });
    }
    if pid == 0 {
        drop(parent_sock);
        init::run(ctx, child_sock);
    }
    let pid = pid as i32;
    drop(child_sock);
    marks.mark("cloned");
    // An init that failed has said why and gone: its reason, not EPIPE.
    let send = |sock: &mut UnixStream, msg: &[u8]| match sock.write_all(msg) {
        Ok(()) => Ok(()),
        Err(e) => Err(match read_reply(sock) {
            Ok(()) => io("signalling the init")(e),
            Err(why) => why,
        }),
    };
    if user_ns {
        write_id_maps(pid, linux.expect("user ns implies linux"))?;
    }
    // The init builds its mounts while boxrun makes the v1 cgroups: the
    // two overlap, and the init waits for `cg` before its first cgroup
    // mount or its pivot, whichever comes first.
    send(&mut parent_sock, b"go")?;
    st.pid = pid;
    st.init_start_time = state::start_time(pid).unwrap_or(0);
    dir.save(st)?;
    if !v2 {
        cg.create(resources)?;
        // A task in a user namespace may not write the host's cgroup
        // files: boxrun moves it (the slow way, see init::join_cgroups).
        if user_ns {
            cg.add(pid)?;
        }
        marks.mark("cgroup_ready");
    }
    // The container's namespaces exist and its init has not pivoted yet
    // (it waits for `cg`): where prestart and createRuntime belong.
    let hooks = spec.hooks().as_ref();
    let state_json = st.oci_json();
    crate::hooks::run(Kind::Prestart, hooks, &state_json)?;
    crate::hooks::run(Kind::CreateRuntime, hooks, &state_json)?;
    send(&mut parent_sock, b"cg")?;
    if ctx_needs_state {
        let len = (state_json.len() as u32).to_le_bytes();
        send(&mut parent_sock, &len)?;
        send(&mut parent_sock, &state_json)?;
    }
    read_reply(&mut parent_sock)?;
    marks.mark("created");
    st.status = Status::Created;
    dir.save(st)?;
    Ok(pid)
}

/// linux.resources, with an allow rule for each `linux.devices` node (as
/// runc: a device the spec creates is one the container may use).
fn with_spec_devices(
    linux: Option<&oci_spec::runtime::Linux>,
) -> Option<oci_spec::runtime::LinuxResources> {
    let mut r = linux.and_then(|l| l.resources().clone());
    let devices = linux.and_then(|l| l.devices().as_ref());
    if devices.is_none_or(|d| d.is_empty()) {
        return r;
    }
    let r = r.get_or_insert_with(Default::default);
    let mut rules = r.devices().clone().unwrap_or_default();
    rules.extend(devices.into_iter().flatten().map(Into::into));
    r.set_devices(Some(rules));
    Some(r.clone())
}

/// The init's last word: `ready`, or why it failed.
fn read_reply(sock: &mut UnixStream) -> Result<(), ContainerError> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match sock.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // An init that exits with our `cg` unread resets the socket
            // after its error message: what came before still counts.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(io("waiting for the init")(e)),
        }
    }
    let reply = String::from_utf8_lossy(&buf);
    match reply.as_ref() {
        "ready" => Ok(()),
        "" => Err(ContainerError::InitDied),
        r => Err(ContainerError::Init(
            r.strip_prefix("error:").unwrap_or(r).to_owned(),
        )),
    }
}

/// Makes this process (and so the init or exec child it forks, which
/// inherit it) non-dumpable: while boxrun's own binary runs inside the
/// container's namespaces, a process of the container may not open its
/// /proc/PID/exe (the handle through which the runtime binary on the host
/// could be overwritten once it exits), nor ptrace it or read its
/// memory. Only CAP_SYS_PTRACE overrides it, which the container's
/// processes do not get by default. The workload's execve makes it
/// dumpable again.
pub(crate) fn non_dumpable() -> nix::Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(nix::Error::last());
    }
    Ok(())
}

fn join_pid(path: &Path) -> Result<(), ContainerError> {
    let err = |source| ContainerError::JoinPid {
        path: path.to_owned(),
        source,
    };
    let f = std::fs::File::open(path).map_err(err)?;
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWPID).map_err(|e| err(e.into()))
}

fn write_id_maps(pid: i32, linux: &oci_spec::runtime::Linux) -> Result<(), ContainerError> {
    let fmt = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    let w = |file: &str, data: String| {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        std::fs::write(&path, data).map_err(|source| ContainerError::IdMap { path, source })
    };
    w("uid_map", fmt(linux.uid_mappings()))?;
    // Older kernels have no setgroups file: nothing to allow there.
    let _ = w("setgroups", "allow".to_owned());
    w("gid_map", fmt(linux.gid_mappings()))?;
    Ok(())
}

/// Releases a created container's init: it execs the workload.
pub fn start(dir: &Locked, st: &mut State) -> Result<(), ContainerError> {
    let fifo = dir.fifo();
    if st.status != Status::Created || !fifo.exists() || !state::init_alive(st) {
        return Err(ContainerError::NotCreated {
            id: st.id.clone(),
            status: current_status(dir.dir.as_path(), st),
        });
    }
    // Non-blocking: if the init died before opening its end, reading
    // would otherwise wait forever.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .map_err(io(format!("open {}", fifo.display())))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut b = [0u8; 1];
    loop {
        match f.read(&mut b) {
            Ok(1) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(io("releasing the init")(e)),
        }
        if !state::init_alive(st) || std::time::Instant::now() > deadline {
            // It may have written, exec'd and exited (a short workload)
            // since the read above.
            if matches!(f.read(&mut b), Ok(1)) {
                break;
            }
            return Err(ContainerError::InitDied);
        }
        // Woken as soon as the init writes; the timeout only bounds how
        // late a dead init is noticed.
        let mut fds = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&f),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10u8));
    }
    let _ = std::fs::remove_file(&fifo);
    st.status = Status::Running;
    dir.save(st)?;
    crate::hooks::run_warn(Kind::Poststart, st.hooks.as_ref(), &st.oci_json());
    Ok(())
}

/// The live status of a container, from its init and cgroup.
pub fn current_status(dir: &Path, st: &State) -> Status {
    if st.status == Status::Creating {
        return if state::init_alive(st) {
            Status::Creating
        } else {
            Status::Stopped
        };
    }
    if !state::init_alive(st) {
        return Status::Stopped;
    }
    if dir.join(state::EXEC_FIFO).exists() {
        return Status::Created;
    }
    if is_frozen(st) {
        return Status::Paused;
    }
    Status::Running
}

fn is_frozen(st: &State) -> bool {
    st.cgroups.iter().any(|d| {
        std::fs::read_to_string(d.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
            || std::fs::read_to_string(d.join("cgroup.events"))
                .is_ok_and(|s| s.lines().any(|l| l == "frozen 1"))
    })
}

/// The container's cgroup as recorded in its state.
pub fn cgroup_of(st: &State) -> Cgroup {
    Cgroup {
        driver: driver_of(st),
        dirs: st.cgroups.clone(),
    }
}
