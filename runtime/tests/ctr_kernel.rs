//! containerd drives boxrun as its runc binary: `ctr run --runc-binary`
//! through the io.containerd.runc.v2 shim, on a private containerd (own
//! root, state and socket) with a busybox image imported from an OCI
//! layout built here. Needs root and containerd (scripts/setup).

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output},
    time::{Duration, Instant},
};

use common::{BOXRUN, Tmux, mount_leftovers};

const NS: &str = "boxrun-ctr-test";
const IMAGE: &str = "boxtrace/busybox:test";

fn sha256(path: &Path) -> String {
    let o = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Adds `path` to the layout's blobs; returns (digest, size).
fn blob(layout: &Path, path: &Path) -> (String, u64) {
    let d = sha256(path);
    std::fs::copy(path, layout.join("blobs/sha256").join(&d)).unwrap();
    (
        format!("sha256:{d}"),
        std::fs::metadata(path).unwrap().len(),
    )
}

/// An OCI image archive of busybox, one layer.
fn busybox_image(dir: &Path) -> PathBuf {
    let layer = dir.join("layer");
    std::fs::create_dir_all(layer.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", layer.join("bin/busybox")).unwrap();
    for a in [
        "sh", "cat", "echo", "sleep", "hostname", "grep", "tty", "stty",
    ] {
        std::os::unix::fs::symlink("busybox", layer.join("bin").join(a)).unwrap();
    }
    let layout = dir.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let tar = dir.join("layer.tar");
    assert!(
        Command::new("tar")
            .arg("-C")
            .arg(&layer)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    let (layer_digest, layer_size) = blob(&layout, &tar);
    let config = dir.join("config.json");
    std::fs::write(
        &config,
        serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]}
        })
        .to_string(),
    )
    .unwrap();
    let (config_digest, config_size) = blob(&layout, &config);
    let manifest = dir.join("manifest.json");
    std::fs::write(
        &manifest,
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer_digest, "size": layer_size}]
        })
        .to_string(),
    )
    .unwrap();
    let (manifest_digest, manifest_size) = blob(&layout, &manifest);
    std::fs::write(
        layout.join("index.json"),
        serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "digest": manifest_digest, "size": manifest_size,
                           "annotations": {"org.opencontainers.image.ref.name": IMAGE},
                           "platform": {"architecture": "amd64", "os": "linux"}}]
        })
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let archive = dir.join("image.tar");
    assert!(
        Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&archive)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    archive
}

/// A containerd of the test's own; stopped, and everything it made
/// removed, on drop.
struct Containerd {
    dir: tempfile::TempDir,
    child: Child,
}

impl Containerd {
    fn start() -> Self {
        assert!(nix::unistd::geteuid().is_root(), "needs root");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let config = d.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{0}/containerd.sock\"\n",
                d.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd (Debian package containerd; scripts/setup installs it)");
        let c = Self { dir, child };
        let end = Instant::now() + Duration::from_secs(20);
        while !c.ctr(&["version"]).status.success() {
            assert!(
                Instant::now() < end,
                "containerd did not come up: {}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(self.dir.path().join("containerd.sock"))
            .args(["--namespace", NS])
            .args(args);
        c
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.ctr(args);
        assert!(
            o.status.success(),
            "ctr {args:?}: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for t in String::from_utf8_lossy(&self.ctr(&["task", "ls", "-q"]).stdout).lines() {
            let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", t]);
            std::thread::sleep(Duration::from_millis(300));
            let _ = self.ctr(&["task", "delete", "-f", t]);
        }
        for c in String::from_utf8_lossy(&self.ctr(&["container", "ls", "-q"]).stdout).lines() {
            let _ = self.ctr(&["container", "delete", c]);
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        for m in mount_leftovers(&self.dir.path().to_string_lossy()) {
            if let Some(p) = m.split_whitespace().nth(4) {
                let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        // The namespace's parent cgroup is containerd's (runc leaves it
        // too); the containers' own are boxrun's and must be gone.
        for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let _ = std::fs::remove_dir(h.path().join(NS));
        }
    }
}

#[test]
fn ctr_runs_execs_pauses_and_kills_with_boxrun_as_its_runc() {
    let ctd = Containerd::start();
    let image = busybox_image(ctd.dir.path());
    ctd.ok(&["images", "import", image.to_str().unwrap()]);
    let runc = ["--runc-binary", BOXRUN];

    // Foreground, output through the shim's pipes, exit status back.
    let mut args = vec!["run", "--rm"];
    args.extend(runc);
    args.extend([
        IMAGE,
        "ctr-fg",
        "sh",
        "-c",
        "echo hello from boxrun; grep pids /proc/self/cgroup",
    ]);
    let out = ctd.ok(&args);
    assert!(out.contains("hello from boxrun"), "{out}");
    assert!(out.contains(&format!(":pids:/{NS}/ctr-fg")), "{out}");
    let mut args = vec!["run", "--rm"];
    args.extend(runc);
    args.extend([IMAGE, "ctr-status", "sh", "-c", "exit 5"]);
    assert_eq!(ctd.ctr(&args).status.code(), Some(5));

    // Detached, then exec, ps, pause/resume, kill.
    let mut args = vec!["run", "-d"];
    args.extend(runc);
    args.extend([IMAGE, "ctr-bg", "sleep", "300"]);
    ctd.ok(&args);
    let tasks = ctd.ok(&["task", "ls"]);
    assert!(
        tasks
            .lines()
            .any(|l| l.contains("ctr-bg") && l.contains("RUNNING")),
        "{tasks}"
    );
    let out = ctd.ok(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "ctr-bg",
        "sh",
        "-c",
        "echo exec sees pid1=$(cat /proc/1/comm)",
    ]);
    assert_eq!(out.trim(), "exec sees pid1=sleep");
    assert!(ctd.ok(&["task", "ps", "ctr-bg"]).lines().count() >= 2);
    ctd.ok(&["task", "pause", "ctr-bg"]);
    assert!(ctd.ok(&["task", "ls"]).contains("PAUSED"));
    ctd.ok(&["task", "resume", "ctr-bg"]);
    ctd.ok(&["task", "kill", "-s", "SIGKILL", "ctr-bg"]);
    let end = Instant::now() + Duration::from_secs(10);
    while !ctd.ok(&["task", "ls"]).contains("STOPPED") {
        assert!(Instant::now() < end, "not stopped");
        std::thread::sleep(Duration::from_millis(50));
    }
    ctd.ok(&["task", "delete", "ctr-bg"]);
    ctd.ok(&["container", "delete", "ctr-bg"]);
    // The containers' cgroups went with them.
    let left: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .filter_map(|h| std::fs::read_dir(h.path().join(NS)).ok())
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("ctr-"))
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn ctr_run_with_a_terminal_is_interactive() {
    let ctd = Containerd::start();
    let image = busybox_image(ctd.dir.path());
    ctd.ok(&["images", "import", image.to_str().unwrap()]);
    let cmd = format!(
        "ctr --address {}/containerd.sock --namespace {NS} run -t --rm --runc-binary {BOXRUN} {IMAGE} ctr-tty sh; echo EXIT=$?; sleep 60",
        ctd.dir.path().display()
    );
    let t = Tmux::start("boxrun-ctr-test", 90, 25, &cmd);
    t.wait_for("#");
    t.keys(&["echo hi-$((40+2)) $(tty); stty size", "Enter"]);
    let p = t.wait_for("25 90");
    assert!(p.contains("hi-42 /dev/pts/0"), "{p}");
    t.keys(&["exit 3", "Enter"]);
    let p = t.wait_for("EXIT=");
    assert!(p.contains("EXIT=3"), "{p}");
}
