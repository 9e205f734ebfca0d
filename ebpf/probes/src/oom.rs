//! The OOM killer's choice of a tracked task.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use boxtrace_common::Kind;

use crate::maps::{config, data_loc_str, field, record, send, tracked};

#[tracepoint]
pub fn mark_victim(ctx: TracePointContext) -> u32 {
    // Fires in the context of whichever task ran into the limit; the
    // victim is in the record.
    let pid = field::<i32>(&ctx, config!(oom_pid)) as u32;
    let Some(t) = tracked(pid) else {
        return 0;
    };
    if let Some(ev) = record(Kind::OomVictim, pid, pid, &t) {
        let n = data_loc_str(&ctx, config!(oom_comm), &mut ev.str0);
        if n > 0 {
            // Report the victim's comm, not the current task's.
            ev.comm = [0; 16];
            let mut i = 0;
            while i < 15 && i < n as usize {
                ev.comm[i] = ev.str0[i];
                i += 1;
            }
        }
        ev.str_len[0] = 0;
        ev.args = [
            field::<u64>(&ctx, config!(oom_total_vm)),
            field::<u64>(&ctx, config!(oom_anon_rss)),
            field::<u64>(&ctx, config!(oom_file_rss)),
            field::<u64>(&ctx, config!(oom_shmem_rss)),
        ];
        send(ev);
    }
    0
}
