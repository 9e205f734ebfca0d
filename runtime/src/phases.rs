//! Phase marks: CLOCK_MONOTONIC timestamps of boxrun's phases, written
//! one per line as `NAME NANOSECONDS` to the file named by `--phase-marks`
//! so the harness can put them on the same timeline as the tracer.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    path::Path,
};

/// Now, on CLOCK_MONOTONIC, in nanoseconds.
pub fn now_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// Appends marks to a file; a no-op when none was asked for.
#[derive(Debug, Default)]
pub struct Marks {
    file: Option<File>,
}

impl Marks {
    pub fn open(path: Option<&Path>) -> io::Result<Self> {
        let file = path
            .map(|p| OpenOptions::new().create(true).append(true).open(p))
            .transpose()?;
        Ok(Self { file })
    }

    /// Records `name` at the current time. Best effort: a failing write
    /// must not fail the container.
    pub fn mark(&mut self, name: &str) {
        if let Some(f) = self.file.as_mut() {
            // One write(2) per line: boxrun and its init append to the
            // same file at the same time.
            let _ = f.write_all(format!("{name} {}\n", now_ns()).as_bytes());
        }
    }

    /// A copy for a forked child (same file, O_APPEND keeps lines whole).
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self {
            file: self.file.as_ref().map(File::try_clone).transpose()?,
        })
    }
}
