//! CPU switches to and from tracked tasks (attached only on request: it
//! fires on every context switch of the machine).

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use boxtrace_common::Kind;

use crate::maps::{config, current, field, record, send, tracked};

#[tracepoint]
pub fn sched_switch(ctx: TracePointContext) -> u32 {
    let prev = field::<i32>(&ctx, config!(switch_prev_pid)) as u32;
    let next = field::<i32>(&ctx, config!(switch_next_pid)) as u32;
    let (t, tid) = match (tracked(prev), tracked(next)) {
        (Some(t), _) => (t, prev),
        (None, Some(t)) => (t, next),
        (None, None) => return 0,
    };
    let (_, tgid) = current();
    let tgid = if tid == prev { tgid } else { 0 };
    if let Some(ev) = record(Kind::SchedSwitch, tid, tgid, &t) {
        ev.args = [
            u64::from(prev),
            u64::from(next),
            field::<i64>(&ctx, config!(switch_prev_state)) as u64,
            0,
        ];
        send(ev);
    }
    0
}
