//! Process and device fields of config.json as the OCI spec defines
//! them, checked from inside the container. Needs root.

mod common;

use common::TestBundle;
use serde_json::json;

#[test]
fn process_attributes_reach_the_workload() {
    let b = TestBundle::new(
        &["sh", "-c", "cat /proc/self/oom_score_adj; umask; uname -m"],
        json!({"personality": {"domain": "LINUX32"}}),
    );
    b.edit(|c| {
        c["process"]["oomScoreAdj"] = 500.into();
        c["process"]["user"]["umask"] = 0o077.into();
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    });
    let out = b.run("sf-proc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    // LINUX32 on x86_64: uname reports a 32-bit machine.
    assert_eq!(lines, ["500", "0077", "i686"], "{text}");
}

#[test]
fn linux_devices_are_made_with_their_mode_and_owner_and_allowed() {
    let b = TestBundle::new(
        &[
            "sh",
            "-c",
            "ls -ln /dev/mydev; echo x > /dev/sub/null2 && echo wrote; { echo x > /dev/odd; } 2>&1; true",
        ],
        json!({"devices": [{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 3,
                            "fileMode": 0o620, "uid": 1000, "gid": 1001},
                           {"path": "/dev/sub/null2", "type": "c", "major": 1, "minor": 3,
                            "fileMode": 0o666},
                           {"path": "/dev/odd", "type": "c", "major": 240, "minor": 7,
                            "fileMode": 0o666}]}),
    );
    let out = b.run("sf-dev");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let ls = text.lines().next().unwrap();
    // Mode exactly as given (no umask), owner, and 1:3.
    assert!(ls.starts_with("crw--w----"), "{ls}");
    let f: Vec<&str> = ls.split_whitespace().collect();
    assert_eq!(
        (f[2], f[3], f[4], f[5]),
        ("1000", "1001", "1,", "3"),
        "{ls}"
    );
    // The devices cgroup denies by default, yet allows what the spec made:
    // a number with no driver behind it gets as far as the driver lookup
    // (ENXIO), not the cgroup's EPERM.
    assert!(text.contains("wrote"), "{text}");
    assert!(
        text.contains("/dev/odd: No such device or address"),
        "{text}"
    );

    for (dev, want) in [
        (
            json!({"path": "/etc/x", "type": "c", "major": 1, "minor": 3}),
            "is not below /dev",
        ),
        (
            json!({"path": "/dev/x", "type": "a", "major": 1, "minor": 3}),
            "type must be",
        ),
    ] {
        let b = TestBundle::new(&["true"], json!({"devices": [dev]}));
        let out = b.run("sf-bad");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{err}");
    }
}
