//! tracefs handling against the real kernel. A test binary of its own:
//! it unmounts the host's tracefs, which must not race the other tests.

use std::{path::Path, process::Command};

const BOXTRACE: &str = env!("CARGO_BIN_EXE_boxtrace");

/// Mount points of every tracefs in the host's mount table.
fn tracefs_mounts() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .filter(|l| l.split_whitespace().nth(2) == Some("tracefs"))
        .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
        .collect()
}

#[test]
fn tracefs_is_mounted_privately_and_not_left_behind() {
    assert!(nix::unistd::geteuid().is_root(), "needs root");
    // Make sure the host has no tracefs mount, as on a fresh boot here.
    for p in tracefs_mounts().iter().rev() {
        nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH).unwrap();
    }
    assert!(!Path::new("/sys/kernel/tracing/events").exists());
    let output = Command::new(BOXTRACE)
        .args(["trace", "--", "unshare", "--uts", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{err}");
    assert!(err.contains("unshare      CLONE_NEWUTS = 0"), "{err}");
    assert_eq!(
        tracefs_mounts(),
        Vec::<String>::new(),
        "boxtrace left tracefs mounted"
    );
}
