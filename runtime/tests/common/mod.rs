//! Shared by boxrun's root tests: a busybox bundle written by hand (no
//! other runtime's `spec`), boxrun invocations, and leftover checks.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

pub const BOXRUN: &str = env!("CARGO_BIN_EXE_boxrun");

/// A bundle in a temporary directory, with its own state root.
pub struct TestBundle {
    pub dir: tempfile::TempDir,
}

impl TestBundle {
    /// Busybox rootfs; `linux` fields are merged over the defaults.
    pub fn new(args: &[&str], linux_extra: serde_json::Value) -> Self {
        assert!(nix::unistd::geteuid().is_root(), "needs root");
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "tmp"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for a in [
            "sh", "hostname", "ls", "head", "tr", "cat", "echo", "true", "sleep", "mkdir", "chmod",
            "grep", "seq", "wc", "id", "readlink", "mknod", "stat", "uname", "touch",
        ] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
        }
        let mut linux = serde_json::json!({
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}, {"type": "network"}],
            "maskedPaths": ["/proc/kcore"],
            "readonlyPaths": ["/proc/sys"]
        });
        if let serde_json::Value::Object(extra) = linux_extra {
            for (k, v) in extra {
                linux[k] = v;
            }
        }
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "hostname": "boxrun-test",
            "process": {
                "args": args, "cwd": "/", "user": {"uid": 0, "gid": 0},
                "env": ["PATH=/bin"], "noNewPrivileges": true
            },
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}
            ],
            "linux": linux
        });
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Changes config.json in place.
    pub fn edit(&self, f: impl FnOnce(&mut serde_json::Value)) {
        let p = self.path().join("config.json");
        let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        f(&mut c);
        std::fs::write(&p, c.to_string()).unwrap();
    }

    /// process.terminal on, with a devpts for the container's ptys.
    pub fn with_terminal(&self) {
        self.edit(|c| {
            c["process"]["terminal"] = true.into();
            c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
                "destination": "/dev/pts", "type": "devpts", "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
            }));
        });
    }

    pub fn state_root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `boxrun --root <state> ARGS...`
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BOXRUN);
        c.arg("--root").arg(self.state_root()).args(args);
        c
    }

    /// Runs a lifecycle command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        assert!(
            out.status.success(),
            "boxrun {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `boxrun run` with the container's stdio captured.
    pub fn run(&self, id: &str) -> Output {
        self.cmd(&["run", "--bundle"])
            .arg(self.path())
            .arg(id)
            .output()
            .unwrap()
    }

    /// `boxrun create` with the init's stdio on files in the bundle (a
    /// pipe would stay open as long as the container lives).
    pub fn create(&self, id: &str) {
        let out = std::fs::File::create(self.path().join(format!("{id}.out"))).unwrap();
        let status = self
            .cmd(&["create", "--bundle"])
            .arg(self.path())
            .arg(id)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .status()
            .unwrap();
        assert!(status.success(), "create {id}: {}", self.output_of(id));
    }

    /// `boxrun create [EXTRA...] --bundle B ID`, which must fail: its
    /// stderr.
    pub fn create_err(&self, id: &str, extra: &[&str]) -> String {
        let out = self
            .cmd(&["create"])
            .args(extra)
            .arg("--bundle")
            .arg(self.path())
            .arg(id)
            .output()
            .unwrap();
        assert!(!out.status.success(), "create {id} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn output_of(&self, id: &str) -> String {
        std::fs::read_to_string(self.path().join(format!("{id}.out"))).unwrap_or_default()
    }

    /// The `status` field of `boxrun state`.
    pub fn status(&self, id: &str) -> String {
        let out = self.ok(&["state", id]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["status"].as_str().unwrap().to_owned()
    }

    pub fn state(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    /// Waits until the container has stopped.
    pub fn wait_stopped(&self, id: &str, timeout: Duration) {
        let end = Instant::now() + timeout;
        while self.status(id) != "stopped" {
            assert!(Instant::now() < end, "{id} still {}", self.status(id));
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A test that fails half-way leaves its containers: whatever is still in
/// the bundle's state root is force-deleted, so the host keeps no cgroup
/// or process of it.
impl Drop for TestBundle {
    fn drop(&mut self) {
        let Ok(ids) = std::fs::read_dir(self.state_root()) else {
            return;
        };
        for id in ids.flatten() {
            let _ = self
                .cmd(&["delete", "--force"])
                .arg(id.file_name())
                .output();
        }
    }
}

/// cgroup directories named `id` anywhere in the host's hierarchies.
pub fn cgroup_leftovers(id: &str) -> Vec<PathBuf> {
    fn walk(d: &Path, id: &str, depth: u32, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let p = e.path();
            if e.file_name() == id {
                out.push(p.clone());
            }
            if depth > 0 {
                walk(&p, id, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), id, 5, &mut out);
    out
}

/// Host mounts whose path mentions `needle`.
pub fn mount_leftovers(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// Live processes whose environment holds `marker` (set on the boxrun
/// that made them, inherited by its children until they exec).
pub fn process_leftovers(marker: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')));
        if !zombie && env.split(|&b| b == 0).any(|kv| kv == marker.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// A tmux server of its own running one command in a pane of a given
/// size: a real terminal for the interactive tests. Killed on drop.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn start(socket: &str, cols: u16, rows: u16, cmd: &str) -> Self {
        let t = Self {
            socket: socket.to_owned(),
        };
        t.run(&["kill-server"]);
        let (x, y) = (cols.to_string(), rows.to_string());
        t.run(&["new-session", "-d", "-s", "t", "-x", &x, "-y", &y, cmd]);
        t
    }

    fn run(&self, args: &[&str]) -> String {
        let o = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux (scripts/setup installs it)");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Types `keys` (tmux key names, e.g. `Enter`, `C-c`).
    pub fn keys(&self, keys: &[&str]) {
        let mut a = vec!["send-keys", "-t", "t"];
        a.extend(keys);
        self.run(&a);
    }

    /// The pane once it shows `want` (15 s at most).
    pub fn wait_for(&self, want: &str) -> String {
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            let pane = self.run(&["capture-pane", "-p", "-t", "t"]);
            if pane.contains(want) {
                return pane;
            }
            assert!(Instant::now() < end, "no `{want}` in the pane:\n{pane}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}
