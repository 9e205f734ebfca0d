//! `bench cpu`: a CPU quota (fractional CPUs) with spinning threads; the
//! achieved share against the quota, throttled periods and time from
//! cpu.stat, and the share over time sampled every 100 ms. Several quotas
//! make the achieved-vs-requested sweep.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use crate::trace::event::{Detail, Event};

use super::{
    driver::Cli,
    image::{Image, ImageError, ImageKind},
    limits::{Container, LimitsError, Point, cgroup_dir, keyed, read, read_u64, sample},
};

pub const PERIOD_US: u64 = 100_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CpuResult {
    pub runtime: String,
    /// CPUs asked for.
    pub quota: f64,
    pub threads: usize,
    /// CPUs used, over the steady part of the run.
    pub achieved: f64,
    /// achieved - quota, in points of a CPU x 100.
    pub error_points: f64,
    pub nr_periods: u64,
    pub nr_throttled: u64,
    pub throttled_ratio: f64,
    pub throttled_ms: f64,
    /// CPUs used per 100 ms (the cgroup's counter).
    pub timeline: Vec<Point>,
    pub id: String,
    /// When `start` returned, CLOCK_MONOTONIC: the timelines' zero.
    pub start_ns: u64,
    /// The sampled window on CLOCK_MONOTONIC, and the CPU time the cgroup
    /// counted in it.
    pub window_ns: (u64, u64),
    pub cgroup_cpu_ms: f64,
    /// The same window rebuilt from sched_switch: when each of the
    /// container's tasks ran.
    #[serde(default)]
    pub sched_cpu_ms: Option<f64>,
    /// sched_cpu_ms against cgroup_cpu_ms, percent.
    #[serde(default)]
    pub sched_vs_cgroup_pct: Option<f64>,
    /// CPUs used per quota period, from sched_switch.
    #[serde(default)]
    pub periods: Vec<Point>,
    /// Periods (ms from start) in which the container used its quota: the
    /// kernel throttled it for the rest of them.
    #[serde(default)]
    pub throttled_spans: Vec<(f64, f64)>,
}

/// Spinning threads: one more than the quota needs, within the machine.
pub fn threads_for(quota: f64) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (quota.ceil() as usize + 1).min(cpus).max(1)
}

pub fn bundle(quota: f64, secs: f64) -> Result<Image, ImageError> {
    let threads = threads_for(quota).to_string();
    let secs = secs.to_string();
    Image::prepare_with(
        ImageKind::Builtin,
        &["spin", &threads, &secs],
        Some(serde_json::json!({"cpu": {
            "quota": (quota * PERIOD_US as f64).round() as i64,
            "period": PERIOD_US
        }})),
    )
}

/// CPU time used so far, in ns, and cpu.stat's text.
struct Files {
    usage: std::path::PathBuf,
    stat: std::path::PathBuf,
    v2: bool,
}

impl Files {
    fn of(pid: i32) -> Result<Self, LimitsError> {
        let cpu = cgroup_dir(pid, "cpu")?;
        let v2 = cpu.join("cpu.max").exists();
        let usage = if v2 {
            cpu.join("cpu.stat")
        } else {
            cgroup_dir(pid, "cpuacct")?.join("cpuacct.usage")
        };
        Ok(Self {
            usage,
            stat: cpu.join("cpu.stat"),
            v2,
        })
    }

    fn usage_ns(&self) -> Result<u64, LimitsError> {
        if self.v2 {
            Ok(keyed(&read(&self.usage)?, "usage_usec").unwrap_or(0) * 1000)
        } else {
            read_u64(&self.usage)
        }
    }
}

pub fn run(rt: &Cli, image: &Image, id: &str, quota: f64) -> Result<CpuResult, LimitsError> {
    let c = Container::create(rt, &image.bundle, id)?;
    let files = Files::of(c.pid)?;
    let t0 = c.start()?;
    let samples = sample(
        Duration::from_millis(100),
        Instant::now() + Duration::from_secs(600),
        |now| {
            let u = files.usage_ns().ok()?;
            c.alive().then_some((now, u))
        },
    );
    let stat = read(&files.stat)?;
    c.wait()?;
    let ms = |t: u64| t.saturating_sub(t0) as f64 / 1e6;
    let timeline: Vec<Point> = samples
        .windows(2)
        .map(|w| Point {
            ms: ms(w[1].0),
            value: (w[1].1 - w[0].1) as f64 / (w[1].0 - w[0].0) as f64,
        })
        .collect();
    // The steady part: without the first and the last interval (start-up,
    // threads ending).
    let steady = if samples.len() > 3 {
        &samples[1..samples.len() - 1]
    } else {
        &samples[..]
    };
    let achieved = match (steady.first(), steady.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) as f64 / (b.0 - a.0) as f64,
        _ => 0.0,
    };
    let (window_ns, cgroup_cpu_ms) = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) => ((a.0, b.0), (b.1 - a.1) as f64 / 1e6),
        _ => ((t0, t0), 0.0),
    };
    let periods = keyed(&stat, "nr_periods").unwrap_or(0);
    let throttled = keyed(&stat, "nr_throttled").unwrap_or(0);
    let throttled_ms = if files.v2 {
        keyed(&stat, "throttled_usec").unwrap_or(0) as f64 / 1e3
    } else {
        keyed(&stat, "throttled_time").unwrap_or(0) as f64 / 1e6
    };
    Ok(CpuResult {
        runtime: rt.name.clone(),
        quota,
        threads: threads_for(quota),
        achieved,
        error_points: (achieved - quota) * 100.0,
        nr_periods: periods,
        nr_throttled: throttled,
        throttled_ratio: if periods > 0 {
            throttled as f64 / periods as f64
        } else {
            0.0
        },
        throttled_ms,
        timeline,
        id: id.to_owned(),
        start_ns: t0,
        window_ns,
        cgroup_cpu_ms,
        sched_cpu_ms: None,
        sched_vs_cgroup_pct: None,
        periods: Vec::new(),
        throttled_spans: Vec::new(),
    })
}

/// When each of the container's tasks ran, from sched_switch: [start, end)
/// intervals on CLOCK_MONOTONIC.
pub fn run_intervals(events: &[Event], keys: &HashMap<u32, String>, id: &str) -> Vec<(u64, u64)> {
    let tids: HashSet<u32> = events
        .iter()
        .filter(|e| keys.get(&e.container).is_some_and(|k| k == id))
        .flat_map(|e| match e.detail {
            Detail::Fork { child_tid, .. } => vec![e.tid, child_tid],
            _ => vec![e.tid],
        })
        .collect();
    let mut on: HashMap<u32, u64> = HashMap::new();
    let mut out = Vec::new();
    for e in events {
        let Detail::SchedSwitch {
            prev_tid, next_tid, ..
        } = e.detail
        else {
            continue;
        };
        if tids.contains(&prev_tid)
            && let Some(start) = on.remove(&prev_tid)
        {
            out.push((start, e.ts_ns));
        }
        if tids.contains(&next_tid) {
            on.insert(next_tid, e.ts_ns);
        }
    }
    out
}

/// CPU time of `intervals` inside [a, b), ns.
fn overlap(intervals: &[(u64, u64)], a: u64, b: u64) -> u64 {
    intervals
        .iter()
        .map(|&(s, e)| e.min(b).saturating_sub(s.max(a)))
        .sum()
}

/// Adds the sched_switch view: CPU per quota period, the periods that
/// used the quota, and the cross-check with the cgroup's counter.
pub fn add_sched(r: &mut CpuResult, intervals: &[(u64, u64)]) {
    let t0 = r.start_ns;
    if intervals.is_empty() {
        return;
    }
    let (a, b) = r.window_ns;
    let sched = overlap(intervals, a, b) as f64 / 1e6;
    r.sched_cpu_ms = Some(sched);
    if r.cgroup_cpu_ms > 0.0 {
        r.sched_vs_cgroup_pct = Some((sched / r.cgroup_cpu_ms - 1.0) * 100.0);
    }
    let period = PERIOD_US * 1000;
    let mut start = a;
    while start + period <= b {
        let used = overlap(intervals, start, start + period) as f64 / period as f64;
        let ms = |t: u64| t.saturating_sub(t0) as f64 / 1e6;
        r.periods.push(Point {
            ms: ms(start + period / 2),
            value: used,
        });
        // Used the whole quota: the kernel throttled it for the rest.
        if used >= r.quota * 0.9 {
            r.throttled_spans.push((ms(start), ms(start + period)));
        }
        start += period;
    }
}
