//! `bench startup`: N starts per runtime, the runtimes taking turns start
//! by start (the order rotating each round) so drift of the machine hits
//! them alike; warm-up starts are run and left out. Each start is timed
//! from the runtime's spawn to the end of its last step, and boxrun's
//! phase marks say where its time went.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
};

use nix::{
    mount::{MntFlags, MsFlags, mount, umount2},
    sched::{CloneFlags, unshare},
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{
    driver::{DriverError, Runtime, Timing},
    stats::Stats,
};

#[derive(Debug, Error)]
pub enum StartupError {
    #[error("setting up a private mount namespace for the runtimes: {0}")]
    Namespace(nix::Error),
    #[error(transparent)]
    Driver(#[from] DriverError),
}

/// How a start is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One `run` command (create, start, wait, delete).
    Run,
    /// `create`, `start`, wait for the init, `delete`: four commands.
    Lifecycle,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub n: usize,
    pub warmup: usize,
    pub concurrency: usize,
    pub mode: Mode,
    /// Where boxrun's phase marks go.
    pub marks: PathBuf,
}

/// One measured start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    /// Round (0-based, warm-up excluded).
    pub round: usize,
    pub id: String,
    pub ms: f64,
    pub begin_ns: u64,
    pub end_ns: u64,
    /// boxrun's phases: milliseconds since the previous mark, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<(String, f64)>,
    /// The phases the tracer saw, for any runtime (see `phases`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trace_phases: Vec<(String, f64)>,
}

/// The results of one runtime.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeResult {
    pub name: String,
    pub bin: PathBuf,
    pub latency_ms: Option<Stats>,
    /// Per phase, statistics of its duration (boxrun's marks).
    #[serde(default)]
    pub phases_ms: BTreeMap<String, Stats>,
    /// Phase names in the order they happen.
    #[serde(default)]
    pub phase_order: Vec<String>,
    /// Per phase the tracer saw, statistics of its duration.
    #[serde(default)]
    pub trace_phases_ms: BTreeMap<String, Stats>,
    #[serde(default)]
    pub trace_phase_order: Vec<String>,
    pub samples: Vec<Sample>,
    /// Starts that failed, with the error.
    #[serde(default)]
    pub failures: Vec<String>,
}

/// Progress reported after every start.
pub trait Progress: Sync {
    fn started(&self, total: usize);
    fn advance(&self, runtime: &str, ms: f64);
}

/// Makes the calling thread's mounts private (threads it creates later
/// share them): the runtimes see no empty cgroup2 mount on a hybrid host
/// (crun refuses that layout). Nothing changes on the host; the namespace
/// goes with the last process in it.
pub fn private_world() -> Result<(), StartupError> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(StartupError::Namespace)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(StartupError::Namespace)?;
    let hybrid = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() != nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    if hybrid {
        // Absent on pure v1 hosts: nothing to hide then.
        let _ = umount2("/sys/fs/cgroup/unified", MntFlags::MNT_DETACH);
    }
    Ok(())
}

/// Reads boxrun's `NAME NS` marks: each phase's time since the previous
/// mark (the first since `begin_ns`, the runtime's spawn).
pub fn read_marks(path: &Path, begin_ns: u64) -> Vec<(String, f64)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut marks: Vec<(String, u64)> = text
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect();
    marks.sort_by_key(|m| m.1);
    let mut prev = begin_ns;
    marks
        .into_iter()
        .map(|(k, t)| {
            let d = t.saturating_sub(prev) as f64 / 1e6;
            prev = t.max(prev);
            (k, d)
        })
        .collect()
}

/// Runs the plan over `runtimes` with `bundle`. Stops early (keeping what
/// was measured) when `stop` is set; every container it made is deleted.
pub fn run(
    runtimes: &[Box<dyn Runtime>],
    bundle: &Path,
    plan: &Plan,
    stop: &AtomicBool,
    progress: &dyn Progress,
) -> Vec<RuntimeResult> {
    let mut results: Vec<RuntimeResult> = runtimes
        .iter()
        .map(|r| RuntimeResult {
            name: r.name().to_owned(),
            bin: r.bin().to_owned(),
            latency_ms: None,
            phases_ms: BTreeMap::new(),
            phase_order: Vec::new(),
            trace_phases_ms: BTreeMap::new(),
            trace_phase_order: Vec::new(),
            samples: Vec::new(),
            failures: Vec::new(),
        })
        .collect();
    progress.started((plan.warmup + plan.n) * plan.concurrency * runtimes.len());
    let count = runtimes.len();
    let mut seq = 0usize;
    'rounds: for round in 0..plan.warmup + plan.n {
        for k in 0..count {
            if stop.load(Ordering::Relaxed) {
                break 'rounds;
            }
            let ri = (round + k) % count;
            let rt = &runtimes[ri];
            let ids: Vec<String> = (0..plan.concurrency)
                .map(|_| {
                    seq += 1;
                    format!("bt-{}-{}-{seq}", rt.name(), std::process::id())
                })
                .collect();
            let outcomes: Vec<(String, Result<Timing, DriverError>)> = std::thread::scope(|s| {
                let handles: Vec<_> = ids
                    .iter()
                    .map(|id| {
                        s.spawn(move || {
                            let marks = plan.marks.join(format!("{id}.marks"));
                            let t = match plan.mode {
                                Mode::Run => rt.run(bundle, id, Some(&marks)),
                                Mode::Lifecycle => rt.lifecycle(bundle, id, Some(&marks)),
                            };
                            (id.clone(), t)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a start thread panicked"))
                    .collect()
            });
            for (id, outcome) in outcomes {
                let marks = plan.marks.join(format!("{id}.marks"));
                match outcome {
                    Ok(t) => {
                        progress.advance(rt.name(), t.millis());
                        if round >= plan.warmup {
                            let phases = if rt.has_phase_marks() {
                                read_marks(&marks, t.begin_ns)
                            } else {
                                Vec::new()
                            };
                            results[ri].samples.push(Sample {
                                round: round - plan.warmup,
                                id: id.clone(),
                                ms: t.millis(),
                                begin_ns: t.begin_ns,
                                end_ns: t.end_ns,
                                phases,
                                trace_phases: Vec::new(),
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!("{e}");
                        rt.force_delete(&id);
                        results[ri].failures.push(e.to_string());
                    }
                }
                let _ = std::fs::remove_file(&marks);
            }
        }
    }
    for r in &mut results {
        summarize(r);
    }
    results
}

/// Statistics per phase over the samples, and the phases' order.
fn phase_stats<'a>(
    phases: impl Iterator<Item = &'a Vec<(String, f64)>>,
) -> (BTreeMap<String, Stats>, Vec<String>) {
    let mut per: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for p in phases {
        for (k, v) in p {
            if !order.contains(k) {
                order.push(k.clone());
            }
            per.entry(k.clone()).or_default().push(*v);
        }
    }
    let stats = per
        .into_iter()
        .filter_map(|(k, v)| Some((k, Stats::of(&v)?)))
        .collect();
    (stats, order)
}

/// Fills the statistics of a result from its samples.
pub fn summarize(r: &mut RuntimeResult) {
    let ms: Vec<f64> = r.samples.iter().map(|s| s.ms).collect();
    r.latency_ms = Stats::of(&ms);
    (r.phases_ms, r.phase_order) = phase_stats(r.samples.iter().map(|s| &s.phases));
    (r.trace_phases_ms, r.trace_phase_order) =
        phase_stats(r.samples.iter().map(|s| &s.trace_phases));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_become_phase_durations_in_time_order() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m");
        // The init appends its marks too, so lines may come out of order.
        std::fs::write(&p, "started 1100000\ncloned 3000000\nspec_parsed 1200000\n").unwrap();
        let phases = read_marks(&p, 1_000_000);
        let names: Vec<&str> = phases.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["started", "spec_parsed", "cloned"]);
        assert!((phases[0].1 - 0.1).abs() < 1e-9);
        assert!((phases[2].1 - 1.8).abs() < 1e-9);
        assert!(read_marks(&d.path().join("none"), 0).is_empty());
    }
}
