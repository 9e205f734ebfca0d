//! Benchmarks of container runtimes: drivers, images, the startup
//! scenario, statistics, summaries, comparison and the report directory.

pub mod compare;
pub mod cpu;
pub mod driver;
pub mod freeze;
pub mod image;
pub mod io;
pub mod limits;
pub mod limits_report;
pub mod memory;
pub mod phases;
pub mod pids;
pub mod report;
pub mod scratch;
pub mod startup;
pub mod stats;
pub mod summary;
