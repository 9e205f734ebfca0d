//! Maps shared with user space, the configuration global, and the helpers
//! every program uses to build and send records.

use aya_ebpf::{
    EbpfContext as _,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns,
        bpf_probe_read_kernel_str_bytes, bpf_probe_read_user_str_bytes,
    },
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::TracePointContext,
};
use boxtrace_common::{
    Config, FLAG_CONTAINER_START, FLAG_URGENT, Kind, LOST_SLOTS, Lost, MAX_TRACKED, RING_BYTES,
    RawEvent, Track,
};

#[map(name = "EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(RING_BYTES, 0);

#[map(name = "TRACKED")]
static TRACKED: HashMap<u32, Track> = HashMap::with_max_entries(MAX_TRACKED, 0);

/// Loss counters per CPU, indexed by `Lost`.
#[map(name = "LOST")]
static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(LOST_SLOTS, 0);

/// Per-CPU space to build one record: too large for the 512-byte stack.
#[map]
static SCRATCH: PerCpuArray<RawEvent> = PerCpuArray::with_max_entries(1, 0);

/// Syscall entries waiting for their exit, by tid. LRU so that entries of
/// tasks killed inside a syscall cannot fill it up.
#[map]
pub static PENDING: LruHashMap<u32, RawEvent> = LruHashMap::with_max_entries(16_384, 0);

/// In `--all` mode: child tid -> parent tgid of every fork on the host, so
/// a task that starts a container can name its ancestors (runtimes put
/// the container's cgroup on an ancestor before it creates namespaces).
#[map]
pub static PARENT: LruHashMap<u32, u32> = LruHashMap::with_max_entries(65_536, 0);

/// Parent and grandparent pids of `tid`, as far as `PARENT` knows them.
#[inline(always)]
pub fn ancestors(tid: u32) -> (u64, u64) {
    // SAFETY: values copied out at once.
    let parent = unsafe { PARENT.get(&tid).copied() }.unwrap_or(0);
    let grand = if parent == 0 {
        0
    } else {
        unsafe { PARENT.get(&parent).copied() }.unwrap_or(0)
    };
    (u64::from(parent), u64::from(grand))
}

/// Offsets and switches, overwritten by user space before loading.
#[unsafe(no_mangle)]
pub static CONFIG: Config = unsafe { core::mem::zeroed() };

/// Reads one field of `CONFIG`; volatile so the zero default is not folded.
macro_rules! config {
    ($field:ident) => {
        // SAFETY: CONFIG is plain data, only written by the loader.
        unsafe { core::ptr::read_volatile(&raw const $crate::maps::CONFIG.$field) }
    };
}
pub(crate) use config;

pub const CLONE_NEWNS: u64 = 0x0002_0000;
pub const CLONE_NEWPID: u64 = 0x2000_0000;

/// The current task: (tid, tgid).
#[inline(always)]
pub fn current() -> (u32, u32) {
    let id = bpf_get_current_pid_tgid();
    (id as u32, (id >> 32) as u32)
}

#[inline(always)]
pub fn tracked(tid: u32) -> Option<Track> {
    // SAFETY: the value is copied out at once.
    unsafe { TRACKED.get(&tid).copied() }
}

#[inline(always)]
pub fn track(tid: u32, t: &Track) {
    if TRACKED.insert(&tid, t, 0).is_err() {
        count_lost(Lost::TrackFull);
    }
}

#[inline(always)]
pub fn untrack(tid: u32) {
    // Fails only when the task was never tracked.
    let _ = TRACKED.remove(&tid);
}

#[inline(always)]
pub fn count_lost(what: Lost) {
    if let Some(slot) = LOST.get_ptr_mut(what as u32) {
        // SAFETY: per-CPU slot; tracepoint programs do not nest on a CPU.
        unsafe { *slot += 1 };
    }
}

/// This CPU's scratch record with its header filled for the current task.
#[inline(always)]
pub fn record(kind: Kind, tid: u32, tgid: u32, t: &Track) -> Option<&'static mut RawEvent> {
    let ev = SCRATCH.get_ptr_mut(0)?;
    // SAFETY: per-CPU map value, exclusively ours while this program runs.
    let ev = unsafe { &mut *ev };
    ev.ts_ns = unsafe { bpf_ktime_get_ns() };
    ev.dur_ns = 0;
    ev.ret = 0;
    ev.args = [0; 4];
    ev.kind = kind as u32;
    ev.tid = tid;
    ev.tgid = tgid;
    ev.root = t.root;
    ev.container = t.container;
    ev.flags = 0;
    ev.str_len = [0; 4];
    ev.comm = bpf_get_current_comm().unwrap_or([0; 16]);
    Some(ev)
}

const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;

/// Copies a finished record into the ring buffer.
///
/// Waking the reader for every record costs a context switch per event,
/// paid by the traced container start on a small machine; instead the
/// reader polls on a short timer and is only woken early when the ring
/// fills up past `WAKEUP_BYTES`.
///
/// A container's first record wakes the reader at once, so it can look up
/// the container's cgroup in /proc while its tasks are alive.
#[inline(always)]
pub fn send(ev: &RawEvent) {
    let urgent = ev.flags & (FLAG_CONTAINER_START | FLAG_URGENT) != 0;
    let wakeup = u64::from(config!(wakeup_bytes));
    let flags = if urgent || EVENTS.query(BPF_RB_AVAIL_DATA) >= wakeup {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    if EVENTS.output::<RawEvent>(ev, flags).is_err() {
        count_lost(Lost::RingFull);
    }
}

/// Copies a NUL-terminated user string into `dst`; returns its length.
#[inline(always)]
pub fn user_str(dst: &mut [u8], src: u64) -> u16 {
    if src == 0 {
        return 0;
    }
    // SAFETY: the helper faults safely on bad user pointers.
    match unsafe { bpf_probe_read_user_str_bytes(src as *const u8, dst) } {
        Ok(s) => s.len() as u16,
        Err(_) => 0,
    }
}

/// Copies a `__data_loc char[]` field of the tracepoint record at byte
/// offset `field` into `dst`; returns its length.
#[inline(always)]
pub fn data_loc_str(ctx: &TracePointContext, field: u32, dst: &mut [u8]) -> u16 {
    if field == 0 {
        return 0;
    }
    // SAFETY: offset read from this kernel's format file.
    let Ok(loc) = (unsafe { ctx.read_at::<u32>(field as usize) }) else {
        return 0;
    };
    let src = (ctx.as_ptr() as *const u8).wrapping_add((loc & 0xffff) as usize);
    // SAFETY: points inside the kernel's trace record; the helper is safe anyway.
    match unsafe { bpf_probe_read_kernel_str_bytes(src, dst) } {
        Ok(s) => s.len() as u16,
        Err(_) => 0,
    }
}

/// Reads a tracepoint field of type `T` at a configured offset (0: absent).
#[inline(always)]
pub fn field<T: Default>(ctx: &TracePointContext, off: u32) -> T {
    if off == 0 {
        return T::default();
    }
    // SAFETY: offset read from this kernel's format file.
    unsafe { ctx.read_at::<T>(off as usize) }.unwrap_or_default()
}
