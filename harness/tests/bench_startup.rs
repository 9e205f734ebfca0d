//! `boxtrace bench startup` and `boxtrace compare` on the real kernel:
//! reports written, nothing left behind, Ctrl-C keeps a partial result,
//! and `compare` passes like runs and flags a slowdown.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Duration,
};

use common::{BOXTRACE, require_root, stderr};
use serde_json::Value;

/// The benchmarks of this file run one at a time: timings taken while
/// another benchmark loads the machine are not worth comparing.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn bench(out: &Path, extra: &[&str]) -> Output {
    require_root();
    Command::new(BOXTRACE)
        .args(["bench", "startup", "--no-progress", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn summary(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap()
}

/// The pid in a benchmark's container id `bt-<runtime>-<pid>-<seq>`, or
/// in its scratch directory `bench-<pid>`.
fn owner(name: &str) -> Option<u32> {
    if let Some(p) = name.strip_prefix("bench-") {
        return p.parse().ok();
    }
    let rest = name.strip_prefix("bt-")?;
    let mut parts = rest.rsplit('-');
    parts.next()?;
    parts.next()?.parse().ok()
}

/// What benchmarks that have ended left: cgroups, scratch directories,
/// images (benchmarks of other tests may still be running).
fn leftovers() -> Vec<PathBuf> {
    fn dead(name: &str) -> bool {
        owner(name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    }
    fn walk(d: &Path, depth: u32, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let p = e.path();
            if dead(&e.file_name().to_string_lossy()) {
                out.push(p.clone());
            }
            if depth > 0 {
                walk(&p, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), 4, &mut out);
    for e in std::fs::read_dir("/run/boxtrace")
        .into_iter()
        .flatten()
        .flatten()
    {
        if dead(&e.file_name().to_string_lossy()) {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn startup_of_three_runtimes_writes_the_report_and_leaves_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let out = bench(
        dir.path(),
        &[
            "--runtime",
            "boxrun",
            "--runtime",
            "runc",
            "--runtime",
            "crun",
            "--runtime",
            "youki",
            "-n",
            "6",
            "--warmup",
            "1",
        ],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("youki is not installed: skipped"), "{err}");
    let s = summary(dir.path());
    let names: Vec<&str> = s["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["boxrun", "runc", "crun"]);
    for r in s["runtimes"].as_array().unwrap() {
        assert_eq!(r["samples"].as_array().unwrap().len(), 6, "{}", r["name"]);
        let l = &r["latency_ms"];
        assert!(l["min"].as_f64().unwrap() <= l["p50"].as_f64().unwrap());
        assert!(l["p50"].as_f64().unwrap() <= l["max"].as_f64().unwrap());
    }
    assert_eq!(s["skipped"][0]["runtime"], "youki");
    // boxrun's phases are on its samples.
    let phases = s["runtimes"][0]["phase_order"].as_array().unwrap();
    for p in ["cloned", "pivoted", "exec", "deleted"] {
        assert!(phases.iter().any(|x| x == p), "no {p} in {phases:?}");
    }
    // The tracer's phases, for every runtime, adding up to the start.
    for r in s["runtimes"].as_array().unwrap() {
        let order = r["trace_phase_order"].as_array().unwrap();
        for p in [
            "namespaces",
            "cgroup_attach",
            "pivot_root",
            "workload_exec",
            "workload_exit",
            "deleted",
        ] {
            assert!(
                order.iter().any(|x| x == p),
                "{}: no {p} in {order:?}",
                r["name"]
            );
        }
        let sum: f64 = r["samples"][0]["trace_phases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[1].as_f64().unwrap())
            .sum();
        let total = r["samples"][0]["ms"].as_f64().unwrap();
        assert!(
            (sum - total).abs() < 0.01,
            "phases {sum} ms of a {total} ms start"
        );
    }
    assert_eq!(s["trace"]["lost"], 0);
    for f in [
        "index.html",
        "latency_cdf.svg",
        "latency_by_round.svg",
        "phases.svg",
        "boxrun_phases.svg",
        "events.jsonl",
    ] {
        assert!(dir.path().join(f).metadata().unwrap().len() > 0, "{f}");
    }
    let trace: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("trace.json")).unwrap()).unwrap();
    let tracks = trace["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "thread_name")
        .count();
    // One track per start, and one more per boxrun start for its marks.
    assert_eq!(tracks, 18 + 6);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("report: "), "{stdout}");
    assert!(leftovers().is_empty(), "{:?}", leftovers());
}

#[test]
fn lifecycle_mode_with_concurrency() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let out = bench(
        dir.path(),
        &[
            "--runtime",
            "boxrun",
            "--runtime",
            "runc",
            "--mode",
            "lifecycle",
            "-c",
            "3",
            "-n",
            "3",
            "--warmup",
            "0",
            "--image",
            "busybox",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(dir.path());
    assert_eq!(s["mode"], "lifecycle");
    assert_eq!(s["concurrency"], 3);
    for r in s["runtimes"].as_array().unwrap() {
        assert_eq!(r["samples"].as_array().unwrap().len(), 9, "{}", r["name"]);
    }
    assert!(leftovers().is_empty(), "{:?}", leftovers());
}

#[test]
fn ctrl_c_stops_cleanly_and_keeps_a_partial_report() {
    let _serial = serial();
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(BOXTRACE)
        .args([
            "bench",
            "startup",
            "--no-progress",
            "--runtime",
            "boxrun",
            "-n",
            "1000",
            "--out",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let s = summary(dir.path());
    assert_eq!(s["interrupted"], true);
    let n = s["runtimes"][0]["samples"].as_array().unwrap().len();
    assert!(n > 0 && n < 1000, "{n} samples");
    assert!(leftovers().is_empty(), "{:?}", leftovers());
}

fn compare(a: &Path, b: &Path, pct: &str) -> Output {
    Command::new(BOXTRACE)
        .args(["compare", "--max-regression", pct])
        .arg(a)
        .arg(b)
        .output()
        .unwrap()
}

#[test]
fn compare_passes_like_runs_and_flags_an_added_delay() {
    let _serial = serial();
    let runs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    for (i, d) in runs.iter().enumerate() {
        let mut args = vec!["--runtime", "boxrun", "-n", "25", "--warmup", "2"];
        if i == 2 {
            // A start of a few ms made 15 ms slower.
            args.extend(["--delay", "boxrun=15"]);
        }
        let out = bench(d.path(), &args);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let same = compare(runs[0].path(), runs[1].path(), "25");
    let text = String::from_utf8_lossy(&same.stdout);
    assert_eq!(same.status.code(), Some(0), "{text}");
    assert!(text.contains("no regression beyond 25%"), "{text}");
    let itself = compare(runs[0].path(), &runs[0].path().join("summary.json"), "0");
    assert_eq!(itself.status.code(), Some(0));
    let slow = compare(runs[0].path(), runs[2].path(), "25");
    let text = String::from_utf8_lossy(&slow.stdout);
    assert_eq!(slow.status.code(), Some(1), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("boxrun") && l.contains(" total "))
        .unwrap();
    assert!(line.contains("REGRESSION"), "{text}");
    // The phases boxrun marks did not change: no regression there.
    let phase = text.lines().find(|l| l.contains(" pivoted ")).unwrap();
    assert!(!phase.contains("REGRESSION"), "{text}");
}

#[test]
fn bad_input_is_named() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let out = compare(&missing, &missing, "10");
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("nope.json"), "{}", stderr(&out));
    std::fs::write(dir.path().join("bad.json"), "{\"schema\": 1,\n \"n\": }").unwrap();
    let out = compare(&dir.path().join("bad.json"), &missing, "10");
    assert!(stderr(&out).contains("bad.json:2:"), "{}", stderr(&out));
    for (args, want) in [
        (&["--delay", "boxrun"][..], "expected RUNTIME=MS"),
        (
            &["--delay", "runc=5", "--runtime", "boxrun"][..],
            "runc is not one of",
        ),
        (&["-n", "0"][..], "at least 1"),
        (
            &["--runtime", "no-such-runtime"][..],
            "none of the runtimes",
        ),
        (&["--image", "/nonexistent"][..], "no config.json"),
    ] {
        let out = bench(&dir.path().join("r"), args);
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
}
