//! Builds what `boxtrace` embeds: the eBPF probes (ebpf/probes, for the
//! BPF target with the nightly toolchain and bpf-linker) and the built-in
//! image's workload program (workload/, statically linked).

use std::{path::Path, process::Command};

use anyhow::{Context as _, anyhow, bail};
use aya_build::{Package, Toolchain};

/// Compiles workload/src/main.rs with rustc alone (it uses only std),
/// statically, so it runs in a rootfs that holds nothing else. A cargo
/// build could not do this per crate: `+crt-static` in RUSTFLAGS would
/// reach proc-macros too.
fn build_workload() -> anyhow::Result<()> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workload/src/main.rs");
    println!("cargo:rerun-if-changed={}", src.display());
    let out = Path::new(&std::env::var("OUT_DIR")?).join("workload");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let status = Command::new(&rustc)
        .args(["--edition", "2024", "--crate-name", "workload"])
        .args(["-C", "opt-level=2", "-C", "target-feature=+crt-static"])
        .args(["-C", "strip=symbols", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .with_context(|| format!("running {rustc}"))?;
    if !status.success() {
        bail!("compiling {} statically failed: {status}", src.display());
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    build_workload()?;
    let meta = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let probes = meta
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "boxtrace-probes")
        .ok_or_else(|| anyhow!("package boxtrace-probes not found in the workspace"))?;
    let root = probes
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", probes.manifest_path))?;
    // The probes depend on the shared record types too.
    println!("cargo:rerun-if-changed={}/../common/src", root);
    aya_build::build_ebpf(
        [Package {
            name: probes.name.as_str(),
            root_dir: root.as_str(),
            ..Default::default()
        }],
        Toolchain::default(),
    )
}
