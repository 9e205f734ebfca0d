//! Root integration tests: `boxtrace trace` against the real kernel.
//!
//! They need root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN) and fail loudly
//! without it rather than passing vacuously.

mod common;

use std::{
    collections::HashSet,
    process::{Child, Command, Stdio},
    thread,
    time::Duration,
};

use common::*;
use serde_json::Value;

/// Pids of the traced tree as the fork events describe it: the root plus
/// every child a tracked task forked.
fn tree(events: &[Value]) -> HashSet<u64> {
    let mut pids: HashSet<u64> = events.iter().map(|e| e["root"].as_u64().unwrap()).collect();
    for f in of_kind(events, "fork") {
        pids.insert(f["child_tid"].as_u64().unwrap());
    }
    pids
}

/// Keeps creating UTS namespaces from a process boxtrace does not trace.
struct Noise(Child);

impl Noise {
    fn start() -> Self {
        let child = Command::new("sh")
            .args(["-c", "while :; do unshare --uts true; done"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        // Let it get going before the traced command starts.
        thread::sleep(Duration::from_millis(100));
        Self(child)
    }
}

impl Drop for Noise {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args(["-KILL", "-P", &self.0.id().to_string()])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn unshare_uts_is_seen_from_that_pid_and_nothing_untracked() {
    let noise = Noise::start();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    // The shell writes its pid, then execs unshare in that same process.
    let script = format!("echo $$ > {}; exec unshare --uts true", pidfile.display());
    let (output, events) = trace(&["sh", "-c", &script]);
    drop(noise);
    assert!(output.status.success(), "{}", stderr(&output));

    let pid: u64 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let unshares = of_kind(&events, "unshare");
    assert_eq!(
        unshares.len(),
        1,
        "exactly one traced unshare: {unshares:?}"
    );
    let ev = unshares[0];
    assert_eq!(ev["pid"].as_u64(), Some(pid));
    assert_eq!(ev["comm"], "unshare");
    assert_ne!(bits(ev, "flags") & CLONE_NEWUTS, 0, "{ev}");
    assert_eq!(ev["flags"]["names"], "CLONE_NEWUTS");

    // The noise loop created many UTS namespaces meanwhile; none leaked in.
    let tree = tree(&events);
    for e in &events {
        assert!(
            tree.contains(&e["pid"].as_u64().unwrap()),
            "untracked event {e}"
        );
        assert_eq!(e["root"].as_u64(), Some(pid));
    }
}

#[test]
fn unshare_fork_pid_mount_uts_is_decoded_in_the_live_view() {
    let (output, events) = trace(&["unshare", "-fpmu", "true"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let live = stderr(&output);
    assert!(
        live.contains("unshare      CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWPID = 0 ("),
        "{live}"
    );

    let unshare = of_kind(&events, "unshare");
    assert_eq!(unshare.len(), 1);
    assert_eq!(
        bits(unshare[0], "flags"),
        CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWPID
    );
    // unshare -f forks the child that becomes pid 1 of the new namespace:
    // a clone/clone3 from the root, its fork, and the child's exit.
    let root = unshare[0]["pid"].as_u64().unwrap();
    let spawned = events
        .iter()
        .filter(|e| e["pid"].as_u64() == Some(root))
        .any(|e| e["kind"] == "clone" || e["kind"] == "clone3");
    assert!(spawned, "{events:?}");
    let forks = of_kind(&events, "fork");
    assert_eq!(forks.len(), 1, "{forks:?}");
    let child = forks[0]["child_tid"].as_u64().unwrap();
    let exits: Vec<u64> = of_kind(&events, "exit")
        .iter()
        .map(|e| e["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(exits, vec![child, root], "child exits before unshare");

    // Monotonic timestamps in causal order: unshare, fork, child's exit,
    // unshare's exit.
    let ts = |e: &Value| e["ts_ns"].as_u64().unwrap();
    let exit_events = of_kind(&events, "exit");
    assert!(ts(unshare[0]) < ts(forks[0]), "{events:?}");
    assert!(ts(forks[0]) < ts(exit_events[0]));
    assert!(ts(exit_events[0]) < ts(exit_events[1]));
    assert!(events.iter().all(|e| e["v"] == 2));
    // Syscalls carry their return value and duration.
    assert_eq!(unshare[0]["ret"], 0);
    assert!(unshare[0]["dur_ns"].as_u64().unwrap() > 0);
    assert_eq!(exit_events[0]["status"], serde_json::json!({"code": 0}));
}

#[test]
fn setns_reports_the_namespace_type() {
    // nsenter into our own UTS namespace: one setns(fd, CLONE_NEWUTS).
    let (output, events) = trace(&["sh", "-c", "nsenter --target $$ --uts true"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let setns = of_kind(&events, "setns");
    assert_eq!(setns.len(), 1, "{events:?}");
    assert_eq!(bits(setns[0], "nstype"), CLONE_NEWUTS);
    assert_eq!(setns[0]["comm"], "nsenter");
}

#[test]
fn clone3_flags_are_read_from_user_memory() {
    // glibc's pthread_create uses clone3 with CLONE_THREAD|CLONE_VM|...
    let (output, events) = trace(&[
        "python3",
        "-c",
        "import threading; t = threading.Thread(target=lambda: None); t.start(); t.join()",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let threads: Vec<_> = of_kind(&events, "clone3")
        .into_iter()
        .filter(|e| bits(e, "flags") & CLONE_THREAD != 0)
        .collect();
    assert!(!threads.is_empty(), "{events:?}");
    // The new thread is tracked too: its exit is reported.
    let tids: HashSet<u64> = of_kind(&events, "fork")
        .iter()
        .map(|e| e["child_tid"].as_u64().unwrap())
        .collect();
    assert!(
        of_kind(&events, "exit")
            .iter()
            .any(|e| tids.contains(&e["tid"].as_u64().unwrap()))
    );
}

#[test]
fn exit_status_passes_through() {
    let (output, _) = trace(&["sh", "-c", "exit 3"]);
    assert_eq!(output.status.code(), Some(3));
    let (output, _) = trace(&["sh", "-c", "kill -9 $$"]);
    assert_eq!(output.status.code(), Some(137), "128 + SIGKILL");
    assert!(stderr(&output).contains("killed by signal 9"));
}

#[test]
fn missing_command_is_a_clear_error() {
    let (output, _) = trace(&["/nonexistent/cmd"]);
    assert_eq!(output.status.code(), Some(125));
    let err = stderr(&output);
    assert!(err.contains("cannot run `/nonexistent/cmd`"), "{err}");
}

#[test]
fn unwritable_out_path_is_named() {
    require_root();
    let output = Command::new(BOXTRACE)
        .args(["trace", "--out", "/nonexistent-dir/x.jsonl", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(125));
    assert!(stderr(&output).contains("/nonexistent-dir/x.jsonl"));
}

#[test]
fn unprivileged_user_is_told_which_capability_is_missing() {
    require_root();
    // setpriv (util-linux) drops to nobody with no capabilities.
    let output = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            BOXTRACE,
            "trace",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(125));
    let err = stderr(&output);
    assert!(
        err.contains("CAP_BPF") && err.contains("run it as root"),
        "{err}"
    );
}

#[test]
fn unknown_event_kind_in_filter_is_named() {
    let (output, _) = trace_with(&["--kind", "exec,mkdir"], &["true"]);
    assert_eq!(output.status.code(), Some(125));
    let err = stderr(&output);
    assert!(err.contains("unknown event kind `mkdir`"), "{err}");
    assert!(err.contains("cgroup_mkdir"), "lists the known kinds: {err}");
}

#[test]
fn kind_filter_keeps_only_what_was_asked() {
    let (output, events) = trace_with(&["--kind", "unshare,exit"], &["unshare", "-fpmu", "true"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!events.is_empty());
    assert!(
        events
            .iter()
            .all(|e| e["kind"] == "unshare" || e["kind"] == "exit"),
        "{events:?}"
    );
    // The summary still counts everything the kernel sent.
    assert!(stderr(&output).contains("shown)"), "{}", stderr(&output));
}

#[test]
fn exec_and_mount_are_reported_with_their_strings() {
    let (output, events) = trace(&[
        "unshare",
        "-m",
        "sh",
        "-c",
        "mount -t tmpfs boxtrace-t /mnt && exec true",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let mount = of_kind(&events, "mount")
        .into_iter()
        .find(|e| e["fstype"] == "tmpfs")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(mount["source"], "boxtrace-t");
    assert_eq!(mount["target"], "/mnt");
    assert_eq!(mount["ret"], 0);
    let exec = of_kind(&events, "exec");
    assert!(
        exec.iter().any(|e| e["filename"] == "/usr/bin/true"),
        "{exec:?}"
    );
    let execve = of_kind(&events, "execve");
    assert!(
        execve
            .iter()
            .any(|e| e["filename"] == "/usr/bin/true" && e["ret"] == 0)
    );
}

#[test]
fn sched_switch_follows_the_traced_tasks() {
    // Two busy loops on two cores must be switched in and out.
    let (output, events) = trace_with(
        &["--sched", "--kind", "sched_switch,fork"],
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done & wait",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let switches = of_kind(&events, "sched_switch");
    assert!(!switches.is_empty(), "{events:?}");
    let tree = tree(&events);
    for s in &switches {
        let prev = u(s, "prev_tid");
        let next = u(s, "next_tid");
        assert!(tree.contains(&prev) || tree.contains(&next), "{s}");
    }
}

#[test]
fn cgroup_v2_freeze_is_reported() {
    // The unified hierarchy has no controllers here, but freezing is core
    // cgroup v2: it works on it.
    let script = "set -e; d=/sys/fs/cgroup/unified/boxtrace-fz-$$; mkdir $d; \
        sleep 5 & p=$!; echo $p > $d/cgroup.procs; \
        echo 1 > $d/cgroup.freeze; sleep 0.3; echo 0 > $d/cgroup.freeze; \
        kill $p; wait $p || true; rmdir $d";
    let (output, events) = trace_with(&["--kind", "cgroup"], &["sh", "-c", script]);
    assert!(output.status.success(), "{}", stderr(&output));
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for k in [
        "cgroup_mkdir",
        "cgroup_attach",
        "cgroup_freeze",
        "cgroup_unfreeze",
        "cgroup_rmdir",
    ] {
        assert!(kinds.contains(&k), "no {k} in {kinds:?}");
    }
    let frozen: Vec<bool> = of_kind(&events, "cgroup_notify_frozen")
        .iter()
        .map(|e| e["frozen"].as_bool().unwrap())
        .collect();
    assert!(frozen.contains(&true), "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| e["path"].as_str().unwrap().starts_with("/boxtrace-fz-"))
    );
}

#[test]
fn losses_are_counted_and_fail_on_loss_trips() {
    // A one-page ring buffer cannot hold the burst of a tight exec loop.
    let (output, _) = trace_with(
        &["--ring-kib", "4", "--quiet", "--fail-on-loss"],
        &["sh", "-c", "for i in $(seq 300); do /bin/true; done"],
    );
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(125), "{err}");
    assert!(err.contains("ring buffer full:"), "{err}");
    assert!(err.contains("--fail-on-loss:"), "{err}");
    // Without the flag the command's status passes through, loss reported.
    let (output, _) = trace_with(
        &["--ring-kib", "4", "--quiet"],
        &["sh", "-c", "for i in $(seq 300); do /bin/true; done"],
    );
    assert_eq!(output.status.code(), Some(0));
    assert!(!stderr(&output).contains(", 0 lost"), "{}", stderr(&output));
}

#[test]
fn bad_ring_size_is_named() {
    let (output, _) = trace_with(&["--ring-kib", "3"], &["true"]);
    assert_eq!(output.status.code(), Some(125));
    assert!(
        stderr(&output).contains("--ring-kib 3"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn setns_without_a_type_is_resolved_from_the_fd() {
    // setns(fd, 0): the kernel takes the type from the fd; so does boxtrace.
    let (output, events) = trace(&[
        "perl",
        "-e",
        "open(my $f, '<', '/proc/self/ns/uts') or die; \
         syscall(308, fileno($f), 0) == 0 or die qq(setns: $!); \
         select(undef, undef, undef, 0.2)",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let setns = of_kind(&events, "setns");
    assert_eq!(setns.len(), 1, "{events:?}");
    assert_eq!(bits(setns[0], "nstype"), 0);
    let ns = setns[0]["ns"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", setns[0]));
    let own = std::fs::read_link("/proc/self/ns/uts").unwrap();
    assert_eq!(ns, own.to_str().unwrap());
}

#[test]
fn sigterm_is_forwarded_to_the_traced_command() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let script = format!("touch {}; exec sleep 30", ready.display());
    let tracer = Command::new(BOXTRACE)
        .args(["trace", "--quiet", "--", "sh", "-c", &script])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !ready.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "command never started"
        );
        thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(tracer.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = tracer.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(143),
        "128 + SIGTERM: {}",
        stderr(&out)
    );
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(
        stderr(&out).contains("killed by signal 15"),
        "{}",
        stderr(&out)
    );
}
