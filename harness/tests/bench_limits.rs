//! The limit scenarios on the real kernel, for boxrun and runc: the
//! figures within the tolerances the kernel's enforcement should give,
//! and the report page rendered by headless Chromium.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use common::{BOXTRACE, require_root, stderr};
use serde_json::Value;

/// One scenario at a time: each measures timing or CPU shares.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn bench(scenario: &str, out: &Path, extra: &[&str]) -> (Output, Value) {
    require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let o = Command::new(BOXTRACE)
        .args([
            "bench",
            scenario,
            "--runtime",
            "boxrun",
            "--runtime",
            "runc",
            "--out",
        ])
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let s = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    (o, s)
}

fn results(s: &Value) -> &Vec<Value> {
    s["results"].as_array().unwrap()
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("no {k} in {v}"))
}

#[test]
fn memory_limit_ends_in_an_oom_kill_soon_after_the_limit() {
    let d = tempfile::tempdir().unwrap();
    let (_, s) = bench(
        "memory",
        d.path(),
        &["--limit-mib", "64", "--alloc-mib", "160"],
    );
    assert_eq!(results(&s).len(), 2);
    for r in results(&s) {
        let name = r["runtime"].as_str().unwrap();
        let limit = f(r, "limit_bytes");
        assert_eq!(limit, (64u64 << 20) as f64);
        assert!(f(r, "peak_bytes") <= limit, "{name}: peak above the limit");
        assert!(
            f(r, "peak_bytes") >= limit * 0.95,
            "{name}: never reached the limit"
        );
        assert!(r["oom_kills"].as_u64().unwrap() >= 1, "{name}");
        assert_eq!(r["oom_source"], "tracer", "{name}: mark_victim not seen");
        assert!(
            r["allocated_mib"].as_u64().unwrap() < 160,
            "{name} survived"
        );
        let reached = f(r, "limit_reached_ms");
        let kill = f(r, "oom_kill_ms");
        let brief = format!("{name}: limit reached {reached} ms, OOM kill {kill} ms");
        assert!(kill >= reached - 2.0 && kill <= f(r, "exit_ms"), "{brief}");
        // Between the limit and the kill the kernel reclaims what it can
        // of the cgroup; measured here 2-90 ms for boxrun's container
        // (about 100 ms for runc's), so the bound leaves room for that.
        if name == "boxrun" {
            assert!(f(r, "limit_to_kill_ms") < 150.0, "{brief}");
        }
    }
    assert!(d.path().join("memory_usage.svg").exists());
    assert!(d.path().join("events.jsonl").exists());
}

#[test]
fn cpu_quota_is_met_within_three_points() {
    let d = tempfile::tempdir().unwrap();
    let (_, s) = bench(
        "cpu",
        d.path(),
        &["--quota", "0.2", "--quota", "1.5", "--secs", "2"],
    );
    assert_eq!(results(&s).len(), 4);
    for r in results(&s) {
        let err = f(r, "error_points");
        assert!(
            err.abs() <= 3.0,
            "achieved {} for {}: {r}",
            f(r, "achieved"),
            f(r, "quota")
        );
        assert!(f(r, "throttled_ratio") > 0.5, "{}", r["runtime"]);
        assert!(!r["timeline"].as_array().unwrap().is_empty());
        // sched_switch of the container's tasks adds up to what the
        // cgroup counted, and most periods used the quota.
        let cross = f(r, "sched_vs_cgroup_pct");
        assert!(
            cross.abs() <= 5.0,
            "{} {}: {cross:+.2}%",
            r["runtime"],
            f(r, "quota")
        );
        let periods = r["periods"].as_array().unwrap().len();
        let at_quota = r["throttled_spans"].as_array().unwrap().len();
        assert!(
            periods >= 15 && at_quota * 2 >= periods,
            "{at_quota} of {periods}"
        );
    }
    assert!(d.path().join("cpu_sweep.svg").exists());
}

#[test]
fn pids_refusals_start_exactly_at_the_limit() {
    let d = tempfile::tempdir().unwrap();
    let (_, s) = bench("pids", d.path(), &["--limit", "12", "--no-trace"]);
    for r in results(&s) {
        // The workload itself is the twelfth task.
        assert_eq!(r["started"], 11, "{r}");
        assert_eq!(r["refused_errno"], libc::EAGAIN, "{r}");
        assert!(r["kernel_refusals"].as_u64().unwrap() >= 1, "{r}");
    }
}

#[test]
fn io_throttle_holds_the_rate() {
    let d = tempfile::tempdir().unwrap();
    let (_, s) = bench(
        "io",
        d.path(),
        &["--rate-mib", "8", "--mib", "16", "--no-trace"],
    );
    assert_eq!(results(&s).len(), 4, "write and read per runtime");
    for r in results(&s) {
        // O_DIRECT against a bytes-per-second throttle: within 10%.
        let err = f(r, "error_pct");
        assert!(
            err.abs() <= 10.0,
            "{} {}: {err:+.1}%",
            r["runtime"],
            r["op"]
        );
        assert!(r["timeline"].as_array().unwrap().len() >= 10);
    }
    assert!(d.path().join("io_rate.svg").exists());
    // The data directory on the host is gone.
    let left = std::fs::read_dir("/var/tmp")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("boxtrace-io-"))
        .count();
    assert_eq!(left, 0);
}

#[test]
fn freeze_cycles_are_timed() {
    let d = tempfile::tempdir().unwrap();
    let (_, s) = bench("freeze", d.path(), &["--cycles", "10", "--no-trace"]);
    for r in results(&s) {
        assert_eq!(r["pause_ms"].as_array().unwrap().len(), 10);
        assert!(f(&r["pause"], "min") > 0.0);
        assert!(f(&r["resume"], "p50") > 0.0);
    }
    assert!(d.path().join("freeze_latency.svg").exists());
}

/// Renders `dir/index.html` in headless Chromium and returns, per chart,
/// its rendered width and height; keeps a screenshot at `shot`.
fn rendered_charts(dir: &Path, shot: &Path) -> Vec<(String, f64, f64)> {
    let probe = dir.join("probe.html");
    let page = std::fs::read_to_string(dir.join("index.html")).unwrap();
    let script = r#"<script>
      window.addEventListener('load', () => {
        const out = [...document.querySelectorAll('figure')].map(f => {
          const r = f.querySelector('svg').getBoundingClientRect();
          return f.id + ' ' + r.width + ' ' + r.height;
        });
        const p = document.createElement('pre');
        p.id = 'sizes';
        p.textContent = out.join('\n');
        document.body.appendChild(p);
      });
    </script></body>"#;
    std::fs::write(&probe, page.replace("</body>", script)).unwrap();
    let chromium = |args: &[&str]| {
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .args(args)
            .output()
            .expect("chromium is installed by scripts/setup")
    };
    let url = format!("file://{}", probe.display());
    let dom = chromium(&["--virtual-time-budget=3000", "--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    let sizes = dom
        .split("<pre id=\"sizes\">")
        .nth(1)
        .and_then(|r| r.split("</pre>").next())
        .unwrap_or_else(|| panic!("no sizes in the page:\n{dom}"));
    let shot_arg = format!("--screenshot={}", shot.display());
    let page_url = format!("file://{}", dir.join("index.html").display());
    let s = chromium(&["--window-size=1260,2200", &shot_arg, &page_url]);
    assert!(shot.exists(), "{}", String::from_utf8_lossy(&s.stderr));
    sizes
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            let id = w.next().unwrap().to_owned();
            (
                id,
                w.next().unwrap().parse().unwrap(),
                w.next().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_report_page_renders_every_chart_in_chromium() {
    let d = tempfile::tempdir().unwrap();
    bench(
        "cpu",
        d.path(),
        &["--quota", "0.5", "--secs", "1", "--no-trace"],
    );
    let artefacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artefacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let shot = artefacts.join("cpu-report.png");
    let charts = rendered_charts(d.path(), &shot);
    let ids: Vec<&str> = charts.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(ids, ["cpu_timeline.svg", "cpu_sweep.svg"]);
    for (id, w, h) in &charts {
        assert!(*w > 600.0 && *h > 300.0, "{id} rendered at {w}x{h}");
    }
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
}
