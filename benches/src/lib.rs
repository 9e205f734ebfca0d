//! Shared inputs of the benchmarks.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use boxtrace::trace::event::testing::{bytes, raw, set_str};
use boxtrace_common::Kind;

/// A mix of ring buffer records shaped like a runc container start:
/// mostly mounts, execs and clones, with strings where they carry them.
pub fn container_start_records() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for i in 0..64u32 {
        let mut m = raw(Kind::Mount, [0x5000, 0, 0, 0], "runc:[2:INIT]");
        set_str(&mut m, 0, "/proc/self/fd/6");
        set_str(
            &mut m,
            1,
            "/sys/fs/cgroup/memory/process_api/0d1b0dd8759bcb20/bench",
        );
        set_str(&mut m, 2, "bind");
        m.flags = boxtrace_common::FLAG_RETURNED;
        m.container = 1000;
        out.push(bytes(&m));
        let mut e = raw(Kind::Execve, [0; 4], "runc:[2:INIT]");
        set_str(&mut e, 0, "/usr/local/bin/true");
        e.flags = boxtrace_common::FLAG_RETURNED;
        e.ret = -2;
        e.container = 1000;
        out.push(bytes(&e));
        let mut c = raw(Kind::Clone3, [0x3d0f00, 0, 0, 0], "runc");
        c.flags = boxtrace_common::FLAG_RETURNED;
        c.ret = i64::from(2000 + i);
        out.push(bytes(&c));
        let mut f = raw(Kind::Fork, [u64::from(2000 + i), 0, 0, 0], "runc");
        f.container = 1000;
        out.push(bytes(&f));
        let mut a = raw(Kind::CgroupAttach, [3, u64::from(2000 + i), 0, 0], "runc");
        set_str(&mut a, 0, "/bench");
        out.push(bytes(&a));
        out.push(bytes(&raw(Kind::Exit, [0, 1, 0, 0], "true")));
    }
    out
}

/// A binary of this workspace: release for `cargo bench` (`full`); under
/// `cargo test` the debug build cargo just made (a release one may be
/// stale).
pub fn workspace_bin(name: &str, full: bool) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if full {
        // `cargo bench` builds this crate, not the workspace's binaries: a
        // release binary left from an older build would be measured as if
        // it were the current code. Build it first (a no-op when fresh).
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let ok = std::process::Command::new(cargo)
            .current_dir(&root)
            .args(["build", "--release", "--locked", "--bin", name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cargo build --release --bin {name} failed");
    }
    let order = if full {
        ["release", "debug"]
    } else {
        ["debug", "release"]
    };
    for profile in order {
        let p = root.join("target").join(profile).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("build {name} first: cargo build --release --bin {name}");
}

/// A busybox bundle made with `runc spec` (the configuration every
/// runtime is compared on), running `args`.
pub fn busybox_bundle(dir: &Path, args: &[&str]) {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for a in ["true", "sh", "sleep"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    let st = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(dir)
        .status()
        .expect("runc is needed for `runc spec`");
    assert!(st.success(), "runc spec failed");
    let path = dir.join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    c["process"]["terminal"] = false.into();
    c["process"]["args"] = serde_json::json!(args);
    std::fs::write(&path, serde_json::to_vec(&c).unwrap()).unwrap();
}

/// The median of `v` (sorted in place).
pub fn median<T: Ord + Copy>(v: &mut [T]) -> T {
    v.sort();
    v[v.len() / 2]
}
