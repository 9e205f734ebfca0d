//! boxrun on pure cgroup v2. This machine's controllers are all on v1, so
//! these tests are ignored here and run inside a throwaway VM booted by
//! `scripts/vm-test` (part of the README's test command), where cgroup2 is
//! mounted at /sys/fs/cgroup.

mod common;

use std::{
    io::Read as _,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use common::TestBundle;

const ROOT: &str = "/sys/fs/cgroup";

/// The container's cgroup: boxrun runs in the root cgroup in the VM, so a
/// relative cgroups path lands right below it.
fn dir(id: &str) -> PathBuf {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a cgroup2 line in /proc/self/cgroup");
    Path::new(ROOT).join(own.trim_start_matches('/')).join(id)
}

fn require_v2() {
    let st = nix::sys::statfs::statfs(ROOT).unwrap();
    assert_eq!(
        st.filesystem_type(),
        nix::sys::statfs::CGROUP2_SUPER_MAGIC,
        "{ROOT} is not cgroup2: run these tests with scripts/vm-test"
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `key value` lines (memory.events, cpu.stat, pids.events...).
fn field(path: &Path, key: &str) -> u64 {
    let text = read(path);
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{key}` in {}:\n{text}", path.display()))
}

fn finish(b: &TestBundle, id: &str) {
    b.ok(&["delete", "--force", id]);
    assert!(!dir(id).exists(), "{} left behind", dir(id).display());
}

#[test]
#[ignore = "needs pure cgroup v2: runs in the VM lane (scripts/vm-test)"]
fn v2_memory_max_ends_in_a_counted_oom_kill_and_an_event() {
    require_v2();
    let id = "v2-oom";
    let b = TestBundle::new(
        &[
            "sh",
            "-c",
            "sleep 0.2; x=$(head -c 104857600 /dev/zero | tr '\\000' x); echo survived",
        ],
        serde_json::json!({"resources": {"memory": {"limit": 32u64 << 20, "swap": 32u64 << 20}}}),
    );
    b.create(id);
    assert_eq!(read(&dir(id).join("memory.max")).trim(), "33554432");
    assert_eq!(read(&dir(id).join("memory.swap.max")).trim(), "0");
    let mut events = b
        .cmd(&["events", id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    b.ok(&["start", id]);
    b.wait_stopped(id, Duration::from_secs(60));
    let oom_kills = field(&dir(id).join("memory.events"), "oom_kill");
    println!("memory.events oom_kill = {oom_kills}");
    assert!(oom_kills >= 1);
    let mut out = String::new();
    events
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    events.wait().unwrap();
    println!("boxrun events: {}", out.trim());
    assert!(out.contains("\"type\":\"oom\""), "{out}");
    assert!(!b.output_of(id).contains("survived"));
    finish(&b, id);
}

#[test]
#[ignore = "needs pure cgroup v2: runs in the VM lane (scripts/vm-test)"]
fn v2_memory_high_throttles_without_killing() {
    require_v2();
    let id = "v2-high";
    let b = TestBundle::new(
        &[
            "sh",
            "-c",
            "x=$(head -c 12582912 /dev/zero | tr '\\000' x); echo survived",
        ],
        serde_json::json!({"resources": {"unified": {"memory.high": "16777216"}}}),
    );
    b.create(id);
    assert_eq!(read(&dir(id).join("memory.high")).trim(), "16777216");
    b.ok(&["start", id]);
    b.wait_stopped(id, Duration::from_secs(120));
    let high = field(&dir(id).join("memory.events"), "high");
    let killed = field(&dir(id).join("memory.events"), "oom_kill");
    println!("memory.events high = {high}, oom_kill = {killed}");
    assert!(high >= 1);
    assert_eq!(killed, 0);
    assert!(b.output_of(id).contains("survived"), "{}", b.output_of(id));
    finish(&b, id);
}

#[test]
#[ignore = "needs pure cgroup v2: runs in the VM lane (scripts/vm-test)"]
fn v2_cpu_max_throttles() {
    require_v2();
    let id = "v2-cpu";
    let b = TestBundle::new(
        &["sh", "-c", "while :; do :; done"],
        serde_json::json!({"resources": {"cpu": {"quota": 10000, "period": 100000}}}),
    );
    b.create(id);
    assert_eq!(read(&dir(id).join("cpu.max")).trim(), "10000 100000");
    let stat = dir(id).join("cpu.stat");
    b.ok(&["start", id]);
    let t = Instant::now();
    std::thread::sleep(Duration::from_millis(2000));
    let usage = field(&stat, "usage_usec");
    let wall = t.elapsed().as_micros() as f64;
    let periods = field(&stat, "nr_periods");
    let throttled = field(&stat, "nr_throttled");
    let throttled_us = field(&stat, "throttled_usec");
    println!(
        "cpu.stat: usage {usage} us over {wall:.0} us wall ({:.3} CPU), nr_periods {periods}, nr_throttled {throttled}, throttled_usec {throttled_us}",
        usage as f64 / wall
    );
    assert!(throttled >= 5, "nr_throttled {throttled}");
    assert!(throttled_us > 0);
    // 0.1 CPU asked; a margin for the emulated machine's coarse timing.
    assert!((usage as f64 / wall) < 0.25, "used {usage} us in {wall} us");
    finish(&b, id);
}

#[test]
#[ignore = "needs pure cgroup v2: runs in the VM lane (scripts/vm-test)"]
fn v2_pids_max_is_enforced() {
    require_v2();
    let id = "v2-pids";
    let b = TestBundle::new(
        &[
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8; do sleep 30 & done; echo done",
        ],
        serde_json::json!({"resources": {"pids": {"limit": 4}}}),
    );
    b.create(id);
    assert_eq!(read(&dir(id).join("pids.max")).trim(), "4");
    b.ok(&["start", id]);
    let events = dir(id).join("pids.events");
    let end = Instant::now() + Duration::from_secs(30);
    while field(&events, "max") == 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused = field(&events, "max");
    let current: u64 = read(&dir(id).join("pids.current")).trim().parse().unwrap();
    println!("pids.events max = {refused}, pids.current = {current}");
    assert!(refused >= 1);
    assert!(current <= 4);
    finish(&b, id);
}

#[test]
#[ignore = "needs pure cgroup v2: runs in the VM lane (scripts/vm-test)"]
fn v2_pause_and_resume_use_cgroup_freeze() {
    require_v2();
    let id = "v2-freeze";
    let b = TestBundle::new(
        &[
            "sh",
            "-c",
            "while :; do echo x >> /tmp/ticks; sleep 0.05; done",
        ],
        serde_json::json!({}),
    );
    let ticks = b.path().join("rootfs/tmp/ticks");
    let size = || std::fs::metadata(&ticks).map(|m| m.len()).unwrap_or(0);
    b.create(id);
    b.ok(&["start", id]);
    std::thread::sleep(Duration::from_millis(500));
    b.ok(&["pause", id]);
    assert_eq!(b.status(id), "paused");
    assert_eq!(read(&dir(id).join("cgroup.freeze")).trim(), "1");
    assert_eq!(field(&dir(id).join("cgroup.events"), "frozen"), 1);
    let at = size();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(size(), at, "ran while frozen");
    b.ok(&["resume", id]);
    assert_eq!(b.status(id), "running");
    assert_eq!(field(&dir(id).join("cgroup.events"), "frozen"), 0);
    std::thread::sleep(Duration::from_millis(500));
    assert!(size() > at, "did not run after resume");
    println!("frozen at {at} bytes, {} bytes after resume", size());
    finish(&b, id);
}

#[test]
#[ignore = "needs pure cgroup v2: runs in the VM lane (scripts/vm-test)"]
fn v2_init_is_born_in_its_cgroup() {
    require_v2();
    let id = "v2-clone-into";
    let b = TestBundle::new(&["true"], serde_json::json!({}));
    let marks = b.path().join("marks");
    let out = b
        .cmd(&["create", "--phase-marks"])
        .arg(&marks)
        .args(["--bundle"])
        .arg(b.path())
        .arg(id)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    assert!(out.success());
    let pid = b.state(id)["pid"].as_i64().unwrap();
    let cg = read(Path::new(&format!("/proc/{pid}/cgroup")));
    println!("/proc/{pid}/cgroup: {}", cg.trim());
    let rel = dir(id);
    let rel = rel.strip_prefix(ROOT).unwrap();
    assert_eq!(cg.trim(), format!("0::/{}", rel.display()));
    // The cgroup existed before clone3 (CLONE_INTO_CGROUP needs its fd);
    // on v1 it is made after.
    let text = read(&marks);
    let at = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} mark in\n{text}"))
    };
    assert!(at("cgroup_ready") < at("cloned"), "{text}");
    // Nothing else may be in it: the init never lived elsewhere.
    assert_eq!(read(&dir(id).join("cgroup.procs")).trim(), pid.to_string());
    finish(&b, id);
}

#[test]
#[ignore = "needs pure cgroup v2: runs in the VM lane (scripts/vm-test)"]
fn v2_device_rules_are_enforced_by_the_bpf_filter() {
    require_v2();
    // Block 7:200 need not exist: past the filter, opening it fails with
    // ENXIO (no such device), before it with EPERM.
    let (major, minor) = (7, 200);
    let script = format!(
        "{{ mknod /dev/disk b {major} {minor} && echo made && head -c 1 /dev/disk > /dev/null; }} 2>&1; \
         head -c 3 /dev/zero | wc -c; true"
    );
    let caps = serde_json::json!(["CAP_MKNOD"]);
    let with_caps = |b: &TestBundle| {
        b.edit(|c| {
            c["process"]["capabilities"] =
                serde_json::json!({"bounding": caps, "effective": caps, "permitted": caps});
        })
    };
    // No rules: only the default devices.
    let b = TestBundle::new(&["sh", "-c", &script], serde_json::json!({}));
    with_caps(&b);
    let out = b.run("v2-dev-deny");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("no rules: {text}");
    assert!(text.contains("Operation not permitted"), "{text}");
    assert!(!text.contains("made"), "{text}");
    assert_eq!(text.lines().last().unwrap().trim(), "3", "{text}");
    // A rule allowing the disk to be made and read.
    let b = TestBundle::new(
        &["sh", "-c", &script],
        serde_json::json!({"resources": {"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "b", "major": major, "minor": minor, "access": "rm"}
        ]}}),
    );
    with_caps(&b);
    let out = b.run("v2-dev-allow");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("allowed: {text}");
    assert!(text.contains("made"), "{text}");
    assert!(!text.contains("Operation not permitted"), "{text}");
}

#[test]
#[ignore = "needs pure cgroup v2: runs in the VM lane (scripts/vm-test)"]
fn v2_update_changes_memory_max_and_pids_max() {
    require_v2();
    let id = "v2-update";
    let b = TestBundle::new(
        &["sleep", "30"],
        serde_json::json!({"resources": {"memory": {"limit": 256u64 << 20}}}),
    );
    b.create(id);
    b.ok(&["start", id]);
    b.ok(&["update", "--memory", "64m", "--pids-limit", "9", id]);
    assert_eq!(
        read(&dir(id).join("memory.max")).trim(),
        (64u64 << 20).to_string()
    );
    assert_eq!(read(&dir(id).join("pids.max")).trim(), "9");
    finish(&b, id);
}
