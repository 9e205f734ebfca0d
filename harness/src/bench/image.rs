//! Images the benchmarks start: the built-in one (a static workload
//! program built from this project's source, needing nothing from
//! outside), busybox when installed, or a bundle directory of the user's.

use std::{
    fs,
    os::unix::fs::{PermissionsExt as _, symlink},
    path::{Path, PathBuf},
    str::FromStr,
};

use thiserror::Error;

/// workload/src/main.rs, compiled statically by build.rs.
pub const WORKLOAD: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/workload"));

#[derive(Debug, Error)]
pub enum ImageError {
    #[error("busybox is not installed at /bin/busybox (Debian: apt-get install busybox-static)")]
    NoBusybox,
    #[error("{0}: not a bundle directory (no config.json)")]
    NotABundle(PathBuf),
    #[error("writing the image in {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("linux.resources: {0}")]
    Resources(serde_json::Error),
    #[error("the default OCI configuration: {0}")]
    Spec(#[from] oci_spec::OciSpecError),
}

/// Which image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageKind {
    Builtin,
    Busybox,
    Dir(PathBuf),
}

impl FromStr for ImageKind {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "builtin" => Self::Builtin,
            "busybox" => Self::Busybox,
            p => Self::Dir(PathBuf::from(p)),
        })
    }
}

impl std::fmt::Display for ImageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Builtin => f.write_str("builtin"),
            Self::Busybox => f.write_str("busybox"),
            Self::Dir(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A bundle ready to start; made ones are removed when dropped.
#[derive(Debug)]
pub struct Image {
    pub kind: ImageKind,
    pub bundle: PathBuf,
    _made: Option<tempfile::TempDir>,
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Write {
        path: path.to_owned(),
        source,
    }
}

/// The workload's arguments as a process of `kind` runs them: the
/// built-in image calls its program by name, busybox by applet.
pub fn process_args(kind: &ImageKind, args: &[&str]) -> Vec<String> {
    match kind {
        ImageKind::Builtin => std::iter::once("/bin/workload")
            .chain(args.iter().copied())
            .map(str::to_owned)
            .collect(),
        _ => {
            let mut v: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
            if let Some(first) = v.first_mut() {
                *first = format!("/bin/{first}");
            }
            v
        }
    }
}

impl Image {
    /// Makes (or, for a directory, checks) the bundle. `args` is the
    /// workload command (e.g. `["true"]`); a user bundle keeps its own.
    pub fn prepare(kind: ImageKind, args: &[&str]) -> Result<Self, ImageError> {
        Self::prepare_with(kind, args, None)
    }

    /// Like `prepare`, with `linux.resources` (OCI JSON) in the config, so
    /// every runtime gets the same limits.
    pub fn prepare_with(
        kind: ImageKind,
        args: &[&str],
        resources: Option<serde_json::Value>,
    ) -> Result<Self, ImageError> {
        if let ImageKind::Dir(p) = &kind {
            if !p.join("config.json").is_file() {
                return Err(ImageError::NotABundle(p.clone()));
            }
            let bundle = std::path::absolute(p).map_err(write_err(p))?;
            return Ok(Self {
                kind,
                bundle,
                _made: None,
            });
        }
        if kind == ImageKind::Busybox && !Path::new("/bin/busybox").is_file() {
            return Err(ImageError::NoBusybox);
        }
        let dir = tempfile::Builder::new()
            .prefix("boxtrace-image-")
            .tempdir()
            .map_err(write_err(Path::new("/tmp")))?;
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "tmp"] {
            let p = rootfs.join(d);
            fs::create_dir_all(&p).map_err(write_err(&p))?;
        }
        match kind {
            ImageKind::Builtin => {
                let p = rootfs.join("bin/workload");
                fs::write(&p, WORKLOAD).map_err(write_err(&p))?;
                fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
                    .map_err(write_err(&p))?;
            }
            _ => {
                let p = rootfs.join("bin/busybox");
                fs::copy("/bin/busybox", &p).map_err(write_err(&p))?;
                for applet in ["sh", "true", "sleep", "head", "tr", "cat", "echo", "dd"] {
                    let l = rootfs.join("bin").join(applet);
                    symlink("busybox", &l).map_err(write_err(&l))?;
                }
            }
        }
        write_config(dir.path(), &process_args(&kind, args), resources)?;
        Ok(Self {
            kind,
            bundle: dir.path().to_owned(),
            _made: Some(dir),
        })
    }
}

/// The OCI default configuration (what `runc spec` writes, near enough)
/// running `args`, without a terminal.
fn write_config(
    bundle: &Path,
    args: &[String],
    resources: Option<serde_json::Value>,
) -> Result<(), ImageError> {
    let mut spec = oci_spec::runtime::Spec::default();
    if let Some(r) = resources {
        let r: oci_spec::runtime::LinuxResources =
            serde_json::from_value(r).map_err(ImageError::Resources)?;
        if let Some(l) = spec.linux_mut() {
            l.set_resources(Some(r));
        }
    }
    if let Some(p) = spec.process_mut() {
        p.set_terminal(Some(false));
        p.set_args(Some(args.to_vec()));
    }
    spec.set_hostname(Some("boxtrace".to_owned()));
    let path = bundle.join("config.json");
    let text = serde_json::to_vec_pretty(&spec).expect("a spec serializes");
    fs::write(&path, text).map_err(write_err(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_image_holds_the_static_workload() {
        let img = Image::prepare(ImageKind::Builtin, &["sleep", "0.1"]).unwrap();
        let bin = img.bundle.join("rootfs/bin/workload");
        let head = fs::read(&bin).unwrap();
        assert_eq!(&head[..4], b"\x7fELF");
        // Statically linked: no program interpreter (PT_INTERP) to load.
        let out = std::process::Command::new(&bin)
            .args(["alloc", "2", "1"])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "allocated_mib=1\nallocated_mib=2\n"
        );
        let config: serde_json::Value =
            serde_json::from_slice(&fs::read(img.bundle.join("config.json")).unwrap()).unwrap();
        assert_eq!(
            config["process"]["args"],
            serde_json::json!(["/bin/workload", "sleep", "0.1"])
        );
        let dir = img.bundle.clone();
        drop(img);
        assert!(!dir.exists(), "a made image is removed when dropped");
    }

    #[test]
    fn a_directory_without_config_is_refused_by_name() {
        let d = tempfile::tempdir().unwrap();
        let e = Image::prepare(ImageKind::Dir(d.path().to_owned()), &[]).unwrap_err();
        assert!(e.to_string().contains("no config.json"), "{e}");
        assert_eq!(process_args(&ImageKind::Busybox, &["true"]), ["/bin/true"]);
    }
}
