//! Maps shared with user space and the helpers that write records.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};
use boxtrace_common::{Kind, MAX_TRACKED, RING_BYTES, RawEvent};

#[map(name = "EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(RING_BYTES, 0);

/// tid -> tgid of the traced root.
#[map(name = "TRACKED")]
pub static TRACKED: HashMap<u32, u32> = HashMap::with_max_entries(MAX_TRACKED, 0);

/// Slot 0: records dropped because the ring buffer was full, per CPU.
#[map(name = "LOST")]
static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// The current task: (tid, tgid).
#[inline(always)]
pub fn current() -> (u32, u32) {
    let id = bpf_get_current_pid_tgid();
    (id as u32, (id >> 32) as u32)
}

/// Root of the tree `tid` belongs to, when it is tracked.
#[inline(always)]
pub fn tracked_root(tid: u32) -> Option<u32> {
    // SAFETY: the value is copied out immediately; a concurrent delete can
    // at worst make us read a stale root, which is still a valid u32.
    unsafe { TRACKED.get(&tid).copied() }
}

/// Writes one record for the current task; counts it as lost when the
/// ring buffer has no room.
#[inline(always)]
pub fn emit(kind: Kind, tid: u32, tgid: u32, root: u32, arg0: u64, arg1: u64) {
    let Some(mut entry) = EVENTS.reserve::<RawEvent>(0) else {
        count_lost();
        return;
    };
    entry.write(RawEvent {
        ts_ns: unsafe { bpf_ktime_get_ns() },
        kind: kind as u32,
        tid,
        tgid,
        root,
        arg0,
        arg1,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    });
    entry.submit(0);
}

#[inline(always)]
fn count_lost() {
    if let Some(slot) = LOST.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, and tracepoint programs are not preempted
        // by other programs on the same CPU while they run.
        unsafe { *slot += 1 };
    }
}
