//! boxrun's cgroup v2 device program, loaded and attached on this kernel.
//! The hybrid host has an (empty) cgroup2 hierarchy at
//! /sys/fs/cgroup/unified, and the kernel runs device programs for the
//! v2 cgroup a task is in whatever the v1 hierarchies say: enough to prove
//! the program here. Needs root. The full container path runs in the
//! cgroup v2 VM (v2_kernel.rs).

use std::{path::PathBuf, process::Command};

use boxrun::cgroup::device_filter::{Rule, attach};

#[test]
fn the_device_program_allows_only_what_the_rules_allow() {
    assert!(nix::unistd::geteuid().is_root(), "needs root");
    let unified = PathBuf::from("/sys/fs/cgroup/unified");
    assert!(
        unified.join("cgroup.procs").exists(),
        "this machine kind has a cgroup2 hierarchy at {}",
        unified.display()
    );
    let dir = unified.join(format!("boxrun-devtest-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    let read_only_zero = Rule {
        allow: true,
        kind: Some(2),
        major: Some(1),
        minor: Some(5),
        access: 2,
    };
    attach(&dir, &[Rule::char_allowed(1, Some(3)), read_only_zero]).unwrap();
    let script = format!(
        "echo $$ > {}/cgroup.procs; \
         head -c 1 /dev/null && echo null-ok; \
         head -c 1 /dev/zero > /dev/null && echo zero-read-ok; \
         {{ echo x > /dev/zero; }} 2>&1; \
         {{ head -c 1 /dev/urandom > /dev/null; }} 2>&1; true",
        dir.display()
    );
    let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    let _ = std::fs::remove_dir(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("null-ok"), "{text}");
    assert!(text.contains("zero-read-ok"), "{text}");
    let refused = |dev: &str| {
        text.lines()
            .any(|l| l.contains(dev) && l.contains("Operation not permitted"))
    };
    assert!(refused("/dev/zero"), "writing /dev/zero: {text}");
    assert!(refused("/dev/urandom"), "/dev/urandom: {text}");
    assert!(!dir.exists());
}
