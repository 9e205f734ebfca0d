//! Checks, before touching the kernel, that this process can load and
//! attach the probes, so a missing privilege is named instead of surfacing
//! as a bare EPERM from the bpf syscall.

use std::{fs, path::Path};

use thiserror::Error;

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Where the kernel exposes its own BTF.
pub const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, Error)]
pub enum PreflightError {
    #[error(
        "missing capability {missing}: boxtrace loads eBPF programs, which needs \
         CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN); run it as root (sudo boxtrace ...) \
         or grant them with `setcap cap_bpf,cap_perfmon,cap_sys_admin+ep <path to boxtrace>`"
    )]
    Capability { missing: &'static str },
    #[error("cannot read the capabilities of this process from /proc/self/status: {0}")]
    Status(String),
    #[error(
        "this kernel exposes no BTF ({KERNEL_BTF} is missing); boxtrace needs a kernel \
         built with CONFIG_DEBUG_INFO_BTF=y"
    )]
    NoBtf,
}

/// Effective capability set as a bit mask.
fn effective_caps(status: &str) -> Option<u64> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

/// Which capability is missing from `caps` for loading probes, if any.
pub fn missing_capability(caps: u64) -> Option<&'static str> {
    let has = |c: u32| caps & (1 << c) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return None;
    }
    Some(match (has(CAP_BPF), has(CAP_PERFMON)) {
        (false, false) => "CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)",
        (false, true) => "CAP_BPF",
        _ => "CAP_PERFMON",
    })
}

/// Checks privileges and kernel BTF.
pub fn check() -> Result<(), PreflightError> {
    let status = fs::read_to_string("/proc/self/status")
        .map_err(|e| PreflightError::Status(e.to_string()))?;
    let caps = effective_caps(&status)
        .ok_or_else(|| PreflightError::Status("no CapEff line".to_owned()))?;
    if let Some(missing) = missing_capability(caps) {
        return Err(PreflightError::Capability { missing });
    }
    if !Path::new(KERNEL_BTF).exists() {
        return Err(PreflightError::NoBtf);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_caps_are_enough() {
        assert_eq!(missing_capability(0x1ff_ffff_ffff), None);
        assert_eq!(missing_capability(1 << CAP_SYS_ADMIN), None);
        assert_eq!(
            missing_capability((1 << CAP_BPF) | (1 << CAP_PERFMON)),
            None
        );
    }

    #[test]
    fn names_what_is_missing() {
        assert_eq!(
            missing_capability(0),
            Some("CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)")
        );
        assert_eq!(missing_capability(1 << CAP_BPF), Some("CAP_PERFMON"));
        assert_eq!(missing_capability(1 << CAP_PERFMON), Some("CAP_BPF"));
    }

    #[test]
    fn parses_status() {
        let s = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(effective_caps(s), Some(0x1ff_ffff_ffff));
        assert_eq!(effective_caps("Name: x\n"), None);
    }
}
