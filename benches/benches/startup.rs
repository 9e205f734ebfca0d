//! Container start latency: `run` of /bin/true on a busybox bundle (made
//! by `runc spec`) with boxrun, crun and runc side by side, and the floor
//! of `unshare -fpmuinC --mount-proc` running the same binary. Targets:
//! boxrun's median at most 0.75x crun's and at most 2x the floor's.
//!
//! The runtimes take turns start by start (the order rotating), so drift
//! of the machine hits all of them alike. Everything runs in a private
//! mount namespace of this process where the empty cgroup2 mount of the
//! hybrid hierarchy is gone (crun would otherwise pick it; see
//! docs/DESIGN.md); the state roots are on /run's tmpfs.
//! boxrun's `--phase-marks` say where its time goes.
//!
//! `cargo bench` runs 200 starts per runtime after 10 warm-up ones; under
//! `cargo test` 5 starts check that it works. Needs root and a built
//! `boxrun`; a missing crun or runc is reported and skipped.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use boxtrace::bench::startup::private_world;
use boxtrace_benches::{busybox_bundle, median, workspace_bin};

struct Contender {
    name: &'static str,
    /// argv before `--root`; None for the floor.
    bin: Option<PathBuf>,
    times: Vec<Duration>,
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn pct(v: &[Duration], p: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s[((s.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (warmup, n) = if full { (10, 200) } else { (1, 5) };
    let dir = tempfile::tempdir().unwrap();
    busybox_bundle(dir.path(), &["/bin/true"]);
    // State on /run's tmpfs, as the runtimes' own roots are.
    let state = tempfile::tempdir_in("/run").unwrap();
    private_world().expect("a private mount namespace: needs root");
    let marks = state.path().join("marks");

    let mut cs = vec![Contender {
        name: "boxrun",
        bin: Some(workspace_bin("boxrun", full)),
        times: Vec::new(),
    }];
    for name in ["crun", "runc"] {
        match find_in_path(name) {
            Some(bin) => cs.push(Contender {
                name,
                bin: Some(bin),
                times: Vec::new(),
            }),
            None => eprintln!("{name} is not installed: skipped"),
        }
    }
    cs.push(Contender {
        name: "floor",
        bin: None,
        times: Vec::new(),
    });

    let true_bin = dir.path().join("rootfs/bin/true");
    let mut phases = Phases::default();
    let mut id = 0u32;
    for round in 0..warmup + n {
        let count = cs.len();
        for k in 0..count {
            let c = &mut cs[(round + k) % count];
            id += 1;
            let mut cmd = match &c.bin {
                Some(bin) => {
                    let mut cmd = Command::new(bin);
                    cmd.arg("--root")
                        .arg(state.path().join(c.name))
                        .args(["run", "-b"])
                        .arg(dir.path())
                        .arg(format!("start-{id}"));
                    cmd
                }
                None => {
                    let mut cmd = Command::new("unshare");
                    cmd.arg("-fpmuinC").arg("--mount-proc").arg(&true_bin);
                    cmd
                }
            };
            if c.name == "boxrun" {
                let _ = std::fs::remove_file(&marks);
                cmd.arg("--phase-marks").arg(&marks);
            }
            let t = Instant::now();
            let st = cmd.stdout(Stdio::null()).status().unwrap();
            let took = t.elapsed();
            assert!(st.success(), "{} run failed: {st}", c.name);
            if round < warmup {
                continue;
            }
            c.times.push(took);
            if c.name == "boxrun" {
                record_phases(&marks, &mut phases);
            }
        }
    }

    if !full {
        println!("smoke check under cargo test (debug build, not a measurement):");
    }
    println!("run of /bin/true, busybox bundle from `runc spec`, {n} starts each, interleaved:");
    println!(
        "{:<8} {:>9} {:>9} {:>9} {:>9}",
        "", "min ms", "p50 ms", "p90 ms", "max ms"
    );
    let mut med = BTreeMap::new();
    for c in &mut cs {
        println!(
            "{:<8} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            c.name,
            ms(pct(&c.times, 0.0)),
            ms(median(&mut c.times)),
            ms(pct(&c.times, 0.9)),
            ms(pct(&c.times, 1.0))
        );
        med.insert(c.name, ms(median(&mut c.times)));
    }
    let b = med["boxrun"];
    for (other, target) in [("crun", 0.75), ("runc", f64::NAN), ("floor", 2.0)] {
        if let Some(o) = med.get(other) {
            let ratio = b / o;
            let verdict = if target.is_nan() {
                String::new()
            } else if ratio <= target {
                format!(" (target <= {target}x: met)")
            } else {
                format!(" (target <= {target}x: NOT met)")
            };
            println!("boxrun / {other}: {ratio:.3}{verdict}");
        }
    }
    println!("boxrun phases, median time since the previous phase:");
    let mut order: Vec<(u64, &String)> = phases
        .offset
        .iter()
        .map(|(k, v)| (median(&mut v.clone()), k))
        .collect();
    order.sort();
    for (_, name) in order {
        let d = median(&mut phases.delta[name].clone());
        println!("  {name:<16} {:>7.3} ms", d as f64 / 1e6);
    }
}

/// boxrun's phases over all starts, in nanoseconds.
#[derive(Default)]
struct Phases {
    /// Since `started` (orders the phases).
    offset: BTreeMap<String, Vec<u64>>,
    /// Since the previous mark.
    delta: BTreeMap<String, Vec<u64>>,
}

/// Reads boxrun's `NAME NS` marks of one start.
fn record_phases(path: &Path, phases: &mut Phases) {
    let text = std::fs::read_to_string(path).unwrap();
    let marks: Vec<(&str, u64)> = text
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k, v.parse().ok()?))
        })
        .collect();
    let Some(&(_, t0)) = marks.first() else {
        return;
    };
    let mut sorted = marks.clone();
    sorted.sort_by_key(|&(_, t)| t);
    let mut prev = t0;
    for (k, t) in sorted {
        phases.offset.entry(k.to_owned()).or_default().push(t - t0);
        phases.delta.entry(k.to_owned()).or_default().push(t - prev);
        prev = t;
    }
}
