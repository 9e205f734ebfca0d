//! Reading an OCI bundle: `config.json` (with the `oci-spec` types) and the
//! root filesystem it names, checked before anything touches the host.

mod validate;

use std::{
    fs,
    path::{Path, PathBuf},
};

use oci_spec::runtime::Spec;
use thiserror::Error;

pub use validate::{Unsupported, resources as check_resources};

#[derive(Debug, Error)]
pub enum BundleError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: `root.path` is missing")]
    NoRoot { path: PathBuf },
    #[error("root filesystem {rootfs} (root.path in {path}) does not exist or is not a directory")]
    MissingRootfs { path: PathBuf, rootfs: PathBuf },
    #[error("{path}: `process` is missing")]
    NoProcess { path: PathBuf },
    #[error("{path}: `process.args` is empty")]
    NoArgs { path: PathBuf },
    #[error("{}: {source}", .path.display())]
    Unsupported {
        path: PathBuf,
        #[source]
        source: Unsupported,
    },
}

impl From<(PathBuf, Unsupported)> for BundleError {
    fn from((path, source): (PathBuf, Unsupported)) -> Self {
        Self::Unsupported { path, source }
    }
}

/// A loaded and checked bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory, absolute.
    pub dir: PathBuf,
    pub spec: Spec,
    /// The root filesystem, absolute.
    pub rootfs: PathBuf,
}

impl Bundle {
    /// Loads `dir/config.json` and checks what boxrun needs from it.
    pub fn load(dir: &Path) -> Result<Self, BundleError> {
        let dir = std::path::absolute(dir).map_err(|source| BundleError::Read {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join("config.json");
        let text = fs::read_to_string(&path).map_err(|source| BundleError::Read {
            path: path.clone(),
            source,
        })?;
        let spec = check_text(&path, &text)?;
        let root = spec.root().as_ref().expect("checked by check_text");
        let rootfs = dir.join(root.path());
        if !rootfs.is_dir() {
            return Err(BundleError::MissingRootfs { path, rootfs });
        }
        Ok(Self { dir, spec, rootfs })
    }
}

/// Parses config.json text (read from `path`) and checks everything
/// that does not need the filesystem: what `load` does short of the
/// rootfs. The fuzz target drives this.
pub fn check_text(path: &Path, text: &str) -> Result<Spec, BundleError> {
    let spec = parse(path, text)?;
    if spec.root().is_none() {
        return Err(BundleError::NoRoot {
            path: path.to_owned(),
        });
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| BundleError::NoProcess {
            path: path.to_owned(),
        })?;
    if process.args().as_ref().is_none_or(Vec::is_empty) {
        return Err(BundleError::NoArgs {
            path: path.to_owned(),
        });
    }
    validate::check(&spec).map_err(|e| BundleError::from((path.to_owned(), e)))?;
    Ok(spec)
}

/// Parses config.json text; errors carry the line and column.
pub fn parse(path: &Path, text: &str) -> Result<Spec, BundleError> {
    serde_json::from_str(text).map_err(|e| BundleError::Json {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(config: &str) -> (tempfile::TempDir, Result<Bundle, BundleError>) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("rootfs")).unwrap();
        fs::write(dir.path().join("config.json"), config).unwrap();
        let b = Bundle::load(dir.path());
        (dir, b)
    }

    const MINIMAL: &str = r#"{"ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}}"#;

    #[test]
    fn loads_a_minimal_bundle() {
        let (dir, b) = bundle(MINIMAL);
        let b = b.unwrap();
        assert_eq!(b.rootfs, dir.path().join("rootfs"));
    }

    #[test]
    fn malformed_json_names_line_and_column() {
        let (_d, b) = bundle("{\n  \"ociVersion\": \"1.0.2\",\n  \"root\": {\"path\": }\n}");
        let e = b.unwrap_err().to_string();
        assert!(e.contains("config.json:3:"), "{e}");
    }

    #[test]
    fn unknown_namespace_is_named() {
        let (_d, b) = bundle(&MINIMAL.replace("\"pid\"", "\"bogus\""));
        let e = b.unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn unified_keys_must_be_file_names() {
        let bad = MINIMAL.replace(
            r#""namespaces""#,
            r#""resources": {"unified": {"../memory.max": "1"}}, "namespaces""#,
        );
        let (_d, b) = bundle(&bad);
        let e = b.unwrap_err().to_string();
        assert!(e.contains("`../memory.max`"), "{e}");
    }

    #[test]
    fn missing_rootfs_and_args_are_named() {
        let (_d, b) = bundle(&MINIMAL.replace("\"rootfs\"", "\"nope\""));
        assert!(matches!(b, Err(BundleError::MissingRootfs { .. })));
        let (_d, b) = bundle(&MINIMAL.replace("[\"/bin/true\"]", "[]"));
        assert!(matches!(b, Err(BundleError::NoArgs { .. })));
    }
}
