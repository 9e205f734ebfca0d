//! Kernel side of boxtrace: tracepoint programs that follow a tree of
//! tracked tasks and report namespace-related syscalls into a ring buffer.
//!
//! A task is tracked when its tid is a key of `TRACKED`. User space seeds the
//! map with the root of the traced command; `sched_process_fork` adds every
//! child of a tracked task and `sched_process_exit` removes the task, so the
//! whole tree is followed in the kernel without any user-space round trip.
#![no_std]
#![no_main]

mod maps;
mod process;
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
