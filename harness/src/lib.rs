//! boxtrace: traces what the kernel does while containers start and run,
//! and benchmarks container runtimes (`bench`).

pub mod bench;
pub mod output;
pub mod trace;
