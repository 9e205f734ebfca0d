//! Namespace-related syscall entries of tracked tasks.
//!
//! Every `sys_enter_*` record starts with an 8-byte common header and the
//! syscall number; the arguments follow at offset 16, 8 bytes each.

use aya_ebpf::{helpers::bpf_probe_read_user, macros::tracepoint, programs::TracePointContext};
use boxtrace_common::Kind;

use crate::maps::{current, emit, tracked_root};

const ARG0: usize = 16;
const ARG1: usize = 24;

/// Offset of `exit_signal` in `struct clone_args` (after flags, pidfd,
/// child_tid, parent_tid; all u64).
const CLONE_ARGS_EXIT_SIGNAL: usize = 32;

#[inline(always)]
fn arg(ctx: &TracePointContext, off: usize) -> u64 {
    // SAFETY: offsets are those of the stable syscalls tracepoint layout.
    unsafe { ctx.read_at::<u64>(off) }.unwrap_or(0)
}

#[inline(always)]
fn report(ctx: &TracePointContext, kind: Kind) -> u32 {
    let (tid, tgid) = current();
    let Some(root) = tracked_root(tid) else {
        return 0;
    };
    let (a0, a1) = match kind {
        Kind::Clone3 => {
            // flags live in user memory behind the clone_args pointer.
            let uargs = arg(ctx, ARG0) as *const u64;
            // SAFETY: bpf_probe_read_user faults safely on bad pointers.
            let flags = unsafe { bpf_probe_read_user(uargs) }.unwrap_or(0);
            let sig =
                unsafe { bpf_probe_read_user(uargs.byte_add(CLONE_ARGS_EXIT_SIGNAL)) }.unwrap_or(0);
            (flags, sig)
        }
        Kind::Setns => (arg(ctx, ARG0), arg(ctx, ARG1)),
        _ => (arg(ctx, ARG0), 0),
    };
    emit(kind, tid, tgid, root, a0, a1);
    0
}

#[tracepoint]
pub fn sys_enter_clone(ctx: TracePointContext) -> u32 {
    report(&ctx, Kind::Clone)
}

#[tracepoint]
pub fn sys_enter_clone3(ctx: TracePointContext) -> u32 {
    report(&ctx, Kind::Clone3)
}

#[tracepoint]
pub fn sys_enter_unshare(ctx: TracePointContext) -> u32 {
    report(&ctx, Kind::Unshare)
}

#[tracepoint]
pub fn sys_enter_setns(ctx: TracePointContext) -> u32 {
    report(&ctx, Kind::Setns)
}
