//! Benchmarks of container runtimes: drivers, images, the startup
//! scenario, statistics, summaries, comparison and the report directory.

pub mod compare;
pub mod driver;
pub mod image;
pub mod phases;
pub mod report;
pub mod scratch;
pub mod startup;
pub mod stats;
pub mod summary;
