//! Reports of the limit scenarios: summary.json with every measurement,
//! SVG charts, and index.html with the key figures.

use std::path::{Path, PathBuf};

use boxtrace_reports::{
    Axes, Series, Shade, Style, Table, histogram, index_html, shaded_chart, xy_chart,
};
use serde::Serialize;

use super::{
    cpu::{self, CpuResult},
    freeze::FreezeResult,
    io::IoResult,
    memory::MemoryResult,
    pids::PidsResult,
    report::ReportDirError,
    summary::Host,
};

/// summary.json of a limit scenario.
#[derive(Debug, Serialize)]
pub struct LimitsSummary<'a, R: Serialize> {
    pub schema: u32,
    pub scenario: &'a str,
    pub host: Host,
    pub results: &'a [R],
}

fn save<R: Serialize>(dir: &Path, scenario: &str, results: &[R]) -> Result<(), ReportDirError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportDirError::Dir {
        path: dir.to_owned(),
        source,
    })?;
    let s = LimitsSummary {
        schema: 1,
        scenario,
        host: Host::this(),
        results,
    };
    let path = dir.join("summary.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&s).expect("json"))
        .map_err(|source| ReportDirError::Write { path, source })
}

fn f2(v: f64) -> String {
    format!("{v:.2}")
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".to_owned(), f2)
}

pub fn memory(dir: &Path, results: &[MemoryResult]) -> Result<PathBuf, ReportDirError> {
    save(dir, "memory", results)?;
    let mut series = Vec::new();
    for r in results {
        series.push(Series {
            name: format!("{} usage", r.runtime),
            points: r.usage.iter().map(|p| (p.ms, p.value)).collect(),
        });
    }
    let end = results
        .iter()
        .flat_map(|r| r.usage.last().map(|p| p.ms))
        .fold(1.0, f64::max);
    if let Some(r) = results.first() {
        let l = r.limit_bytes as f64 / (1u64 << 20) as f64;
        series.push(Series {
            name: "limit".to_owned(),
            points: vec![(0.0, l), (end, l)],
        });
    }
    for r in results {
        if let Some(k) = r.oom_kill_ms {
            let at = r
                .usage
                .iter()
                .min_by(|a, b| (a.ms - k).abs().total_cmp(&(b.ms - k).abs()))
                .map_or(0.0, |p| p.value);
            // A vertical stroke at the kill.
            series.push(Series {
                name: format!("{} OOM kill ({})", r.runtime, r.oom_source),
                points: vec![(k, 0.0), (k, at)],
            });
        }
    }
    let mut charts = Vec::new();
    if !results.iter().all(|r| r.usage.is_empty()) {
        xy_chart(
            &dir.join("memory_usage.svg"),
            Axes {
                title: "Memory usage against the limit, OOM kill marked",
                x: "time since start (ms)",
                y: "usage (MiB)",
            },
            &series,
            Style::Lines,
            false,
        )?;
        charts.push((
            "Memory usage over time".to_owned(),
            "memory_usage.svg".to_owned(),
        ));
    }
    let table = Table {
        title: "Memory limit enforcement".to_owned(),
        header: [
            "runtime",
            "limit MiB",
            "peak MiB",
            "limit reached ms",
            "OOM kill ms",
            "limit to kill ms",
            "exit ms",
            "allocated MiB",
            "OOM kills",
            "memory.events",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows: results
            .iter()
            .map(|r| {
                vec![
                    r.runtime.clone(),
                    (r.limit_bytes >> 20).to_string(),
                    f2(r.peak_bytes as f64 / (1u64 << 20) as f64),
                    opt(r.limit_reached_ms),
                    opt(r.oom_kill_ms),
                    opt(r.limit_to_kill_ms),
                    f2(r.exit_ms),
                    r.allocated_mib.to_string(),
                    r.oom_kills.to_string(),
                    if r.events.is_empty() {
                        "- (v1)".to_owned()
                    } else {
                        r.events
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    },
                ]
            })
            .collect(),
    };
    Ok(index_html(
        dir,
        "boxtrace memory benchmark",
        &[],
        &[table],
        &charts,
    )?)
}

pub fn cpu(dir: &Path, results: &[CpuResult]) -> Result<PathBuf, ReportDirError> {
    save(dir, "cpu", results)?;
    let mut charts = Vec::new();
    let timeline: Vec<Series> = results
        .iter()
        .map(|r| Series {
            name: format!("{} quota {}", r.runtime, r.quota),
            points: r.timeline.iter().map(|p| (p.ms, p.value)).collect(),
        })
        .collect();
    if timeline.iter().any(|s| !s.points.is_empty()) {
        xy_chart(
            &dir.join("cpu_timeline.svg"),
            Axes {
                title: "CPU used per 100 ms under each quota",
                x: "time since start (ms)",
                y: "CPUs",
            },
            &timeline,
            Style::Lines,
            false,
        )?;
        charts.push(("CPU over time".to_owned(), "cpu_timeline.svg".to_owned()));
    }
    for r in results.iter().filter(|r| !r.periods.is_empty()) {
        let file = format!("cpu_periods_{}_{}.svg", r.runtime, r.quota);
        let end = r.periods.last().map_or(1.0, |p| p.ms + 50.0);
        let series = vec![
            Series {
                name: "CPUs used (sched_switch)".to_owned(),
                points: r.periods.iter().map(|p| (p.ms, p.value)).collect(),
            },
            Series {
                name: format!("quota {} CPUs", r.quota),
                points: vec![(0.0, r.quota), (end, r.quota)],
            },
        ];
        let title = format!(
            "{}: CPU per {} ms period, quota {} CPUs",
            r.runtime,
            cpu::PERIOD_US / 1000,
            r.quota
        );
        shaded_chart(
            &dir.join(&file),
            Axes {
                title: &title,
                x: "time since start (ms)",
                y: "CPUs",
            },
            &series,
            Style::Lines,
            false,
            Some(Shade {
                label: "period at the quota (throttled)",
                spans: &r.throttled_spans,
            }),
        )?;
        charts.push((
            format!("{} at {} CPUs, per period", r.runtime, r.quota),
            file,
        ));
    }
    let mut runtimes: Vec<&str> = results.iter().map(|r| r.runtime.as_str()).collect();
    runtimes.dedup();
    let top = results.iter().map(|r| r.quota).fold(0.0, f64::max);
    let mut sweep: Vec<Series> = runtimes
        .iter()
        .map(|rt| Series {
            name: (*rt).to_owned(),
            points: results
                .iter()
                .filter(|r| r.runtime == *rt)
                .map(|r| (r.quota, r.achieved))
                .collect(),
        })
        .collect();
    // Drawn as points like the measurements: a dotted diagonal.
    sweep.push(Series {
        name: "requested".to_owned(),
        points: (0..=50)
            .map(|i| {
                let x = top * f64::from(i) / 50.0;
                (x, x)
            })
            .collect(),
    });
    xy_chart(
        &dir.join("cpu_sweep.svg"),
        Axes {
            title: "Achieved against requested CPU",
            x: "quota (CPUs)",
            y: "achieved (CPUs)",
        },
        &sweep,
        Style::Points,
        false,
    )?;
    charts.push(("Quota sweep".to_owned(), "cpu_sweep.svg".to_owned()));
    let table = Table {
        title: "CPU quota enforcement".to_owned(),
        header: [
            "runtime",
            "quota CPUs",
            "threads",
            "achieved CPUs",
            "error (points)",
            "periods",
            "throttled",
            "throttled ratio",
            "throttled ms",
            "sched_switch vs cgroup %",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows: results
            .iter()
            .map(|r| {
                vec![
                    r.runtime.clone(),
                    f2(r.quota),
                    r.threads.to_string(),
                    format!("{:.3}", r.achieved),
                    format!("{:+.2}", r.error_points),
                    r.nr_periods.to_string(),
                    r.nr_throttled.to_string(),
                    f2(r.throttled_ratio),
                    f2(r.throttled_ms),
                    r.sched_vs_cgroup_pct
                        .map_or("-".to_owned(), |p| format!("{p:+.2}")),
                ]
            })
            .collect(),
    };
    Ok(index_html(
        dir,
        "boxtrace cpu benchmark",
        &[],
        &[table],
        &charts,
    )?)
}

pub fn pids(dir: &Path, results: &[PidsResult]) -> Result<PathBuf, ReportDirError> {
    save(dir, "pids", results)?;
    let table = Table {
        title: "pids.max enforcement".to_owned(),
        header: [
            "runtime",
            "pids.max",
            "children started",
            "errno",
            "kernel refusals",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows: results
            .iter()
            .map(|r| {
                vec![
                    r.runtime.clone(),
                    r.limit.to_string(),
                    r.started.to_string(),
                    r.refused_errno.map_or("-".to_owned(), |e| e.to_string()),
                    r.kernel_refusals.to_string(),
                ]
            })
            .collect(),
    };
    let notes = vec![
        "The workload is one task itself: with pids.max K it can start K-1 children.".to_owned(),
    ];
    Ok(index_html(
        dir,
        "boxtrace pids benchmark",
        &notes,
        &[table],
        &[],
    )?)
}

pub fn freeze(dir: &Path, results: &[FreezeResult]) -> Result<PathBuf, ReportDirError> {
    save(dir, "freeze", results)?;
    let values = |name: String, v: &[f64]| Series {
        name,
        points: v.iter().map(|&x| (x, 0.0)).collect(),
    };
    let series: Vec<Series> = results
        .iter()
        .flat_map(|r| {
            [
                values(format!("{} pause", r.runtime), &r.pause_ms),
                values(format!("{} resume", r.runtime), &r.resume_ms),
            ]
        })
        .collect();
    let mut charts = Vec::new();
    if series.iter().any(|s| !s.points.is_empty()) {
        histogram(
            &dir.join("freeze_latency.svg"),
            Axes {
                title: "Pause and resume latency",
                x: "command latency (ms)",
                y: "cycles",
            },
            &series,
            20,
        )?;
        charts.push((
            "Freeze latency histogram".to_owned(),
            "freeze_latency.svg".to_owned(),
        ));
    }
    let table = Table {
        title: "Pause/resume latency (ms)".to_owned(),
        header: ["runtime", "step", "n", "min", "p50", "p90", "max"]
            .map(str::to_owned)
            .to_vec(),
        rows: results
            .iter()
            .flat_map(|r| {
                [("pause", r.pause), ("resume", r.resume)]
                    .into_iter()
                    .filter_map(|(step, st)| {
                        let st = st?;
                        Some(vec![
                            r.runtime.clone(),
                            step.to_owned(),
                            st.n.to_string(),
                            f2(st.min),
                            f2(st.p50),
                            f2(st.p90),
                            f2(st.max),
                        ])
                    })
                    .collect::<Vec<_>>()
            })
            .collect(),
    };
    Ok(index_html(
        dir,
        "boxtrace freeze benchmark",
        &[],
        &[table],
        &charts,
    )?)
}

pub fn io(dir: &Path, results: &[IoResult]) -> Result<PathBuf, ReportDirError> {
    save(dir, "io", results)?;
    let mib = (1u64 << 20) as f64;
    let mut series: Vec<Series> = results
        .iter()
        .map(|r| Series {
            name: format!("{} {}", r.runtime, r.op),
            points: r.timeline.iter().map(|p| (p.ms, p.value)).collect(),
        })
        .collect();
    let end = results
        .iter()
        .flat_map(|r| r.timeline.last().map(|p| p.ms))
        .fold(1.0, f64::max);
    let mut limits: Vec<u64> = results.iter().map(|r| r.limit_bytes_per_s).collect();
    limits.dedup();
    for l in limits {
        series.push(Series {
            name: format!("limit {:.0} MiB/s", l as f64 / mib),
            points: vec![(0.0, l as f64 / mib), (end, l as f64 / mib)],
        });
    }
    let mut charts = Vec::new();
    if results.iter().any(|r| !r.timeline.is_empty()) {
        xy_chart(
            &dir.join("io_rate.svg"),
            Axes {
                title: "Throttled I/O rate against the limit (O_DIRECT)",
                x: "time since start (ms)",
                y: "rate (MiB/s)",
            },
            &series,
            Style::Lines,
            false,
        )?;
        charts.push(("I/O rate over time".to_owned(), "io_rate.svg".to_owned()));
    }
    let table = Table {
        title: "blkio/io throttling".to_owned(),
        header: [
            "runtime",
            "op",
            "device",
            "limit MiB/s",
            "achieved MiB/s",
            "error %",
            "workload's MiB/s",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows: results
            .iter()
            .map(|r| {
                vec![
                    r.runtime.clone(),
                    r.op.clone(),
                    r.device.clone(),
                    f2(r.limit_bytes_per_s as f64 / mib),
                    f2(r.achieved_bytes_per_s / mib),
                    format!("{:+.1}", r.error_pct),
                    opt(r.workload_mib_per_s),
                ]
            })
            .collect(),
    };
    Ok(index_html(
        dir,
        "boxtrace io benchmark",
        &[],
        &[table],
        &charts,
    )?)
}
