//! `compare BASELINE CURRENT`: per runtime and phase, the change of the
//! median with a bootstrap confidence interval. A regression counts only
//! when the whole 95% interval lies beyond the allowed percentage, so
//! noise between two runs of the same build does not fail CI.

use serde::Serialize;

/// Which phases of a sample a metric reads.
type PhasesOf = fn(&Sample) -> &Vec<(String, f64)>;

/// Prefix of the tracer's phases among the metrics.
const TRACE: &str = "trace:";

use super::{
    startup::{RuntimeResult, Sample},
    stats::{Rng, bootstrap_medians, median},
    summary::Summary,
};

/// One compared metric.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub runtime: String,
    /// `total`, a phase of boxrun's marks, or `trace:` and a phase the
    /// tracer saw.
    pub metric: String,
    pub baseline_p50: f64,
    pub current_p50: f64,
    pub change_pct: f64,
    /// 95% interval of the change of the median, in percent.
    pub ci_pct: [f64; 2],
    /// The interval lies wholly above the allowed regression, and the
    /// median moved by more than the smallest change that counts.
    pub regression: bool,
}

fn values(r: &RuntimeResult, metric: &str) -> Vec<f64> {
    if metric == "total" {
        return r.samples.iter().map(|s| s.ms).collect();
    }
    let (phases, name): (PhasesOf, &str) = match metric.strip_prefix(TRACE) {
        Some(name) => (|s| &s.trace_phases, name),
        None => (|s| &s.phases, metric),
    };
    r.samples
        .iter()
        .filter_map(|s| phases(s).iter().find(|(k, _)| k == name).map(|(_, v)| *v))
        .collect()
}

/// The change of the median of `cur` against `base`, with its interval:
/// medians of independent resamples of each side, paired at random.
pub fn change(base: &[f64], cur: &[f64], rng: &mut Rng) -> (f64, [f64; 2]) {
    let (mb, mc) = (median(base), median(cur));
    let pct = |b: f64, c: f64| if b > 0.0 { (c / b - 1.0) * 100.0 } else { 0.0 };
    let bb = bootstrap_medians(base, rng);
    let bc = bootstrap_medians(cur, rng);
    let mut d: Vec<f64> = (0..bb.len())
        .map(|_| pct(bb[rng.below(bb.len())], bc[rng.below(bc.len())]))
        .collect();
    d.sort_by(f64::total_cmp);
    let q = |p: f64| d[((d.len() - 1) as f64 * p).round() as usize];
    (pct(mb, mc), [q(0.025), q(0.975)])
}

/// Every metric the two runs share. A change counts as a regression when
/// its whole interval is above `max_regression_pct` and the median grew
/// by more than `min_ms` (tiny phases swing by large percentages).
pub fn compare(base: &Summary, cur: &Summary, max_regression_pct: f64, min_ms: f64) -> Vec<Change> {
    let mut rng = Rng::new(0xc0ffee);
    let mut out = Vec::new();
    for c in &cur.runtimes {
        let Some(b) = base.runtime(&c.name) else {
            continue;
        };
        let shared = |cur: &[String], base: &[String], prefix: &str| -> Vec<String> {
            cur.iter()
                .filter(|p| base.contains(p))
                .map(|p| format!("{prefix}{p}"))
                .collect()
        };
        let metrics = std::iter::once("total".to_owned())
            .chain(shared(&c.phase_order, &b.phase_order, ""))
            .chain(shared(&c.trace_phase_order, &b.trace_phase_order, TRACE));
        for metric in metrics {
            let (bv, cv) = (values(b, &metric), values(c, &metric));
            if bv.is_empty() || cv.is_empty() {
                continue;
            }
            let (pct, ci) = change(&bv, &cv, &mut rng);
            let (mb, mc) = (median(&bv), median(&cv));
            out.push(Change {
                runtime: c.name.clone(),
                metric,
                baseline_p50: mb,
                current_p50: mc,
                change_pct: pct,
                ci_pct: ci,
                regression: ci[0] > max_regression_pct && mc - mb > min_ms,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy(center: f64, n: usize, seed: u64) -> Vec<f64> {
        let mut r = Rng::new(seed);
        (0..n)
            .map(|_| center * (0.9 + r.below(2000) as f64 / 10_000.0))
            .collect()
    }

    #[test]
    fn same_distribution_is_no_change_a_shift_is() {
        let mut rng = Rng::new(7);
        let a = noisy(10.0, 100, 1);
        let b = noisy(10.0, 100, 2);
        let (pct, ci) = change(&a, &b, &mut rng);
        assert!(pct.abs() < 5.0, "{pct}");
        assert!(ci[0] < 0.0 && ci[1] > 0.0, "{ci:?}");
        let slow = noisy(13.0, 100, 3);
        let (pct, ci) = change(&a, &slow, &mut rng);
        assert!((pct - 30.0).abs() < 6.0, "{pct}");
        assert!(ci[0] > 20.0, "{ci:?}");
    }
}
