//! cgroup tracepoints: directories made and removed, tasks attached, and
//! cgroup v2 freezing.
//!
//! A runtime creates and removes cgroups from its own process, so these
//! are reported for tracked tasks; an attach is also reported when the
//! task *moved* is tracked, so it is attributed to that task's container.
//! In `--all` mode every mkdir/rmdir/freeze is reported (they are rare) and
//! user space attributes them by path.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use boxtrace_common::{Kind, Track};

use crate::maps::{config, current, data_loc_str, field, record, send, tracked};

/// `int root` (the hierarchy id) is the first field of every cgroup event.
const ROOT: u32 = 8;

#[inline(always)]
fn unattributed() -> Option<Track> {
    (config!(all_mode) != 0).then_some(Track {
        root: 0,
        container: 0,
    })
}

#[inline(always)]
fn subject(tid: u32) -> Option<Track> {
    tracked(tid).or_else(unattributed)
}

#[inline(always)]
fn dir_event(ctx: &TracePointContext, kind: Kind) -> u32 {
    let (tid, tgid) = current();
    let Some(t) = subject(tid) else {
        return 0;
    };
    if let Some(ev) = record(kind, tid, tgid, &t) {
        ev.str_len[0] = data_loc_str(ctx, config!(cgroup_path), &mut ev.str0);
        ev.args[0] = field::<i32>(ctx, ROOT) as u64;
        ev.args[1] = field::<i32>(ctx, config!(cgroup_level)) as u64;
        if kind == Kind::CgroupNotifyFrozen {
            ev.args[2] = field::<i32>(ctx, config!(frozen_val)) as u64;
        }
        send(ev);
    }
    0
}

#[tracepoint]
pub fn cgroup_mkdir(ctx: TracePointContext) -> u32 {
    dir_event(&ctx, Kind::CgroupMkdir)
}

#[tracepoint]
pub fn cgroup_rmdir(ctx: TracePointContext) -> u32 {
    dir_event(&ctx, Kind::CgroupRmdir)
}

#[tracepoint]
pub fn cgroup_freeze(ctx: TracePointContext) -> u32 {
    dir_event(&ctx, Kind::CgroupFreeze)
}

#[tracepoint]
pub fn cgroup_unfreeze(ctx: TracePointContext) -> u32 {
    dir_event(&ctx, Kind::CgroupUnfreeze)
}

#[tracepoint]
pub fn cgroup_notify_frozen(ctx: TracePointContext) -> u32 {
    dir_event(&ctx, Kind::CgroupNotifyFrozen)
}

#[tracepoint]
pub fn cgroup_attach_task(ctx: TracePointContext) -> u32 {
    let (tid, tgid) = current();
    let pid = field::<i32>(&ctx, config!(attach_pid)) as u32;
    // Attribute to the moved task's tree first: that is the container.
    // In --all mode every attach is reported: the runtime's, which names
    // the container's cgroup, happens before the container is known.
    let Some(t) = tracked(pid).or_else(|| tracked(tid)).or_else(unattributed) else {
        return 0;
    };
    if let Some(ev) = record(Kind::CgroupAttach, tid, tgid, &t) {
        ev.str_len[0] = data_loc_str(&ctx, config!(attach_path), &mut ev.str0);
        ev.args[0] = field::<i32>(&ctx, ROOT) as u64;
        ev.args[1] = u64::from(pid);
        send(ev);
    }
    0
}
