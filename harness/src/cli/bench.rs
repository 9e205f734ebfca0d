//! `boxtrace bench startup` and `boxtrace compare`.

use std::{
    fs::File,
    io::BufWriter,
    path::PathBuf,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, bail};
use boxtrace::{
    bench::{
        compare::compare,
        driver::{Cli, Runtime, find_binary},
        image::{Image, ImageKind},
        phases, report,
        scratch::Scratch,
        startup::{self, Mode, Plan, Progress},
        summary::{Host, SCHEMA, Skipped, Summary, TraceInfo},
    },
    output::JsonLines,
    trace::{
        event::Event,
        filter::Filter,
        preflight,
        probes::{Options, Probes, check_ring_bytes},
        session::{Target, trace},
        tracefs::with_tracefs,
    },
};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Notify;

/// Set by SIGINT/SIGTERM: the run stops after the starts in flight.
pub static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

#[derive(Debug, clap::Args)]
pub struct StartupArgs {
    /// A runtime to compare: boxrun, or any runc-compatible binary by name
    /// (looked up in PATH, then next to boxtrace) or path; repeatable.
    /// Default: boxrun, crun and runc, those that are installed.
    #[arg(long = "runtime", value_name = "NAME|PATH")]
    pub runtimes: Vec<String>,
    /// Measured starts per runtime.
    #[arg(short, long, default_value_t = 50)]
    pub n: usize,
    /// Starts per runtime run first and left out.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Starts of one runtime made at once.
    #[arg(short, long, default_value_t = 1)]
    pub concurrency: usize,
    /// `run` (one command) or `lifecycle` (create, start, wait, delete).
    #[arg(long, value_enum, default_value = "run")]
    pub mode: Mode,
    /// `builtin` (a static workload from this project), `busybox`, or a
    /// bundle directory.
    #[arg(long, default_value = "builtin")]
    pub image: ImageKind,
    /// Report directory (default boxtrace-reports/startup-<UTC time>).
    #[arg(long, short, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Add MS milliseconds to every start of RUNTIME (e.g. runc=5): checks
    /// that `compare` catches a slowdown.
    #[arg(long = "delay", value_name = "RUNTIME=MS")]
    pub delays: Vec<String>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Do not trace: no per-phase breakdown from the kernel, no
    /// events.jsonl.
    #[arg(long)]
    pub no_trace: bool,
}

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// summary.json of the baseline run (or its report directory).
    pub baseline: PathBuf,
    /// summary.json of the run to check (or its report directory).
    pub current: PathBuf,
    /// Fail (exit 1) when a median got slower by more than PCT percent,
    /// with the whole 95% confidence interval beyond it.
    #[arg(long, value_name = "PCT", default_value_t = 10.0)]
    pub max_regression: f64,
    /// A median that grew by less than MS milliseconds is never a
    /// regression, whatever the percentage (sub-millisecond phases swing).
    #[arg(long, value_name = "MS", default_value_t = 0.25)]
    pub min_ms: f64,
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn started(&self, total: usize) {
        self.0.set_length(total as u64);
    }

    fn advance(&self, runtime: &str, ms: f64) {
        self.0.set_message(format!("{runtime} {ms:.1} ms"));
        self.0.inc(1);
    }
}

fn parse_delays(delays: &[String]) -> anyhow::Result<Vec<(String, Duration)>> {
    delays
        .iter()
        .map(|d| {
            let (name, ms) = d
                .split_once('=')
                .with_context(|| format!("--delay `{d}`: expected RUNTIME=MS"))?;
            let ms: f64 = ms
                .parse()
                .ok()
                .filter(|m: &f64| m.is_finite() && *m >= 0.0)
                .with_context(|| {
                    format!("--delay `{d}`: `{ms}` is not a number of milliseconds")
                })?;
            Ok((name.to_owned(), Duration::from_secs_f64(ms / 1e3)))
        })
        .collect()
}

pub fn startup(args: StartupArgs) -> anyhow::Result<ExitCode> {
    if args.n == 0 || args.concurrency == 0 {
        bail!("-n and --concurrency must be at least 1");
    }
    let delays = parse_delays(&args.delays)?;
    let wanted = if args.runtimes.is_empty() {
        vec!["boxrun".to_owned(), "crun".to_owned(), "runc".to_owned()]
    } else {
        args.runtimes.clone()
    };
    let scratch = Scratch::create()?;
    let (clis, skipped) = resolve_runtimes(&wanted, &scratch, &delays)?;
    let runtimes: Vec<Box<dyn Runtime>> = clis
        .into_iter()
        .map(|c| Box::new(c) as Box<dyn Runtime>)
        .collect();
    let image = Image::prepare(args.image.clone(), &["true"])?;
    let plan = Plan {
        n: args.n,
        warmup: args.warmup,
        concurrency: args.concurrency,
        mode: args.mode,
        marks: scratch.path().to_owned(),
    };
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| report::default_dir("startup", started_unix));
    // Fail on an unusable report directory now, not after the run.
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let bar = progress_bar(args.no_progress);
    let progress = Bar(bar.clone());
    let bundle = image.bundle.clone();
    let (mut results, events, trace_info) = traced(!args.no_trace, false, &out, move || {
        startup::run(&runtimes, &bundle, &plan, &STOP, &progress)
    })?;
    bar.finish_and_clear();
    if trace_info.is_some() {
        let keys = phases::ids_by_key(&events);
        for r in &mut results {
            for s in &mut r.samples {
                s.trace_phases = phases::of_start(&events, &keys, &s.id, s.begin_ns, s.end_ns);
            }
            startup::summarize(r);
        }
    }
    let interrupted = STOP.load(Ordering::Relaxed);
    let summary = Summary {
        schema: SCHEMA,
        scenario: "startup".to_owned(),
        mode: args.mode,
        image: image.kind.to_string(),
        n: args.n,
        warmup: args.warmup,
        concurrency: args.concurrency,
        started_unix,
        host: Host::this(),
        interrupted,
        runtimes: results,
        skipped,
        trace: trace_info,
    };
    let index = report::write(&out, &summary)?;
    print_table(&summary);
    println!("report: {}", index.display());
    if interrupted {
        eprintln!("boxtrace: interrupted; the report holds the starts measured so far");
        return Ok(ExitCode::from(130));
    }
    let failed: usize = summary.runtimes.iter().map(|r| r.failures.len()).sum();
    if failed > 0 {
        for r in &summary.runtimes {
            for f in r.failures.iter().take(3) {
                eprintln!("boxtrace: {f}");
            }
        }
        bail!(
            "{failed} starts failed (see above and {})",
            out.join("summary.json").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The runtimes asked for, as drivers with their state in `scratch`; a
/// missing one is reported and skipped, an added delay must name one found.
pub fn resolve_runtimes(
    wanted: &[String],
    scratch: &Scratch,
    delays: &[(String, Duration)],
) -> anyhow::Result<(Vec<Cli>, Vec<Skipped>)> {
    let mut runtimes: Vec<Cli> = Vec::new();
    let mut skipped = Vec::new();
    for w in wanted {
        let Some(bin) = find_binary(w) else {
            eprintln!("boxtrace: {w} is not installed: skipped");
            skipped.push(Skipped {
                runtime: w.clone(),
                reason: "not installed".to_owned(),
            });
            continue;
        };
        let name = bin
            .file_name()
            .map_or_else(|| w.clone(), |n| n.to_string_lossy().into_owned());
        if runtimes.iter().any(|r| r.name == name) {
            bail!("--runtime {w}: {name} is named twice");
        }
        let delay = delays
            .iter()
            .find(|(n, _)| *n == name || n == w)
            .map_or(Duration::ZERO, |d| d.1);
        let files = scratch.files(&name);
        std::fs::create_dir_all(&files).with_context(|| format!("creating {}", files.display()))?;
        runtimes.push(Cli {
            root: scratch.root(&name),
            files,
            name,
            bin,
            delay,
        });
    }
    for (n, _) in delays {
        if !runtimes.iter().any(|r| r.name == *n) {
            bail!("--delay {n}=...: {n} is not one of the runtimes measured");
        }
    }
    if runtimes.is_empty() {
        bail!(
            "none of the runtimes asked for is installed: {}",
            wanted.join(", ")
        );
    }
    Ok((runtimes, skipped))
}

fn progress_bar(hidden: bool) -> ProgressBar {
    let bar = if hidden {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} starts, ETA {eta} {msg}")
            .expect("a valid template"),
    );
    bar
}

/// Runs `work` on a thread of its own while the tracer (unless `!trace`)
/// follows every container start on the host, its events also written to
/// `out/events.jsonl`. Before anything else the process moves into a
/// private mount namespace (see `startup::private_world`) and SIGINT and
/// SIGTERM start setting STOP.
pub fn traced<T: Send + 'static>(
    trace_on: bool,
    sched_switch: bool,
    out: &std::path::Path,
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<(T, Vec<Event>, Option<TraceInfo>)> {
    // Made before the tracer attaches (it would take the unshare for a
    // container start) and before any thread exists (threads inherit it).
    startup::private_world()?;
    // with_tracefs may switch mount namespaces while it attaches: also
    // before any thread.
    let mut probes = if trace_on {
        preflight::check()?;
        let opts = Options {
            all: true,
            sched_switch,
            ring_bytes: check_ring_bytes(16 << 20)?,
        };
        Some(with_tracefs(|fs| Probes::attach(fs, opts))??)
    } else {
        None
    };
    let mut json = match &probes {
        Some(_) => {
            let path = out.join("events.jsonl");
            let f = File::create(&path).with_context(|| format!("writing {}", path.display()))?;
            Some(JsonLines::new(BufWriter::new(f)))
        }
        None => None,
    };
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("starting the event loop")?;
    let stop_tracer = Arc::new(Notify::new());
    let mut events: Vec<Event> = Vec::new();
    let mut sink = |ev: &Event| -> std::io::Result<()> {
        events.push(ev.clone());
        if let Some(j) = json.as_mut() {
            j.write(ev)?;
        }
        Ok(())
    };
    let (result, traced) = rt.block_on(async {
        let work = tokio::task::spawn_blocking(work);
        let work = async {
            let r = work.await;
            stop_tracer.notify_one();
            r
        };
        let tracer = async {
            match probes.as_mut() {
                Some(p) => Some(
                    trace(
                        p,
                        &Target::Until(stop_tracer.clone()),
                        &Filter::default(),
                        &mut sink,
                    )
                    .await,
                ),
                None => None,
            }
        };
        tokio::join!(work, tracer)
    });
    let result = result.context("the benchmark thread failed")?;
    let info = match traced.transpose()? {
        Some(t) => {
            if let Some(j) = json.as_mut() {
                j.flush().context("writing events.jsonl")?;
            }
            if t.losses.total() > 0 {
                eprintln!(
                    "boxtrace: the tracer lost {} events: some results may be missing",
                    t.losses.total()
                );
            }
            Some(TraceInfo {
                events: t.events,
                lost: t.losses.total(),
            })
        }
        None => None,
    };
    Ok((result, events, info))
}

fn print_table(s: &Summary) {
    println!(
        "{:<10} {:>5} {:>8} {:>8} {:>17} {:>8} {:>8} {:>8}",
        "runtime", "n", "min ms", "p50 ms", "p50 95% CI", "p90 ms", "p99 ms", "max ms"
    );
    let base = s.runtimes.iter().find_map(|r| r.latency_ms).map(|l| l.p50);
    for r in &s.runtimes {
        let Some(l) = r.latency_ms else {
            println!("{:<10} no successful start", r.name);
            continue;
        };
        let ratio = base.map_or(String::new(), |b| format!("  x{:.2}", l.p50 / b));
        println!(
            "{:<10} {:>5} {:>8.2} {:>8.2} {:>8.2}-{:<8.2} {:>8.2} {:>8.2} {:>8.2}{ratio}",
            r.name, l.n, l.min, l.p50, l.p50_ci[0], l.p50_ci[1], l.p90, l.p99, l.max
        );
    }
}

fn summary_path(p: PathBuf) -> PathBuf {
    if p.is_dir() {
        p.join("summary.json")
    } else {
        p
    }
}

pub fn compare_cmd(args: CompareArgs) -> anyhow::Result<ExitCode> {
    if !(args.max_regression.is_finite() && args.max_regression >= 0.0) {
        bail!(
            "--max-regression must be a percentage of at least 0, got {}",
            args.max_regression
        );
    }
    let base = Summary::load(&summary_path(args.baseline))?;
    let cur = Summary::load(&summary_path(args.current))?;
    if !(args.min_ms.is_finite() && args.min_ms >= 0.0) {
        bail!("--min-ms must be at least 0, got {}", args.min_ms);
    }
    let changes = compare(&base, &cur, args.max_regression, args.min_ms);
    if changes.is_empty() {
        bail!("the two runs share no runtime to compare");
    }
    println!(
        "{:<10} {:<22} {:>10} {:>10} {:>9} {:>20}",
        "runtime", "metric", "base p50", "cur p50", "change", "95% CI"
    );
    let mut regressions = 0;
    for c in &changes {
        let flag = if c.regression {
            regressions += 1;
            "  REGRESSION"
        } else {
            ""
        };
        println!(
            "{:<10} {:<22} {:>10.3} {:>10.3} {:>+8.1}% {:>+9.1}% .. {:>+6.1}%{flag}",
            c.runtime,
            c.metric,
            c.baseline_p50,
            c.current_p50,
            c.change_pct,
            c.ci_pct[0],
            c.ci_pct[1]
        );
    }
    if regressions > 0 {
        println!(
            "{regressions} regression(s) beyond {}% (and {} ms) with the whole 95% interval above it",
            args.max_regression, args.min_ms
        );
        return Ok(ExitCode::from(1));
    }
    println!("no regression beyond {}%", args.max_regression);
    Ok(ExitCode::SUCCESS)
}
