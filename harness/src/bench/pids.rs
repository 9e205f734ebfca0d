//! `bench pids`: pids.max K; the workload starts children until the kernel
//! refuses. How many started, the errno, and the kernel's own count of
//! refusals (pids.events).

use serde::{Deserialize, Serialize};

use super::{
    driver::Cli,
    image::{Image, ImageError, ImageKind},
    limits::{Container, LimitsError, cgroup_dir, keyed, read},
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PidsResult {
    pub runtime: String,
    pub limit: u64,
    /// Children the workload started (it is one task itself).
    pub started: u64,
    /// The errno of the first refusal (EAGAIN is 11).
    pub refused_errno: Option<i32>,
    /// Refusals the kernel counted (pids.events `max`).
    pub kernel_refusals: u64,
}

pub fn bundle(limit: u64) -> Result<Image, ImageError> {
    let tries = (limit * 2 + 4).to_string();
    Image::prepare_with(
        ImageKind::Builtin,
        &["fork", &tries, "5"],
        Some(serde_json::json!({"pids": {"limit": limit}})),
    )
}

pub fn run(rt: &Cli, image: &Image, id: &str, limit: u64) -> Result<PidsResult, LimitsError> {
    let c = Container::create(rt, &image.bundle, id)?;
    let events = cgroup_dir(c.pid, "pids")?.join("pids.events");
    c.start()?;
    c.wait()?;
    let out = c.output();
    let field = |k: &str| {
        out.split_whitespace()
            .find_map(|w| w.strip_prefix(k)?.strip_prefix('='))
            .map(str::to_owned)
    };
    Ok(PidsResult {
        runtime: rt.name.clone(),
        limit,
        started: field("started").and_then(|v| v.parse().ok()).unwrap_or(0),
        refused_errno: field("refused_errno").and_then(|v| v.parse().ok()),
        kernel_refusals: keyed(&read(&events)?, "max").unwrap_or(0),
    })
}
