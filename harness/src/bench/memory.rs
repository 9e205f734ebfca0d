//! `bench memory`: a limit L, the workload allocating past it step by
//! step; usage and the limit's counters sampled every millisecond from
//! the host, the OOM kill taken from the tracer (oom:mark_victim) when it
//! runs, else from the cgroup's counter.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use super::{
    driver::Cli,
    image::{Image, ImageKind},
    limits::{Container, LimitsError, Point, cgroup_dir, keyed, read, read_u64, sample},
};
use crate::trace::event::{Detail, Event};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryPlan {
    pub limit_mib: u64,
    pub alloc_mib: u64,
    pub step_mib: u64,
    pub pause_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryResult {
    pub runtime: String,
    pub limit_bytes: u64,
    pub peak_bytes: u64,
    /// Since start: the first sample where the kernel reported hitting the
    /// limit (v1 failcnt, v2 memory.events max) or usage came within 1% of
    /// it.
    pub limit_reached_ms: Option<f64>,
    /// Since start: the OOM kill (tracer's mark_victim, else the first
    /// sample where the cgroup counted one).
    pub oom_kill_ms: Option<f64>,
    /// Where `oom_kill_ms` came from: `tracer` or `cgroup`.
    pub oom_source: String,
    pub exit_ms: f64,
    /// OOM kill minus limit reached.
    pub limit_to_kill_ms: Option<f64>,
    /// How far the workload got before it died.
    pub allocated_mib: u64,
    pub oom_kills: u64,
    /// The cgroup's own event counters at the end, where the kernel keeps
    /// them (v2 memory.events: low, high, max, oom, oom_kill...).
    #[serde(default)]
    pub events: std::collections::BTreeMap<String, u64>,
    pub usage: Vec<Point>,
}

struct Files {
    usage: std::path::PathBuf,
    events: std::path::PathBuf,
    v2: bool,
}

impl Files {
    fn of(pid: i32) -> Result<Self, LimitsError> {
        let dir = cgroup_dir(pid, "memory")?;
        let v2 = dir.join("memory.current").exists();
        Ok(Self {
            usage: dir.join(if v2 {
                "memory.current"
            } else {
                "memory.usage_in_bytes"
            }),
            events: dir.join(if v2 {
                "memory.events"
            } else {
                "memory.failcnt"
            }),
            v2,
        })
    }

    /// (usage, limit hits, oom kills)
    fn read(&self, oom_control: &Path) -> Result<(u64, u64, u64), LimitsError> {
        let usage = read_u64(&self.usage)?;
        if self.v2 {
            let ev = read(&self.events)?;
            Ok((
                usage,
                keyed(&ev, "max").unwrap_or(0),
                keyed(&ev, "oom_kill").unwrap_or(0),
            ))
        } else {
            let oc = read(oom_control)?;
            // With swap limited to the memory limit the memory+swap counter
            // is the one charged first, and the one that fails.
            let memsw = read_u64(&self.events.with_file_name("memory.memsw.failcnt")).unwrap_or(0);
            Ok((
                usage,
                read_u64(&self.events)?.max(memsw),
                keyed(&oc, "oom_kill").unwrap_or(0),
            ))
        }
    }
}

pub fn bundle(plan: &MemoryPlan) -> Result<Image, super::image::ImageError> {
    let limit = plan.limit_mib << 20;
    Image::prepare_with(
        ImageKind::Builtin,
        &[
            "alloc",
            &plan.alloc_mib.to_string(),
            &plan.step_mib.to_string(),
            &plan.pause_ms.to_string(),
        ],
        // swap = limit: no swap (v1 counts memory+swap).
        Some(serde_json::json!({"memory": {"limit": limit, "swap": limit}})),
    )
}

/// Runs the scenario once with `rt`. `events` are the tracer's, when it
/// ran, to find the kill (they are read after the run).
pub fn run<'a>(
    rt: &'a Cli,
    image: &Image,
    id: &str,
) -> Result<(MemoryRaw, Container<'a>), LimitsError> {
    let c = Container::create(rt, &image.bundle, id)?;
    let files = Files::of(c.pid)?;
    let oom_control = files.events.with_file_name("memory.oom_control");
    let t0 = c.start()?;
    let samples = sample(
        Duration::from_millis(1),
        Instant::now() + Duration::from_secs(60),
        |now| {
            let r = files.read(&oom_control).ok()?;
            // One more sample after the exit: the counters' last word.
            c.alive().then_some((now, r))
        },
    );
    let end = c.wait()?;
    let last = files.read(&oom_control).ok();
    // The kernel's own high-water mark, where it keeps one.
    let dir = files
        .usage
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let peak = ["memory.max_usage_in_bytes", "memory.peak"]
        .iter()
        .find_map(|f| read_u64(&dir.join(f)).ok());
    let events = read(&dir.join("memory.events"))
        .map(|t| {
            t.lines()
                .filter_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    Some((k.to_owned(), v.trim().parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((
        MemoryRaw {
            t0,
            end,
            samples,
            last,
            peak,
            events,
            pid: c.pid,
        },
        c,
    ))
}

/// What `run` measured, before the tracer's events are joined.
pub struct MemoryRaw {
    pub t0: u64,
    pub end: u64,
    pub samples: Vec<(u64, (u64, u64, u64))>,
    pub last: Option<(u64, u64, u64)>,
    pub peak: Option<u64>,
    pub events: std::collections::BTreeMap<String, u64>,
    pub pid: i32,
}

pub fn result(
    rt: &str,
    plan: &MemoryPlan,
    raw: &MemoryRaw,
    output: &str,
    events: &[Event],
) -> MemoryResult {
    let ms = |t: u64| t.saturating_sub(raw.t0) as f64 / 1e6;
    // The kernel's count of failed charges where it keeps one (6.x kernels
    // may not, on v1), else usage within 1% of the limit.
    let near = (plan.limit_mib << 20) * 99 / 100;
    let limit_reached = raw
        .samples
        .iter()
        .find(|s| s.1.1 > 0 || s.1.0 >= near)
        .map(|s| ms(s.0));
    let victim = events.iter().find(|e| {
        e.pid == raw.pid as u32 && e.ts_ns >= raw.t0 && matches!(e.detail, Detail::OomVictim { .. })
    });
    let (oom_kill_ms, source) = match victim {
        Some(v) => (Some(ms(v.ts_ns)), "tracer"),
        None => (
            raw.samples.iter().find(|s| s.1.2 > 0).map(|s| ms(s.0)),
            "cgroup",
        ),
    };
    let oom_kills = raw
        .last
        .map(|l| l.2)
        .or_else(|| raw.samples.last().map(|s| s.1.2))
        .unwrap_or(0);
    MemoryResult {
        runtime: rt.to_owned(),
        limit_bytes: plan.limit_mib << 20,
        peak_bytes: raw
            .peak
            .unwrap_or_else(|| raw.samples.iter().map(|s| s.1.0).max().unwrap_or(0)),
        limit_reached_ms: limit_reached,
        oom_kill_ms,
        oom_source: source.to_owned(),
        exit_ms: ms(raw.end),
        limit_to_kill_ms: limit_reached.zip(oom_kill_ms).map(|(l, k)| k - l),
        allocated_mib: output
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("allocated_mib=")?.trim().parse().ok())
            .unwrap_or(0),
        oom_kills,
        events: raw.events.clone(),
        usage: raw
            .samples
            .iter()
            .map(|s| super::limits::Point {
                ms: ms(s.0),
                value: s.1.0 as f64 / (1u64 << 20) as f64,
            })
            .collect(),
    }
}
