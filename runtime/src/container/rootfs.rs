//! The container's filesystem view, set up by the init process inside its
//! new mount namespace: propagation, the spec's mounts, default devices,
//! pivot_root, masked and read-only paths.

use std::{
    fs,
    os::fd::OwnedFd,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
};

use nix::{
    mount::{MntFlags, MsFlags, mount, umount2},
    sys::stat::{Mode, SFlag, makedev, mknod},
    unistd::{chdir, pivot_root},
};
use oci_spec::runtime::{Mount, Spec};
use thiserror::Error;

use super::{
    mount_opts::{self, MountOpts},
    paths::{PathError, fd_path, open_in_root, resolve_in_root},
};

#[derive(Debug, Error)]
pub enum RootfsError {
    #[error("mount destination {dest}: {source}")]
    Path {
        dest: String,
        #[source]
        source: PathError,
    },
    #[error("{what} {target}: {source}")]
    Sys {
        what: &'static str,
        target: PathBuf,
        source: nix::Error,
    },
    #[error("creating {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mount {dest}: type `{typ}` needs a source")]
    NoSource { dest: String, typ: String },
}

fn sys<'a>(what: &'static str, target: &'a Path) -> impl FnOnce(nix::Error) -> RootfsError + 'a {
    move |source| RootfsError::Sys {
        what,
        target: target.to_owned(),
        source,
    }
}

/// Sets up the mounts and pivots into `rootfs`. `cgroup_dirs` are the
/// container's cgroup directories, bind-mounted where the spec mounts a
/// `cgroup` filesystem on a v1 host. `cgroups_ready` is called once,
/// before the first cgroup mount or else before the pivot: it returns
/// when the cgroups exist.
pub fn setup<E: From<RootfsError>>(
    spec: &Spec,
    rootfs: &Path,
    cgroup_dirs: &[PathBuf],
    v2: bool,
    cgroups_ready: &mut dyn FnMut() -> Result<(), E>,
    before_pivot: &dyn Fn() -> Result<(), E>,
    no_pivot: bool,
) -> Result<(), E> {
    let mut waited = false;
    let mut wait = |cgroups_ready: &mut dyn FnMut() -> Result<(), E>| {
        if !std::mem::replace(&mut waited, true) {
            cgroups_ready()?;
        }
        Ok::<(), E>(())
    };
    let linux = spec.linux().as_ref();
    // Nothing we mount may propagate back to the host.
    let prop = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .map_or(MsFlags::MS_SLAVE | MsFlags::MS_REC, mount_opts::propagation);
    let prop = if prop.is_empty() {
        MsFlags::MS_SLAVE | MsFlags::MS_REC
    } else {
        prop
    };
    mount(None::<&str>, "/", None::<&str>, prop, None::<&str>)
        .map_err(sys("set propagation of", Path::new("/")))?;
    // pivot_root needs the new root to be a mount point.
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys("bind-mount rootfs", rootfs))?;

    let mut dev_is_tmpfs = false;
    for m in spec.mounts().iter().flatten() {
        let dest = m.destination().to_string_lossy().into_owned();
        if dest == "/dev" && m.typ().as_deref() == Some("tmpfs") {
            dev_is_tmpfs = true;
        }
        if m.typ().as_deref() == Some("cgroup") {
            wait(cgroups_ready)?;
        }
        mount_one(m, rootfs, cgroup_dirs, v2)?;
    }
    if dev_is_tmpfs {
        default_devices(rootfs)?;
    }
    for d in linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        spec_device(rootfs, d)?;
    }
    wait(cgroups_ready)?;
    before_pivot()?;

    chdir(rootfs).map_err(sys("chdir", rootfs))?;
    if no_pivot {
        // `--no-pivot` (runc's), for roots pivot_root refuses (a ramfs or
        // initramfs): move the rootfs over / and chroot into it. The old
        // root stays below, reachable by whoever escapes the chroot: the
        // caller asked for that trade.
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .map_err(sys("move rootfs to /", rootfs))?;
        nix::unistd::chroot(".").map_err(sys("chroot", rootfs))?;
    } else {
        // pivot_root(".", ".") stacks the old root on the new one;
        // detaching it leaves only the container's root (no put_old
        // directory needed).
        pivot_root(".", ".").map_err(sys("pivot_root", rootfs))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(sys("detach old root", Path::new("/")))?;
    }
    chdir("/").map_err(sys("chdir", Path::new("/")))?;

    if let Some(l) = linux {
        for p in l.masked_paths().iter().flatten() {
            mask(Path::new(p))?;
        }
        for p in l.readonly_paths().iter().flatten() {
            readonly(Path::new(p))?;
        }
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(sys("remount read-only", Path::new("/")))?;
    }
    Ok(())
}

fn mount_one(
    m: &Mount,
    rootfs: &Path,
    cgroup_dirs: &[PathBuf],
    v2: bool,
) -> Result<(), RootfsError> {
    let dest_s = m.destination().to_string_lossy().into_owned();
    let dest = resolve_in_root(rootfs, &dest_s).map_err(|source| RootfsError::Path {
        dest: dest_s.clone(),
        source,
    })?;
    let opts = mount_opts::parse(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().clone().unwrap_or_default();
    let source = m.source().clone();
    if typ == "cgroup" && !v2 {
        return cgroup_v1(rootfs, &dest, cgroup_dirs, &opts);
    }
    let bind = opts.is_bind() || typ == "bind";
    // A file bind-mounted needs a file to land on; everything else a dir.
    let source_is_file = bind && source.as_ref().is_some_and(|s| s.is_file());
    let target = in_root(rootfs, &dest, source_is_file)?;
    let (fstype, src) = match typ.as_str() {
        "cgroup" => ("cgroup2".to_owned(), PathBuf::from("cgroup2")),
        "bind" | "" => (String::new(), source.clone().unwrap_or_default()),
        t => (
            t.to_owned(),
            source.clone().unwrap_or_else(|| PathBuf::from(t)),
        ),
    };
    if bind && source.is_none() {
        return Err(RootfsError::NoSource { dest: dest_s, typ });
    }
    let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
    let flags = if bind {
        opts.flags
    } else {
        opts.flags & !MsFlags::MS_BIND
    };
    mount(
        Some(&src),
        &fd_path(&target),
        (!fstype.is_empty()).then_some(fstype.as_str()),
        flags & !MsFlags::MS_RDONLY,
        data,
    )
    .or_else(|e| {
        // Some filesystems refuse options (mqueue/sysfs in user ns): retry plain.
        if e == nix::Error::EPERM && !bind {
            mount(
                Some(&src),
                &fd_path(&target),
                Some(fstype.as_str()),
                flags,
                None::<&str>,
            )
        } else {
            Err(e)
        }
    })
    .map_err(sys("mount", &dest))?;
    // Bind mounts ignore most flags on the first call, and read-only was
    // held back: remount to apply them. Always as a bind remount, which
    // changes this mount only: a plain remount changes the superblock,
    // and filesystems such as cgroup2 (or sysfs without a new network
    // namespace) share theirs with the host, which would turn read-only.
    if bind && (opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC)) != MsFlags::empty()
        || opts.flags.contains(MsFlags::MS_RDONLY)
    {
        let per_mount = MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC
            | MsFlags::MS_NOATIME
            | MsFlags::MS_NODIRATIME
            | MsFlags::MS_RELATIME
            | MsFlags::MS_STRICTATIME;
        // The new mount, not the directory under it that `target` holds.
        let mounted = in_root(rootfs, &dest, source_is_file)?;
        mount(
            None::<&str>,
            &fd_path(&mounted),
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | (opts.flags & per_mount),
            None::<&str>,
        )
        .map_err(sys("remount", &dest))?;
    }
    if !opts.propagation.is_empty() {
        let mounted = in_root(rootfs, &dest, source_is_file)?;
        mount(
            None::<&str>,
            &fd_path(&mounted),
            None::<&str>,
            opts.propagation,
            None::<&str>,
        )
        .map_err(sys("set propagation of", &dest))?;
    }
    Ok(())
}

/// cgroup v1 in a container: a tmpfs with the container's own hierarchy
/// directories bind-mounted in, read-only unless the mount says rw.
fn cgroup_v1(
    rootfs: &Path,
    dest: &Path,
    dirs: &[PathBuf],
    opts: &MountOpts,
) -> Result<(), RootfsError> {
    let at = in_root(rootfs, dest, false)?;
    mount(
        Some("tmpfs"),
        &fd_path(&at),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755"),
    )
    .map_err(sys("mount", dest))?;
    // The new tmpfs is boxrun's alone (this mount namespace, nothing in
    // it yet): its directories are made and opened relative to it.
    let tmpfs = in_root(rootfs, dest, false)?;
    for d in dirs {
        let Some(name) = d
            .strip_prefix("/sys/fs/cgroup")
            .ok()
            .and_then(|r| r.components().next())
        else {
            continue;
        };
        let target = dest.join(name);
        let name = name.as_os_str();
        nix::sys::stat::mkdirat(&tmpfs, name, Mode::from_bits_truncate(0o755))
            .map_err(sys("mkdir", &target))?;
        let at = nix::fcntl::openat(
            &tmpfs,
            name,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_NOFOLLOW
                | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys("open", &target))?;
        mount(
            Some(d),
            &fd_path(&at),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys("bind cgroup", &target))?;
    }
    // One call for the tmpfs and every bind below it (mount_setattr,
    // 5.12+), instead of a remount each.
    let mut set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        set |= MOUNT_ATTR_RDONLY;
    }
    let tree = in_root(rootfs, dest, false)?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr on an fd we hold, with its attr struct.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            std::os::fd::AsRawFd::as_raw_fd(&tree),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(sys("mount_setattr", dest)(nix::Error::last()));
    }
    Ok(())
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// `path` (resolved inside `rootfs`) made if missing and opened with the
/// kernel keeping every lookup inside `rootfs`.
fn in_root(rootfs: &Path, path: &Path, file: bool) -> Result<OwnedFd, RootfsError> {
    open_in_root(rootfs, path, file).map_err(|source| RootfsError::Path {
        dest: path.display().to_string(),
        source,
    })
}

fn make_target(path: &Path, file: bool) -> Result<(), RootfsError> {
    let err = |source| RootfsError::Create {
        path: path.to_owned(),
        source,
    };
    if file {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(err)?;
        }
        if !path.exists() {
            fs::File::create(path).map_err(err)?;
        }
        Ok(())
    } else {
        fs::create_dir_all(path).map_err(err)
    }
}

/// A `linux.devices` node, made inside the rootfs (an existing file there
/// is replaced); bind-mounted from the host's same path where mknod is
/// refused (a user namespace).
fn spec_device(rootfs: &Path, d: &oci_spec::runtime::LinuxDevice) -> Result<(), RootfsError> {
    use oci_spec::runtime::LinuxDeviceType as T;
    let dest = resolve_in_root(rootfs, &d.path().to_string_lossy()).map_err(|source| {
        RootfsError::Path {
            dest: d.path().display().to_string(),
            source,
        }
    })?;
    let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
        return Ok(());
    };
    let dir = in_root(rootfs, parent, false)?;
    let kind = match d.typ() {
        T::B => SFlag::S_IFBLK,
        T::P => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    };
    let mode = Mode::from_bits_truncate(d.file_mode().unwrap_or(0o666));
    let dev = makedev(d.major() as u64, d.minor() as u64);
    let _ = nix::unistd::unlinkat(&dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
    let made = nix::sys::stat::mknodat(&dir, name, kind, mode, dev);
    if made.is_err() {
        let target = in_root(rootfs, &dest, true)?;
        mount(
            Some(d.path()),
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys("bind-mount device", &dest))?;
        return Ok(());
    }
    // mknod applies the umask: the spec's mode is meant exactly.
    nix::sys::stat::fchmodat(
        &dir,
        name,
        mode,
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(sys("chmod device", &dest))?;
    if d.uid().is_some() || d.gid().is_some() {
        nix::unistd::fchownat(
            &dir,
            name,
            d.uid().map(nix::unistd::Uid::from_raw),
            d.gid().map(nix::unistd::Gid::from_raw),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(sys("chown device", &dest))?;
    }
    Ok(())
}

/// The OCI default devices, made in a tmpfs /dev.
fn default_devices(rootfs: &Path) -> Result<(), RootfsError> {
    let dev = rootfs.join("dev");
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let p = dev.join(name);
        if p.exists() {
            continue;
        }
        let made = mknod(
            &p,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(major, minor),
        );
        // A user namespace may not make device nodes: bind the host's.
        if made.is_err() {
            let host = Path::new("/dev").join(name);
            make_target(&p, true)?;
            mount(
                Some(&host),
                &p,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(sys("bind-mount device", &p))?;
        }
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let p = dev.join(link);
        if fs::symlink_metadata(&p).is_err() {
            symlink(target, &p).map_err(|source| RootfsError::Create { path: p, source })?;
        }
    }
    Ok(())
}

/// Hides `path`: /dev/null over a file, an empty read-only tmpfs over a
/// directory. Missing paths need no hiding.
fn mask(path: &Path) -> Result<(), RootfsError> {
    let Ok(meta) = fs::metadata(path) else {
        return Ok(());
    };
    if meta.is_dir() {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    }
    .map_err(sys("mask", path))
}

/// Makes `path` read-only by bind-mounting it on itself.
fn readonly(path: &Path) -> Result<(), RootfsError> {
    if !path.exists() {
        return Ok(());
    }
    mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys("bind", path))?;
    mount(
        None::<&str>,
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys("remount read-only", path))
}
