//! Root integration tests: tracing real runc containers.

mod common;

use std::{
    collections::HashSet,
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
};

use common::*;
use serde_json::Value;

/// The container key of a trace: the task whose unshare/clone created the
/// pid and mount namespaces.
fn container_creation(events: &[Value]) -> &Value {
    events
        .iter()
        .find(|e| {
            (e["kind"] == "unshare" || e["kind"] == "clone" || e["kind"] == "clone3")
                && bits(e, "flags") & (CLONE_NEWPID | CLONE_NEWNS) == CLONE_NEWPID | CLONE_NEWNS
        })
        .unwrap_or_else(|| panic!("no namespace creation in {events:?}"))
}

#[test]
fn runc_run_is_traced_from_cgroup_to_exit_in_order() {
    let bundle = Bundle::busybox(&["/bin/true"]);
    let root = RuncRoot::new();
    let argv = root.run_argv(&bundle, "bt-life");
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let (output, events) = trace(&argv);
    assert!(output.status.success(), "{}", stderr(&output));

    let create = container_creation(&events);
    let key = u(create, "container");
    assert_eq!(
        u(create, "pid"),
        key,
        "the creating task keys the container"
    );
    let ns = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET;
    assert_eq!(bits(create, "flags") & ns, ns, "{create}");
    assert_eq!(create["container_id"], "bt-life");
    assert_eq!(create["container_start"], true);
    let starts = events
        .iter()
        .filter(|e| e["container_start"] == true)
        .count();
    assert_eq!(starts, 1, "one container, one start");

    let mine: Vec<&Value> = events.iter().filter(|e| u(e, "container") == key).collect();
    let find = |kind: &str, pred: &dyn Fn(&Value) -> bool| -> Value {
        events
            .iter()
            .find(|e| e["kind"] == kind && pred(e))
            .unwrap_or_else(|| panic!("no {kind} in {events:?}"))
            .clone()
    };
    // runc makes the cgroup and attaches `runc init` before it creates the
    // namespaces; the attached task is an ancestor of the container.
    let mkdir = find("cgroup_mkdir", &|e| e["path"] == "/bt-life");
    let attach = find("cgroup_attach", &|e| e["path"] == "/bt-life");
    let parent_of: std::collections::HashMap<u64, u64> = of_kind(&events, "fork")
        .iter()
        .map(|f| (u(f, "child_tid"), u(f, "pid")))
        .collect();
    let mut ancestors = HashSet::new();
    let mut p = key;
    while let Some(&q) = parent_of.get(&p) {
        ancestors.insert(q);
        p = q;
    }
    assert!(
        ancestors.contains(&u(&attach, "pid")),
        "{attach} not an ancestor of {key}"
    );

    let pivot = find("pivot_root", &|e| u(e, "container") == key);
    assert_eq!(pivot["ret"], 0);
    let execve = find("execve", &|e| {
        e["filename"] == "/bin/true" && u(e, "container") == key
    });
    assert_eq!(execve["ret"], 0);
    let workload = u(&execve, "pid");
    let exit = find("exit", &|e| u(e, "tid") == workload);
    assert_eq!(exit["status"], serde_json::json!({"code": 0}));

    let ts = |e: &Value| u(e, "ts_ns");
    let order = [&mkdir, &attach, create, &pivot, &execve, &exit];
    for w in order.windows(2) {
        assert!(ts(w[0]) < ts(w[1]), "out of order: {} then {}", w[0], w[1]);
    }
    // Everything inside the container carries its runtime id.
    assert!(
        mine.iter().all(|e| e["container_id"] == "bt-life"),
        "{mine:?}"
    );
    assert!(
        stderr(&output).contains("containers: bt-life"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn oom_kill_is_attributed_to_the_container() {
    // 200 MiB of anonymous memory in a shell variable under a 64 MiB limit.
    let bundle = Bundle::busybox_with(
        &[
            "sh",
            "-c",
            "x=$(head -c 209715200 /dev/zero | tr '\\000' x); echo survived",
        ],
        |c| c["linux"]["resources"]["memory"] = serde_json::json!({"limit": 64u64 << 20}),
    );
    let root = RuncRoot::new();
    let argv = root.run_argv(&bundle, "bt-oom");
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let (output, events) = trace(&argv);
    assert_eq!(output.status.code(), Some(137), "{}", stderr(&output));

    let victims = of_kind(&events, "oom_victim");
    assert!(!victims.is_empty(), "no oom_victim in {events:?}");
    let v = victims[0];
    let key = u(container_creation(&events), "container");
    assert_eq!(u(v, "container"), key);
    assert_eq!(v["container_id"], "bt-oom");
    assert!(u(v, "anon_rss_kb") > 32 * 1024, "{v}");
    // The victim's exit is the SIGKILL the OOM killer sent.
    let exit = of_kind(&events, "exit")
        .into_iter()
        .find(|e| u(e, "tid") == u(v, "tid"))
        .unwrap_or_else(|| panic!("victim never exited: {events:?}"));
    assert_eq!(exit["status"], serde_json::json!({"signal": 9}));
    assert!(u(exit, "ts_ns") > u(v, "ts_ns"));
    // The shell lived long enough for its namespaces to be looked up:
    // they differ from the host's (ours).
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let host_mnt = format!("{}", host_mnt.display());
    let ns = events
        .iter()
        .find(|e| e["namespaces"].is_object())
        .unwrap_or_else(|| panic!("no namespaces reported: {events:?}"));
    assert_eq!(u(ns, "container"), key);
    let mnt = u(&ns["namespaces"], "mnt");
    assert!(!host_mnt.contains(&mnt.to_string()), "{ns}");
    assert!(u(&ns["namespaces"], "pid") > 0);
}

#[test]
fn all_mode_sees_a_container_it_was_not_told_about() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("all.jsonl");
    let mut tracer = Command::new(BOXTRACE)
        .args(["trace", "--all", "--quiet", "--duration", "60", "--out"])
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the probes are attached.
    let mut err = BufReader::new(tracer.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("tracing every container start") {
        line.clear();
        assert_ne!(err.read_line(&mut line).unwrap(), 0, "tracer ended early");
    }

    let bundle = Bundle::busybox(&["/bin/true"]);
    let root = RuncRoot::new();
    let argv = root.run_argv(&bundle, "bt-all");
    let st = Command::new(&argv[0]).args(&argv[1..]).status().unwrap();
    assert!(st.success());

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(tracer.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = tracer.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert!(status.success(), "{rest}");

    let events = read_events(&out);
    // Other tests may start containers meanwhile: --all sees them too.
    let create = events
        .iter()
        .find(|e| e["container_start"] == true && e["container_id"] == "bt-all")
        .unwrap_or_else(|| panic!("runc's container bt-all not seen: {events:?}"));
    assert_eq!(create["kind"], "unshare");
    assert_eq!(create["comm"], "runc:[1:CHILD]");
    let key = u(create, "container");
    assert_eq!(key, u(create, "pid"));
    let mine: Vec<&Value> = events.iter().filter(|e| u(e, "container") == key).collect();
    assert!(
        mine.iter()
            .any(|e| e["kind"] == "exec" && e["filename"] == "/bin/true"),
        "{mine:?}"
    );
    assert!(mine.iter().any(|e| e["kind"] == "pivot_root"));
    assert!(
        mine.iter().any(|e| e["container_id"] == "bt-all"),
        "{mine:?}"
    );
}

#[test]
fn a_burst_of_200_container_starts_loses_nothing() {
    let bundle = Bundle::busybox(&["/bin/true"]);
    let root = RuncRoot::new();
    // 200 runc runs, four at a time, under one tracer.
    let script = format!(
        "seq 200 | xargs -P4 -I{{}} runc --root {} run -b {} burst-{{}}",
        root.path().display(),
        bundle.path().display()
    );
    let (output, events) = trace_with(&["--fail-on-loss", "--quiet"], &["sh", "-c", &script]);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(err.contains(", 0 lost"), "{err}");
    let ids: HashSet<&str> = events
        .iter()
        .filter(|e| e["kind"] == "exec" && e["filename"] == "/bin/true")
        .filter_map(|e| e["container_id"].as_str())
        .collect();
    assert_eq!(
        ids.len(),
        200,
        "every container's workload exec was attributed"
    );
}

#[test]
fn demo_traces_a_runc_container_and_leaves_nothing() {
    require_root();
    let output = Command::new(BOXTRACE)
        .args(["demo", "--runtime", "runc"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(out.contains("hello from boxtrace (pid 1)"), "{out}");
    assert!(err.contains("runc:[1:CHILD]   unshare"), "{err}");
    assert!(err.contains("pivot_root"), "{err}");
    assert!(err.contains("sethostname  \"boxtrace\" = 0"), "{err}");
    // The container's id carries boxtrace's pid; nothing of it remains.
    let id = err
        .split_whitespace()
        .find(|w| w.starts_with("boxtrace-demo-"))
        .unwrap_or_else(|| panic!("no container id in {err}"))
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .to_owned();
    for ctrl in ["pids", "memory", "cpu", "freezer"] {
        let dir = std::path::Path::new("/sys/fs/cgroup").join(ctrl).join(&id);
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}
