//! What tracing costs a container start: `runc run` of a busybox bundle
//! running /bin/true, untraced and while `boxtrace trace --all` follows
//! every container start on the host. Target: traced median at most 1.05x
//! untraced.
//!
//! Runs alternate in blocks (untraced, traced, untraced, ...) so machine
//! drift hits both sides alike. `cargo bench` runs 8 blocks of 25 starts
//! per side; under `cargo test` one short block checks that it works.
//! Needs root, runc and a built `boxtrace` (target/release or debug).

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The boxtrace to measure: release for `cargo bench`; under `cargo test`
/// the debug build cargo just made (a release one may be stale).
fn boxtrace_bin(full: bool) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let order: &[&str] = if full {
        &["target/release/boxtrace", "target/debug/boxtrace"]
    } else {
        &["target/debug/boxtrace", "target/release/boxtrace"]
    };
    for p in order {
        let p = root.join(p);
        if p.exists() {
            return p;
        }
    }
    panic!("build boxtrace first: cargo build --release -p boxtrace");
}

/// A busybox bundle made with `runc spec`, running /bin/true.
fn bundle(dir: &Path) {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/true")).unwrap();
    let st = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success(), "runc spec failed");
    let path = dir.join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    c["process"]["terminal"] = false.into();
    c["process"]["args"] = serde_json::json!(["/bin/true"]);
    std::fs::write(&path, serde_json::to_vec(&c).unwrap()).unwrap();
}

/// `boxtrace trace --all`, running until dropped.
struct Tracer(Child);

impl Tracer {
    fn start(full: bool) -> Self {
        let mut child = Command::new(boxtrace_bin(full))
            .args(["trace", "--all", "--quiet"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains("tracing every container start") {
            line.clear();
            assert_ne!(
                err.read_line(&mut line).unwrap(),
                0,
                "boxtrace did not start"
            );
        }
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        Self(child)
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (blocks, per_block) = if full { (8, 25) } else { (1, 3) };
    let dir = tempfile::tempdir().unwrap();
    bundle(dir.path());
    let state = tempfile::tempdir().unwrap();
    let mut n = 0u32;
    let mut run = || {
        n += 1;
        let t = Instant::now();
        let st = Command::new("runc")
            .arg("--root")
            .arg(state.path())
            .args(["run", "-b"])
            .arg(dir.path())
            .arg(format!("bench-{n}"))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "runc run failed");
        t.elapsed()
    };
    run(); // warm-up: page cache, runc's first start
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..blocks {
        off.extend((0..per_block).map(|_| run()));
        let _tracer = Tracer::start(full);
        on.extend((0..per_block).map(|_| run()));
    }
    let (m_off, m_on) = (median(&mut off), median(&mut on));
    if !full {
        print!("smoke check under cargo test (debug build, not a measurement): ");
    }
    println!(
        "runc run /bin/true, {} starts each: untraced median {:.2} ms, traced (--all) median {:.2} ms, ratio {:.3}",
        off.len(),
        m_off.as_secs_f64() * 1e3,
        m_on.as_secs_f64() * 1e3,
        m_on.as_secs_f64() / m_off.as_secs_f64()
    );
}
