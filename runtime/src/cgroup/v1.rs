//! cgroup v1: one directory per hierarchy the container uses.

use std::{collections::HashMap, fs, path::PathBuf};

use oci_spec::runtime::LinuxResources;

use super::{Cgroup, CgroupError, read, resolve, settings, write};

/// Hierarchies boxrun puts containers in.
const CONTROLLERS: &[&str] = &[
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
];

/// controller -> (mount point, this process's path in that hierarchy).
fn hierarchies() -> Result<HashMap<String, (PathBuf, String)>, CgroupError> {
    let mounts = fs::read_to_string("/proc/self/mountinfo").map_err(CgroupError::Proc)?;
    let own = fs::read_to_string("/proc/self/cgroup").map_err(CgroupError::Proc)?;
    let mut out = HashMap::new();
    for line in mounts.lines() {
        // id parent maj:min root mountpoint opts... - fstype source superopts
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split_whitespace();
        if r.next() != Some("cgroup") {
            continue;
        }
        let superopts = r.nth(1).unwrap_or("");
        let fields: Vec<&str> = left.split_whitespace().collect();
        let (Some(root), Some(mountpoint)) = (fields.get(3), fields.get(4)) else {
            continue;
        };
        for ctrl in superopts.split(',').filter(|c| CONTROLLERS.contains(c)) {
            // Our path in this hierarchy, relative to the mount's root.
            let mine = own
                .lines()
                .filter_map(|l| {
                    let mut f = l.splitn(3, ':').skip(1);
                    f.next().zip(f.next())
                })
                .find(|(ctrls, _)| ctrls.split(',').any(|c| c == ctrl))
                .map(|(_, p)| p)
                .unwrap_or("/");
            let rel = mine.strip_prefix(root).unwrap_or(mine);
            out.insert(ctrl.to_owned(), (PathBuf::from(mountpoint), rel.to_owned()));
        }
    }
    Ok(out)
}

/// One directory per hierarchy; co-mounted controllers share one.
pub fn plan(cgroups_path: &std::path::Path) -> Result<Vec<PathBuf>, CgroupError> {
    let hs = hierarchies()?;
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut ctrls: Vec<&String> = hs.keys().collect();
    ctrls.sort();
    for ctrl in ctrls {
        let (mount, own) = &hs[ctrl];
        let dir = resolve(mount, own, cgroups_path);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    Ok(dirs)
}

pub fn make(cg: &Cgroup) -> Result<(), CgroupError> {
    let cpuset = dir_of(cg, "cpuset");
    let devices = dir_of(cg, "devices").filter(|d| !d.exists());
    for dir in &cg.dirs {
        fs::create_dir_all(dir).map_err(|source| CgroupError::Create {
            path: dir.clone(),
            source,
        })?;
        if Some(dir) == cpuset {
            inherit_cpuset(dir)?;
        }
    }
    // Default deny: a new devices cgroup inherits its parent's (often
    // everything); the container gets the OCI default devices and what
    // linux.resources.devices allows, nothing more (as runc). A cgroup
    // that already existed (shared with others) keeps its rules.
    if let Some(dir) = devices {
        write(&dir.join("devices.deny"), "a")?;
        allow_defaults(dir)?;
    }
    Ok(())
}

/// A new v1 cpuset has no cpus and no mems (no task can join it): copy
/// them down from the nearest ancestor that has them.
fn inherit_cpuset(dir: &std::path::Path) -> Result<(), CgroupError> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let mut chain = Vec::new();
        let mut d = dir.to_owned();
        loop {
            let v = read(&d.join(file))?;
            if !v.trim().is_empty() {
                for c in chain.iter().rev() {
                    write(&PathBuf::from(c).join(file), v.trim())?;
                }
                break;
            }
            chain.push(d.clone());
            match d.parent() {
                Some(p) if p.join(file).exists() => d = p.to_owned(),
                _ => break,
            }
        }
    }
    Ok(())
}

/// The directory of `controller`, if the cgroup has that hierarchy.
fn dir_of<'a>(cg: &'a Cgroup, controller: &str) -> Option<&'a PathBuf> {
    cg.dirs.iter().find(|d| {
        d.strip_prefix("/sys/fs/cgroup")
            .ok()
            .and_then(|r| r.components().next())
            .is_some_and(|c| {
                c.as_os_str()
                    .to_str()
                    .is_some_and(|n| n.split(',').any(|x| x == controller))
            })
    })
}

pub fn apply(cg: &Cgroup, r: &LinuxResources) -> Result<(), CgroupError> {
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(CgroupError::UnifiedOnV1);
    }
    let mut all = settings::v1(r);
    order_memory(cg, &mut all);
    for s in all {
        let dir = dir_of(cg, s.controller).ok_or(CgroupError::MissingController(s.controller))?;
        let path = dir.join(&s.file);
        if s.file == "memory.memsw.limit_in_bytes" && !path.exists() {
            // Kernel without swap accounting: nothing to limit.
            tracing::warn!("swap accounting is off; linux.resources.memory.swap ignored");
            continue;
        }
        write(&path, &s.value)?;
    }
    // Device rules are set at create only: `update` leaves them be.
    if let Some(devices) = dir_of(cg, "devices")
        && r.devices().as_ref().is_some_and(|d| !d.is_empty())
    {
        apply_devices(devices, r)?;
    }
    Ok(())
}

/// memory.limit_in_bytes may never exceed memory.memsw.limit_in_bytes:
/// when both change and the new memory limit is above the current
/// memory+swap one (`update` raising both), memsw goes first.
fn order_memory(cg: &Cgroup, all: &mut [settings::Setting]) {
    let pos = |f: &str| all.iter().position(|s| s.file == f);
    let (Some(li), Some(si)) = (
        pos("memory.limit_in_bytes"),
        pos("memory.memsw.limit_in_bytes"),
    ) else {
        return;
    };
    let as_limit = |v: &str| match v.trim().parse::<i64>() {
        Ok(n) if n >= 0 => n as u64,
        _ => u64::MAX,
    };
    let current = dir_of(cg, "memory")
        .and_then(|d| std::fs::read_to_string(d.join("memory.memsw.limit_in_bytes")).ok())
        .map_or(u64::MAX, |v| as_limit(&v));
    if as_limit(&all[li].value) > current && li < si {
        all.swap(li, si);
    }
}

fn apply_devices(dir: &std::path::Path, r: &LinuxResources) -> Result<(), CgroupError> {
    for rule in r.devices().iter().flatten() {
        let typ = rule.typ().map_or("a".to_owned(), |t| t.as_str().to_owned());
        let num = |n: Option<i64>| n.map_or("*".to_owned(), |n| n.to_string());
        let access = rule.access().clone().unwrap_or_else(|| "rwm".to_owned());
        let line = if typ == "a" {
            "a".to_owned()
        } else {
            format!("{typ} {}:{} {access}", num(rule.major()), num(rule.minor()))
        };
        let file = if rule.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        };
        write(&dir.join(file), &line)?;
    }
    // The spec's rules may deny all again: the defaults come back.
    allow_defaults(dir)
}

fn allow_defaults(dir: &std::path::Path) -> Result<(), CgroupError> {
    use std::io::Write as _;
    // One open file, one write(2) per rule (the kernel takes one rule a
    // write): a start pays for eight rules.
    let path = dir.join("devices.allow");
    let err = |value: String| {
        let path = path.clone();
        move |source| CgroupError::Write {
            path,
            value,
            source,
        }
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(err(String::new()))?;
    for (major, minor) in super::DEFAULT_DEVICES {
        let minor = minor.map_or("*".to_owned(), |m| m.to_string());
        let rule = format!("c {major}:{minor} rwm");
        f.write_all(rule.as_bytes()).map_err(err(rule))?;
    }
    Ok(())
}

pub fn set_frozen(cg: &Cgroup, frozen: bool) -> Result<(), CgroupError> {
    let dir = dir_of(cg, "freezer").ok_or(CgroupError::MissingController("freezer"))?;
    let want = if frozen { "FROZEN" } else { "THAWED" };
    write(&dir.join("freezer.state"), want)?;
    // Freezing is asynchronous: wait until the kernel says it is done.
    for _ in 0..1000 {
        if read(&dir.join("freezer.state"))?.trim() == want {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Err(CgroupError::Busy { path: dir.clone() })
}

pub fn oom_kills(cg: &Cgroup) -> Result<u64, CgroupError> {
    let dir = dir_of(cg, "memory").ok_or(CgroupError::MissingController("memory"))?;
    let text = read(&dir.join("memory.oom_control"))?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}
