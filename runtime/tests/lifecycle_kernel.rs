//! Root integration tests of boxrun's lifecycle on the real kernel: events,
//! limits, pause/resume, repeated cycles, a create killed at any point,
//! seccomp, and joining another container's namespaces.

mod common;

use std::{
    io::Read as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{TestBundle, cgroup_leftovers, mount_leftovers, process_leftovers};

/// The v1 directory of `controller` for `id`, found by walking the
/// hierarchies (the test does not read boxrun's state format).
fn controller_dir(id: &str, controller: &str) -> std::path::PathBuf {
    cgroup_leftovers(id)
        .into_iter()
        .find(|p| {
            p.strip_prefix("/sys/fs/cgroup")
                .ok()
                .and_then(|r| r.components().next())
                .is_some_and(|c| {
                    c.as_os_str()
                        .to_string_lossy()
                        .split(',')
                        .any(|x| x == controller)
                })
        })
        .unwrap_or_else(|| panic!("no {controller} cgroup for {id}"))
}

#[test]
fn oom_kill_is_reported_as_an_event() {
    let id = "bl-oom-event";
    let b = TestBundle::new(
        &[
            "sh",
            "-c",
            "sleep 0.3; x=$(head -c 209715200 /dev/zero | tr '\\000' x); echo survived",
        ],
        serde_json::json!({"resources": {"memory": {"limit": 64u64 << 20}}}),
    );
    b.create(id);
    let mut events = b
        .cmd(&["events", id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    b.ok(&["start", id]);
    b.wait_stopped(id, Duration::from_secs(20));
    let mut out = String::new();
    events
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(events.wait().unwrap().success());
    let oom = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["type"] == "oom");
    assert_eq!(oom.expect(&out)["id"], id);
    assert!(!b.output_of(id).contains("survived"));
    b.ok(&["delete", id]);
    assert!(cgroup_leftovers(id).is_empty());
}

#[test]
fn pids_max_is_enforced_and_counted_by_the_kernel() {
    let id = "bl-pids";
    // sh is one task: with pids.max 4 only three sleeps can start.
    let b = TestBundle::new(
        &[
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8; do sleep 30 & done; echo done",
        ],
        serde_json::json!({"resources": {"pids": {"limit": 4}}}),
    );
    b.create(id);
    let pids = controller_dir(id, "pids");
    assert_eq!(
        std::fs::read_to_string(pids.join("pids.max"))
            .unwrap()
            .trim(),
        "4"
    );
    b.ok(&["start", id]);
    // Wait for the shell to give up, then look at the kernel's counters.
    let end = Instant::now() + Duration::from_secs(10);
    let events = loop {
        let ev = std::fs::read_to_string(pids.join("pids.events")).unwrap();
        if ev.trim() != "max 0" || Instant::now() > end {
            break ev;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let refused: u64 = events.trim().strip_prefix("max ").unwrap().parse().unwrap();
    assert!(refused >= 1, "pids.events: {events}");
    let current: u64 = std::fs::read_to_string(pids.join("pids.current"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(current <= 4, "pids.current {current}");
    b.ok(&["delete", "--force", id]);
    assert!(cgroup_leftovers(id).is_empty());
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let id = "bl-pause";
    let b = TestBundle::new(
        &[
            "sh",
            "-c",
            "while :; do echo x >> /tmp/ticks; sleep 0.02; done",
        ],
        serde_json::json!({}),
    );
    let ticks = b.path().join("rootfs/tmp/ticks");
    let size = || std::fs::metadata(&ticks).map(|m| m.len()).unwrap_or(0);
    b.create(id);
    b.ok(&["start", id]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(size() > 0, "the workload never ran");
    b.ok(&["pause", id]);
    assert_eq!(b.status(id), "paused");
    let freezer = controller_dir(id, "freezer");
    assert_eq!(
        std::fs::read_to_string(freezer.join("freezer.state"))
            .unwrap()
            .trim(),
        "FROZEN"
    );
    let frozen_at = size();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(size(), frozen_at, "the workload ran while paused");
    // Pausing twice is an error that names the state.
    let again = b.cmd(&["pause", id]).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("Paused"));
    b.ok(&["resume", id]);
    assert_eq!(b.status(id), "running");
    std::thread::sleep(Duration::from_millis(300));
    assert!(size() > frozen_at, "the workload did not run after resume");
    // A paused container can be force-deleted.
    b.ok(&["pause", id]);
    b.ok(&["delete", "--force", id]);
    assert!(cgroup_leftovers(id).is_empty());
}

#[test]
fn two_hundred_cycles_leave_nothing_behind() {
    let b = TestBundle::new(&["true"], serde_json::json!({}));
    let bundle = b.path().to_string_lossy().into_owned();
    for i in 0..200 {
        let id = format!("bl-cycle-{i}");
        if i % 2 == 0 {
            let out = b.run(&id);
            assert!(
                out.status.success(),
                "run {i}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            b.create(&id);
            b.ok(&["start", &id]);
            b.wait_stopped(&id, Duration::from_secs(5));
            b.ok(&["delete", &id]);
        }
    }
    let left: Vec<_> = (0..200)
        .flat_map(|i| cgroup_leftovers(&format!("bl-cycle-{i}")))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(mount_leftovers(&bundle).is_empty());
    assert_eq!(std::fs::read_dir(b.state_root()).unwrap().count(), 0);
}

#[test]
fn create_killed_at_any_point_is_cleaned_by_delete_force() {
    let b = TestBundle::new(&["sleep", "30"], serde_json::json!({}));
    let bundle = b.path().to_string_lossy().into_owned();
    let mut stages = std::collections::BTreeMap::<String, u32>::new();
    // From before boxrun has done anything to after create returned, in
    // steps of 250 µs.
    for step in 0..60u64 {
        let id = format!("bl-kill-{step}");
        let marker = format!("BOXRUN_TEST_MARK={id}-{}", std::process::id());
        let (k, v) = marker.split_once('=').unwrap();
        let mut child = b
            .cmd(&["create", "--bundle", &bundle, &id])
            .env(k, v)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(step * 250));
        let _ = child.kill();
        let status = child.wait().unwrap();
        let stage = if status.success() {
            "completed".to_owned()
        } else if !b.state_root().join(&id).exists() {
            "nothing".to_owned()
        } else if !b.state_root().join(&id).join("state.json").exists() {
            "dir-only".to_owned()
        } else {
            b.state(&id)["status"].as_str().unwrap().to_owned()
        };
        *stages.entry(stage.clone()).or_default() += 1;
        if b.state_root().join(&id).exists() {
            b.ok(&["delete", "--force", &id]);
        }
        // The init may still be on its way out after its parent died.
        let end = Instant::now() + Duration::from_secs(2);
        while !process_leftovers(&marker).is_empty() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            process_leftovers(&marker).is_empty(),
            "step {step} ({stage}): processes left"
        );
        assert!(
            cgroup_leftovers(&id).is_empty(),
            "step {step} ({stage}): {:?}",
            cgroup_leftovers(&id)
        );
        assert!(!b.state_root().join(&id).exists(), "step {step} ({stage})");
        assert!(mount_leftovers(&bundle).is_empty(), "step {step} ({stage})");
    }
    eprintln!("stages reached before the kill: {stages:?}");
    // The sweep must have hit boxrun mid-create, not only before or after.
    let mid: u32 = stages
        .iter()
        .filter(|(s, _)| !matches!(s.as_str(), "nothing" | "completed"))
        .map(|(_, n)| n)
        .sum();
    assert!(mid > 0, "{stages:?}");
}

#[test]
fn seccomp_rules_from_the_spec_are_enforced() {
    let id = "bl-seccomp";
    let b = TestBundle::new(
        &[
            "sh",
            "-c",
            "mkdir /tmp/d 2>&1; echo mkdir=$?; \
             echo > /tmp/f; chmod 700 /tmp/f 2>&1; echo chmod700=$?; chmod 755 /tmp/f; echo chmod755=$?",
        ],
        serde_json::json!({"seccomp": {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["chmod", "fchmod"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 1, "value": 448, "op": "SCMP_CMP_EQ"}]},
                {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 2, "value": 448, "op": "SCMP_CMP_EQ"}]}
            ]
        }}),
    );
    let out = b.run(id);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Operation not permitted"), "{stdout}");
    assert!(stdout.contains("mkdir=1"), "{stdout}");
    assert!(stdout.contains("chmod700=1"), "{stdout}");
    assert!(stdout.contains("chmod755=0"), "{stdout}");
    assert!(!b.path().join("rootfs/tmp/d").exists());

    // A profile boxrun cannot honour is refused before anything exists.
    let bad = TestBundle::new(
        &["true"],
        serde_json::json!({"seccomp": {"defaultAction": "SCMP_ACT_NOTIFY"}}),
    );
    let out = bad.run("bl-seccomp-bad");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SCMP_ACT_NOTIFY"), "{err}");
    assert!(cgroup_leftovers("bl-seccomp-bad").is_empty());
    assert!(!bad.state_root().join("bl-seccomp-bad").exists());
}

#[test]
fn joins_another_containers_namespaces_by_path() {
    let host = TestBundle::new(&["sleep", "30"], serde_json::json!({}));
    host.create("bl-ns-host");
    host.ok(&["start", "bl-ns-host"]);
    let pid = host.state("bl-ns-host")["pid"].as_i64().unwrap();
    let guest = TestBundle::new(
        &[
            "sh",
            "-c",
            "cat /proc/1/cmdline | tr '\\000' ' '; echo; hostname",
        ],
        serde_json::json!({"namespaces": [
            {"type": "pid", "path": format!("/proc/{pid}/ns/pid")},
            {"type": "uts", "path": format!("/proc/{pid}/ns/uts")},
            {"type": "mount"}, {"type": "ipc"}, {"type": "network"}
        ]}),
    );
    // No hostname of its own: it sees the one of the uts it joins.
    let cfg = guest.path().join("config.json");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"hostname\":\"boxrun-test\",", "");
    assert!(!text.contains("boxrun-test"));
    std::fs::write(&cfg, text).unwrap();
    let out = guest.run("bl-ns-guest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // pid 1 of the joined namespace is the other container's workload.
    assert!(stdout.starts_with("sleep 30"), "{stdout}");
    assert!(stdout.contains("boxrun-test"), "{stdout}");
    host.ok(&["delete", "--force", "bl-ns-host"]);

    let out = Command::new(common::BOXRUN)
        .arg("--root")
        .arg(guest.state_root())
        .args(["run", "--bundle"])
        .arg(guest.path())
        .arg("bl-ns-gone")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("/proc/{pid}/ns/pid")), "{err}");
    assert!(cgroup_leftovers("bl-ns-gone").is_empty());
}

#[test]
fn user_namespace_maps_ids() {
    let b = TestBundle::new(
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g",
        ],
        serde_json::json!({
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"},
                           {"type": "ipc"}, {"type": "network"}, {"type": "user"}],
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 200000, "size": 1000}]
        }),
    );
    let out = b.run("bl-userns");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0", "100000", "65536"], "{stdout}");
    assert_eq!(lines[1], ["0", "200000", "1000"], "{stdout}");
    assert_eq!(lines[2], ["0"]);
    assert_eq!(lines[3], ["0"]);
    assert!(cgroup_leftovers("bl-userns").is_empty());
}

/// Whether the filesystem at `path` is mounted read-only here.
fn read_only(path: &str) -> bool {
    nix::sys::statvfs::statvfs(path)
        .unwrap()
        .flags()
        .contains(nix::sys::statvfs::FsFlags::ST_RDONLY)
}

#[test]
fn a_read_only_mount_of_a_shared_filesystem_stays_in_the_container() {
    // Without a network namespace the container's sysfs is the host's
    // superblock: making it read-only must change the container's mount,
    // never the superblock the host uses.
    assert!(!read_only("/sys"), "/sys is read-only before the test");
    let b = TestBundle::new(
        &[
            "sh",
            "-c",
            "echo x > /sys/kernel/uevent_helper; echo wrote=$?",
        ],
        serde_json::json!({
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}]
        }),
    );
    let cfg = b.path().join("config.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    c["mounts"].as_array_mut().unwrap().push(serde_json::json!(
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]}
    ));
    std::fs::write(&cfg, c.to_string()).unwrap();
    let out = b.run("bl-ro-sysfs");
    let host_ro = read_only("/sys");
    if host_ro {
        // Put the host back before failing.
        let _ = nix::mount::mount(
            None::<&str>,
            "/sys",
            None::<&str>,
            nix::mount::MsFlags::MS_REMOUNT,
            None::<&str>,
        );
    }
    assert!(!host_ro, "the container made the host's /sys read-only");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Read-only inside: the write failed there.
    assert!(stdout.contains("wrote=1"), "{stdout}");
}

#[test]
fn a_new_cgroup_namespace_is_rooted_at_the_containers_cgroup() {
    let b = TestBundle::new(
        &["cat", "/proc/self/cgroup"],
        serde_json::json!({
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"},
                           {"type": "ipc"}, {"type": "network"}, {"type": "cgroup"}]
        }),
    );
    let out = b.run("bl-cgroupns");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every hierarchy the container was put in reads as its root.
    for ctrl in ["pids", "memory", "freezer"] {
        let line = stdout
            .lines()
            .find(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|c| c.split(',').any(|x| x == ctrl))
            })
            .unwrap_or_else(|| panic!("no {ctrl} line in\n{stdout}"));
        assert!(line.ends_with(":/"), "{line}");
    }
}

#[test]
fn exec_joins_the_containers_namespaces_and_cgroups() {
    let id = "bl-exec";
    let b = TestBundle::new(&["sleep", "30"], serde_json::json!({}));
    b.create(id);
    b.ok(&["start", id]);
    let out = b.ok(&[
        "exec",
        id,
        "sh",
        "-c",
        "echo pid=$$ host=$(hostname); cat /proc/self/cgroup",
    ]);
    // The container's pid namespace (its init is 1) and uts namespace.
    let first = out.lines().next().unwrap();
    let pid: u32 = first
        .split_whitespace()
        .find_map(|w| w.strip_prefix("pid="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(pid > 1 && pid < 100, "{out}");
    assert!(first.contains("host=boxrun-test"), "{out}");
    // In the container's cgroup in every hierarchy boxrun put it in.
    let pids = out.lines().find(|l| l.contains(":pids:")).unwrap();
    assert!(pids.ends_with(&format!("/{id}")), "{pids}");
    // Exit status passes through; the user can be changed.
    let st = b.cmd(&["exec", id, "sh", "-c", "exit 7"]).status().unwrap();
    assert_eq!(st.code(), Some(7));
    assert_eq!(
        b.ok(&["exec", "-u", "1000:1000", id, "id", "-u"]).trim(),
        "1000"
    );
    // A process given as OCI JSON.
    let p = b.path().join("process.json");
    std::fs::write(
        &p,
        r#"{"args": ["sh", "-c", "echo $GREETING from $(pwd)"], "cwd": "/tmp",
            "env": ["PATH=/bin", "GREETING=hi"], "user": {"uid": 0, "gid": 0}}"#,
    )
    .unwrap();
    let out = b.ok(&["exec", "--process", p.to_str().unwrap(), id]);
    assert_eq!(out.trim(), "hi from /tmp");
    b.ok(&["delete", "--force", id]);
    // Not on a container that does not run.
    let out = b.cmd(&["exec", id, "true"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn cgroup_value(id: &str, controller: &str, file: &str) -> String {
    std::fs::read_to_string(controller_dir(id, controller).join(file))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn update_changes_the_limits_of_a_running_container() {
    let id = "bl-update";
    let b = TestBundle::new(
        &["sleep", "30"],
        serde_json::json!({"resources": {"memory": {"limit": 256u64 << 20}}}),
    );
    b.create(id);
    b.ok(&["start", id]);
    // A 48 MiB string fits under 256 MiB...
    let grow = "x=$(head -c 50331648 /dev/zero | tr '\\000' x); echo fits";
    assert_eq!(b.ok(&["exec", id, "sh", "-c", grow]).trim(), "fits");
    // ...not under 32 MiB: the kernel kills it once the limit is lowered.
    b.ok(&["update", "--memory", "32m", id]);
    assert_eq!(
        cgroup_value(id, "memory", "memory.limit_in_bytes"),
        (32u64 << 20).to_string()
    );
    let out = b.cmd(&["exec", id, "sh", "-c", grow]).output().unwrap();
    assert_eq!(out.status.code(), Some(137), "OOM-killed: {out:?}");
    assert_eq!(b.status(id), "running", "the init lives on");

    // containerd's way: linux.resources JSON on stdin, devices included
    // (fixed at create, so ignored).
    let mut child = b
        .cmd(&["update", "--resources", "-", id])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        br#"{"memory": {"limit": 134217728, "swap": 134217728},
             "cpu": {"quota": 50000, "period": 100000},
             "pids": {"limit": 20},
             "devices": [{"allow": false, "access": "rwm"}]}"#,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        cgroup_value(id, "memory", "memory.limit_in_bytes"),
        "134217728"
    );
    assert_eq!(cgroup_value(id, "cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(cgroup_value(id, "pids", "pids.max"), "20");
    // Raising memory above the current memory+swap limit needs memsw
    // written first: boxrun orders them.
    b.ok(&["update", "--memory", "512m", "--memory-swap", "512m", id]);
    assert_eq!(
        cgroup_value(id, "memory", "memory.limit_in_bytes"),
        (512u64 << 20).to_string()
    );

    // Bad input names what is wrong and changes nothing.
    for (args, want) in [
        (vec!["--memory", "lots"], "--memory `lots`"),
        (vec!["--memory", "100"], "memory.limit` 100 is out of range"),
        (vec!["--cpu-period", "10"], "cpu.period` 10 is out of range"),
        (vec!["--blkio-weight", "5"], "--blkio-weight 5"),
    ] {
        let mut a = vec!["update"];
        a.extend(args);
        a.push(id);
        let out = b.cmd(&a).output().unwrap();
        assert!(!out.status.success(), "{a:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{a:?}: {err}");
    }
    assert_eq!(cgroup_value(id, "pids", "pids.max"), "20");
    b.ok(&["delete", "--force", id]);
    let out = b
        .cmd(&["update", "--pids-limit", "5", id])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

/// The OCI runtime spec's lifecycle rules, command by command, as an
/// independent conformance suite checks them.
#[test]
fn lifecycle_errors_follow_the_oci_runtime_spec() {
    let id = "bl-oci";
    let b = TestBundle::new(&["sleep", "30"], serde_json::json!({}));
    let fails = |args: &[&str], want: &str| {
        let out = b.cmd(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    };
    // Nothing there: state, start, kill and delete all fail; delete
    // --force succeeds (it asks for absence).
    for cmd in ["state", "start", "kill", "delete"] {
        fails(&[cmd, id], "does not exist");
    }
    b.ok(&["delete", "--force", id]);

    b.create(id);
    let st = b.state(id);
    assert_eq!(st["status"], "created");
    assert!(st["pid"].as_i64().unwrap() > 0, "{st}");
    // An id is unique.
    assert!(b.create_err(id, &[]).contains("already exists"));
    assert_eq!(b.status(id), "created", "the failed create changed nothing");
    b.ok(&["start", id]);
    assert_eq!(b.status(id), "running");
    fails(&["start", id], "not created");
    // Not stopped: delete fails and leaves it running.
    fails(&["delete", id], "stop it first");
    assert_eq!(b.status(id), "running");
    b.ok(&["kill", id, "KILL"]);
    b.wait_stopped(id, Duration::from_secs(5));
    let st = b.state(id);
    assert!(st.get("pid").is_none(), "no pid once stopped: {st}");
    fails(&["kill", id, "TERM"], "not running");
    fails(&["start", id], "not created");
    b.ok(&["delete", id]);
    assert!(cgroup_leftovers(id).is_empty());

    // A created container may be deleted: its init goes with it.
    b.create(id);
    let pid = b.state(id)["pid"].as_i64().unwrap();
    b.ok(&["delete", id]);
    // Gone, or a zombie until its adopter reaps it.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
    assert!(
        stat.as_ref()
            .map_or(true, |s| s.rsplit_once(") ").unwrap().1.starts_with('Z')),
        "{stat:?}"
    );
}
