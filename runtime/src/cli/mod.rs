//! Command-line interface: runc's commands and global flags. Errors end
//! here as anyhow; library modules keep typed errors.

mod lifecycle;
mod query;
mod update;

use std::{path::PathBuf, process::ExitCode};

use boxrun::state::{DEFAULT_ROOT, Root};
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "boxrun", version, about = "A minimal OCI runtime")]
pub struct Args {
    /// Directory of container state.
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Debug logging to stderr.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Also append errors to FILE (runc's --log; containerd reads it).
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// `json` or `text`, for --log.
    #[arg(long = "log-format", global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The bundle directory (holding config.json).
    #[arg(long, short, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the init's pid to FILE.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Append CLOCK_MONOTONIC phase marks (`NAME NS` lines) to FILE.
    #[arg(long, value_name = "FILE")]
    pub phase_marks: Option<PathBuf>,
    /// Unix socket that receives the pty master (SCM_RIGHTS) when
    /// process.terminal is true.
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Pass N fds after stdio (3..3+N) on to the container.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// Keep the caller's session keyring instead of a new one.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Move the rootfs over / and chroot instead of pivot_root (for roots
    /// on a ramfs, where pivot_root fails); weaker isolation.
    #[arg(long)]
    pub no_pivot: bool,
    pub id: String,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Start the container and return: no waiting, no delete.
    #[arg(long, short)]
    pub detach: bool,
    /// Wait for the container but keep it (its state and cgroups) for
    /// `state`, `ps` or a later `delete`.
    #[arg(long, conflicts_with = "detach")]
    pub keep: bool,
}

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The process as OCI JSON (`process` of config.json), instead of
    /// COMMAND and the flags below.
    #[arg(long, short, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Working directory (default: the container's).
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Environment variable NAME=VALUE, added to the container's; repeatable.
    #[arg(long, short, value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// UID[:GID] to run as (default: the container's user).
    #[arg(long, short, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Give the process a terminal (relayed to ours in the foreground).
    #[arg(long, short)]
    pub tty: bool,
    /// Unix socket that receives the pty master (SCM_RIGHTS).
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Start the process and return: its pid in --pid-file, no waiting.
    #[arg(long, short)]
    pub detach: bool,
    /// Write the process's pid to FILE.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Pass N fds after stdio (3..3+N) on to the process.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    pub id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// linux.resources as JSON, from FILE or `-` for stdin; the flags
    /// below change it further.
    #[arg(long, short, value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// Memory limit in bytes (suffixes k, m, g); -1 for none.
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory plus swap limit in bytes (suffixes k, m, g); -1 for none.
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Soft memory limit in bytes (suffixes k, m, g).
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// CPU time per period, µs; -1 for none.
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CFS period, µs.
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// Relative CPU weight (shares).
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    /// CPUs the container may run on (cpuset list, e.g. 0-1).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use.
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Maximum number of tasks; -1 for none.
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block IO weight (10-1000).
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    pub id: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a default config.json in the bundle directory.
    Spec {
        #[arg(long, short, default_value = ".")]
        bundle: PathBuf,
    },
    /// Create a container: its init waits for `start`.
    Create(CreateArgs),
    /// Run a process in a running container: its namespaces, cgroups,
    /// user, capabilities and no_new_privs; exits with its status.
    Exec(ExecArgs),
    /// Print what this boxrun supports (OCI features JSON, like runc's).
    Features,
    /// Start a created container.
    Start { id: String },
    /// Create, start, wait, delete; exit with the container's status
    /// (--detach: create and start only).
    Run(RunArgs),
    /// Change the resource limits of a created, running or paused
    /// container.
    Update(UpdateArgs),
    /// Print the OCI state of a container as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's init, or with
    /// --all to every process in it.
    Kill {
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
        #[arg(long, short)]
        all: bool,
    },
    /// Delete a stopped container; --force kills a running one first.
    Delete {
        id: String,
        #[arg(long, short)]
        force: bool,
    },
    /// List containers.
    List {
        /// `table` or `json`.
        #[arg(long, short, default_value = "table")]
        format: String,
    },
    /// Freeze every process of the container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// List the pids in the container.
    Ps {
        id: String,
        #[arg(long, short, default_value = "table")]
        format: String,
    },
    /// Print events as JSON lines: `oom` when the container is OOM-killed;
    /// with --stats, one statistics object and exit.
    Events {
        id: String,
        #[arg(long)]
        stats: bool,
        /// Seconds between statistics samples.
        #[arg(long, default_value_t = 5)]
        interval: u64,
    },
}

pub fn init_logging(debug: bool) {
    let fmt = tracing_subscriber::fmt().with_writer(std::io::stderr);
    // An EnvFilter compiles regexes: about a millisecond of every
    // container start. Only pay for it when RUST_LOG asks for one.
    match std::env::var_os("RUST_LOG").map(|_| EnvFilter::try_from_default_env()) {
        Some(Ok(filter)) => fmt.with_env_filter(filter).init(),
        _ => fmt
            .with_max_level(if debug {
                tracing::Level::DEBUG
            } else {
                tracing::Level::WARN
            })
            .init(),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let root = Root::new(&args.root);
    match args.command {
        Command::Spec { bundle } => query::spec(&bundle),
        Command::Create(c) => lifecycle::create(&root, &c),
        Command::Start { id } => lifecycle::start(&root, &id),
        Command::Features => query::features(),
        Command::Exec(e) => lifecycle::exec(&root, &e),
        Command::Run(r) => lifecycle::run(&root, &r),
        Command::State { id } => query::state(&root, &id),
        Command::Update(u) => update::update(&root, &u),
        Command::Kill { id, signal, all } => lifecycle::kill(&root, &id, &signal, all),
        Command::Delete { id, force } => lifecycle::delete(&root, &id, force),
        Command::List { format } => query::list(&root, &format),
        Command::Pause { id } => lifecycle::pause(&root, &id, true),
        Command::Resume { id } => lifecycle::pause(&root, &id, false),
        Command::Ps { id, format } => query::ps(&root, &id, &format),
        Command::Events {
            id,
            stats,
            interval,
        } => query::events(&root, &id, stats, interval),
    }
}
