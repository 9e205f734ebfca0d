//! Process-tree following: `sched_process_fork` and `sched_process_exit`.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use boxtrace_common::Kind;

use crate::maps::{TRACKED, current, emit, tracked_root};

/// Offset of `child_pid` in the sched_process_fork record. User space
/// overwrites it with the value read from tracefs before loading.
#[unsafe(no_mangle)]
static FORK_CHILD_PID_OFFSET: u32 = 20;

#[tracepoint]
pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
    // The tracepoint fires in the parent's context.
    let (tid, tgid) = current();
    let Some(root) = tracked_root(tid) else {
        return 0;
    };
    // SAFETY: a volatile read keeps the compiler from folding the default.
    let off = unsafe { core::ptr::read_volatile(&FORK_CHILD_PID_OFFSET) } as usize;
    // SAFETY: the offset comes from this kernel's own format file.
    let Ok(child) = (unsafe { ctx.read_at::<i32>(off) }) else {
        return 0;
    };
    let child = child as u32;
    // Insert before emitting so that the child's first syscall, which may
    // race us on another CPU, already sees itself tracked.
    if TRACKED.insert(&child, &root, 0).is_ok() {
        emit(Kind::Fork, tid, tgid, root, u64::from(child), 0);
    }
    0
}

#[tracepoint]
pub fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    let (tid, tgid) = current();
    let Some(root) = tracked_root(tid) else {
        return 0;
    };
    emit(Kind::Exit, tid, tgid, root, 0, 0);
    // A failed remove means a concurrent exit path already did it.
    let _ = TRACKED.remove(&tid);
    0
}
