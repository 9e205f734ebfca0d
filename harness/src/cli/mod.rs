//! Command-line interface. Errors end here as anyhow; the library modules
//! keep typed errors.

mod bench;
mod demo;
mod limits;
mod trace;

use std::{ffi::OsString, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Exit status for boxtrace's own failures, distinct from any status the
/// traced command can pass through (as `env`, `timeout` and `chroot` do).
pub const EXIT_TOOL_ERROR: u8 = 125;

#[derive(Debug, Parser)]
#[command(
    name = "boxtrace",
    version,
    about = "Trace and benchmark container starts with eBPF"
)]
pub struct Args {
    /// More logging (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run CMD and print what the kernel did for its whole process tree
    /// (namespaces, mounts, execs, cgroups, OOM kills), or with --all for
    /// every container started on the host by any runtime.
    Trace(TraceArgs),
    /// Trace boxrun starting a container of the built-in image and print,
    /// in outline, what the kernel did: cgroups, namespaces, mounts,
    /// pivot_root, exec, exit.
    Demo(DemoArgs),
    /// Benchmark container runtimes and write a report directory.
    #[command(subcommand)]
    Bench(BenchScenario),
    /// Compare two benchmark runs: per runtime and phase, the change of
    /// the median with its confidence interval; exit 1 on a regression.
    Compare(bench::CompareArgs),
}

#[derive(Debug, Subcommand)]
pub enum BenchScenario {
    /// Start latency: N starts per runtime, interleaved, with statistics,
    /// boxrun's phases, charts and a Perfetto trace.
    Startup(bench::StartupArgs),
    /// Memory limit: usage sampled every ms against the limit, the OOM
    /// kill and how long after the limit it lands.
    Memory(limits::MemoryArgs),
    /// CPU quota: achieved share against the quota, throttling, a sweep.
    Cpu(limits::CpuArgs),
    /// pids.max: how many children start, the errno, the kernel's count.
    Pids(limits::PidsArgs),
    /// blkio/io throttle: O_DIRECT writes and reads against the limit.
    Io(limits::IoArgs),
    /// Pause/resume latency over many cycles.
    Freeze(limits::FreezeArgs),
}

#[derive(Debug, clap::Args)]
pub struct TraceArgs {
    /// Also write every event as JSON Lines to FILE (schema: docs/events.md).
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// No live view on stderr (the summary is still printed).
    #[arg(long, short)]
    pub quiet: bool,
    /// Exit with 125 when the kernel dropped any event.
    #[arg(long)]
    pub fail_on_loss: bool,
    /// Trace every container start on the host instead of a command: any
    /// task creating a pid or mount namespace starts a container, its
    /// descendants follow. Runs until Ctrl-C, SIGTERM or --duration.
    #[arg(long, conflicts_with = "command")]
    pub all: bool,
    /// With --all: stop after this many seconds.
    #[arg(long, requires = "all", value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Show only these event kinds or groups, comma-separated
    /// (e.g. `exec,mount,cgroup`; groups: ns, fs, process, cgroup, security).
    #[arg(long, value_name = "KINDS")]
    pub kind: Option<String>,
    /// Show only this container (its key pid or runtime id); repeatable.
    #[arg(long, value_name = "ID")]
    pub container: Vec<String>,
    /// Hide threads coming and going (clones with CLONE_THREAD, their
    /// forks and exits).
    #[arg(long)]
    pub no_threads: bool,
    /// Also report CPU switches to and from traced tasks (sched_switch).
    #[arg(long)]
    pub sched: bool,
    /// Ring buffer size in KiB (a power of two, 4 to 1048576); raise it
    /// when --fail-on-loss trips on bursts.
    #[arg(long, value_name = "KIB", default_value_t = 16384)]
    pub ring_kib: u64,
    /// The command to trace.
    #[arg(
        trailing_var_arg = true,
        value_name = "CMD",
        required_unless_present = "all"
    )]
    pub command: Vec<OsString>,
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Also write every event as JSON Lines to FILE.
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The runtime to trace: boxrun, runc, crun, or a path.
    #[arg(long, default_value = "boxrun", value_name = "NAME|PATH")]
    pub runtime: String,
}

pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Trace(t) => trace::run(t),
        Command::Demo(d) => demo::run(d),
        Command::Bench(BenchScenario::Startup(s)) => bench::startup(s),
        Command::Bench(BenchScenario::Memory(a)) => limits::memory(a),
        Command::Bench(BenchScenario::Cpu(a)) => limits::cpu(a),
        Command::Bench(BenchScenario::Pids(a)) => limits::pids(a),
        Command::Bench(BenchScenario::Io(a)) => limits::io(a),
        Command::Bench(BenchScenario::Freeze(a)) => limits::freeze(a),
        Command::Compare(c) => bench::compare_cmd(c),
    }
}
