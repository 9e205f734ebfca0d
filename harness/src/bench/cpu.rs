//! `bench cpu`: a CPU quota (fractional CPUs) with spinning threads; the
//! achieved share against the quota, throttled periods and time from
//! cpu.stat, and the share over time sampled every 100 ms. Several quotas
//! make the achieved-vs-requested sweep.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

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
    /// CPUs used per 100 ms.
    pub timeline: Vec<Point>,
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
    })
}
