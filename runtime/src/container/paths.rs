//! Resolving a path inside the container's root filesystem, refusing any
//! symlink that would lead out of it.

use std::{
    ffi::OsStr,
    fs::{self, File},
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
    path::{Component, Path, PathBuf},
};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum PathError {
    #[error("`{path}` escapes the root filesystem through the symlink {link} -> {target}")]
    Escape {
        path: String,
        link: PathBuf,
        target: PathBuf,
    },
    #[error("`{path}` goes above the root filesystem with `..`")]
    DotDot { path: String },
    #[error("`{0}`: too many levels of symbolic links")]
    Loop(String),
    #[error("reading {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// `root` joined with `path`, with every symlink on the way resolved as
/// the container would see it (absolute targets from `root`). A symlink
/// whose `..` climbs above `root`, or a `..` above it in `path`, is an
/// error: it can only be an attempt to land a mount on the host.
pub fn resolve_in_root(root: &Path, path: &str) -> Result<PathBuf, PathError> {
    let mut todo: Vec<PathBuf> = Path::new(path)
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect();
    let mut depth: Vec<PathBuf> = Vec::new();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part.as_os_str() == OsStr::new("..") {
            if depth.pop().is_none() {
                return Err(PathError::DotDot {
                    path: path.to_owned(),
                });
            }
            continue;
        }
        let here = depth
            .iter()
            .fold(root.to_owned(), |p, c| p.join(c))
            .join(&part);
        match fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(PathError::Loop(path.to_owned()));
                }
                let target = fs::read_link(&here).map_err(|source| PathError::Io {
                    path: here.clone(),
                    source,
                })?;
                // Absolute: from the container's root, as the container
                // sees it (images link /var/run -> /run). Relative: from
                // the link's directory; a `..` above the root is an
                // escape attempt, refused below.
                if target.is_absolute() {
                    depth.clear();
                }
                let before = depth.len();
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => todo.push(PathBuf::from(n)),
                        Component::ParentDir => todo.push(PathBuf::from("..")),
                        _ => {}
                    }
                }
                let ups = target
                    .components()
                    .filter(|c| matches!(c, Component::ParentDir))
                    .count();
                if ups > before {
                    return Err(PathError::Escape {
                        path: path.to_owned(),
                        link: here,
                        target,
                    });
                }
            }
            _ => depth.push(part),
        }
    }
    Ok(depth.iter().fold(root.to_owned(), |p, c| p.join(c)))
}

fn c_path(p: &Path) -> std::ffi::CString {
    use std::os::unix::ffi::OsStrExt as _;
    // Paths from the filesystem or the spec's JSON strings hold no NUL.
    std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

/// `struct open_how` of openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Every lookup confined to `dir` as if it were `/`.
const IN_ROOT: u64 = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
/// Below `dir`, following no symlink at all.
const BENEATH_NO_LINKS: u64 = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS;

fn openat2(dir: RawFd, rel: &Path, flags: i32) -> io::Result<OwnedFd> {
    openat2_with(dir, rel, flags, IN_ROOT)
}

fn openat2_with(dir: RawFd, rel: &Path, flags: i32, resolve: u64) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let c = c_path(rel);
    // SAFETY: openat2 with a valid open_how and its size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Opens (O_PATH) `path` below `root`, creating it first if missing (a
/// directory, or an empty file with `file`), every lookup confined to
/// `root` by the kernel (openat2 RESOLVE_IN_ROOT): a symlink swapped in
/// after [`resolve_in_root`] checked the path cannot lead out of it, as
/// a path handed to mount(2) could. Mount onto the fd through
/// `/proc/self/fd/N`.
pub fn open_in_root(root: &Path, path: &Path, file: bool) -> Result<OwnedFd, PathError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| PathError::Io { path, source }
    };
    let rel = path.strip_prefix(root).unwrap_or(path);
    let root_fd = File::open(root).map_err(io_err(root))?;
    let dir = root_fd.as_raw_fd();
    // Most targets exist already (/proc, /sys, /dev in the image): one
    // lookup. The walk below only runs to create what is missing.
    match openat2(dir, rel, libc::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(path)(e)),
    }
    // Up from the target to the deepest part that exists...
    let parts: Vec<&OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let mut have = parts.len();
    let mut base = loop {
        if have == 0 {
            break openat2(dir, Path::new("."), libc::O_PATH | libc::O_DIRECTORY)
                .map_err(io_err(root))?;
        }
        have -= 1;
        let p: PathBuf = parts[..have].iter().collect();
        match openat2(dir, &p, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(fd) => break fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&root.join(&p))(e)),
        }
    };
    // ...then down, making each missing part in the directory fd held,
    // never following a link (one swapped in now is an error).
    for (i, part) in parts.iter().enumerate().skip(have) {
        let last = i + 1 == parts.len();
        let here = root.join(parts[..=i].iter().collect::<PathBuf>());
        let name = c_path(Path::new(part));
        // SAFETY: *at calls relative to a directory fd we hold.
        let r = unsafe {
            if last && file {
                let fd = libc::openat(
                    base.as_raw_fd(),
                    name.as_ptr(),
                    libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_WRONLY
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    0o644,
                );
                if fd >= 0 {
                    libc::close(fd);
                }
                fd
            } else {
                libc::mkdirat(base.as_raw_fd(), name.as_ptr(), 0o755)
            }
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            // Made meanwhile by someone else: fine, it is opened below.
            if e.kind() != io::ErrorKind::AlreadyExists {
                return Err(io_err(&here)(e));
            }
        }
        let flags = if last {
            libc::O_PATH
        } else {
            libc::O_PATH | libc::O_DIRECTORY
        };
        base = openat2_with(base.as_raw_fd(), Path::new(part), flags, BENEATH_NO_LINKS)
            .map_err(io_err(&here))?;
    }
    Ok(base)
}

/// The path through which mount(2) reaches `fd`'s file.
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn follows_links_inside_and_refuses_escapes() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        symlink("/etc", root.join("evil")).unwrap();
        symlink("../../..", root.join("usr/up")).unwrap();
        assert_eq!(
            resolve_in_root(root, "/lib/x").unwrap(),
            root.join("usr/lib/x")
        );
        assert_eq!(
            resolve_in_root(root, "/new/dir").unwrap(),
            root.join("new/dir")
        );
        // Absolute targets stay in the root, as the container sees them.
        assert_eq!(
            resolve_in_root(root, "/evil/passwd").unwrap(),
            root.join("etc/passwd")
        );
        let e = resolve_in_root(root, "/usr/up/x").unwrap_err().to_string();
        assert!(e.contains("escapes") && e.contains("../../.."), "{e}");
        assert!(matches!(
            resolve_in_root(root, "/usr/up/x"),
            Err(PathError::Escape { .. })
        ));
        assert!(matches!(
            resolve_in_root(root, "/../x"),
            Err(PathError::DotDot { .. })
        ));
    }
}

#[cfg(test)]
mod open_tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn creates_inside_and_a_swapped_link_cannot_lead_out() {
        let d = tempfile::tempdir().unwrap();
        let (root, outside) = (d.path().join("root"), d.path().join("outside"));
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&outside).unwrap();
        let fd = open_in_root(&root, &root.join("a/b/c"), false).unwrap();
        assert!(root.join("a/b/c").is_dir());
        assert_eq!(fs::read_link(fd_path(&fd)).unwrap(), root.join("a/b/c"));
        open_in_root(&root, &root.join("a/f"), true).unwrap();
        assert!(root.join("a/f").is_file());
        // A link put in after the check, pointing at the host: the
        // kernel resolves it inside the root, where the target is
        // missing, so nothing is made and nothing outside is touched.
        symlink(&outside, root.join("swapped")).unwrap();
        let e = open_in_root(&root, &root.join("swapped/x"), false).unwrap_err();
        assert!(e.to_string().contains("swapped"), "{e}");
        assert!(!outside.join("x").exists());
        // Where the target exists inside the root too, it is that one.
        let inside = root.join(outside.strip_prefix("/").unwrap());
        fs::create_dir_all(&inside).unwrap();
        let fd = open_in_root(&root, &root.join("swapped/x"), false).unwrap();
        assert_eq!(fs::read_link(fd_path(&fd)).unwrap(), inside.join("x"));
        assert!(!outside.join("x").exists());
    }
}
