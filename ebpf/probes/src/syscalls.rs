//! Syscalls of tracked tasks, entry and exit joined into one record with
//! the return value and duration.
//!
//! At entry the record is built (arguments, strings copied from user
//! memory while they are still valid) and parked in `PENDING` under the
//! tid; the matching exit completes and sends it. Every `sys_enter_*`
//! record holds the arguments at offset 16, 8 bytes each; `sys_exit_*`
//! holds `ret` at 16.

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
};
use boxtrace_common::{FLAG_CONTAINER_START, FLAG_RETURNED, FLAG_URGENT, Kind, Lost, Track};

use crate::maps::{
    CLONE_NEWNS, CLONE_NEWPID, PENDING, ancestors, config, count_lost, current, record, send,
    track, tracked, user_str,
};

/// Offset of `exit_signal` in `struct clone_args` (after flags, pidfd,
/// child_tid, parent_tid; all u64).
const CLONE_ARGS_EXIT_SIGNAL: u64 = 32;
const PR_SET_SECCOMP: u64 = 22;
const PR_SET_NO_NEW_PRIVS: u64 = 38;
/// Longest hostname the kernel accepts.
const HOST_NAME_MAX: usize = 64;

#[inline(always)]
fn arg(ctx: &TracePointContext, i: usize) -> u64 {
    // SAFETY: offsets of the stable syscalls tracepoint layout.
    unsafe { ctx.read_at::<u64>(16 + 8 * i) }.unwrap_or(0)
}

/// Namespace flags of a clone/clone3/unshare entry, read before deciding
/// whether the task is to be followed.
#[inline(always)]
fn ns_flags(ctx: &TracePointContext, kind: Kind) -> (u64, u64) {
    match kind {
        Kind::Clone | Kind::Unshare => (arg(ctx, 0), 0),
        Kind::Clone3 => {
            let uargs = arg(ctx, 0);
            // SAFETY: bpf_probe_read_user faults safely on bad pointers.
            let flags = unsafe { bpf_probe_read_user(uargs as *const u64) }.unwrap_or(0);
            let sig =
                unsafe { bpf_probe_read_user((uargs + CLONE_ARGS_EXIT_SIGNAL) as *const u64) }
                    .unwrap_or(0);
            (flags, sig)
        }
        _ => (0, 0),
    }
}

#[inline(always)]
fn enter(ctx: &TracePointContext, kind: Kind) -> u32 {
    let (tid, tgid) = current();
    let (flags, sig) = ns_flags(ctx, kind);
    let ns_call = matches!(kind, Kind::Clone | Kind::Clone3 | Kind::Unshare);
    let creates_ns = ns_call && flags & (CLONE_NEWPID | CLONE_NEWNS) != 0;
    let mut starts = false;
    let mut t = match tracked(tid) {
        Some(t) => t,
        None if creates_ns && config!(all_mode) != 0 => {
            starts = kind == Kind::Unshare;
            // --all: this task starts a container; the tree follows it.
            let container = if kind == Kind::Unshare { tgid } else { 0 };
            let t = Track {
                root: tgid,
                container,
            };
            track(tid, &t);
            t
        }
        None => return 0,
    };
    if kind == Kind::Unshare && creates_ns && t.container == 0 {
        // The task itself moves into the new namespaces: it keys them.
        t.container = tgid;
        track(tid, &t);
        starts = true;
    }
    if kind == Kind::Prctl {
        let option = arg(ctx, 0);
        if option != PR_SET_NO_NEW_PRIVS && option != PR_SET_SECCOMP {
            return 0;
        }
    }
    let Some(ev) = record(kind, tid, tgid, &t) else {
        return 0;
    };
    match kind {
        Kind::Clone | Kind::Unshare | Kind::Clone3 => ev.args = [flags, sig, 0, 0],
        Kind::Setns => {
            ev.args = [arg(ctx, 0), arg(ctx, 1), 0, 0];
            if ev.args[1] == 0 {
                // Type not given: user space reads it from the fd, which
                // must still be open when it looks.
                ev.flags |= FLAG_URGENT;
            }
        }
        Kind::Seccomp => ev.args = [arg(ctx, 0), arg(ctx, 1), 0, 0],
        Kind::Prctl => ev.args = [arg(ctx, 0), arg(ctx, 1), arg(ctx, 2), 0],
        Kind::PivotRoot => {
            ev.str_len[0] = user_str(&mut ev.str0, arg(ctx, 0));
            ev.str_len[1] = user_str(&mut ev.str1, arg(ctx, 1));
        }
        Kind::Chroot | Kind::Execve => ev.str_len[0] = user_str(&mut ev.str0, arg(ctx, 0)),
        Kind::Mount => {
            ev.str_len[1] = user_str(&mut ev.str1, arg(ctx, 0));
            ev.str_len[0] = user_str(&mut ev.str0, arg(ctx, 1));
            ev.str_len[2] = user_str(&mut ev.str2, arg(ctx, 2));
            ev.args[0] = arg(ctx, 3);
        }
        Kind::Umount => {
            ev.str_len[0] = user_str(&mut ev.str0, arg(ctx, 0));
            ev.args[0] = arg(ctx, 1);
        }
        Kind::Execveat => {
            ev.args[0] = arg(ctx, 0);
            ev.str_len[0] = user_str(&mut ev.str0, arg(ctx, 1));
            ev.args[1] = arg(ctx, 4);
        }
        Kind::Sethostname => {
            // The name need not be NUL-terminated: keep at most `len` bytes.
            let len = arg(ctx, 1);
            let got = user_str(&mut ev.str0[..HOST_NAME_MAX + 1], arg(ctx, 0));
            ev.str_len[0] = if (got as u64) < len { got } else { len as u16 };
            ev.args[0] = len;
        }
        _ => {}
    }
    if starts {
        ev.flags |= FLAG_CONTAINER_START;
        let (parent, grand) = ancestors(tid);
        ev.args[2] = parent;
        ev.args[3] = grand;
    }
    if PENDING.insert(&tid, &*ev, 0).is_err() {
        count_lost(Lost::PendingFull);
    }
    0
}

#[inline(always)]
fn exit(ctx: &TracePointContext, kind: Kind) -> u32 {
    let (tid, _) = current();
    let Some(ev) = PENDING.get_ptr_mut(&tid) else {
        return 0;
    };
    // SAFETY: map value pointer, valid until removed below.
    let ev = unsafe { &mut *ev };
    if ev.kind == kind as u32 {
        // SAFETY: sys_exit_* records hold `long ret` at offset 16.
        ev.ret = unsafe { ctx.read_at::<i64>(16) }.unwrap_or(0);
        ev.dur_ns = unsafe { bpf_ktime_get_ns() }.saturating_sub(ev.ts_ns);
        ev.flags |= FLAG_RETURNED;
        if ev.ret < 0 {
            // A failed unshare started nothing.
            ev.flags &= !FLAG_CONTAINER_START;
        }
        send(ev);
    }
    // A mismatching kind is a stale entry of a syscall that never returned.
    let _ = PENDING.remove(&tid);
    0
}

macro_rules! syscall {
    ($kind:expr, $enter:ident, $exit:ident) => {
        #[tracepoint]
        pub fn $enter(ctx: TracePointContext) -> u32 {
            enter(&ctx, $kind)
        }

        #[tracepoint]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            exit(&ctx, $kind)
        }
    };
}

syscall!(Kind::Clone, sys_enter_clone, sys_exit_clone);
syscall!(Kind::Clone3, sys_enter_clone3, sys_exit_clone3);
syscall!(Kind::Unshare, sys_enter_unshare, sys_exit_unshare);
syscall!(Kind::Setns, sys_enter_setns, sys_exit_setns);
syscall!(Kind::PivotRoot, sys_enter_pivot_root, sys_exit_pivot_root);
syscall!(Kind::Chroot, sys_enter_chroot, sys_exit_chroot);
syscall!(Kind::Mount, sys_enter_mount, sys_exit_mount);
syscall!(Kind::Umount, sys_enter_umount, sys_exit_umount);
syscall!(Kind::Execve, sys_enter_execve, sys_exit_execve);
syscall!(Kind::Execveat, sys_enter_execveat, sys_exit_execveat);
syscall!(
    Kind::Sethostname,
    sys_enter_sethostname,
    sys_exit_sethostname
);
syscall!(Kind::Prctl, sys_enter_prctl, sys_exit_prctl);
syscall!(Kind::Seccomp, sys_enter_seccomp, sys_exit_seccomp);
