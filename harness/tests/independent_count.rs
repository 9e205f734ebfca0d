//! The tracer's counts of namespace syscalls and execs agree exactly with
//! an independent count taken on the same run by bpftrace over the same
//! tracepoints. A test binary of its own: bpftrace counts by comm, so no
//! other test may run busybox meanwhile.

mod common;

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader, Read as _},
    process::{Command, Stdio},
};

use common::*;

const COUNTER: &str = r#"
tracepoint:syscalls:sys_enter_unshare /comm == "busybox"/ { @unshare = count(); }
tracepoint:syscalls:sys_enter_clone /comm == "busybox"/ { @clone = count(); }
tracepoint:syscalls:sys_enter_clone3 /comm == "busybox"/ { @clone3 = count(); }
tracepoint:syscalls:sys_enter_setns /comm == "busybox"/ { @setns = count(); }
tracepoint:syscalls:sys_enter_execve /comm == "busybox"/ { @execve = count(); }
"#;

#[test]
fn counts_agree_with_bpftrace_on_the_same_run() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("count.bt");
    std::fs::write(&script, COUNTER).unwrap();
    // bpftrace needs tracefs; give it one in a mount namespace of its own.
    let mut bpftrace = Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg(format!(
            "mount -t tracefs nodev /sys/kernel/tracing && exec bpftrace {}",
            script.display()
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(bpftrace.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("Attaching") {
        line.clear();
        assert_ne!(
            out.read_line(&mut line).unwrap(),
            0,
            "bpftrace did not start"
        );
    }

    // Every process of the workload runs a busybox binary of ours: comm
    // "busybox" is what both tools count.
    let bb = dir.path().join("busybox");
    std::fs::copy("/bin/busybox", &bb).unwrap();
    let bb = bb.display();
    let work = format!(
        "for i in 1 2 3 4 5; do {bb} unshare -u {bb} true; {bb} nsenter -t $$ -u {bb} true; done"
    );
    let (output, events) = trace_with(&["--quiet"], &[&bb.to_string(), "sh", "-c", &work]);
    assert!(output.status.success(), "{}", stderr(&output));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(bpftrace.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    bpftrace.wait().unwrap();
    let theirs: HashMap<&str, u64> = rest
        .lines()
        .filter_map(|l| {
            let (k, v) = l.strip_prefix('@')?.split_once(": ")?;
            Some((k, v.trim().parse().ok()?))
        })
        .collect();

    for kind in ["unshare", "clone", "clone3", "setns", "execve"] {
        let ours = events
            .iter()
            .filter(|e| e["kind"] == kind && e["comm"] == "busybox")
            .count() as u64;
        let expected = theirs.get(kind).copied().unwrap_or(0);
        assert_eq!(
            ours, expected,
            "{kind}: boxtrace {ours}, bpftrace {expected}: {rest}"
        );
    }
    // The workload did what it says: 5 unshares, 5 setns.
    assert_eq!(theirs.get("unshare"), Some(&5), "{rest}");
    assert_eq!(theirs.get("setns"), Some(&5), "{rest}");
}
