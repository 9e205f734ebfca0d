//! The tracer: eBPF probes on what the kernel does for containers, loaded
//! into the kernel, and their events decoded and attributed in user space.

pub mod attribution;
pub mod event;
pub mod filter;
pub mod flags;
pub mod preflight;
pub mod probes;
pub mod session;
pub mod tracefs;
