//! Summary statistics of latency samples, with a bootstrap confidence
//! interval of the median. Outliers are kept: they are part of what a
//! user waits for.

use serde::{Deserialize, Serialize};

/// Statistics of one set of samples (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
    pub stddev: f64,
    /// 95% bootstrap confidence interval of the median.
    pub p50_ci: [f64; 2],
}

/// Resamples for the bootstrap; enough for a stable 95% interval.
const RESAMPLES: usize = 2000;

/// A small deterministic generator (xorshift64*): the same samples give the
/// same interval on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as usize % n
    }
}

/// The `q` quantile of sorted samples (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

pub fn median(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    quantile(&s, 0.5)
}

/// Medians of `RESAMPLES` resamples of `samples`, sorted.
pub fn bootstrap_medians(samples: &[f64], rng: &mut Rng) -> Vec<f64> {
    let mut out: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            let r: Vec<f64> = (0..samples.len())
                .map(|_| samples[rng.below(samples.len())])
                .collect();
            median(&r)
        })
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

impl Stats {
    /// None when there are no samples.
    pub fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let mean = s.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        let boot = bootstrap_medians(&s, &mut Rng::new(0x5eed ^ n as u64));
        Some(Self {
            n,
            min: s[0],
            p50: quantile(&s, 0.5),
            p90: quantile(&s, 0.9),
            p99: quantile(&s, 0.99),
            max: s[n - 1],
            mean,
            stddev: var.sqrt(),
            p50_ci: [quantile(&boot, 0.025), quantile(&boot, 0.975)],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_mean_and_spread() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Stats::of(&v).unwrap();
        assert_eq!((s.min, s.max, s.n), (1.0, 100.0, 100));
        assert_eq!(s.p50, 51.0);
        assert_eq!(s.p90, 90.0);
        assert!((s.mean - 50.5).abs() < 1e-9);
        assert!((s.stddev - 29.011).abs() < 0.01);
        assert!(s.p50_ci[0] <= s.p50 && s.p50 <= s.p50_ci[1]);
        assert!(s.p50_ci[1] - s.p50_ci[0] <= 25.0, "{:?}", s.p50_ci);
    }

    #[test]
    fn the_interval_is_reproducible_and_tight_for_constant_samples() {
        let v = vec![5.0; 30];
        let s = Stats::of(&v).unwrap();
        assert_eq!(s.p50_ci, [5.0, 5.0]);
        assert_eq!(Stats::of(&[]), None);
        let w: Vec<f64> = (0..50).map(|i| f64::from(i % 7)).collect();
        assert_eq!(Stats::of(&w), Stats::of(&w));
    }
}
