//! Translation of `linux.resources` into cgroup file writes, per driver.
//! Pure functions: the drivers only write what these return.

use oci_spec::runtime::{LinuxBlockIo, LinuxResources};

/// One write: `controller` is the v1 hierarchy (ignored on v2), `file`
/// the interface file, `value` what to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub controller: &'static str,
    pub file: String,
    pub value: String,
}

fn set(controller: &'static str, file: &'static str, value: impl ToString) -> Setting {
    Setting {
        controller,
        file: file.to_owned(),
        value: value.to_string(),
    }
}

fn limit(v: i64) -> String {
    if v < 0 {
        "max".to_owned()
    } else {
        v.to_string()
    }
}

/// cgroup v1 writes, in an order the kernel accepts (memory limit before
/// memsw, period before quota).
pub fn v1(r: &LinuxResources) -> Vec<Setting> {
    let mut out = Vec::new();
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit() {
            out.push(set("memory", "memory.limit_in_bytes", l));
        }
        if let Some(s) = m.swap() {
            out.push(set("memory", "memory.memsw.limit_in_bytes", s));
        }
        if let Some(r) = m.reservation() {
            out.push(set("memory", "memory.soft_limit_in_bytes", r));
        }
        if let Some(s) = m.swappiness() {
            out.push(set("memory", "memory.swappiness", s));
        }
        if m.disable_oom_killer() == Some(true) {
            out.push(set("memory", "memory.oom_control", 1));
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares() {
            out.push(set("cpu", "cpu.shares", s));
        }
        if let Some(p) = c.period() {
            out.push(set("cpu", "cpu.cfs_period_us", p));
        }
        if let Some(q) = c.quota() {
            out.push(set("cpu", "cpu.cfs_quota_us", q));
        }
        if let Some(cpus) = c.cpus() {
            out.push(set("cpuset", "cpuset.cpus", cpus));
        }
        if let Some(mems) = c.mems() {
            out.push(set("cpuset", "cpuset.mems", mems));
        }
    }
    if let Some(p) = r.pids() {
        out.push(set("pids", "pids.max", limit(p.limit())));
    }
    if let Some(b) = r.block_io() {
        if let Some(w) = b.weight() {
            out.push(set("blkio", "blkio.weight", w));
        }
        for (file, rates) in throttles(b) {
            for (major, minor, rate) in rates {
                out.push(set(
                    "blkio",
                    file_v1(file),
                    format!("{major}:{minor} {rate}"),
                ));
            }
        }
    }
    out
}

fn file_v1(kind: &str) -> &'static str {
    match kind {
        "rbps" => "blkio.throttle.read_bps_device",
        "wbps" => "blkio.throttle.write_bps_device",
        "riops" => "blkio.throttle.read_iops_device",
        _ => "blkio.throttle.write_iops_device",
    }
}

type Rates = Vec<(i64, i64, u64)>;

/// (io.max key, [(major, minor, rate)]) for each throttle kind.
fn throttles(b: &LinuxBlockIo) -> Vec<(&'static str, Rates)> {
    let list = |v: &Option<Vec<oci_spec::runtime::LinuxThrottleDevice>>| -> Rates {
        v.iter()
            .flatten()
            .map(|d| (d.major(), d.minor(), d.rate()))
            .collect()
    };
    vec![
        ("rbps", list(b.throttle_read_bps_device())),
        ("wbps", list(b.throttle_write_bps_device())),
        ("riops", list(b.throttle_read_iops_device())),
        ("wiops", list(b.throttle_write_iops_device())),
    ]
}

/// cgroup v1 `cpu.shares` (2..262144) as cgroup v2 `cpu.weight`
/// (1..10000), the conversion runc and crun use.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 100;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

/// cgroup v2 writes.
/// The controller a `linux.resources.unified` key belongs to (its prefix);
/// `cgroup` for the core files every cgroup has.
fn unified_controller(key: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "cgroup", "memory", "cpu", "cpuset", "io", "pids", "hugetlb", "rdma", "misc",
    ];
    let prefix = key.split('.').next().unwrap_or_default();
    KNOWN
        .iter()
        .find(|k| **k == prefix)
        .copied()
        .unwrap_or("unknown")
}

pub fn v2(r: &LinuxResources) -> Vec<Setting> {
    let mut out = Vec::new();
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit() {
            out.push(set("memory", "memory.max", limit(l)));
        }
        if let Some(r) = m.reservation() {
            out.push(set("memory", "memory.low", limit(r)));
        }
        // v1's swap is memory+swap; v2's swap.max is swap alone.
        if let (Some(s), l) = (m.swap(), m.limit()) {
            let v = match l {
                Some(l) if s >= 0 && l >= 0 => (s - l).max(0).to_string(),
                _ => limit(s),
            };
            out.push(set("memory", "memory.swap.max", v));
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares() {
            out.push(set("cpu", "cpu.weight", shares_to_weight(s)));
        }
        if c.quota().is_some() || c.period().is_some() {
            let q = c.quota().map_or("max".to_owned(), limit);
            let p = c.period().unwrap_or(100_000);
            out.push(set("cpu", "cpu.max", format!("{q} {p}")));
        }
        if let Some(cpus) = c.cpus() {
            out.push(set("cpuset", "cpuset.cpus", cpus));
        }
        if let Some(mems) = c.mems() {
            out.push(set("cpuset", "cpuset.mems", mems));
        }
    }
    if let Some(p) = r.pids() {
        out.push(set("pids", "pids.max", limit(p.limit())));
    }
    // Written last, as runc does: they override the translated fields.
    for (k, v) in r.unified().iter().flatten() {
        out.push(Setting {
            controller: unified_controller(k),
            file: k.clone(),
            value: v.clone(),
        });
    }
    if let Some(b) = r.block_io() {
        if let Some(w) = b.weight() {
            // blkio.weight 10..1000 -> io.weight 1..10000
            out.push(set(
                "io",
                "io.weight",
                format!("default {}", u64::from(w) * 10),
            ));
        }
        let mut devices: Vec<((i64, i64), Vec<String>)> = Vec::new();
        for (key, rates) in throttles(b) {
            for (major, minor, rate) in rates {
                let entry = match devices.iter_mut().find(|(d, _)| *d == (major, minor)) {
                    Some(e) => e,
                    None => {
                        devices.push(((major, minor), Vec::new()));
                        devices.last_mut().expect("just pushed")
                    }
                };
                entry.1.push(format!("{key}={rate}"));
            }
        }
        for ((major, minor), kv) in devices {
            out.push(set(
                "io",
                "io.max",
                format!("{major}:{minor} {}", kv.join(" ")),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn v1_memory_cpu_pids() {
        let r = resources(
            r#"{"memory": {"limit": 67108864, "swap": 134217728},
                "cpu": {"quota": 20000, "period": 100000, "shares": 512, "cpus": "0"},
                "pids": {"limit": 10}}"#,
        );
        let s = v1(&r);
        let find = |f: &str| s.iter().find(|x| x.file == f).map(|x| x.value.clone());
        assert_eq!(find("memory.limit_in_bytes").as_deref(), Some("67108864"));
        assert_eq!(
            find("memory.memsw.limit_in_bytes").as_deref(),
            Some("134217728")
        );
        assert_eq!(find("cpu.cfs_quota_us").as_deref(), Some("20000"));
        assert_eq!(find("cpuset.cpus").as_deref(), Some("0"));
        assert_eq!(find("pids.max").as_deref(), Some("10"));
        let period = s
            .iter()
            .position(|x| x.file == "cpu.cfs_period_us")
            .unwrap();
        let quota = s.iter().position(|x| x.file == "cpu.cfs_quota_us").unwrap();
        assert!(period < quota);
    }

    #[test]
    fn unified_keys_come_last_and_override() {
        let r = resources(
            r#"{"memory": {"limit": 100},
                "unified": {"memory.max": "200", "memory.high": "150"}}"#,
        );
        let s = v2(&r);
        let max: Vec<&str> = s
            .iter()
            .filter(|x| x.file == "memory.max")
            .map(|x| x.value.as_str())
            .collect();
        assert_eq!(max, ["100", "200"], "the unified value is written last");
        let high = s.iter().find(|x| x.file == "memory.high").unwrap();
        assert_eq!(high.controller, "memory");
    }

    #[test]
    fn v2_translations() {
        let r = resources(
            r#"{"memory": {"limit": 100, "swap": 300},
                "cpu": {"quota": 150000, "period": 100000, "shares": 1024},
                "pids": {"limit": -1},
                "blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                            "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]}}"#,
        );
        let s = v2(&r);
        let find = |f: &str| s.iter().find(|x| x.file == f).map(|x| x.value.clone());
        assert_eq!(find("memory.max").as_deref(), Some("100"));
        assert_eq!(find("memory.swap.max").as_deref(), Some("200"));
        assert_eq!(find("cpu.max").as_deref(), Some("150000 100000"));
        assert_eq!(find("cpu.weight").as_deref(), Some("39"));
        assert_eq!(find("pids.max").as_deref(), Some("max"));
        assert_eq!(
            find("io.max").as_deref(),
            Some("8:0 rbps=1048576 wiops=100")
        );
    }

    #[test]
    fn weight_conversion_bounds() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }
}
