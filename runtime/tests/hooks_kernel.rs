//! OCI hooks on the real kernel: each kind at its point of the lifecycle,
//! with the state on stdin; failures and timeouts stop a create cleanly.
//! Needs root.

mod common;

use std::time::{Duration, Instant};

use common::{TestBundle, cgroup_leftovers};
use serde_json::{Value, json};

/// A hook that appends `KIND <state JSON>` to `log`.
fn logging_hook(kind: &str, log: &str) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("printf '%s %s\\n' {kind} \"$(cat)\" >> {log}")],
        "env": ["PATH=/bin:/usr/bin"]
    })
}

#[test]
fn every_hook_kind_runs_in_order_with_the_state() {
    let id = "hk-order";
    let b = TestBundle::new(&["sh", "-c", "echo workload >> /tmp/hooks.log"], json!({}));
    let host_log = b.path().join("rootfs/tmp/hooks.log");
    let host = host_log.to_str().unwrap();
    b.edit(|c| {
        c["hooks"] = json!({
            "prestart": [logging_hook("prestart", host)],
            "createRuntime": [logging_hook("createRuntime", host)],
            // Before pivot_root: the host's paths still resolve.
            "createContainer": [logging_hook("createContainer", host)],
            // In the container's root: its own /bin/sh and /tmp.
            "startContainer": [logging_hook("startContainer", "/tmp/hooks.log")],
            "poststart": [logging_hook("poststart", host)],
            "poststop": [logging_hook("poststop", host)]
        });
    });
    let out = b.run(id);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(&host_log).unwrap();
    let lines: Vec<(&str, Option<Value>)> = log
        .lines()
        .map(|l| {
            let (kind, rest) = l.split_once(' ').unwrap_or((l, ""));
            (kind, serde_json::from_str(rest).ok())
        })
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l.0).collect();
    assert_eq!(
        kinds[..4],
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer"
        ],
        "{log}"
    );
    // poststart runs once the workload has started: either may log first.
    let mut middle = kinds[4..6].to_vec();
    middle.sort();
    assert_eq!(middle, ["poststart", "workload"], "{log}");
    assert_eq!(kinds[6..], ["poststop"], "{log}");

    let pid = lines[0].1.as_ref().unwrap()["pid"].as_i64().unwrap();
    assert!(pid > 1);
    for (kind, state) in &lines {
        if *kind == "workload" {
            continue;
        }
        let s = state
            .as_ref()
            .unwrap_or_else(|| panic!("{kind}: no JSON in {log}"));
        assert_eq!(s["id"], id, "{kind}");
        assert_eq!(s["bundle"], b.path().to_str().unwrap(), "{kind}");
        let want = match *kind {
            "startContainer" => "created",
            "poststart" => "running",
            "poststop" => "stopped",
            _ => "creating",
        };
        assert_eq!(s["status"], want, "{kind}: {s}");
        if *kind != "poststop" {
            assert_eq!(s["pid"].as_i64(), Some(pid), "{kind}: {s}");
        }
    }
}

#[test]
fn a_failing_or_hung_hook_stops_create_and_leaves_nothing() {
    let b = TestBundle::new(&["true"], json!({}));
    b.edit(|c| {
        c["hooks"] = json!({"createRuntime": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", "echo no network for you >&2; exit 3"]
        }]});
    });
    let id = "hk-fail";
    let err = b.create_err(id, &[]);
    assert!(
        err.contains("createRuntime hook /bin/sh exited with status 3: no network for you"),
        "{err}"
    );
    assert!(!b.state_root().join(id).exists());
    assert!(cgroup_leftovers(id).is_empty());

    let id = "hk-hung";
    b.edit(|c| {
        c["hooks"] = json!({"prestart": [{
            "path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1
        }]});
    });
    let t = Instant::now();
    let err = b.create_err(id, &[]);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(
        err.contains("prestart hook /bin/sleep timed out after 1 s"),
        "{err}"
    );
    assert!(!b.state_root().join(id).exists());
    assert!(cgroup_leftovers(id).is_empty());
}

#[test]
fn poststart_and_poststop_failures_only_warn() {
    let b = TestBundle::new(&["sh", "-c", "exit 4"], json!({}));
    let fail = json!([{"path": "/bin/false", "args": ["false"]}]);
    b.edit(|c| c["hooks"] = json!({"poststart": fail, "poststop": fail}));
    let out = b.run("hk-warn");
    // The workload's status, not the hooks'.
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("poststart hook /bin/false exited with status 1"),
        "{err}"
    );
    assert!(
        err.contains("poststop hook /bin/false exited with status 1"),
        "{err}"
    );
}

#[test]
fn bad_hooks_are_refused_before_anything_runs() {
    let b = TestBundle::new(&["true"], json!({}));
    for (hook, want) in [
        (
            json!({"path": "sh"}),
            "`hooks.poststop[].path` `sh` is not an absolute path",
        ),
        (
            json!({"path": "/bin/true", "timeout": 0}),
            "`hooks.poststop[].timeout` 0 must be more than 0",
        ),
    ] {
        b.edit(|c| c["hooks"] = json!({"poststop": [hook]}));
        let out = b.run("hk-bad");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{err}");
        assert!(!b.state_root().join("hk-bad").exists());
    }
}
