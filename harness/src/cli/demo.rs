//! `boxtrace demo`: traces runc starting a busybox container, needing
//! nothing but what `scripts/setup` installs.

use std::{
    ffi::OsString,
    os::unix::fs::symlink,
    path::Path,
    process::{Command, ExitCode},
};

use anyhow::{Context as _, bail, ensure};

use super::{DemoArgs, TraceArgs, trace};

const BUSYBOX: &str = "/bin/busybox";
/// The container's hostname; its id adds boxtrace's pid, so two demos at
/// once do not share a cgroup.
const NAME: &str = "boxtrace-demo";

/// A busybox root filesystem and a `runc spec` config running `args`.
fn busybox_bundle(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(d))
            .with_context(|| format!("creating {}", rootfs.join(d).display()))?;
    }
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).context("copying busybox")?;
    for applet in ["sh", "hostname", "echo", "ps", "cat"] {
        symlink("busybox", rootfs.join("bin").join(applet)).context("linking applets")?;
    }
    let st = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(dir)
        .status()
        .context("running `runc spec` (is runc installed? run scripts/setup)")?;
    ensure!(st.success(), "`runc spec` failed: {st}");
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).context("reading config.json")?;
    let mut config: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: invalid JSON from runc spec", path.display()))?;
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = args.iter().map(|&a| serde_json::Value::from(a)).collect();
    config["hostname"] = NAME.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&config)?).context("writing config.json")?;
    Ok(())
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if !Path::new(BUSYBOX).exists() {
        bail!("{BUSYBOX} is missing: run scripts/setup (installs busybox-static)");
    }
    let bundle = tempfile::tempdir().context("creating the bundle directory")?;
    let state = tempfile::tempdir().context("creating runc's state directory")?;
    busybox_bundle(
        bundle.path(),
        &[
            "sh",
            "-c",
            "echo hello from $(hostname); cat /proc/self/cgroup | head -3",
        ],
    )?;
    let id = format!("{NAME}-{}", std::process::id());
    let argv: Vec<OsString> = vec![
        "runc".into(),
        "--root".into(),
        state.path().into(),
        "run".into(),
        "--bundle".into(),
        bundle.path().into(),
        id.into(),
    ];
    eprintln!(
        "boxtrace demo: tracing `runc run` of a busybox container ({})\n",
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
