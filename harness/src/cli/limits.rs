//! `boxtrace bench memory|cpu|pids|io|freeze`: limit enforcement, for every
//! runtime asked for, each writing a report directory.

use std::{path::PathBuf, process::ExitCode, sync::atomic::Ordering};

use anyhow::{Context as _, bail};
use boxtrace::bench::{
    cpu, driver::Cli, freeze, io, limits_report, memory, phases, pids, report, scratch::Scratch,
};

use super::bench::{STOP, resolve_runtimes, traced};

#[derive(Debug, clap::Args)]
pub struct Common {
    /// A runtime (boxrun, runc, crun, or a path); repeatable. Default:
    /// boxrun and runc, those that are installed.
    #[arg(long = "runtime", value_name = "NAME|PATH")]
    pub runtimes: Vec<String>,
    /// Report directory (default boxtrace-reports/<scenario>-<UTC time>).
    #[arg(long, short, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Do not trace (the OOM kill is then taken from the cgroup's counter).
    #[arg(long)]
    pub no_trace: bool,
}

#[derive(Debug, clap::Args)]
pub struct MemoryArgs {
    #[command(flatten)]
    pub common: Common,
    /// memory limit, MiB.
    #[arg(long, default_value_t = 64)]
    pub limit_mib: u64,
    /// How much the workload tries to allocate, MiB.
    #[arg(long, default_value_t = 160)]
    pub alloc_mib: u64,
    /// Allocation step, MiB.
    #[arg(long, default_value_t = 4)]
    pub step_mib: u64,
    /// Pause between steps, ms.
    #[arg(long, default_value_t = 20)]
    pub pause_ms: u64,
}

#[derive(Debug, clap::Args)]
pub struct CpuArgs {
    #[command(flatten)]
    pub common: Common,
    /// A quota in CPUs (fractions allowed); repeatable: a sweep.
    #[arg(long = "quota", value_name = "CPUS")]
    pub quotas: Vec<f64>,
    /// Seconds each quota is measured.
    #[arg(long, default_value_t = 3.0)]
    pub secs: f64,
}

#[derive(Debug, clap::Args)]
pub struct PidsArgs {
    #[command(flatten)]
    pub common: Common,
    /// pids.max.
    #[arg(long, default_value_t = 16)]
    pub limit: u64,
}

#[derive(Debug, clap::Args)]
pub struct IoArgs {
    #[command(flatten)]
    pub common: Common,
    /// The limit, MiB/s, for writes and for reads.
    #[arg(long, default_value_t = 8)]
    pub rate_mib: u64,
    /// MiB written, then read.
    #[arg(long, default_value_t = 24)]
    pub mib: u64,
    /// A host directory on the disk to throttle (bind-mounted as /data).
    #[arg(long, default_value = "/var/tmp")]
    pub dir: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct FreezeArgs {
    #[command(flatten)]
    pub common: Common,
    /// Pause/resume cycles.
    #[arg(long, default_value_t = 50)]
    pub cycles: usize,
}

struct Setup {
    runtimes: Vec<Cli>,
    out: PathBuf,
    scratch: Scratch,
}

fn setup(c: &Common, scenario: &str) -> anyhow::Result<Setup> {
    let wanted = if c.runtimes.is_empty() {
        vec!["boxrun".to_owned(), "runc".to_owned()]
    } else {
        c.runtimes.clone()
    };
    let scratch = Scratch::create()?;
    let (runtimes, _) = resolve_runtimes(&wanted, &scratch, &[])?;
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let out = c
        .out
        .clone()
        .unwrap_or_else(|| report::default_dir(scenario, unix));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    Ok(Setup {
        runtimes,
        out,
        scratch,
    })
}

fn id(scenario: &str, rt: &str, n: usize) -> String {
    format!("bt-{rt}-{}-{scenario}{n}", std::process::id())
}

fn finish(index: PathBuf) -> anyhow::Result<ExitCode> {
    println!("report: {}", index.display());
    if STOP.load(Ordering::Relaxed) {
        eprintln!("boxtrace: interrupted; the report holds what was measured");
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn memory(a: MemoryArgs) -> anyhow::Result<ExitCode> {
    if a.limit_mib == 0 || a.step_mib == 0 || a.alloc_mib <= a.limit_mib {
        bail!("--alloc-mib must exceed --limit-mib, and both and --step-mib be at least 1");
    }
    let s = setup(&a.common, "memory")?;
    let plan = memory::MemoryPlan {
        limit_mib: a.limit_mib,
        alloc_mib: a.alloc_mib,
        step_mib: a.step_mib,
        pause_ms: a.pause_ms,
    };
    let image = memory::bundle(&plan)?;
    let runtimes = s.runtimes.clone();
    let bundle_plan = plan.clone();
    let (raws, events, _) = traced(!a.common.no_trace, false, &s.out, move || {
        let mut out = Vec::new();
        for (i, rt) in runtimes.iter().enumerate() {
            if STOP.load(Ordering::Relaxed) {
                break;
            }
            let r = memory::run(rt, &image, &id("mem", &rt.name, i))
                .map(|(raw, c)| (rt.name.clone(), raw, c.output()));
            out.push(r);
        }
        let _ = bundle_plan;
        out
    })?;
    let mut results = Vec::new();
    for r in raws {
        let (name, raw, output) = r?;
        results.push(memory::result(&name, &plan, &raw, &output, &events));
    }
    for r in &results {
        println!(
            "{:<8} limit {} MiB, peak {:.1} MiB, limit reached {} ms, OOM kill {} ms ({}), limit to kill {} ms, exit {:.1} ms",
            r.runtime,
            r.limit_bytes >> 20,
            r.peak_bytes as f64 / (1u64 << 20) as f64,
            r.limit_reached_ms.map_or("-".into(), |v| format!("{v:.1}")),
            r.oom_kill_ms.map_or("-".into(), |v| format!("{v:.1}")),
            r.oom_source,
            r.limit_to_kill_ms.map_or("-".into(), |v| format!("{v:.1}")),
            r.exit_ms
        );
    }
    drop(s.scratch);
    finish(limits_report::memory(&s.out, &results)?)
}

pub fn cpu(a: CpuArgs) -> anyhow::Result<ExitCode> {
    let quotas = if a.quotas.is_empty() {
        vec![0.2, 0.5, 1.5]
    } else {
        a.quotas.clone()
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    for q in &quotas {
        if !(q.is_finite() && *q >= 0.01 && *q <= cpus) {
            bail!("--quota {q}: a quota is between 0.01 and this machine's {cpus} CPUs");
        }
    }
    if !(a.secs.is_finite() && a.secs >= 0.5) {
        bail!("--secs must be at least 0.5");
    }
    let s = setup(&a.common, "cpu")?;
    let runtimes = s.runtimes.clone();
    let secs = a.secs;
    // sched_switch of the container's tasks rebuilds each quota period.
    let (results, events, _) = traced(!a.common.no_trace, true, &s.out, move || {
        let mut out = Vec::new();
        for (qi, q) in quotas.iter().enumerate() {
            for rt in &runtimes {
                if STOP.load(Ordering::Relaxed) {
                    return Ok(out);
                }
                let image = cpu::bundle(*q, secs)?;
                out.push(cpu::run(rt, &image, &id("cpu", &rt.name, qi), *q)?);
            }
        }
        Ok::<_, anyhow::Error>(out)
    })?;
    let mut results = results?;
    let keys = phases::ids_by_key(&events);
    for r in &mut results {
        let intervals = cpu::run_intervals(&events, &keys, &r.id);
        cpu::add_sched(r, &intervals);
    }
    for r in &results {
        if let Some(pct) = r.sched_vs_cgroup_pct {
            println!(
                "{:<8} quota {:.2}: sched_switch {:.1} ms vs the cgroup's {:.1} ms ({pct:+.2}%), {} of {} periods at the quota",
                r.runtime,
                r.quota,
                r.sched_cpu_ms.unwrap_or(0.0),
                r.cgroup_cpu_ms,
                r.throttled_spans.len(),
                r.periods.len()
            );
        }
        println!(
            "{:<8} quota {:.2} CPUs: achieved {:.3} ({:+.2} points), throttled {}/{} periods, {:.0} ms",
            r.runtime,
            r.quota,
            r.achieved,
            r.error_points,
            r.nr_throttled,
            r.nr_periods,
            r.throttled_ms
        );
    }
    drop(s.scratch);
    finish(limits_report::cpu(&s.out, &results)?)
}

pub fn pids(a: PidsArgs) -> anyhow::Result<ExitCode> {
    if a.limit < 2 {
        bail!("--limit must be at least 2 (the workload is one task itself)");
    }
    let s = setup(&a.common, "pids")?;
    let runtimes = s.runtimes.clone();
    let limit = a.limit;
    let (results, _, _) = traced(!a.common.no_trace, false, &s.out, move || {
        let image = pids::bundle(limit)?;
        runtimes
            .iter()
            .enumerate()
            .map(|(i, rt)| Ok(pids::run(rt, &image, &id("pids", &rt.name, i), limit)?))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let results = results?;
    for r in &results {
        println!(
            "{:<8} pids.max {}: {} children started, errno {}, kernel refusals {}",
            r.runtime,
            r.limit,
            r.started,
            r.refused_errno.map_or("-".into(), |e| e.to_string()),
            r.kernel_refusals
        );
    }
    drop(s.scratch);
    finish(limits_report::pids(&s.out, &results)?)
}

pub fn freeze(a: FreezeArgs) -> anyhow::Result<ExitCode> {
    if a.cycles == 0 {
        bail!("--cycles must be at least 1");
    }
    let s = setup(&a.common, "freeze")?;
    let runtimes = s.runtimes.clone();
    let cycles = a.cycles;
    let (results, _, _) = traced(!a.common.no_trace, false, &s.out, move || {
        let image = freeze::bundle()?;
        runtimes
            .iter()
            .enumerate()
            .map(|(i, rt)| Ok(freeze::run(rt, &image, &id("frz", &rt.name, i), cycles)?))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let results = results?;
    for r in &results {
        if let (Some(p), Some(q)) = (r.pause, r.resume) {
            println!(
                "{:<8} {} cycles: pause p50 {:.2} ms (max {:.2}), resume p50 {:.2} ms (max {:.2})",
                r.runtime, p.n, p.p50, p.max, q.p50, q.max
            );
        }
    }
    drop(s.scratch);
    finish(limits_report::freeze(&s.out, &results)?)
}

pub fn io(a: IoArgs) -> anyhow::Result<ExitCode> {
    if a.rate_mib == 0 || a.mib == 0 {
        bail!("--rate-mib and --mib must be at least 1");
    }
    let data = tempfile::Builder::new()
        .prefix("boxtrace-io-")
        .tempdir_in(&a.dir)
        .with_context(|| format!("--dir {}: cannot make a directory there", a.dir.display()))?;
    let dev = io::disk_of(data.path()).with_context(|| {
        format!(
            "--dir {}: not on a block device (tmpfs?): nothing to throttle",
            a.dir.display()
        )
    })?;
    let s = setup(&a.common, "io")?;
    let runtimes = s.runtimes.clone();
    let rate = a.rate_mib << 20;
    let mib = a.mib;
    let data_path = data.path().to_owned();
    let (results, _, _) = traced(!a.common.no_trace, false, &s.out, move || {
        let mut out = Vec::new();
        for (i, rt) in runtimes.iter().enumerate() {
            for op in ["write", "read"] {
                if STOP.load(Ordering::Relaxed) {
                    return Ok(out);
                }
                let image = io::bundle(&data_path, dev, op, mib, rate)?;
                out.push(io::run(rt, &image, &id(op, &rt.name, i), op, dev, rate)?);
            }
        }
        Ok::<_, anyhow::Error>(out)
    })?;
    let results = results?;
    for r in &results {
        println!(
            "{:<8} {:<5} on {}: limit {:.1} MiB/s, achieved {:.2} MiB/s ({:+.1}%)",
            r.runtime,
            r.op,
            r.device,
            r.limit_bytes_per_s as f64 / (1u64 << 20) as f64,
            r.achieved_bytes_per_s / (1u64 << 20) as f64,
            r.error_pct
        );
    }
    drop(s.scratch);
    finish(limits_report::io(&s.out, &results)?)
}
