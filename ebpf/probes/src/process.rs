//! Process life of tracked tasks: fork (tree following), exec, exit with
//! its status.
//!
//! The exit status is not in `sched_process_exit`'s record, so it is
//! collected on the way: `exit`/`exit_group` remember the code, a fatal
//! signal's delivery remembers the signal, and the exit reads whichever
//! came last, encoded as a wait(2) status.

use aya_ebpf::{
    macros::{map, tracepoint},
    maps::LruHashMap,
    programs::TracePointContext,
};
use boxtrace_common::{FLAG_CONTAINER_START, Kind};

use crate::maps::{
    CLONE_NEWNS, CLONE_NEWPID, PARENT, PENDING, ancestors, config, current, data_loc_str, field,
    record, send, track, tracked, untrack,
};

/// Exit status by tid (exit) or by `tgid | GROUP` (exit_group, fatal signal).
#[map]
static EXIT_STATUS: LruHashMap<u32, u32> = LruHashMap::with_max_entries(16_384, 0);

/// Marks a key as a thread group's (pids fit in 22 bits).
const GROUP: u32 = 0x8000_0000;
const SIGKILL: i32 = 9;
const BPF_NOEXIST: u64 = 1;
const UNKNOWN_STATUS: u64 = u32::MAX as u64;

#[tracepoint]
pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
    // Fires in the parent's context.
    let (tid, tgid) = current();
    let child = field::<i32>(&ctx, config!(fork_child_pid)) as u32;
    if child == 0 {
        return 0;
    }
    if config!(all_mode) != 0 {
        let _ = PARENT.insert(&child, &tgid, 0);
    }
    let Some(t) = tracked(tid) else {
        return 0;
    };
    let mut child_track = t;
    // The clone in progress, if this fork comes from clone/clone3 (not
    // from a kernel-internal fork path).
    // SAFETY: copied out at once.
    let clone_flags = match unsafe { PENDING.get(&tid) } {
        Some(p) if p.kind == Kind::Clone as u32 || p.kind == Kind::Clone3 as u32 => p.args[0],
        _ => 0,
    };
    if t.container == 0 && clone_flags & (CLONE_NEWPID | CLONE_NEWNS) != 0 {
        // A clone creating a pid or mount namespace makes the child the
        // first task of a container: it keys everything below it.
        child_track.container = child;
    }
    // Track before reporting: the child's first syscall may already run.
    track(child, &child_track);
    if let Some(ev) = record(Kind::Fork, tid, tgid, &t) {
        ev.args[0] = u64::from(child);
        ev.args[2] = clone_flags;
        if child_track.container != t.container {
            ev.flags |= FLAG_CONTAINER_START;
            ev.args[1] = ancestors(tid).0;
        }
        send(ev);
    }
    0
}

#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let (tid, tgid) = current();
    let Some(t) = tracked(tid) else {
        return 0;
    };
    if let Some(ev) = record(Kind::Exec, tid, tgid, &t) {
        ev.str_len[0] = data_loc_str(&ctx, config!(exec_filename), &mut ev.str0);
        ev.args[0] = field::<i32>(&ctx, config!(exec_old_pid)) as u64;
        send(ev);
    }
    0
}

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    let (tid, tgid) = current();
    let Some(t) = tracked(tid) else {
        return 0;
    };
    let off = config!(exit_group_dead);
    let group_dead = if off == 0 {
        tid == tgid
    } else {
        field::<u8>(&ctx, off) != 0
    };
    // SAFETY: copied out at once.
    let status = unsafe {
        EXIT_STATUS
            .get(&tid)
            .or_else(|| EXIT_STATUS.get(&(tgid | GROUP)))
    }
    .map_or(UNKNOWN_STATUS, |s| u64::from(*s));
    if let Some(ev) = record(Kind::Exit, tid, tgid, &t) {
        ev.args = [status, u64::from(group_dead), 0, 0];
        send(ev);
    }
    untrack(tid);
    let _ = PENDING.remove(&tid);
    let _ = EXIT_STATUS.remove(&tid);
    if group_dead {
        let _ = EXIT_STATUS.remove(&(tgid | GROUP));
    }
    0
}

#[inline(always)]
fn remember_exit(ctx: &TracePointContext, key: u32) -> u32 {
    // SAFETY: sys_enter_exit*/error_code is the first argument.
    let code = unsafe { ctx.read_at::<u64>(16) }.unwrap_or(0) as u32;
    let _ = EXIT_STATUS.insert(&key, &((code & 0xff) << 8), 0);
    0
}

#[tracepoint]
pub fn sys_enter_exit(ctx: TracePointContext) -> u32 {
    let (tid, _) = current();
    if tracked(tid).is_none() {
        return 0;
    }
    remember_exit(&ctx, tid)
}

#[tracepoint]
pub fn sys_enter_exit_group(ctx: TracePointContext) -> u32 {
    let (tid, tgid) = current();
    if tracked(tid).is_none() {
        return 0;
    }
    remember_exit(&ctx, tgid | GROUP)
}

/// Whether `sig` ends the process when its handler is SIG_DFL.
#[inline(always)]
fn fatal_by_default(sig: i32) -> bool {
    // SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGWINCH
    !matches!(sig, 17..=23 | 28) && sig > 0 && sig < 32
}

#[tracepoint]
pub fn signal_deliver(ctx: TracePointContext) -> u32 {
    let (tid, tgid) = current();
    if tracked(tid).is_none() {
        return 0;
    }
    let sig = field::<i32>(&ctx, config!(signal_sig));
    let handler = field::<u64>(&ctx, config!(signal_handler));
    if sig == SIGKILL || (handler == 0 && fatal_by_default(sig)) {
        // NOEXIST: exit_group(2) kills the other threads with SIGKILL;
        // the group's status stays the code it was given.
        let _ = EXIT_STATUS.insert(&(tgid | GROUP), &(sig as u32), BPF_NOEXIST);
    }
    0
}
