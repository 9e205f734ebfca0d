//! The tracer: eBPF probes on namespace syscalls and the process tree,
//! loaded into the kernel, and their events decoded in user space.

pub mod event;
pub mod flags;
pub mod preflight;
pub mod probes;
pub mod session;
pub mod tracefs;
