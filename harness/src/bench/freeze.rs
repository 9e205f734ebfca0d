//! `bench freeze`: pause/resume latency of a running container over many
//! cycles, as the runtime's `pause` and `resume` commands take it (the
//! freezer, v1 or cgroup.freeze on v2, plus the command itself).

use serde::{Deserialize, Serialize};

use super::{
    driver::{Cli, now_ns},
    image::{Image, ImageError, ImageKind},
    limits::{Container, LimitsError},
    stats::Stats,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FreezeResult {
    pub runtime: String,
    pub pause_ms: Vec<f64>,
    pub resume_ms: Vec<f64>,
    pub pause: Option<Stats>,
    pub resume: Option<Stats>,
}

pub fn bundle() -> Result<Image, ImageError> {
    // Busy, so freezing has running tasks to stop.
    Image::prepare(ImageKind::Builtin, &["spin", "1", "3600"])
}

pub fn run(rt: &Cli, image: &Image, id: &str, cycles: usize) -> Result<FreezeResult, LimitsError> {
    let c = Container::create(rt, &image.bundle, id)?;
    c.start()?;
    let (mut pause_ms, mut resume_ms) = (Vec::new(), Vec::new());
    for _ in 0..cycles {
        let t = now_ns();
        rt.step("pause", id, &[])?;
        let p = now_ns();
        rt.step("resume", id, &[])?;
        let r = now_ns();
        pause_ms.push((p - t) as f64 / 1e6);
        resume_ms.push((r - p) as f64 / 1e6);
    }
    Ok(FreezeResult {
        runtime: rt.name.clone(),
        pause: Stats::of(&pause_ms),
        resume: Stats::of(&resume_ms),
        pause_ms,
        resume_ms,
    })
}
