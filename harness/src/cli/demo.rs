//! `boxtrace demo`: a first look at what the tracer shows, needing nothing
//! but what `scripts/setup` installs.

use std::{ffi::OsString, path::Path, process::ExitCode};

use anyhow::bail;

use super::{DemoArgs, TraceArgs, trace};

const BUSYBOX: &str = "/bin/busybox";

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if !Path::new(BUSYBOX).exists() {
        bail!("{BUSYBOX} is missing: run scripts/setup (installs busybox-static)");
    }
    // A container-like start: new pid, mount, uts, ipc, net and cgroup
    // namespaces, a fresh /proc, then a workload that sets a hostname.
    let argv = [
        "unshare",
        "--fork",
        "--pid",
        "--mount",
        "--uts",
        "--ipc",
        "--net",
        "--cgroup",
        "--mount-proc",
        BUSYBOX,
        "sh",
        "-c",
        "hostname boxtrace-demo && hostname && ps",
    ];
    eprintln!("boxtrace demo: tracing `{}`\n", argv.join(" "));
    trace::run(TraceArgs {
        out: args.out,
        quiet: false,
        fail_on_loss: false,
        all: false,
        duration: None,
        kind: None,
        container: Vec::new(),
        sched: false,
        ring_kib: 16384,
        command: argv.iter().map(OsString::from).collect(),
    })
}
