//! Root integration tests: `boxrun run` of a busybox bundle on the real
//! kernel (cgroup v1 here).

mod common;

use std::process::{Command, Output};

use common::{BOXRUN, TestBundle, cgroup_leftovers};

fn run(id: &str, args: &[&str], resources: serde_json::Value) -> (Output, TestBundle) {
    let b = TestBundle::new(args, serde_json::json!({"resources": resources}));
    (b.run(id), b)
}

fn leftovers(id: &str) -> Vec<std::path::PathBuf> {
    cgroup_leftovers(id)
}

#[test]
fn workload_is_pid_1_with_the_spec_hostname_and_nothing_is_left() {
    let (out, dir) = run(
        "br-basic",
        &[
            "sh",
            "-c",
            "echo pid=$$ host=$(hostname); ls /proc | grep -c '^[0-9]'",
        ],
        serde_json::json!({}),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("pid=1 host=boxrun-test"), "{stdout}");
    // Only the shell and ls: host processes are invisible.
    let procs: u32 = stdout.lines().last().unwrap().trim().parse().unwrap();
    assert!(procs <= 3, "{stdout}");
    assert!(
        leftovers("br-basic").is_empty(),
        "{:?}",
        leftovers("br-basic")
    );
    assert!(!dir.state_root().join("br-basic").exists());
}

#[test]
fn run_keep_leaves_the_stopped_container_for_delete() {
    let b = TestBundle::new(&["sh", "-c", "exit 3"], serde_json::json!({}));
    let out = b
        .cmd(&["run", "--keep", "--bundle"])
        .arg(b.path())
        .arg("br-keep")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(b.status("br-keep"), "stopped");
    assert!(!cgroup_leftovers("br-keep").is_empty(), "kept until delete");
    b.ok(&["delete", "br-keep"]);
    assert!(cgroup_leftovers("br-keep").is_empty());
}

#[test]
fn no_pivot_moves_the_rootfs_over_root_and_chroots() {
    let b = TestBundle::new(
        &[
            "sh",
            "-c",
            "ls /bin/busybox; hostname; cat /proc/1/cmdline | tr '\\0' ' '",
        ],
        serde_json::json!({}),
    );
    let out = b
        .cmd(&["run", "--no-pivot", "--bundle"])
        .arg(b.path())
        .arg("br-nopivot")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("/bin/busybox\nboxrun-test\nsh -c"),
        "{text}"
    );
    assert!(cgroup_leftovers("br-nopivot").is_empty());
    assert!(common::mount_leftovers(&b.path().to_string_lossy()).is_empty());
}

#[test]
fn exit_status_passes_through() {
    let (out, _d) = run("br-exit", &["sh", "-c", "exit 7"], serde_json::json!({}));
    assert_eq!(out.status.code(), Some(7));
}

#[test]
fn memory_limit_ends_in_an_oom_kill() {
    let (out, _d) = run(
        "br-oom",
        &[
            "sh",
            "-c",
            "x=$(head -c 209715200 /dev/zero | tr '\\000' x); echo survived",
        ],
        serde_json::json!({"memory": {"limit": 64u64 << 20}}),
    );
    assert_eq!(
        out.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(leftovers("br-oom").is_empty());
}

#[test]
fn bad_input_is_named_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rootfs")).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        "{\n \"ociVersion\": \"1.0.2\",\n \"root\": {\"path\": }\n}",
    )
    .unwrap();
    // With --log in json, as containerd's shim calls it: the error is
    // also its last line there, where the shim looks.
    let log = dir.path().join("log.json");
    let out = Command::new(BOXRUN)
        .arg("--root")
        .arg(dir.path().join("state"))
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "run", "--bundle"])
        .arg(dir.path())
        .arg("br-bad")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("config.json:3:"), "{err}");
    let last: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(last["level"], "error");
    assert!(
        last["msg"].as_str().unwrap().contains("config.json:3:"),
        "{last}"
    );
    assert!(!dir.path().join("state/br-bad").exists());
    let out = Command::new(BOXRUN)
        .args(["--root", "/tmp", "run", "--bundle", "/nonexistent", "../x"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("container id `../x`"));
}

#[test]
fn features_describe_what_boxrun_does() {
    let out = Command::new(BOXRUN).arg("features").output().unwrap();
    assert!(out.status.success());
    let f: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(f["ociVersionMin"], "1.0.0");
    // Hooks are refused, so none is claimed.
    assert_eq!(
        f["hooks"],
        serde_json::json!([
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ])
    );
    let opts: Vec<&str> = f["mountOptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    for o in ["rbind", "ro", "nosuid", "rprivate", "strictatime"] {
        assert!(opts.contains(&o), "{o} missing from {opts:?}");
    }
    let linux = &f["linux"];
    for ns in ["pid", "mount", "user", "cgroup", "network"] {
        assert!(
            linux["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n == ns),
            "{ns}"
        );
    }
    assert!(
        linux["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "CAP_SYS_ADMIN")
    );
    let seccomp = &linux["seccomp"];
    assert_eq!(seccomp["enabled"], true);
    assert!(
        seccomp["archs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "SCMP_ARCH_X86_64")
    );
    assert!(
        !seccomp["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "SCMP_ACT_NOTIFY")
    );
}
