//! Attacks from inside a container that must fail: opening the runtime's
//! binary through /proc/PID/exe, landing a mount outside the rootfs
//! through a symlink, reaching devices not allowed. Needs root.

mod common;

use common::{BOXRUN, TestBundle, cgroup_leftovers};
use serde_json::json;

/// A startContainer hook runs in the container while boxrun's init, still
/// boxrun's binary, waits for it as the container's pid 1: the moment the
/// /proc/self/exe attack needs.
#[test]
fn the_runtime_binary_cannot_be_opened_from_the_container() {
    let id = "hd-exe";
    let b = TestBundle::new(&["true"], json!({}));
    let probe = "ls -l /proc/1/exe > /tmp/link 2>&1; \
                 if cat /proc/1/exe > /dev/null 2> /tmp/open.err; then echo OPENED; else echo REFUSED; fi > /tmp/result; \
                 echo x 2> /tmp/write.err >> /proc/1/exe; exit 0";
    b.edit(|c| {
        c["hooks"] = json!({"startContainer": [
            {"path": "/bin/sh", "args": ["sh", "-c", probe], "env": ["PATH=/bin"]}
        ]});
    });
    let before = std::fs::read(BOXRUN).unwrap();
    let out = b.run(id);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tmp = b.path().join("rootfs/tmp");
    let read = |f: &str| std::fs::read_to_string(tmp.join(f)).unwrap();
    assert_eq!(read("result").trim(), "REFUSED");
    for f in ["open.err", "write.err", "link"] {
        assert!(read(f).contains("Permission denied"), "{f}: {}", read(f));
    }
    assert_eq!(std::fs::read(BOXRUN).unwrap(), before);

    // The gate is the kernel's ptrace rule: a container granted
    // CAP_SYS_PTRACE passes it (documented; runc without its memfd copy
    // is in the same place).
    let b = TestBundle::new(&["true"], json!({}));
    let caps = json!(["CAP_SYS_PTRACE"]);
    b.edit(|c| {
        c["process"]["capabilities"] =
            json!({"bounding": caps, "effective": caps, "permitted": caps});
        c["hooks"] = json!({"startContainer": [
            {"path": "/bin/sh", "args": ["sh", "-c", probe], "env": ["PATH=/bin"]}
        ]});
    });
    assert!(b.run("hd-exe-ptrace").status.success());
    let result = std::fs::read_to_string(b.path().join("rootfs/tmp/result")).unwrap();
    assert_eq!(result.trim(), "OPENED");
    // Writing stays refused while the binary runs.
    let err = std::fs::read_to_string(b.path().join("rootfs/tmp/write.err")).unwrap();
    assert!(err.contains("busy"), "{err}");
}

#[test]
fn a_symlink_cannot_carry_a_mount_out_of_the_rootfs() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let b = TestBundle::new(&["true"], json!({}));
    // Climbs out with `..`: refused by name, before anything is mounted.
    std::os::unix::fs::symlink(
        format!("../../../../../../../..{}", target.display()),
        b.path().join("rootfs/climb"),
    )
    .unwrap();
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!(
            {"destination": "/climb/m", "type": "tmpfs", "source": "tmpfs"}
        ));
    });
    let out = b.run("hd-climb");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`/climb/m` escapes the root filesystem through the symlink"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
    assert!(cgroup_leftovers("hd-climb").is_empty());

    // An absolute link means the container's own path, as in images
    // (/var/run -> /run): the mount lands inside the rootfs.
    let b = TestBundle::new(
        &["sh", "-c", "grep -c ' /abs-inside/m ' /proc/self/mountinfo"],
        json!({}),
    );
    std::fs::create_dir_all(b.path().join("rootfs/abs-inside")).unwrap();
    std::os::unix::fs::symlink("/abs-inside", b.path().join("rootfs/abs")).unwrap();
    std::os::unix::fs::symlink(target.as_path(), b.path().join("rootfs/host")).unwrap();
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/abs/m", "type": "tmpfs", "source": "tmpfs"}));
        m.push(json!({"destination": "/host/m", "type": "tmpfs", "source": "tmpfs"}));
    });
    let out = b.run("hd-abs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    // The link to the host's directory was followed inside the rootfs.
    assert!(
        b.path()
            .join("rootfs")
            .join(target.strip_prefix("/").unwrap())
            .join("m")
            .is_dir()
    );
    assert_eq!(
        std::fs::read_dir(&target).unwrap().count(),
        0,
        "nothing on the host"
    );
}

#[test]
fn only_allowed_devices_can_be_opened() {
    // The host's root disk, made in the container: mknod is allowed
    // (CAP_MKNOD), opening it is not (devices cgroup, default deny).
    let disk = std::fs::metadata("/sys/dev/block")
        .ok()
        .and_then(|_| std::fs::read_dir("/sys/dev/block").ok())
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .expect("a block device");
    let (major, minor) = disk.split_once(':').unwrap();
    let script = format!(
        "{{ mknod /dev/disk b {major} {minor} && head -c 1 /dev/disk > /dev/null; }} 2> /tmp/disk.err; \
         echo $? > /tmp/disk.rc; head -c 4 /dev/zero | wc -c"
    );
    let b = TestBundle::new(&["sh", "-c", &script], json!({}));
    let caps = json!(["CAP_MKNOD"]);
    b.edit(|c| {
        c["process"]["capabilities"] =
            json!({"bounding": caps, "effective": caps, "permitted": caps});
    });
    let out = b.run("hd-dev");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The default devices still work.
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "4");
    let tmp = b.path().join("rootfs/tmp");
    assert_ne!(
        std::fs::read_to_string(tmp.join("disk.rc")).unwrap().trim(),
        "0"
    );
    let err = std::fs::read_to_string(tmp.join("disk.err")).unwrap();
    assert!(err.contains("Operation not permitted"), "{err}");

    // Allowed by a rule: readable.
    let b = TestBundle::new(
        &["sh", "-c", &script],
        json!({"resources": {"devices": [
            {"allow": true, "type": "b", "major": major.parse::<i64>().unwrap(),
             "minor": minor.parse::<i64>().unwrap(), "access": "rm"}
        ]}}),
    );
    b.edit(|c| {
        c["process"]["capabilities"] =
            json!({"bounding": caps, "effective": caps, "permitted": caps});
    });
    assert!(b.run("hd-dev-allowed").status.success());
    let rc = std::fs::read_to_string(b.path().join("rootfs/tmp/disk.rc")).unwrap();
    assert_eq!(rc.trim(), "0");
}

/// `boxrun spec`'s defaults, run as they are: three capabilities, the
/// masked and read-only paths of runc's default spec, its cgroup mount
/// read-only.
#[test]
fn the_default_spec_drops_capabilities_and_masks_paths() {
    let b = TestBundle::new(&["true"], json!({}));
    std::fs::remove_file(b.path().join("config.json")).unwrap();
    b.ok(&["spec", "--bundle", b.path().to_str().unwrap()]);
    let script = "grep -E '^Cap(Eff|Bnd)' /proc/self/status; \
                  head -c 1 /proc/kcore | wc -c; ls /sys/firmware | wc -l; \
                  { echo 1 > /proc/sys/kernel/domainname; } 2>&1; \
                  { touch /sys/fs/cgroup/pids/x; } 2>&1; grep ' /sys/fs/cgroup/pids ' /proc/self/mountinfo; true";
    b.edit(|c| {
        c["process"]["args"] = json!(["sh", "-c", script]);
        c["process"]["env"] = json!(["PATH=/bin"]);
    });
    let out = b.run("hd-default");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // CAP_KILL (5), CAP_NET_BIND_SERVICE (10), CAP_AUDIT_WRITE (29).
    let want = format!("{:016x}", (1u64 << 5) | (1 << 10) | (1 << 29));
    for set in ["CapEff", "CapBnd"] {
        let line = text.lines().find(|l| l.starts_with(set)).unwrap();
        assert!(line.ends_with(&want), "{line} != {want}");
    }
    let lines: Vec<&str> = text.lines().collect();
    // /proc/kcore reads as /dev/null, /sys/firmware is an empty tmpfs,
    // /proc/sys is read-only.
    assert_eq!(lines[2].trim(), "0", "{text}");
    assert_eq!(lines[3].trim(), "0", "{text}");
    assert!(lines[4].contains("Read-only file system"), "{text}");
    // The container's cgroups: read-only, nosuid, nodev, noexec.
    assert!(lines[5].contains("Read-only file system"), "{text}");
    assert!(lines[6].contains(" ro,nosuid,nodev,noexec"), "{text}");
}
