//! The report directory of a startup run: summary.json, charts (latency
//! CDF per runtime, phase breakdown, latency over run index), trace.json
//! (Chrome trace-event format: one track per container start, opens in
//! Perfetto) and index.html showing all of it.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use boxtrace_reports::{
    Axes, ReportError, Series, StackedBar, Style, Table, index_html, stacked_bars, xy_chart,
};
use serde_json::json;
use thiserror::Error;

use super::{
    startup::RuntimeResult,
    stats::Stats,
    summary::{Summary, SummaryError},
};

#[derive(Debug, Error)]
pub enum ReportDirError {
    #[error("creating the report directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Summary(#[from] SummaryError),
    #[error(transparent)]
    Chart(#[from] ReportError),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `boxtrace-reports/<scenario>-<UTC time>` below the current directory.
pub fn default_dir(scenario: &str, unix: u64) -> PathBuf {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    PathBuf::from("boxtrace-reports").join(format!(
        "{scenario}-{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    ))
}

fn ms(v: f64) -> String {
    format!("{v:.2}")
}

/// Writes everything of `s` into `dir`; returns the index page.
pub fn write(dir: &Path, s: &Summary) -> Result<PathBuf, ReportDirError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportDirError::Dir {
        path: dir.to_owned(),
        source,
    })?;
    s.save(&dir.join("summary.json"))?;
    write_trace(&dir.join("trace.json"), s)?;

    let measured: Vec<_> = s
        .runtimes
        .iter()
        .filter(|r| !r.samples.is_empty())
        .collect();
    let mut charts = Vec::new();
    let cdf: Vec<Series> = measured
        .iter()
        .map(|r| {
            let mut v: Vec<f64> = r.samples.iter().map(|x| x.ms).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len() as f64;
            Series {
                name: r.name.clone(),
                points: v
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| (x, (i + 1) as f64 / n))
                    .collect(),
            }
        })
        .collect();
    if !cdf.is_empty() {
        let axes = Axes {
            title: "Container start latency, CDF per runtime",
            x: "start latency (ms)",
            y: "fraction of starts",
        };
        xy_chart(
            &dir.join("latency_cdf.svg"),
            axes,
            &cdf,
            Style::Lines,
            false,
        )?;
        charts.push(("Start latency CDF".to_owned(), "latency_cdf.svg".to_owned()));
        let over: Vec<Series> = measured
            .iter()
            .map(|r| Series {
                name: r.name.clone(),
                points: r.samples.iter().map(|x| (x.round as f64, x.ms)).collect(),
            })
            .collect();
        let axes = Axes {
            title: "Start latency over the run (outliers kept)",
            x: "round",
            y: "start latency (ms)",
        };
        xy_chart(
            &dir.join("latency_by_round.svg"),
            axes,
            &over,
            Style::Points,
            false,
        )?;
        charts.push((
            "Latency by round".to_owned(),
            "latency_by_round.svg".to_owned(),
        ));
    }
    let traced = phase_bars(&measured, |r| (&r.trace_phase_order, &r.trace_phases_ms));
    if traced.iter().any(|b| b.segments.len() > 1) {
        let axes = Axes {
            title: "Where a start goes, seen by the tracer: median per phase",
            x: "runtime",
            y: "median time (ms)",
        };
        stacked_bars(&dir.join("phases.svg"), axes, &traced)?;
        charts.push((
            "Phase breakdown from the kernel's events, every runtime: each phase ends at the event it is named after (namespaces created, cgroup attach, pivot_root, workload exec, workload exit, last runtime command done)".to_owned(),
            "phases.svg".to_owned(),
        ));
    }
    let marked: Vec<&RuntimeResult> = measured
        .iter()
        .copied()
        .filter(|r| !r.phase_order.is_empty())
        .collect();
    if !marked.is_empty() {
        let bars = phase_bars(&marked, |r| (&r.phase_order, &r.phases_ms));
        let axes = Axes {
            title: "boxrun's own phase marks: median per phase",
            x: "runtime",
            y: "median time (ms)",
        };
        stacked_bars(&dir.join("boxrun_phases.svg"), axes, &bars)?;
        charts.push((
            "boxrun's phases (--phase-marks)".to_owned(),
            "boxrun_phases.svg".to_owned(),
        ));
    }

    let mut table = Table {
        title: "Start latency (ms)".to_owned(),
        header: [
            "runtime",
            "n",
            "min",
            "p50",
            "p50 95% CI",
            "p90",
            "p99",
            "max",
            "mean",
            "stddev",
            "failed",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows: Vec::new(),
    };
    for r in &s.runtimes {
        let Some(l) = r.latency_ms else { continue };
        table.rows.push(vec![
            r.name.clone(),
            l.n.to_string(),
            ms(l.min),
            ms(l.p50),
            format!("{} - {}", ms(l.p50_ci[0]), ms(l.p50_ci[1])),
            ms(l.p90),
            ms(l.p99),
            ms(l.max),
            ms(l.mean),
            ms(l.stddev),
            r.failures.len().to_string(),
        ]);
    }
    let mut tables = vec![table];
    for r in &s.runtimes {
        for (what, order, stats) in [
            (
                "seen by the tracer",
                &r.trace_phase_order,
                &r.trace_phases_ms,
            ),
            ("from its phase marks", &r.phase_order, &r.phases_ms),
        ] {
            if order.is_empty() {
                continue;
            }
            tables.push(Table {
                title: format!("{} phases {what} (ms since the previous one)", r.name),
                header: ["phase", "p50", "p90", "max"].map(str::to_owned).to_vec(),
                rows: order
                    .iter()
                    .filter_map(|p| {
                        let st = stats.get(p)?;
                        Some(vec![p.clone(), ms(st.p50), ms(st.p90), ms(st.max)])
                    })
                    .collect(),
            });
        }
    }
    let mut notes = vec![format!(
        "{} starts per runtime ({} warm-up left out), mode {}, concurrency {}, image {}; kernel {}, cgroup {}, {} CPUs.",
        s.n,
        s.warmup,
        serde_json::to_value(s.mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        s.concurrency,
        s.image,
        s.host.kernel,
        s.host.cgroup,
        s.host.cpus
    )];
    for k in &s.skipped {
        notes.push(format!("{} skipped: {}", k.runtime, k.reason));
    }
    if s.interrupted {
        notes.push("Interrupted: these are the starts measured before Ctrl-C.".to_owned());
    }
    Ok(index_html(
        dir,
        &format!("boxtrace {} benchmark", s.scenario),
        &notes,
        &tables,
        &charts,
    )?)
}

/// Stacked bars of the median of each phase, plus what the phases leave
/// unexplained of the median start (process start-up and exit, or the
/// whole start without phases).
fn phase_bars(
    results: &[&RuntimeResult],
    pick: impl Fn(&RuntimeResult) -> (&Vec<String>, &BTreeMap<String, Stats>),
) -> Vec<StackedBar> {
    results
        .iter()
        .map(|r| {
            let (order, stats) = pick(r);
            let mut segments: Vec<(String, f64)> = order
                .iter()
                .filter_map(|p| Some((p.clone(), stats.get(p)?.p50)))
                .collect();
            let total = r.latency_ms.map_or(0.0, |l| l.p50);
            let accounted: f64 = segments.iter().map(|x| x.1).sum();
            segments.push(("unaccounted".to_owned(), (total - accounted).max(0.0)));
            StackedBar {
                name: r.name.clone(),
                segments,
            }
        })
        .collect()
}

/// Track numbers of boxrun's mark tracks start here.
const MARKS_TRACK: usize = 1_000_000;

/// Chrome trace-event JSON: per runtime a process, per start a thread
/// (track) holding the start and, for boxrun, its phases.
fn write_trace(path: &Path, s: &Summary) -> Result<(), ReportDirError> {
    let mut ev = Vec::new();
    for (pi, r) in s.runtimes.iter().enumerate() {
        ev.push(json!({"ph": "M", "name": "process_name", "pid": pi, "args": {"name": r.name}}));
        for (ti, x) in r.samples.iter().enumerate() {
            ev.push(
                json!({"ph": "M", "name": "thread_name", "pid": pi, "tid": ti,
                           "args": {"name": format!("{} round {}", x.id, x.round)}}),
            );
            ev.push(json!({"ph": "X", "name": "start", "pid": pi, "tid": ti,
                           "ts": x.begin_ns as f64 / 1e3, "dur": x.ms * 1e3,
                           "args": {"id": x.id, "ms": x.ms}}));
            // The tracer's phases nest in the start; boxrun's own marks,
            // which cut it differently, get a track of their own.
            let marks_tid = MARKS_TRACK + ti;
            if !x.phases.is_empty() {
                ev.push(
                    json!({"ph": "M", "name": "thread_name", "pid": pi, "tid": marks_tid,
                               "args": {"name": format!("{} boxrun marks", x.id)}}),
                );
            }
            for (cat, tid, phases) in [
                ("kernel", ti, &x.trace_phases),
                ("boxrun", marks_tid, &x.phases),
            ] {
                let mut t = x.begin_ns as f64 / 1e3;
                for (name, d) in phases {
                    ev.push(json!({"ph": "X", "name": name, "cat": cat, "pid": pi,
                                   "tid": tid, "ts": t, "dur": d * 1e3}));
                    t += d * 1e3;
                }
            }
        }
    }
    let doc = json!({"traceEvents": ev, "displayTimeUnit": "ms"});
    std::fs::write(path, serde_json::to_vec(&doc).expect("json")).map_err(|source| {
        ReportDirError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_dir_names_the_utc_time() {
        let d = default_dir("startup", 1_795_478_400 + 3661);
        assert_eq!(d, PathBuf::from("boxtrace-reports/startup-20261124-010101"));
        assert_eq!(
            default_dir("x", 0),
            PathBuf::from("boxtrace-reports/x-19700101-000000")
        );
    }
}
