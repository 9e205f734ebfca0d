//! `update`: new resource limits for a live container, from runc's flags
//! or a linux.resources JSON (containerd's shim sends it on stdin).

use std::{io::Read as _, process::ExitCode};

use anyhow::{Context as _, bail};
use boxrun::{
    bundle::check_resources,
    container::{cgroup_of, current_status},
    state::{Root, Status},
};
use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpu, LinuxMemory, LinuxPidsBuilder, LinuxResources,
};

use super::UpdateArgs;

/// Bytes from `512`, `64k`, `32m`, `1g` (binary units, as runc), or -1.
fn bytes(flag: &str, v: &str) -> anyhow::Result<i64> {
    let t = v.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, shift) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 10),
        Some('m') => (&t[..t.len() - 1], 20),
        Some('g') => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    num.parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|&n| n >= 0)
        .with_context(|| format!("--{flag} `{v}`: expected bytes such as 1048576, 64m or -1"))
}

fn read_resources(path: &std::path::Path) -> anyhow::Result<LinuxResources> {
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading --resources from stdin")?;
        s
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("reading --resources {}", path.display()))?
    };
    serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "--resources {}:{}:{}: {e}",
            path.display(),
            e.line(),
            e.column()
        )
    })
}

/// The resources to write: the JSON's, changed by the flags.
fn wanted(u: &UpdateArgs) -> anyhow::Result<LinuxResources> {
    let mut r = match &u.resources {
        Some(p) => read_resources(p)?,
        None => LinuxResources::default(),
    };
    if r.devices().is_some() {
        // Device rules are fixed at create (runc ignores them here too);
        // containerd sends the whole spec's resources, devices included.
        tracing::debug!("update: linux.resources.devices ignored");
        r.set_devices(None);
    }
    let mut mem: LinuxMemory = (*r.memory()).unwrap_or_default();
    let mut mem_set = r.memory().is_some();
    type Setter = for<'a> fn(&'a mut LinuxMemory, Option<i64>) -> &'a mut LinuxMemory;
    let setters: [(&str, &Option<String>, Setter); 3] = [
        ("memory", &u.memory, LinuxMemory::set_limit),
        ("memory-swap", &u.memory_swap, LinuxMemory::set_swap),
        (
            "memory-reservation",
            &u.memory_reservation,
            LinuxMemory::set_reservation,
        ),
    ];
    for (flag, v, set) in setters {
        if let Some(v) = v {
            set(&mut mem, Some(bytes(flag, v)?));
            mem_set = true;
        }
    }
    if mem_set {
        r.set_memory(Some(mem));
    }
    let mut cpu: LinuxCpu = r.cpu().clone().unwrap_or_default();
    let cpu_set = r.cpu().is_some()
        || u.cpu_quota.is_some()
        || u.cpu_period.is_some()
        || u.cpu_shares.is_some()
        || u.cpuset_cpus.is_some()
        || u.cpuset_mems.is_some();
    if let Some(q) = u.cpu_quota {
        cpu.set_quota(Some(q));
    }
    if let Some(p) = u.cpu_period {
        cpu.set_period(Some(p));
    }
    if let Some(s) = u.cpu_shares {
        cpu.set_shares(Some(s));
    }
    if let Some(c) = &u.cpuset_cpus {
        cpu.set_cpus(Some(c.clone()));
    }
    if let Some(m) = &u.cpuset_mems {
        cpu.set_mems(Some(m.clone()));
    }
    if cpu_set {
        r.set_cpu(Some(cpu));
    }
    if let Some(l) = u.pids_limit {
        r.set_pids(Some(LinuxPidsBuilder::default().limit(l).build()?));
    }
    if let Some(w) = u.blkio_weight {
        if !(10..=1000).contains(&w) {
            bail!("--blkio-weight {w}: expected 10 to 1000");
        }
        let mut b = r
            .block_io()
            .clone()
            .unwrap_or_else(|| LinuxBlockIoBuilder::default().build().expect("empty"));
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    Ok(r)
}

pub fn update(root: &Root, u: &UpdateArgs) -> anyhow::Result<ExitCode> {
    let r = wanted(u)?;
    check_resources(&r).context("update")?;
    let dir = root.open(&u.id)?;
    let st = dir.load()?;
    let status = current_status(&dir.dir, &st);
    if !matches!(status, Status::Created | Status::Running | Status::Paused) {
        bail!("container `{}` is {status:?}: nothing to update", u.id);
    }
    cgroup_of(&st).apply(&r)?;
    Ok(ExitCode::SUCCESS)
}
