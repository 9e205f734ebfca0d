//! tracefs handling against the real kernel: with no tracefs mounted,
//! boxtrace mounts one privately and leaves none behind. The test runs in
//! a mount namespace of its own (`unshare -m`, private propagation), so
//! unmounting tracefs there leaves the host's mounts alone.

use std::process::Command;

const BOXTRACE: &str = env!("CARGO_BIN_EXE_boxtrace");

#[test]
fn tracefs_is_mounted_privately_and_not_left_behind() {
    assert!(nix::unistd::geteuid().is_root(), "needs root");
    let script = format!(
        r#"set -e
        # No tracefs here, as on a fresh boot.
        for m in $(awk '$3 == "tracefs" {{ print $2 }}' /proc/self/mounts | sort -r); do
            umount -l "$m"
        done
        test ! -e /sys/kernel/tracing/events
        {BOXTRACE} trace -- unshare --uts true
        echo "tracefs mounts after: $(awk '$3 == "tracefs"' /proc/self/mounts | wc -l)"
        "#
    );
    let output = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{out}\n{err}");
    assert!(err.contains("unshare      CLONE_NEWUTS = 0"), "{err}");
    assert!(
        out.contains("tracefs mounts after: 0"),
        "boxtrace left tracefs mounted: {out}"
    );
}
