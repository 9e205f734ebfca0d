//! Tracing a boxrun start, with boxrun's own phase marks on the tracer's
//! timeline. Runs here (cgroup v1, this machine's kernel) and again inside
//! the cgroup v2 VM lane (scripts/vm-test, Debian's cloud kernel), so the
//! probes meet a second kernel version and the v2 cgroup events.

mod common;

use std::{collections::HashMap, path::Path, process::Command};

use common::{CLONE_NEWNS, CLONE_NEWPID, bits, of_kind, stderr, trace, u};
use serde_json::Value;

/// boxrun of this workspace (built along with the harness tests). No `..`
/// in the path: the VM lane has the binary but not the harness directory.
fn boxrun() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("target/debug/boxrun")
}

/// A busybox bundle written by hand: no other runtime is needed (the VM
/// has none).
fn bundle(dir: &Path, id: &str) {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "proc", "dev"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/true")).unwrap();
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "hostname": id,
        "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"]},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}, {"type": "network"}]}
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

#[test]
fn a_boxrun_start_is_traced_in_order_and_matches_its_phase_marks() {
    let boxrun = boxrun();
    assert!(boxrun.exists(), "build boxrun first: cargo build -p boxrun");
    let id = "tr-boxrun";
    let dir = tempfile::tempdir().unwrap();
    bundle(dir.path(), id);
    let marks = dir.path().join("marks");
    let state = dir.path().join("state");
    let bundle_path = dir.path().to_str().unwrap();
    let (output, events) = trace(&[
        boxrun.to_str().unwrap(),
        "--root",
        state.to_str().unwrap(),
        "run",
        "--phase-marks",
        marks.to_str().unwrap(),
        "-b",
        bundle_path,
        id,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));

    let find = |kind: &str, pred: &dyn Fn(&Value) -> bool| -> Value {
        of_kind(&events, kind)
            .into_iter()
            .find(|e| pred(e))
            .unwrap_or_else(|| panic!("no matching {kind} in {events:#?}"))
            .clone()
    };
    let mkdir = find("cgroup_mkdir", &|e| {
        e["path"].as_str().is_some_and(|p| p.ends_with(id))
    });
    let clone = find("clone3", &|e| {
        bits(e, "flags") & (CLONE_NEWPID | CLONE_NEWNS) == CLONE_NEWPID | CLONE_NEWNS
    });
    assert!(clone["ret"].as_i64().unwrap() > 0, "{clone}");
    let key = u(&clone, "ret");
    let pivot = find("pivot_root", &|e| u(e, "tid") == key);
    assert_eq!(pivot["ret"], 0);
    let execve = find("execve", &|e| e["filename"] == "/bin/true");
    assert_eq!(execve["ret"], 0);
    assert_eq!(u(&execve, "pid"), key, "the init itself execs the workload");
    let exit = find("exit", &|e| u(e, "tid") == key);
    assert_eq!(exit["status"], serde_json::json!({"code": 0}));
    let rmdir = find("cgroup_rmdir", &|e| {
        e["path"].as_str().is_some_and(|p| p.ends_with(id))
    });
    // Everything of the container is attributed to it, with boxrun's id.
    assert_eq!(u(&pivot, "container"), key);
    assert_eq!(pivot["container_id"], id);

    // boxrun's marks and the kernel's events share CLOCK_MONOTONIC.
    let text = std::fs::read_to_string(&marks).unwrap();
    let mark: HashMap<&str, u64> = text
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k, v.parse().ok()?))
        })
        .collect();
    let ts = |e: &Value| u(e, "ts_ns");
    let timeline = [
        ("started", mark["started"]),
        ("clone3", ts(&clone)),
        ("cloned", mark["cloned"]),
        ("pivot_root", ts(&pivot)),
        ("pivoted", mark["pivoted"]),
        ("exec mark", mark["exec"]),
        ("execve", ts(&execve)),
        ("exit", ts(&exit)),
        ("exited", mark["exited"]),
        ("deleted", mark["deleted"]),
    ];
    for w in timeline.windows(2) {
        assert!(
            w[0].1 <= w[1].1,
            "{} ({}) after {} ({})\n{text}",
            w[0].0,
            w[0].1,
            w[1].0,
            w[1].1
        );
    }
    assert!(ts(&mkdir) < ts(&rmdir));
    assert!(ts(&rmdir) <= mark["deleted"]);
    println!(
        "kernel {}: boxrun start traced, clone3 -> execve {:.3} ms, run total {:.3} ms",
        String::from_utf8_lossy(
            &Command::new("uname")
                .arg("-r")
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default()
        )
        .trim(),
        (ts(&execve) - ts(&clone)) as f64 / 1e6,
        (mark["deleted"] - mark["started"]) as f64 / 1e6
    );
}

#[test]
fn the_demo_traces_boxrun_on_the_builtin_image_and_leaves_nothing() {
    common::require_root();
    let output = Command::new(common::BOXTRACE).arg("demo").output().unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    // The workload, pid 1 of its namespace. (Its cgroup reads `/` where
    // the default config's cgroup namespace hides the path, as on v2.)
    assert!(
        out.contains("hello from boxtrace (pid 1), cgroup "),
        "{out}"
    );
    for want in [
        "cgroup_mkdir \"/boxtrace-demo-",
        "clone3",
        "CLONE_NEWPID",
        "pivot_root",
        "sethostname  \"boxtrace\" = 0",
        "exec         \"/bin/workload\"",
        "exit         code=0",
        "command exited 0",
    ] {
        assert!(err.contains(want), "no `{want}` in\n{err}");
    }
    // The summary names the container: `containers: <id> (key N)`.
    let id = err
        .split("containers: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no container in the summary:\n{err}"))
        .to_owned();
    assert!(id.starts_with("boxtrace-demo-"), "{id}");
    for ctrl in ["pids", "memory", "cpu", "freezer", ""] {
        let dir = std::path::Path::new("/sys/fs/cgroup").join(ctrl).join(&id);
        assert!(!dir.exists(), "{} left behind:\n{err}", dir.display());
    }
}
