//! `bench io`: a blkio/io throttle on the block device behind a host
//! directory bind-mounted into the container; the workload writes, then
//! reads, with O_DIRECT (no page cache to hide the device). The bytes the
//! cgroup moved are sampled every 100 ms: achieved rate over time against
//! the limit.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use super::{
    driver::Cli,
    image::{Image, ImageError, ImageKind},
    limits::{Container, LimitsError, Point, cgroup_dir, read, sample},
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IoResult {
    pub runtime: String,
    /// `write` or `read`.
    pub op: String,
    /// The throttled device.
    pub device: String,
    pub limit_bytes_per_s: u64,
    /// Over the steady part of the run.
    pub achieved_bytes_per_s: f64,
    pub error_pct: f64,
    /// What the workload itself measured.
    pub workload_mib_per_s: Option<f64>,
    /// MiB/s per 100 ms.
    pub timeline: Vec<Point>,
}

/// The whole disk behind `path` (throttles apply to disks, not
/// partitions), as (major, minor).
pub fn disk_of(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let dev = std::fs::metadata(path).ok()?.dev();
    let (maj, min) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    let sys = PathBuf::from(format!("/sys/dev/block/{maj}:{min}"));
    if !sys.exists() {
        return None;
    }
    if sys.join("partition").exists() {
        // The parent directory of a partition is its disk.
        let disk = std::fs::canonicalize(&sys).ok()?.parent()?.join("dev");
        let text = std::fs::read_to_string(disk).ok()?;
        let (a, b) = text.trim().split_once(':')?;
        return Some((a.parse().ok()?, b.parse().ok()?));
    }
    Some((maj, min))
}

/// A bundle whose /data is `data` (a host directory on the throttled
/// disk), limited to `rate` bytes/s for `op`.
pub fn bundle(
    data: &Path,
    dev: (u64, u64),
    op: &str,
    mib: u64,
    rate: u64,
) -> Result<Image, ImageError> {
    let key = if op == "write" {
        "throttleWriteBpsDevice"
    } else {
        "throttleReadBpsDevice"
    };
    let mib = mib.to_string();
    let image = Image::prepare_with(
        ImageKind::Builtin,
        &[op, "/data/file", &mib],
        Some(serde_json::json!({"blockIO": {
            key: [{"major": dev.0, "minor": dev.1, "rate": rate}]
        }})),
    )?;
    let cfg = image.bundle.join("config.json");
    let text = std::fs::read_to_string(&cfg).map_err(|source| ImageError::Write {
        path: cfg.clone(),
        source,
    })?;
    let mut c: serde_json::Value = serde_json::from_str(&text).map_err(ImageError::Resources)?;
    if let Some(m) = c["mounts"].as_array_mut() {
        m.push(serde_json::json!({
            "destination": "/data", "type": "bind", "source": data,
            "options": ["rbind", "rw"]
        }));
    }
    std::fs::write(&cfg, c.to_string()).map_err(|source| ImageError::Write {
        path: cfg.clone(),
        source,
    })?;
    std::fs::create_dir_all(image.bundle.join("rootfs/data")).map_err(|source| {
        ImageError::Write {
            path: image.bundle.join("rootfs/data"),
            source,
        }
    })?;
    Ok(image)
}

/// Bytes the cgroup moved on `dev` for `op`, v1 or v2.
fn moved(dir: &Path, dev: (u64, u64), op: &str) -> Result<u64, LimitsError> {
    let key = format!("{}:{}", dev.0, dev.1);
    let v2 = dir.join("io.stat");
    if v2.exists() {
        let field = if op == "write" { "wbytes=" } else { "rbytes=" };
        let text = read(&v2)?;
        return Ok(text
            .lines()
            .filter(|l| l.starts_with(&format!("{key} ")))
            .flat_map(|l| l.split_whitespace())
            .find_map(|w| w.strip_prefix(field)?.parse().ok())
            .unwrap_or(0));
    }
    let word = if op == "write" { "Write" } else { "Read" };
    let text = read(&dir.join("blkio.throttle.io_service_bytes"))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == key && w.next()? == word).then(|| w.next()?.parse::<u64>().ok())?
        })
        .sum())
}

pub fn run(
    rt: &Cli,
    image: &Image,
    id: &str,
    op: &str,
    dev: (u64, u64),
    rate: u64,
) -> Result<IoResult, LimitsError> {
    let c = Container::create(rt, &image.bundle, id)?;
    let dir = cgroup_dir(c.pid, "blkio").or_else(|_| cgroup_dir(c.pid, "io"))?;
    let t0 = c.start()?;
    let samples = sample(
        Duration::from_millis(100),
        Instant::now() + Duration::from_secs(600),
        |now| {
            let b = moved(&dir, dev, op).ok()?;
            c.alive().then_some((now, b))
        },
    );
    c.wait()?;
    let mib = (1u64 << 20) as f64;
    let timeline = samples
        .windows(2)
        .map(|w| Point {
            ms: (w[1].0 - t0) as f64 / 1e6,
            value: (w[1].1 - w[0].1) as f64 / mib / ((w[1].0 - w[0].0) as f64 / 1e9),
        })
        .collect();
    let achieved = steady_rate(&samples);
    let out = c.output();
    Ok(IoResult {
        runtime: rt.name.clone(),
        op: op.to_owned(),
        device: format!("{}:{}", dev.0, dev.1),
        limit_bytes_per_s: rate,
        achieved_bytes_per_s: achieved,
        error_pct: (achieved / rate as f64 - 1.0) * 100.0,
        workload_mib_per_s: out
            .split_whitespace()
            .find_map(|w| w.strip_prefix("mib_per_s=")?.parse().ok()),
        timeline,
    })
}

/// Bytes per second while the transfer ran, from (ns, cumulative bytes)
/// samples: the least-squares slope over the samples taken mid-transfer.
/// Samples before the first byte and after the last would add idle time
/// (start-up, exit), and a two-point difference is at the mercy of where
/// one request's bytes fall relative to the sample clock.
pub fn steady_rate(samples: &[(u64, u64)]) -> f64 {
    let Some(&(_, last)) = samples.last() else {
        return 0.0;
    };
    // The first sample at the final count closes the transfer; every
    // later one is idle.
    let end = samples.iter().position(|s| s.1 == last).unwrap_or(0);
    let start = samples.iter().position(|s| s.1 > 0).unwrap_or(end);
    // The sample just before the first byte bounds the start from below.
    let start = start.saturating_sub(1);
    let mid = &samples[start..=end];
    if mid.len() < 3 {
        return match (mid.first(), mid.last()) {
            (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) as f64 / ((b.0 - a.0) as f64 / 1e9),
            _ => 0.0,
        };
    }
    // Inner points only: the two ends each hold up to one sample period
    // of idle time.
    let inner = &mid[1..mid.len() - 1];
    let pts: Vec<(f64, f64)> = if inner.len() >= 2 { inner } else { mid }
        .iter()
        .map(|&(t, b)| (t as f64 / 1e9, b as f64))
        .collect();
    let n = pts.len() as f64;
    let (mt, mb) = pts
        .iter()
        .fold((0.0, 0.0), |(a, b), p| (a + p.0 / n, b + p.1 / n));
    let (cov, var) = pts.iter().fold((0.0, 0.0), |(c, v), p| {
        (c + (p.0 - mt) * (p.1 - mb), v + (p.0 - mt).powi(2))
    });
    if var > 0.0 { cov / var } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::steady_rate;

    const MS: u64 = 1_000_000;

    #[test]
    fn idle_head_and_tail_do_not_count() {
        // 1000 bytes/s between 300 ms and 1300 ms; sampled every 100 ms
        // from 0 to 2000 ms.
        let s: Vec<(u64, u64)> = (0..=20u64)
            .map(|i| {
                let t = i * 100;
                (t * MS, t.clamp(300, 1300) - 300)
            })
            .collect();
        let r = steady_rate(&s);
        assert!((r - 1000.0).abs() < 1.0, "{r}");
    }

    #[test]
    fn steps_at_the_sample_clock_average_out() {
        // 125 ms requests of 125 bytes sampled every 100 ms: the counts
        // step 100, 100, 100, 200 ... yet the rate is 1000 bytes/s.
        let s: Vec<(u64, u64)> = (0..=30u64)
            .map(|i| {
                let t = i * 100;
                (t * MS, (t.min(2000) / 125) * 125)
            })
            .collect();
        let r = steady_rate(&s);
        assert!((r / 1000.0 - 1.0).abs() < 0.03, "{r}");
    }

    #[test]
    fn too_few_samples_fall_back_or_give_zero() {
        assert_eq!(steady_rate(&[]), 0.0);
        assert_eq!(steady_rate(&[(0, 0), (MS, 0)]), 0.0);
        let r = steady_rate(&[(0, 0), (1000 * MS, 500)]);
        assert!((r - 500.0).abs() < 1e-9, "{r}");
    }
}
