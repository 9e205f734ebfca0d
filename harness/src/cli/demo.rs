//! `boxtrace demo`: traces boxrun (or another runtime) starting a
//! container of the built-in image, needing nothing but this build.

use std::{ffi::OsString, process::ExitCode};

use anyhow::Context as _;
use boxtrace::bench::{
    driver::find_binary,
    image::{Image, ImageKind},
};

use super::{DemoArgs, TraceArgs, trace};

/// The container's id prefix; boxtrace's pid makes two demos at once
/// distinct.
const NAME: &str = "boxtrace-demo";

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let runtime = find_binary(&args.runtime).with_context(|| {
        format!(
            "runtime `{}` not found (boxrun is built with `cargo build --release -p boxrun`; \
             runc and crun come with scripts/setup)",
            args.runtime
        )
    })?;
    let image = Image::prepare(ImageKind::Builtin, &["hello"])?;
    let state = tempfile::Builder::new()
        .prefix("boxtrace-demo-")
        .tempdir()
        .context("creating the runtime's state directory")?;
    let id = format!("{NAME}-{}", std::process::id());
    let argv: Vec<OsString> = vec![
        runtime.clone().into(),
        "--root".into(),
        state.path().into(),
        "run".into(),
        "--bundle".into(),
        image.bundle.clone().into(),
        id.into(),
    ];
    eprintln!(
        "boxtrace demo: tracing `{} run` of a container of the built-in image ({})\n",
        runtime.display(),
        argv.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    trace::run(TraceArgs {
        out: args.out,
        quiet: false,
        fail_on_loss: false,
        all: false,
        duration: None,
        // All of it is some 170 lines: show the container's life in outline.
        kind: Some("ns,fs,cgroup,fork,exec,exit,sethostname,prctl,oom_victim".to_owned()),
        no_threads: true,
        container: Vec::new(),
        sched: false,
        ring_kib: 16384,
        command: argv,
    })
}
