//! Kernel side of boxtrace: tracepoint programs that follow trees of
//! tracked tasks and report what the kernel did for them into a ring buffer.
//!
//! A task is tracked when its tid is a key of `TRACKED`. User space seeds the
//! map with the root of the traced command (or, in `--all` mode, any task
//! creating a pid or mount namespace is seeded here); `sched_process_fork`
//! adds every child of a tracked task and `sched_process_exit` removes the
//! task, so whole trees are followed without any user-space round trip.
#![no_std]
#![no_main]

mod cgroup;
mod maps;
mod oom;
mod process;
mod sched;
mod syscalls;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // The verifier rejects any reachable panic, so this is never called.
    loop {}
}

/// The kernel refuses programs without a GPL-compatible license when they
/// call GPL-only helpers (bpf_probe_read_user and friends).
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
