//! Fields boxrun does not implement yet are refused when they would change
//! isolation or limits: running without them would be silently wrong.

use oci_spec::runtime::Spec;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum Unsupported {
    #[error("field `{0}` is not supported by boxrun yet")]
    Field(&'static str),
    #[error("`linux.resources.memory.limit` {0} is out of range (at least 4096 bytes, or -1)")]
    MemoryLimit(i64),
    #[error("`linux.resources.cpu.{field}` {value} is out of range")]
    Cpu { field: &'static str, value: i64 },
    #[error("`linux.resources.pids.limit` {0} is out of range (at least 1, or -1)")]
    Pids(i64),
    #[error("`linux.resources.unified` key `{0}` is not a cgroup file name")]
    UnifiedKey(String),
    #[error("namespace `{0}` appears twice in `linux.namespaces`")]
    DuplicateNamespace(String),
    #[error("`process.ioPriority.priority` {0} is out of range (0 to 7)")]
    IoPriority(i64),
    #[error("`linux.devices[].path` `{0}` is not below /dev")]
    DevicePath(String),
    #[error("`linux.devices[]` `{0}`: type must be c, b, u or p")]
    DeviceType(String),
    #[error("`hooks.{kind}[].path` `{path}` is not an absolute path")]
    HookPath { kind: &'static str, path: String },
    #[error("`hooks.{kind}[].timeout` {value} must be more than 0")]
    HookTimeout { kind: &'static str, value: i64 },
}

fn all_hooks(spec: &Spec) -> impl Iterator<Item = (&'static str, &oci_spec::runtime::Hook)> {
    use crate::hooks::Kind;
    Kind::ALL.into_iter().flat_map(move |k| {
        k.of(spec.hooks().as_ref())
            .iter()
            .map(move |h| (k.name(), h))
    })
}

/// Checks the fields boxrun acts on and refuses those it cannot honour.
pub fn check(spec: &Spec) -> Result<(), Unsupported> {
    for (kind, h) in all_hooks(spec) {
        if !h.path().is_absolute() {
            return Err(Unsupported::HookPath {
                kind,
                path: h.path().display().to_string(),
            });
        }
        if let Some(t) = h.timeout().filter(|&t| t <= 0) {
            return Err(Unsupported::HookTimeout { kind, value: t });
        }
    }
    if let Some(p) = spec.process() {
        if p.scheduler().is_some() {
            return Err(Unsupported::Field("process.scheduler"));
        }
        if p.exec_cpu_affinity().is_some() {
            return Err(Unsupported::Field("process.execCPUAffinity"));
        }
        if let Some(prio) = p.io_priority()
            && !(0..=7).contains(&prio.priority())
        {
            return Err(Unsupported::IoPriority(prio.priority()));
        }
    }
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    for d in linux.devices().iter().flatten() {
        if !d.path().starts_with("/dev/") {
            return Err(Unsupported::DevicePath(d.path().display().to_string()));
        }
        if d.typ() == oci_spec::runtime::LinuxDeviceType::A {
            return Err(Unsupported::DeviceType(d.path().display().to_string()));
        }
    }
    if linux
        .seccomp()
        .as_ref()
        .is_some_and(|s| s.listener_path().is_some())
    {
        return Err(Unsupported::Field("linux.seccomp.listenerPath"));
    }
    if linux.intel_rdt().is_some() {
        return Err(Unsupported::Field("linux.intelRdt"));
    }
    if linux
        .personality()
        .as_ref()
        .is_some_and(|p| p.flags().as_ref().is_some_and(|f| !f.is_empty()))
    {
        // runc accepts none either; the spec defines no flag names.
        return Err(Unsupported::Field("linux.personality.flags"));
    }
    if linux.time_offsets().is_some() {
        return Err(Unsupported::Field("linux.timeOffsets"));
    }
    if linux.net_devices().is_some() {
        return Err(Unsupported::Field("linux.netDevices"));
    }
    let mut seen = Vec::new();
    for ns in linux.namespaces().iter().flatten() {
        let t = ns.typ().to_string();
        if seen.contains(&t) {
            return Err(Unsupported::DuplicateNamespace(t));
        }
        seen.push(t);
    }
    if let Some(r) = linux.resources() {
        resources(r)?;
    }
    Ok(())
}

/// The resource fields boxrun can set, in range: at create and `update`.
pub fn resources(r: &oci_spec::runtime::LinuxResources) -> Result<(), Unsupported> {
    if r.hugepage_limits().as_ref().is_some_and(|v| !v.is_empty()) {
        return Err(Unsupported::Field("linux.resources.hugepageLimits"));
    }
    for k in r.unified().iter().flatten().map(|(k, _)| k) {
        let ok = k.contains('.') && !k.starts_with('.') && !k.contains('/');
        if !ok {
            return Err(Unsupported::UnifiedKey(k.clone()));
        }
    }
    if r.rdma().is_some() {
        return Err(Unsupported::Field("linux.resources.rdma"));
    }
    if r.network().is_some() {
        return Err(Unsupported::Field("linux.resources.network"));
    }
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit().filter(|&l| l != -1 && l < 4096) {
            return Err(Unsupported::MemoryLimit(l));
        }
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            return Err(Unsupported::Field("linux.resources.memory.kernel"));
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(q) = c.quota().filter(|&q| q != -1 && q < 1000) {
            return Err(Unsupported::Cpu {
                field: "quota",
                value: q,
            });
        }
        if let Some(p) = c.period().filter(|&p| !(1000..=1_000_000).contains(&p)) {
            return Err(Unsupported::Cpu {
                field: "period",
                value: p as i64,
            });
        }
        if let Some(s) = c.shares().filter(|&s| !(2..=262_144).contains(&s)) {
            return Err(Unsupported::Cpu {
                field: "shares",
                value: s as i64,
            });
        }
        if c.realtime_runtime().is_some() || c.realtime_period().is_some() {
            return Err(Unsupported::Field("linux.resources.cpu.realtime*"));
        }
    }
    if let Some(l) = r
        .pids()
        .as_ref()
        .map(|p| p.limit())
        .filter(|&l| l != -1 && l < 1)
    {
        return Err(Unsupported::Pids(l));
    }
    Ok(())
}
