//! Loading the embedded eBPF object, attaching its tracepoints, and access
//! to its maps.

use std::os::fd::{AsFd as _, AsRawFd as _, RawFd};

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{HashMap, Map, MapData, MapError, PerCpuArray, RingBuf},
    programs::{ProgramError, TracePoint},
};
use boxtrace_common::{
    Config, GLOBAL_CONFIG, LOST_SLOTS, Lost, MAP_EVENTS, MAP_LOST, MAP_TRACKED, RING_BYTES, Track,
};
use thiserror::Error;

use super::tracefs::{Tracefs, TracefsError};

/// The probes object, built by build.rs from ebpf/probes.
static PROBES_ELF: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/boxtrace-probes"));

/// Syscalls traced at entry and exit (`sys_enter_X` / `sys_exit_X`).
const SYSCALLS: &[&str] = &[
    "clone",
    "clone3",
    "unshare",
    "setns",
    "pivot_root",
    "chroot",
    "mount",
    "umount",
    "execve",
    "execveat",
    "sethostname",
    "prctl",
    "seccomp",
];

/// (tracepoint category, name); the program has the tracepoint's name.
const TRACEPOINTS: &[(&str, &str)] = &[
    ("sched", "sched_process_fork"),
    ("sched", "sched_process_exec"),
    ("sched", "sched_process_exit"),
    ("syscalls", "sys_enter_exit"),
    ("syscalls", "sys_enter_exit_group"),
    ("signal", "signal_deliver"),
    ("cgroup", "cgroup_mkdir"),
    ("cgroup", "cgroup_rmdir"),
    ("cgroup", "cgroup_attach_task"),
    ("cgroup", "cgroup_freeze"),
    ("cgroup", "cgroup_unfreeze"),
    ("cgroup", "cgroup_notify_frozen"),
    ("oom", "mark_victim"),
];

const SCHED_SWITCH: (&str, &str) = ("sched", "sched_switch");

#[derive(Debug, Error)]
pub enum ProbeError {
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
    #[error("loading the eBPF object into the kernel failed: {0}")]
    Load(#[source] EbpfError),
    #[error("the eBPF object has no program `{0}` (build mismatch)")]
    MissingProgram(String),
    #[error("the eBPF object has no map `{0}` (build mismatch)")]
    MissingMap(&'static str),
    #[error("program `{program}`: {source}")]
    Program {
        program: String,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("attaching to tracepoint {category}/{name}: {source}")]
    Attach {
        category: String,
        name: String,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("map `{map}`: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: MapError,
    },
    #[error("ring buffer size {0} bytes: must be a power of two between 4 KiB and 1 GiB")]
    RingSize(u64),
    #[error(
        "tracepoints cgroup/{0} and cgroup/cgroup_mkdir disagree on the record layout; \
         boxtrace assumes one layout for the cgroup event class"
    )]
    CgroupLayout(&'static str),
}

/// What to attach besides the always-on probes, and how big a buffer.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Follow every task that creates a pid or mount namespace (`--all`).
    pub all: bool,
    /// Report context switches of tracked tasks.
    pub sched_switch: bool,
    /// Ring buffer size in bytes: a power of two, at least one page.
    pub ring_bytes: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            all: false,
            sched_switch: false,
            ring_bytes: RING_BYTES,
        }
    }
}

/// Checks a ring buffer size the kernel will accept.
pub fn check_ring_bytes(bytes: u64) -> Result<u32, ProbeError> {
    let page = 4096;
    if bytes < page || !bytes.is_power_of_two() || bytes > 1 << 30 {
        return Err(ProbeError::RingSize(bytes));
    }
    Ok(bytes as u32)
}

/// Records the kernel could not deliver, by cause, summed over CPUs, with
/// the per-CPU breakdown of ring buffer overflows.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Losses {
    pub ring_full: u64,
    pub ring_full_per_cpu: Vec<u64>,
    pub track_full: u64,
    pub pending_full: u64,
}

impl Losses {
    pub fn total(&self) -> u64 {
        self.ring_full + self.track_full + self.pending_full
    }
}

/// Loaded and attached probes. Dropping this detaches everything.
pub struct Probes {
    // Keeps the programs and their links alive.
    _ebpf: Ebpf,
    tracked: HashMap<MapData, u32, Track>,
    tracked_fd: RawFd,
    lost: PerCpuArray<MapData, u64>,
    events: Option<RingBuf<MapData>>,
}

fn offset(f: Option<super::tracefs::Field>) -> u32 {
    f.map_or(0, |f| f.offset as u32)
}

/// Offset of a `__data_loc` string field, 0 when absent or not one.
fn data_loc(f: Option<super::tracefs::Field>) -> u32 {
    f.filter(|f| f.data_loc).map_or(0, |f| f.offset as u32)
}

/// Reads from tracefs every record offset the probes need.
pub fn config(tracefs: &Tracefs, opts: Options) -> Result<Config, ProbeError> {
    let fork = tracefs.format("sched", "sched_process_fork")?;
    let exec = tracefs.format("sched", "sched_process_exec")?;
    let exit = tracefs.format("sched", "sched_process_exit")?;
    let signal = tracefs.format("signal", "signal_deliver")?;
    let mkdir = tracefs.format("cgroup", "cgroup_mkdir")?;
    let attach = tracefs.format("cgroup", "cgroup_attach_task")?;
    let frozen = tracefs.format("cgroup", "cgroup_notify_frozen")?;
    let oom = tracefs.format("oom", "mark_victim")?;
    let path = mkdir.require("path")?;
    let level = mkdir.require("level")?;
    for other in [
        "cgroup_rmdir",
        "cgroup_freeze",
        "cgroup_unfreeze",
        "cgroup_notify_frozen",
    ] {
        let f = tracefs.format("cgroup", other)?;
        if f.field("path") != Some(path) || f.field("level") != Some(level) {
            return Err(ProbeError::CgroupLayout(other));
        }
    }
    let mut c = Config {
        all_mode: u32::from(opts.all),
        fork_child_pid: offset(Some(fork.require("child_pid")?)),
        exec_filename: data_loc(Some(exec.require("filename")?)),
        exec_old_pid: offset(exec.field("old_pid")),
        exit_group_dead: offset(exit.field("group_dead")),
        signal_sig: offset(Some(signal.require("sig")?)),
        signal_handler: offset(Some(signal.require("sa_handler")?)),
        cgroup_path: data_loc(Some(path)),
        cgroup_level: offset(Some(level)),
        attach_pid: offset(Some(attach.require("pid")?)),
        attach_path: data_loc(Some(attach.require("dst_path")?)),
        frozen_val: offset(Some(frozen.require("val")?)),
        oom_pid: offset(Some(oom.require("pid")?)),
        oom_total_vm: offset(oom.field("total_vm")),
        oom_anon_rss: offset(oom.field("anon_rss")),
        oom_file_rss: offset(oom.field("file_rss")),
        oom_shmem_rss: offset(oom.field("shmem_rss")),
        oom_comm: data_loc(oom.field("comm")),
        wakeup_bytes: opts.ring_bytes / 8,
        ..Config::default()
    };
    if opts.sched_switch {
        let sw = tracefs.format(SCHED_SWITCH.0, SCHED_SWITCH.1)?;
        c.switch_prev_pid = offset(Some(sw.require("prev_pid")?));
        c.switch_next_pid = offset(Some(sw.require("next_pid")?));
        c.switch_prev_state = offset(Some(sw.require("prev_state")?));
    }
    Ok(c)
}

impl Probes {
    /// Loads the probes and attaches every tracepoint. `tracefs` must stay
    /// mounted until this returns (see [`super::tracefs::with_tracefs`]).
    pub fn attach(tracefs: &Tracefs, opts: Options) -> Result<Self, ProbeError> {
        let mut points: Vec<(String, String)> = SYSCALLS
            .iter()
            .flat_map(|s| {
                [
                    ("syscalls".to_owned(), format!("sys_enter_{s}")),
                    ("syscalls".to_owned(), format!("sys_exit_{s}")),
                ]
            })
            .chain(
                TRACEPOINTS
                    .iter()
                    .map(|&(c, n)| (c.to_owned(), n.to_owned())),
            )
            .collect();
        if opts.sched_switch {
            points.push((SCHED_SWITCH.0.to_owned(), SCHED_SWITCH.1.to_owned()));
        }
        for (category, name) in &points {
            tracefs.require(category, name)?;
        }
        let config = config(tracefs, opts)?;
        let ring_bytes = check_ring_bytes(u64::from(opts.ring_bytes))?;
        let mut ebpf = EbpfLoader::new()
            .override_global(GLOBAL_CONFIG, &config, true)
            .map_max_entries(MAP_EVENTS, ring_bytes)
            .load(PROBES_ELF)
            .map_err(ProbeError::Load)?;
        for (category, name) in &points {
            let program = name.as_str();
            let prog: &mut TracePoint = ebpf
                .program_mut(program)
                .ok_or_else(|| ProbeError::MissingProgram(program.to_owned()))?
                .try_into()
                .map_err(|source| ProbeError::Program {
                    program: program.to_owned(),
                    source: Box::new(source),
                })?;
            prog.load().map_err(|source| ProbeError::Program {
                program: program.to_owned(),
                source: Box::new(source),
            })?;
            prog.attach(category, name)
                .map_err(|source| ProbeError::Attach {
                    category: category.clone(),
                    name: name.clone(),
                    source: Box::new(source),
                })?;
        }
        tracing::debug!(tracepoints = points.len(), ?opts, "probes attached");
        let map_err = |map| move |source| ProbeError::Map { map, source };
        let tracked_map = ebpf
            .take_map(MAP_TRACKED)
            .ok_or(ProbeError::MissingMap(MAP_TRACKED))?;
        let tracked_fd = match &tracked_map {
            Map::HashMap(data) => data.fd().as_fd().as_raw_fd(),
            _ => return Err(ProbeError::MissingMap(MAP_TRACKED)),
        };
        let tracked = HashMap::try_from(tracked_map).map_err(map_err(MAP_TRACKED))?;
        let lost = ebpf
            .take_map(MAP_LOST)
            .ok_or(ProbeError::MissingMap(MAP_LOST))?;
        let lost = PerCpuArray::try_from(lost).map_err(map_err(MAP_LOST))?;
        let events = ebpf
            .take_map(MAP_EVENTS)
            .ok_or(ProbeError::MissingMap(MAP_EVENTS))?;
        let events = RingBuf::try_from(events).map_err(map_err(MAP_EVENTS))?;
        Ok(Self {
            _ebpf: ebpf,
            tracked,
            tracked_fd,
            lost,
            events: Some(events),
        })
    }

    /// Starts following `tid` and its future descendants.
    pub fn track(&mut self, tid: u32, root: u32) -> Result<(), ProbeError> {
        self.tracked
            .insert(tid, Track { root, container: 0 }, 0)
            .map_err(|source| ProbeError::Map {
                map: MAP_TRACKED,
                source,
            })
    }

    /// A handle a freshly forked child can use to track itself before exec.
    pub fn self_tracker(&self) -> SelfTracker {
        SelfTracker {
            map_fd: self.tracked_fd,
        }
    }

    /// The event ring buffer; can be taken once.
    pub fn take_events(&mut self) -> Option<RingBuf<MapData>> {
        self.events.take()
    }

    /// Records dropped so far, by cause.
    pub fn losses(&self) -> Result<Losses, ProbeError> {
        let read = |slot: Lost| {
            self.lost
                .get(&(slot as u32), 0)
                .map(|v| v.iter().copied().collect::<Vec<u64>>())
                .map_err(|source| ProbeError::Map {
                    map: MAP_LOST,
                    source,
                })
        };
        debug_assert_eq!(LOST_SLOTS, 3);
        let ring = read(Lost::RingFull)?;
        Ok(Losses {
            ring_full: ring.iter().sum(),
            ring_full_per_cpu: ring,
            track_full: read(Lost::TrackFull)?.iter().sum(),
            pending_full: read(Lost::PendingFull)?.iter().sum(),
        })
    }
}

/// Lets a child process add itself to the tracked set between fork and
/// exec, where only async-signal-safe calls are allowed: one raw bpf(2)
/// syscall on an inherited map fd, no allocation, no lock.
#[derive(Clone, Copy, Debug)]
pub struct SelfTracker {
    map_fd: RawFd,
}

/// `union bpf_attr` as BPF_MAP_UPDATE_ELEM reads it.
#[repr(C, align(8))]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_ANY: u64 = 0;

impl SelfTracker {
    /// Tracks the calling process as the root of a new tree.
    pub fn track_self(&self) -> std::io::Result<()> {
        // SAFETY: getpid/syscall are async-signal-safe; attr, key and value
        // point to stack memory that outlives the call.
        unsafe {
            let pid = libc::getpid() as u32;
            let track = Track {
                root: pid,
                container: 0,
            };
            let attr = MapElemAttr {
                map_fd: self.map_fd as u32,
                _pad: 0,
                key: std::ptr::from_ref(&pid) as u64,
                value: std::ptr::from_ref(&track) as u64,
                flags: BPF_ANY,
            };
            let rc = libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_UPDATE_ELEM,
                std::ptr::from_ref(&attr),
                std::mem::size_of::<MapElemAttr>(),
            );
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}
