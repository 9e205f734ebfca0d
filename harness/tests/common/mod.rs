//! Helpers shared by the root integration tests: running boxtrace, reading
//! its JSON Lines, and building busybox OCI bundles for runc.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

pub const BOXTRACE: &str = env!("CARGO_BIN_EXE_boxtrace");

pub const CLONE_NEWNS: u64 = 0x0002_0000;
pub const CLONE_NEWUTS: u64 = 0x0400_0000;
pub const CLONE_NEWIPC: u64 = 0x0800_0000;
pub const CLONE_NEWPID: u64 = 0x2000_0000;
pub const CLONE_NEWNET: u64 = 0x4000_0000;
pub const CLONE_THREAD: u64 = 0x0001_0000;

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests load eBPF programs and must run as root"
    );
}

/// Runs `boxtrace trace --out FILE <extra> -- argv`; returns its output
/// and the parsed events.
pub fn trace_with(extra: &[&str], argv: &[&str]) -> (Output, Vec<Value>) {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let output = Command::new(BOXTRACE)
        .arg("trace")
        .arg("--out")
        .arg(&out)
        .args(extra)
        .arg("--")
        .args(argv)
        .output()
        .unwrap();
    (output, read_events(&out))
}

pub fn trace(argv: &[&str]) -> (Output, Vec<Value>) {
    trace_with(&[], argv)
}

pub fn read_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

pub fn bits(e: &Value, field: &str) -> u64 {
    e[field]["bits"].as_u64().unwrap()
}

pub fn u(e: &Value, field: &str) -> u64 {
    e[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {e}"))
}

/// A busybox OCI bundle made with `runc spec`, running `args`.
pub struct Bundle {
    dir: tempfile::TempDir,
}

impl Bundle {
    pub fn busybox(args: &[&str]) -> Self {
        Self::busybox_with(args, |_| {})
    }

    /// Like `busybox`, letting `edit` change config.json first.
    pub fn busybox_with(args: &[&str], edit: impl FnOnce(&mut Value)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for applet in ["sh", "true", "sleep", "head", "tr", "cat", "echo"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        let st = Command::new("runc")
            .args(["spec", "--bundle"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "runc spec failed");
        let path = dir.path().join("config.json");
        let mut config: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        config["process"]["terminal"] = Value::Bool(false);
        config["process"]["args"] = args.iter().map(|&a| Value::from(a)).collect();
        edit(&mut config);
        std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A private runc state directory, so tests do not see each other's
/// containers; force-deletes whatever is left in it.
pub struct RuncRoot {
    dir: tempfile::TempDir,
}

impl RuncRoot {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// `runc --root ROOT run -b BUNDLE ID` as an argv.
    pub fn run_argv(&self, bundle: &Bundle, id: &str) -> Vec<String> {
        vec![
            "runc".into(),
            "--root".into(),
            self.dir.path().display().to_string(),
            "run".into(),
            "-b".into(),
            bundle.path().display().to_string(),
            id.into(),
        ]
    }
}

impl Drop for RuncRoot {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else {
            return;
        };
        for e in entries.flatten() {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(self.dir.path())
                .args(["delete", "--force"])
                .arg(e.file_name())
                .output();
        }
    }
}

/// Events sorted by their timestamp (syscalls are written at their exit
/// with their entry time, so the file is not in time order).
pub fn by_time(events: &[Value]) -> Vec<Value> {
    let mut v = events.to_vec();
    v.sort_by_key(|e| e["ts_ns"].as_u64().unwrap());
    v
}
