//! Resolving a path inside the container's root filesystem, refusing any
//! symlink that would lead out of it.

use std::{
    ffi::OsStr,
    fs, io,
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
/// the container would see it. A symlink (absolute, or with `..`) that
/// points outside `root`, or a `..` above it, is an error: a mount there
/// would land on the host.
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
                if target.is_absolute() {
                    return Err(PathError::Escape {
                        path: path.to_owned(),
                        link: here,
                        target,
                    });
                }
                // Relative: continue from the link's directory; a `..`
                // above the root surfaces as Escape below.
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
        let e = resolve_in_root(root, "/evil/passwd")
            .unwrap_err()
            .to_string();
        assert!(e.contains("escapes") && e.contains("/etc"), "{e}");
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
