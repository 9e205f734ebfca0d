//! The container's init process, between clone3 and exec: it receives the
//! go-ahead from boxrun, builds the container's world, reports ready, then
//! waits on the exec fifo until `start` and execs the workload.

use std::{
    ffi::CString,
    fs::File,
    io::{Read as _, Write as _},
    os::{
        fd::{AsRawFd as _, OwnedFd},
        unix::{fs::OpenOptionsExt as _, net::UnixStream},
    },
    path::{Path, PathBuf},
};

use caps::{CapSet, Capability, CapsHashSet};
use nix::{
    sched::{CloneFlags, setns},
    unistd::{Gid, Uid, chdir, chroot, execvpe, sethostname, setresgid, setresuid},
};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use thiserror::Error;

use super::rootfs::{self, RootfsError};
use crate::{
    hooks::{self, Kind},
    phases::Marks,
};

#[derive(Debug, Error)]
pub enum InitError {
    #[error("waiting for boxrun: {0}")]
    Sync(std::io::Error),
    #[error("joining {typ} namespace {path}: {source}")]
    Join {
        typ: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("joining cgroup {path}: {source}")]
    Cgroup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
    #[error("unknown rlimit `{0}` in process.rlimits")]
    Rlimit(String),
    #[error("capability `{0}` in process.capabilities: {1}")]
    Capability(String, String),
    #[error("opening the exec fifo: {0}")]
    Fifo(std::io::Error),
    #[error("executing {path:?}: {source}")]
    Exec { path: String, source: nix::Error },
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error("process.{field} contains a NUL byte")]
    Nul { field: &'static str },
    #[error(transparent)]
    Terminal(#[from] crate::terminal::TerminalError),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> InitError {
    let what = what.into();
    move |source| InitError::Sys { what, source }
}

/// Everything the init needs, prepared by the parent before clone3.
pub struct InitContext<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub cgroup_dirs: &'a [PathBuf],
    pub cgroup_v2: bool,
    /// Join the v1 cgroups itself (see `join_cgroups`).
    pub self_attach: bool,
    /// Make the new cgroup namespace once in the cgroups (v1).
    pub unshare_cgroupns: bool,
    /// Namespaces to join by path: (type, path).
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
    pub has_mount_ns: bool,
    /// In a user namespace (new or joined).
    pub has_user_ns: bool,
    pub has_uts_ns: bool,
    pub fifo: &'a Path,
    pub seccomp: Option<&'a crate::seccomp::Filter>,
    pub marks: Marks,
    /// Inherited fds the init must not keep (the state lock).
    pub close: Vec<std::os::fd::RawFd>,
    /// Where the pty master goes when `process.terminal` is set.
    pub console: Option<std::os::fd::RawFd>,
    /// Fds from 3 up to 3+N that the workload keeps (`--preserve-fds`).
    pub preserve_fds: u32,
    /// MS_MOVE + chroot instead of pivot_root (`--no-pivot`).
    pub no_pivot: bool,
    /// boxrun sends the state JSON after `cg`, for the hooks run here.
    pub needs_state: bool,
    /// Join a new session keyring, so the host's keys stay out of reach.
    pub new_keyring: Option<CString>,
}

/// Runs in the child; never returns.
pub fn run(mut ctx: InitContext<'_>, mut sock: UnixStream) -> ! {
    for fd in &ctx.close {
        // SAFETY: closing an fd this process owns a copy of.
        unsafe { libc::close(*fd) };
    }
    let err = match setup(&mut ctx, &mut sock) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    // After `ready` boxrun no longer listens: the container's stderr is
    // the only place left to say why it did not start.
    if sock.write_all(format!("error:{err}").as_bytes()).is_err() {
        eprintln!("boxrun: container init: {err}");
    }
    // SAFETY: _exit skips the parent's atexit handlers and buffers.
    unsafe { libc::_exit(1) }
}

enum Never {}

/// Moves the init into its v1 cgroups by writing 0 to each `tasks` file.
///
/// Why not boxrun writing the pid to `cgroup.procs`: moving a whole
/// process takes the kernel's global threadgroup rwsem for writing, which
/// waits for an RCU grace period (8-17 ms measured here, most of a
/// container start). A task moving itself as a single thread does not
/// take it. The init has one thread, so this moves the whole process.
/// Done before pivot_root (the host's cgroup files must be reachable) and
/// before anything of the container's runs.
fn join_cgroups(dirs: &[PathBuf]) -> Result<(), InitError> {
    for d in dirs {
        let tasks = d.join("tasks");
        std::fs::write(&tasks, "0").map_err(|source| InitError::Cgroup {
            path: tasks,
            source,
        })?;
    }
    Ok(())
}

fn setup(ctx: &mut InitContext<'_>, sock: &mut UnixStream) -> Result<Never, InitError> {
    // Wait for the go-ahead: id maps written (the cgroups come later, `cg`).
    let mut buf = [0u8; 2];
    sock.read_exact(&mut buf).map_err(InitError::Sync)?;

    // The fifo lives on the host, in a directory only host root may
    // enter: hold it by O_PATH across the id change and pivot_root.
    let fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(ctx.fifo)
        .map_err(InitError::Fifo)?;

    for (typ, path) in &ctx.join {
        let f = File::open(path).map_err(|source| InitError::Join {
            typ: typ.to_string(),
            path: path.clone(),
            source,
        })?;
        setns(&f, CloneFlags::from_bits_truncate(*typ as i32)).map_err(|e| InitError::Join {
            typ: typ.to_string(),
            path: path.clone(),
            source: e.into(),
        })?;
    }
    if ctx.has_user_ns {
        // Our ids are still the host's, unmapped in the new namespace
        // (files would get EOVERFLOW): become its root.
        setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .map_err(sys("setgid 0 in the user namespace"))?;
        setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .map_err(sys("setuid 0 in the user namespace"))?;
    }
    ctx.marks.mark("namespaces_set");

    let spec = ctx.spec;
    // boxrun says `cg` once the cgroups exist (and hold us, in a user
    // namespace); meanwhile we build the mounts.
    let (dirs, self_attach, cgroupns) = (ctx.cgroup_dirs, ctx.self_attach, ctx.unshare_cgroupns);
    let needs_state = ctx.needs_state;
    let state_json = std::cell::RefCell::new(Vec::new());
    let mut cgroups_ready = || -> Result<(), InitError> {
        let mut buf = [0u8; 2];
        sock.read_exact(&mut buf).map_err(InitError::Sync)?;
        if needs_state {
            let mut len = [0u8; 4];
            sock.read_exact(&mut len).map_err(InitError::Sync)?;
            let mut json = vec![0u8; u32::from_le_bytes(len) as usize];
            sock.read_exact(&mut json).map_err(InitError::Sync)?;
            *state_json.borrow_mut() = json;
        }
        if self_attach {
            join_cgroups(dirs)?;
        }
        if cgroupns {
            nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
                .map_err(sys("unshare the cgroup namespace"))?;
        }
        Ok(())
    };
    let hooks = spec.hooks().as_ref();
    // In the container's namespaces, before its root is entered: host
    // paths still resolve, as the spec wants for createContainer.
    let create_container =
        || hooks::run(Kind::CreateContainer, hooks, &state_json.borrow()).map_err(InitError::from);
    if ctx.has_mount_ns {
        rootfs::setup(
            spec,
            ctx.rootfs,
            ctx.cgroup_dirs,
            ctx.cgroup_v2,
            &mut cgroups_ready,
            &create_container,
            ctx.no_pivot,
        )?;
        ctx.marks.mark("pivoted");
    } else {
        cgroups_ready()?;
        create_container()?;
        // Without a mount namespace pivot_root would move the host's root.
        chroot(ctx.rootfs).map_err(sys("chroot"))?;
        chdir("/").map_err(sys("chdir /"))?;
        ctx.marks.mark("chrooted");
    }

    if ctx.has_uts_ns {
        if let Some(h) = spec.hostname() {
            sethostname(h).map_err(sys(format!("sethostname {h}")))?;
        }
        if let Some(d) = spec.domainname() {
            let c = CString::new(d.as_str()).map_err(|_| InitError::Nul {
                field: "domainname",
            })?;
            // SAFETY: valid C string and length.
            if unsafe { libc::setdomainname(c.as_ptr(), d.len()) } != 0 {
                return Err(sys("setdomainname")(nix::Error::last()));
            }
        }
    }
    if let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        for (k, v) in sysctl {
            let p = Path::new("/proc/sys").join(k.replace('.', "/"));
            std::fs::write(&p, v).map_err(|e| InitError::Sys {
                what: format!("sysctl {k}={v}"),
                source: nix::Error::try_from(e).unwrap_or(nix::Error::EIO),
            })?;
        }
    }

    let process = spec.process().as_ref().expect("checked by Bundle::load");
    if let Some(name) = &ctx.new_keyring {
        // SAFETY: keyctl(KEYCTL_JOIN_SESSION_KEYRING, name).
        let r = unsafe { libc::syscall(libc::SYS_keyctl, 1, name.as_ptr()) };
        // Kernels without keyrings say ENOSYS: nothing to hide there.
        if r < 0 && nix::Error::last() != nix::Error::ENOSYS {
            return Err(sys("joining a new session keyring")(nix::Error::last()));
        }
    }
    if let Some(p) = spec.linux().as_ref().and_then(|l| l.personality().as_ref()) {
        use oci_spec::runtime::LinuxPersonalityDomain as D;
        let persona: libc::c_ulong = match p.domain() {
            D::PerLinux => 0x0000,
            D::PerLinux32 => 0x0008,
        };
        // SAFETY: personality(2) with a constant.
        if unsafe { libc::personality(persona) } < 0 {
            return Err(sys("linux.personality")(nix::Error::last()));
        }
    }
    if let Some(sock) = ctx.console {
        // In the container's mount namespace: its /dev/ptmx, its devpts.
        let pty = crate::terminal::open_pty()?;
        if ctx.has_mount_ns {
            // The OCI spec: /dev/console is the pty, bind-mounted.
            console_mount(&pty.name)?;
        }
        if let Some(size) = process.console_size() {
            crate::terminal::set_size(&pty.master, size.height(), size.width());
        }
        crate::terminal::send_fd(sock, std::os::fd::AsFd::as_fd(&pty.master), &pty.name)?;
        drop(pty.master);
        // SAFETY: closing the socket fd this process inherited.
        unsafe { libc::close(sock) };
        crate::terminal::take_as_stdio(&pty.peer)?;
        // The process's user owns its terminal, as on a login.
        let u = process.user();
        nix::unistd::fchown(&pty.peer, Some(Uid::from_raw(u.uid())), None)
            .map_err(sys(format!("chown {}", pty.name)))?;
    }
    process_attrs(process)?;
    for rl in process.rlimits().iter().flatten() {
        let name = rl.typ().to_string();
        let res = rlimit_number(&name).ok_or_else(|| InitError::Rlimit(name.clone()))?;
        let lim = libc::rlimit {
            rlim_cur: rl.soft(),
            rlim_max: rl.hard(),
        };
        // SAFETY: valid resource number and struct.
        if unsafe { libc::setrlimit(res, &lim) } != 0 {
            return Err(sys(format!("setrlimit {name}"))(nix::Error::last()));
        }
    }

    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it
    // while we still have it. With no_new_privs, load it as late as
    // possible so the fewest syscalls of ours run under it (as runc).
    let nnp = process.no_new_privileges() == Some(true);
    if !nnp && let Some(f) = ctx.seccomp {
        f.load()?;
    }

    // Identity: keep capabilities across the uid change, then set them.
    drop_bounding(process.capabilities().as_ref())?;
    let user = process.user();
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|&g| Gid::from_raw(g))
        .collect();
    if nix::unistd::setgroups(&gids).is_err() && !gids.is_empty() {
        return Err(sys("setgroups")(nix::Error::last()));
    }
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).map_err(sys(format!("setgid {gid}")))?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).map_err(sys(format!("setuid {uid}")))?;
    apply_capabilities(process.capabilities().as_ref())?;
    if nnp {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(sys("PR_SET_NO_NEW_PRIVS")(nix::Error::last()));
        }
    }
    chdir(process.cwd()).map_err(sys(format!("chdir {}", process.cwd().display())))?;

    let to_c = |s: &str, field| CString::new(s).map_err(|_| InitError::Nul { field });
    let args: Vec<CString> = process
        .args()
        .iter()
        .flatten()
        .map(|a| to_c(a, "args"))
        .collect::<Result<_, _>>()?;
    let env: Vec<CString> = process
        .env()
        .iter()
        .flatten()
        .map(|e| to_c(e, "env"))
        .collect::<Result<_, _>>()?;
    // execvpe searches PATH of the calling process: give it the container's.
    if let Some(path) = process
        .env()
        .iter()
        .flatten()
        .find_map(|e| e.strip_prefix("PATH="))
    {
        // SAFETY: single-threaded child; nothing reads the environment concurrently.
        unsafe { std::env::set_var("PATH", path) };
    }

    // Nothing of boxrun's or its caller's reaches the workload but stdio
    // and the fds it was told to keep.
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 + ctx.preserve_fds,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    sock.write_all(b"ready").map_err(InitError::Sync)?;
    // boxrun reads until end of file: it must not wait for our exec.
    let _ = sock.shutdown(std::net::Shutdown::Both);
    // Block until `start` opens the fifo's read end.
    let mut w = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", fifo.as_raw_fd()))
        .map_err(InitError::Fifo)?;
    w.write_all(b"0").map_err(InitError::Fifo)?;
    drop(w);
    drop::<OwnedFd>(fifo.into());
    // After `start`, as the process's user, in its root: the last step
    // before the workload (as runc runs it).
    if !Kind::StartContainer.of(hooks).is_empty() {
        let mut st: serde_json::Value =
            serde_json::from_slice(&state_json.borrow()).unwrap_or_default();
        st["status"] = "created".into();
        hooks::run(Kind::StartContainer, hooks, st.to_string().as_bytes())?;
    }
    ctx.marks.mark("exec");
    if nnp && let Some(f) = ctx.seccomp {
        f.load()?;
    }
    let e = execvpe(&args[0], &args, &env).unwrap_err();
    Err(InitError::Exec {
        path: args[0].to_string_lossy().into_owned(),
        source: e,
    })
}

/// Bind-mounts the container's pty (`/dev/pts/N`) on /dev/console.
fn console_mount(pty: &str) -> Result<(), InitError> {
    let console = Path::new("/dev/console");
    if std::fs::symlink_metadata(console).is_err() {
        File::create(console).map_err(|e| {
            sys("creating /dev/console")(nix::Error::try_from(e).unwrap_or(nix::Error::EIO))
        })?;
    }
    nix::mount::mount(
        Some(pty),
        console,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(sys(format!("bind-mounting {pty} on /dev/console")))
}

/// oom_score_adj, umask and I/O priority: inherited by the workload.
/// oom_score_adj first, while we may still lower it.
fn process_attrs(process: &oci_spec::runtime::Process) -> Result<(), InitError> {
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(|e| {
            sys(format!("process.oomScoreAdj {adj}"))(
                nix::Error::try_from(e).unwrap_or(nix::Error::EIO),
            )
        })?;
    }
    if let Some(mask) = process.user().umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    if let Some(prio) = process.io_priority() {
        use oci_spec::runtime::IOPriorityClass as C;
        let class: i64 = match prio.class() {
            C::IoprioClassRt => 1,
            C::IoprioClassBe => 2,
            C::IoprioClassIdle => 3,
        };
        // ioprio_set(IOPRIO_WHO_PROCESS, self, class << 13 | level).
        // SAFETY: integer arguments only.
        if unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, class << 13 | prio.priority()) } != 0
        {
            return Err(sys("process.ioPriority")(nix::Error::last()));
        }
    }
    Ok(())
}

fn rlimit_number(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    })
}

fn cap_set(
    names: Option<&std::collections::HashSet<oci_spec::runtime::Capability>>,
) -> Result<CapsHashSet, InitError> {
    let mut out = CapsHashSet::new();
    for c in names.into_iter().flatten() {
        let name = c.to_string();
        let name = if name.starts_with("CAP_") {
            name
        } else {
            format!("CAP_{name}")
        };
        let cap: Capability = name.parse().map_err(|e: caps::errors::CapsError| {
            InitError::Capability(name.clone(), e.to_string())
        })?;
        out.insert(cap);
    }
    Ok(out)
}

/// Shrinks the bounding set to the spec's. Needs CAP_SETPCAP in the
/// effective set: done before the process's user is taken.
pub(super) fn drop_bounding(
    c: Option<&oci_spec::runtime::LinuxCapabilities>,
) -> Result<(), InitError> {
    let bounding = cap_set(c.and_then(|c| c.bounding().as_ref()))?;
    for cap in caps::all() {
        if !bounding.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| InitError::Capability("bounding".to_owned(), e.to_string()))?;
        }
    }
    Ok(())
}

/// The other four sets, as the spec gives them (absent sets are emptied),
/// after the user change (KEEPCAPS kept the permitted set).
pub(super) fn apply_capabilities(
    c: Option<&oci_spec::runtime::LinuxCapabilities>,
) -> Result<(), InitError> {
    let get = |f: fn(&oci_spec::runtime::LinuxCapabilities) -> &Option<_>| {
        cap_set(c.and_then(|c| f(c).as_ref()))
    };
    let effective = get(|c| c.effective())?;
    let permitted = get(|c| c.permitted())?;
    let inheritable = get(|c| c.inheritable())?;
    let ambient = get(|c| c.ambient())?;
    let err = |what: &'static str| {
        move |e: caps::errors::CapsError| InitError::Capability(what.to_owned(), e.to_string())
    };
    // The kernel checks each capset against the current sets: shrink the
    // effective set first, it must stay within the permitted one.
    caps::set(None, CapSet::Effective, &effective).map_err(err("effective"))?;
    caps::set(None, CapSet::Inheritable, &inheritable).map_err(err("inheritable"))?;
    caps::set(None, CapSet::Permitted, &permitted).map_err(err("permitted"))?;
    caps::clear(None, CapSet::Ambient).map_err(err("ambient"))?;
    // The kernel only lets a capability be ambient when it is permitted
    // and inheritable; runc's default spec lists ambient ones without an
    // inheritable set, and runc skips them too.
    for cap in ambient.intersection(&permitted) {
        if inheritable.contains(cap) {
            caps::raise(None, CapSet::Ambient, *cap).map_err(err("ambient"))?;
        }
    }
    Ok(())
}
