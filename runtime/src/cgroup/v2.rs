//! cgroup v2: one directory in the unified hierarchy. Checked by the v2
//! test lane in a VM (this machine's controllers are all on v1).

use std::{fs, path::PathBuf};

use oci_spec::runtime::LinuxResources;

use super::{
    Cgroup, CgroupError,
    device_filter::{self, Rule},
    read, resolve, settings, write,
};

const ROOT: &str = "/sys/fs/cgroup";

pub fn plan(cgroups_path: &std::path::Path) -> Result<PathBuf, CgroupError> {
    let own = fs::read_to_string("/proc/self/cgroup").map_err(CgroupError::Proc)?;
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/")
        .to_owned();
    Ok(resolve(&PathBuf::from(ROOT), &own, cgroups_path))
}

pub fn make(cg: &Cgroup) -> Result<(), CgroupError> {
    let dir = &cg.dirs[0];
    // Enable the controllers on every ancestor so the leaf gets them.
    let mut ancestors: Vec<PathBuf> = dir
        .ancestors()
        .skip(1)
        .take_while(|p| p.starts_with(ROOT))
        .map(PathBuf::from)
        .collect();
    ancestors.reverse();
    fs::create_dir_all(dir).map_err(|source| CgroupError::Create {
        path: dir.clone(),
        source,
    })?;
    for a in ancestors {
        let avail = read(&a.join("cgroup.controllers")).unwrap_or_default();
        let enable: Vec<String> = avail.split_whitespace().map(|c| format!("+{c}")).collect();
        if !enable.is_empty() {
            // Best effort per controller: some (cpuset on old kernels) may refuse.
            for e in enable {
                let _ = fs::write(a.join("cgroup.subtree_control"), &e);
            }
        }
    }
    Ok(())
}

/// The device filter of a new cgroup: the spec's rules, then the OCI
/// default devices (they stay usable whatever the rules say, as on v1).
pub fn attach_devices(cg: &Cgroup, r: Option<&LinuxResources>) -> Result<(), CgroupError> {
    let mut rules: Vec<Rule> = r
        .and_then(|r| r.devices().as_ref())
        .into_iter()
        .flatten()
        .map(Rule::from_spec)
        .collect();
    rules.extend(
        super::DEFAULT_DEVICES
            .iter()
            .map(|&(major, minor)| Rule::char_allowed(major, minor)),
    );
    device_filter::attach(&cg.dirs[0], &rules)
}

/// Limits; device rules are not among them (see `attach_devices`, at
/// create only).
pub fn apply(cg: &Cgroup, r: &LinuxResources) -> Result<(), CgroupError> {
    let unified = r.unified().clone().unwrap_or_default();
    for s in settings::v2(r) {
        let path = cg.dirs[0].join(&s.file);
        if !path.exists() {
            return Err(if unified.contains_key(&s.file) {
                CgroupError::UnifiedFile(s.file)
            } else {
                CgroupError::MissingController(s.controller)
            });
        }
        write(&path, &s.value)?;
    }
    Ok(())
}

pub fn set_frozen(cg: &Cgroup, frozen: bool) -> Result<(), CgroupError> {
    let dir = &cg.dirs[0];
    write(&dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    for _ in 0..1000 {
        if read(&dir.join("cgroup.events"))?.lines().any(|l| l == want) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Err(CgroupError::Busy { path: dir.clone() })
}

pub fn oom_kills(cg: &Cgroup) -> Result<u64, CgroupError> {
    let text = read(&cg.dirs[0].join("memory.events"))?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}
