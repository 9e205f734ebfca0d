//! Builds the eBPF probes (ebpf/probes) for the BPF target with the nightly
//! toolchain and bpf-linker, so `boxtrace` can embed the object file.

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
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
