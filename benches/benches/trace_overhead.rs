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
    process::{Child, Command, Stdio},
    time::Instant,
};

use boxtrace_benches::{busybox_bundle, median, workspace_bin};

/// `boxtrace trace --all`, running until dropped.
struct Tracer(Child);

impl Tracer {
    fn start(full: bool) -> Self {
        let mut child = Command::new(workspace_bin("boxtrace", full))
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

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (blocks, per_block) = if full { (8, 25) } else { (1, 3) };
    let dir = tempfile::tempdir().unwrap();
    busybox_bundle(dir.path(), &["/bin/true"]);
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
