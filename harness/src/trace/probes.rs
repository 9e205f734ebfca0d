//! Loading the embedded eBPF object, attaching its tracepoints, and access
//! to its maps.

use std::os::fd::{AsFd as _, AsRawFd as _, RawFd};

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{HashMap, Map, MapData, MapError, PerCpuArray, RingBuf},
    programs::{ProgramError, TracePoint},
};
use boxtrace_common::{GLOBAL_FORK_CHILD_PID_OFFSET, MAP_EVENTS, MAP_LOST, MAP_TRACKED};
use thiserror::Error;

use super::tracefs::{Tracefs, TracefsError};

/// The probes object, built by build.rs from ebpf/probes.
static PROBES_ELF: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/boxtrace-probes"));

/// (program name in the object, tracepoint category, tracepoint name)
const TRACEPOINTS: &[(&str, &str, &str)] = &[
    ("sched_process_fork", "sched", "sched_process_fork"),
    ("sched_process_exit", "sched", "sched_process_exit"),
    ("sys_enter_clone", "syscalls", "sys_enter_clone"),
    ("sys_enter_clone3", "syscalls", "sys_enter_clone3"),
    ("sys_enter_unshare", "syscalls", "sys_enter_unshare"),
    ("sys_enter_setns", "syscalls", "sys_enter_setns"),
];

#[derive(Debug, Error)]
pub enum ProbeError {
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
    #[error("loading the eBPF object into the kernel failed: {0}")]
    Load(#[source] EbpfError),
    #[error("the eBPF object has no program `{0}` (build mismatch)")]
    MissingProgram(&'static str),
    #[error("the eBPF object has no map `{0}` (build mismatch)")]
    MissingMap(&'static str),
    #[error("program `{program}`: {source}")]
    Program {
        program: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("attaching to tracepoint {category}/{name}: {source}")]
    Attach {
        category: &'static str,
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("map `{map}`: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: MapError,
    },
}

/// Loaded and attached probes. Dropping this detaches everything.
pub struct Probes {
    // Keeps the programs and their links alive.
    _ebpf: Ebpf,
    tracked: HashMap<MapData, u32, u32>,
    tracked_fd: RawFd,
    lost: PerCpuArray<MapData, u64>,
    events: Option<RingBuf<MapData>>,
}

impl Probes {
    /// Loads the probes and attaches every tracepoint. `tracefs` must stay
    /// mounted until this returns (see [`super::tracefs::with_tracefs`]).
    pub fn attach(tracefs: &Tracefs) -> Result<Self, ProbeError> {
        for &(_, category, name) in TRACEPOINTS {
            tracefs.require(category, name)?;
        }
        let child_pid_off =
            tracefs.field_offset("sched", "sched_process_fork", "child_pid")? as u32;
        let mut ebpf = EbpfLoader::new()
            .override_global(GLOBAL_FORK_CHILD_PID_OFFSET, &child_pid_off, true)
            .load(PROBES_ELF)
            .map_err(ProbeError::Load)?;
        for &(program, category, name) in TRACEPOINTS {
            let prog: &mut TracePoint = ebpf
                .program_mut(program)
                .ok_or(ProbeError::MissingProgram(program))?
                .try_into()
                .map_err(|source| ProbeError::Program { program, source })?;
            prog.load()
                .map_err(|source| ProbeError::Program { program, source })?;
            prog.attach(category, name)
                .map_err(|source| ProbeError::Attach {
                    category,
                    name,
                    source,
                })?;
            tracing::debug!(tracepoint = %format!("{category}/{name}"), "attached");
        }
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
            .insert(tid, root, 0)
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

    /// Records dropped so far because the ring buffer was full, all CPUs.
    pub fn lost(&self) -> Result<u64, ProbeError> {
        let per_cpu = self.lost.get(&0, 0).map_err(|source| ProbeError::Map {
            map: MAP_LOST,
            source,
        })?;
        Ok(per_cpu.iter().sum())
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
        // SAFETY: getpid/syscall are async-signal-safe; attr points to
        // stack memory that outlives the call.
        unsafe {
            let pid = libc::getpid() as u32;
            let attr = MapElemAttr {
                map_fd: self.map_fd as u32,
                _pad: 0,
                key: std::ptr::from_ref(&pid) as u64,
                value: std::ptr::from_ref(&pid) as u64,
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
