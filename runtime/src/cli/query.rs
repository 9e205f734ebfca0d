//! Commands that read: spec, state, list, ps, events, features.

use std::{path::Path, process::ExitCode, thread, time::Duration};

use anyhow::{Context as _, bail};
use boxrun::{
    container::{cgroup_of, current_status},
    state::{Root, Status},
};
use serde_json::json;

pub fn spec(bundle: &Path) -> anyhow::Result<ExitCode> {
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("{} already exists", path.display());
    }
    let mut spec = oci_spec::runtime::Spec::default();
    if let Some(p) = spec.process_mut() {
        p.set_terminal(Some(false));
        p.set_args(Some(vec!["sh".to_owned()]));
    }
    let text = serde_json::to_string_pretty(&spec)?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(ExitCode::SUCCESS)
}

pub fn state(root: &Root, id: &str) -> anyhow::Result<ExitCode> {
    let dir = root.open(id)?;
    let mut st = dir.load()?;
    st.status = current_status(&dir.dir, &st);
    println!("{}", serde_json::to_string_pretty(&st.oci())?);
    Ok(ExitCode::SUCCESS)
}

pub fn list(root: &Root, format: &str) -> anyhow::Result<ExitCode> {
    let mut rows = Vec::new();
    for id in root.list()? {
        let Ok(dir) = root.open(&id) else { continue };
        let Ok(mut st) = dir.load() else { continue };
        st.status = current_status(&dir.dir, &st);
        rows.push(st);
    }
    match format {
        "json" => {
            let v: Vec<_> = rows.iter().map(|s| s.oci()).collect();
            println!("{}", serde_json::to_string(&v)?);
        }
        "table" => {
            println!("{:<24} {:>8} {:<8} BUNDLE", "ID", "PID", "STATUS");
            for s in &rows {
                let pid = if s.status == Status::Stopped {
                    0
                } else {
                    s.pid
                };
                let status = serde_json::to_value(s.status)?;
                println!(
                    "{:<24} {:>8} {:<8} {}",
                    s.id,
                    pid,
                    status.as_str().unwrap_or("?"),
                    s.bundle.display()
                );
            }
        }
        f => bail!("--format `{f}`: use table or json"),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn ps(root: &Root, id: &str, format: &str) -> anyhow::Result<ExitCode> {
    let dir = root.open(id)?;
    let st = dir.load()?;
    let pids = cgroup_of(&st).pids()?;
    match format {
        "json" => println!("{}", serde_json::to_string(&pids)?),
        "table" => {
            println!("PID");
            for p in pids {
                println!("{p}");
            }
        }
        f => bail!("--format `{f}`: use table or json"),
    }
    Ok(ExitCode::SUCCESS)
}

fn stats(cg: &boxrun::cgroup::Cgroup) -> serde_json::Value {
    let read = |ctrl: &str, file: &str| -> Option<u64> {
        cg.dirs
            .iter()
            .find(|d| d.to_string_lossy().contains(&format!("/{ctrl}")) || cg.dirs.len() == 1)
            .and_then(|d| std::fs::read_to_string(d.join(file)).ok())
            .and_then(|s| s.trim().parse().ok())
    };
    json!({
        "pids": {"current": read("pids", "pids.current")},
        "memory": {
            "usage": read("memory", "memory.usage_in_bytes").or(read("memory", "memory.current")),
            "limit": read("memory", "memory.limit_in_bytes").or(read("memory", "memory.max")),
            "failcnt": read("memory", "memory.failcnt"),
        },
        "oom_kills": cg.oom_kills().ok(),
    })
}

pub fn events(root: &Root, id: &str, once: bool, interval: u64) -> anyhow::Result<ExitCode> {
    let (st, dirpath) = {
        let dir = root.open(id)?;
        (dir.load()?, dir.dir.clone())
    };
    let cg = cgroup_of(&st);
    if once {
        println!("{}", json!({"type": "stats", "id": id, "data": stats(&cg)}));
        return Ok(ExitCode::SUCCESS);
    }
    let mut ooms = cg.oom_kills().unwrap_or(0);
    let mut last_stats = std::time::Instant::now();
    loop {
        let now = cg.oom_kills().unwrap_or(ooms);
        if now > ooms {
            println!("{}", json!({"type": "oom", "id": id}));
            ooms = now;
        }
        if last_stats.elapsed() >= Duration::from_secs(interval.max(1)) {
            println!("{}", json!({"type": "stats", "id": id, "data": stats(&cg)}));
            last_stats = std::time::Instant::now();
        }
        if !dirpath.exists() || current_status(&dirpath, &st) == Status::Stopped {
            // One last look: the kill may land just before the exit.
            if cg.oom_kills().unwrap_or(ooms) > ooms {
                println!("{}", json!({"type": "oom", "id": id}));
            }
            return Ok(ExitCode::SUCCESS);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// What this boxrun supports, in the shape of the OCI runtime features
/// document (as `runc features` prints it).
pub fn features() -> anyhow::Result<ExitCode> {
    let mut caps: Vec<String> = caps::all().into_iter().map(|c| c.to_string()).collect();
    caps.sort();
    let doc = json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": oci_spec::runtime::Spec::default().version(),
        "hooks": boxrun::hooks::Kind::ALL.map(|k| k.name()),
        "mountOptions": boxrun::container::mount_opts::known(),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": boxrun::seccomp::features(),
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false}
        },
        "annotations": {
            "io.github.boxtrace.boxrun.version": env!("CARGO_PKG_VERSION")
        }
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(ExitCode::SUCCESS)
}
