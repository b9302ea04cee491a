//! Verdicts from statistics: a claim that one row beats another is "confirmed" or
//! "contradicted" only when the 95% interval of their paired per-seed difference excludes zero
//! on one side; otherwise it is "inconclusive". Rows that never beat chance on validation "did
//! not train" and no verdict uses them; smoke and quick runs are "not evidence" whatever their
//! numbers say.
//!
//! The test: both rows ran with the same seeds, so the per-seed differences `d_s = a_s - b_s`
//! are paired; their mean `m`, sample standard deviation `s` and the Student t quantile
//! `t(0.975, n - 1)` give the interval `m +- t s / sqrt(n)`.

use std::fmt;

use serde::Serialize;

/// What a comparison concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The interval lies on the claimed side of zero.
    Confirmed,
    /// The interval lies on the other side.
    Contradicted,
    /// The interval contains zero (or there are fewer than two seeds).
    Inconclusive,
    /// One of the rows never beat chance on validation.
    DidNotTrain,
    /// A smoke or quick run: a check of the pipeline, not a test of the claim.
    NotEvidence,
}

impl Verdict {
    /// The word printed in tables.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Confirmed => "confirmed",
            Verdict::Contradicted => "contradicted",
            Verdict::Inconclusive => "inconclusive",
            Verdict::DidNotTrain => "did not train",
            Verdict::NotEvidence => "not evidence",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// The two-sided 95% Student t quantile with `df` degrees of freedom.
pub fn t95(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        // The normal quantile with the first correction term of the t expansion.
        _ => 1.960 + 2.37 / df as f64,
    }
}

/// A paired comparison of two rows' per-seed values, for the claim "`a` + `margin` > `b`".
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Paired {
    /// Mean of `a_s - b_s`.
    pub mean: f64,
    /// The claim's allowance: 0 for "`a` beats `b`", 0.02 for "`a` is within 0.02 of `b`".
    pub margin: f64,
    /// Half-width of its 95% interval (infinite for one seed).
    pub half_width: f64,
    /// Seeds compared.
    pub n: usize,
    /// What the interval says about the claim.
    pub verdict: Verdict,
}

impl Paired {
    /// Compares `a` with `b` (same seeds, same order) for the claim `a > b`. `trained` says
    /// whether both rows beat chance on validation; `evidence` whether the run's mode can
    /// count as evidence at all.
    pub fn new(a: &[f64], b: &[f64], trained: bool, evidence: bool) -> Self {
        Self::with_margin(a, b, 0.0, trained, evidence)
    }

    /// As [`new`](Self::new) for the claim "`a` + `margin` > `b`".
    pub fn with_margin(a: &[f64], b: &[f64], margin: f64, trained: bool, evidence: bool) -> Self {
        let n = a.len().min(b.len());
        let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
        let mean = d.iter().sum::<f64>() / n.max(1) as f64;
        let half_width = if n > 1 {
            let var = d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            t95(n - 1) * (var / n as f64).sqrt()
        } else {
            f64::INFINITY
        };
        let verdict = if !evidence {
            Verdict::NotEvidence
        } else if !trained {
            Verdict::DidNotTrain
        } else if mean + margin - half_width > 0.0 {
            Verdict::Confirmed
        } else if mean + margin + half_width < 0.0 {
            Verdict::Contradicted
        } else {
            Verdict::Inconclusive
        };
        Self {
            mean,
            margin,
            half_width,
            n,
            verdict,
        }
    }

    /// `"confirmed (+0.0123 +- 0.0045, paired 95% interval, n = 3)"`: the difference `a - b`
    /// (the margin is the claim's, stated by the caller).
    pub fn describe(&self) -> String {
        if self.half_width.is_finite() {
            format!(
                "{} ({:+.4} +- {:.4}, paired 95% interval, n = {})",
                self.verdict, self.mean, self.half_width, self.n
            )
        } else {
            format!("{} ({:+.4}, n = {})", self.verdict, self.mean, self.n)
        }
    }
}

/// The metric value a model reaches by chance, for "did not train": mean |cos| of a random
/// unit vector against a fixed one in dimension `d` (normals; oriented cos has chance 0), or
/// `1 / classes` (accuracy).
pub fn chance_abs_cos(d: usize) -> f64 {
    // E|x_1| on the unit sphere S^(d-1) = Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2)).
    let mut r = if d % 2 == 0 {
        1.0 / std::f64::consts::PI * 2.0
    } else {
        0.5
    };
    // Gamma ratios by recursion from d = 2 (2/pi) and d = 3 (1/2): r(d + 2) = r(d) * d / (d + 1).
    let mut k = if d % 2 == 0 { 2 } else { 3 };
    while k < d {
        r *= k as f64 / (k + 1) as f64;
        k += 2;
    }
    r
}

/// Whether a row trained: its best validation value must beat `chance` by `margin`.
pub fn trained(best_validation: f64, chance: f64, margin: f64) -> bool {
    best_validation.is_finite() && best_validation > chance + margin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_gains_are_confirmed_and_losses_contradicted() {
        let a = [0.80, 0.81, 0.82];
        let b = [0.70, 0.72, 0.71];
        let p = Paired::new(&a, &b, true, true);
        assert_eq!(p.verdict, Verdict::Confirmed);
        assert!((p.mean - 0.1).abs() < 1e-12);
        // d = [0.10, 0.09, 0.11]: s = 0.01, half-width 4.303 * 0.01 / sqrt(3).
        assert!((p.half_width - 4.303 * 0.01 / 3f64.sqrt()).abs() < 1e-9);
        assert_eq!(
            Paired::new(&b, &a, true, true).verdict,
            Verdict::Contradicted
        );
    }

    #[test]
    fn noisy_or_single_seed_differences_are_inconclusive() {
        let a = [0.80, 0.70, 0.90];
        let b = [0.75, 0.78, 0.80];
        assert_eq!(
            Paired::new(&a, &b, true, true).verdict,
            Verdict::Inconclusive
        );
        // Within 0.02 or better: a deficit of 0.01 +- 0.005 confirms, one of 0.05 contradicts.
        let within =
            Paired::with_margin(&[0.79, 0.80, 0.81], &[0.80, 0.81, 0.82], 0.02, true, true);
        assert_eq!(within.verdict, Verdict::Confirmed);
        assert!((within.mean + 0.01).abs() < 1e-12);
        let behind =
            Paired::with_margin(&[0.75, 0.76, 0.77], &[0.80, 0.81, 0.82], 0.02, true, true);
        assert_eq!(behind.verdict, Verdict::Contradicted);
        let one = Paired::new(&[0.9], &[0.1], true, true);
        assert_eq!(one.verdict, Verdict::Inconclusive);
        assert!(one.describe().contains("n = 1"));
    }

    #[test]
    fn rows_that_did_not_train_and_quick_runs_give_no_verdict() {
        let a = [0.80, 0.81, 0.82];
        let b = [0.70, 0.72, 0.71];
        assert_eq!(
            Paired::new(&a, &b, false, true).verdict,
            Verdict::DidNotTrain
        );
        assert_eq!(
            Paired::new(&a, &b, true, false).verdict,
            Verdict::NotEvidence
        );
        assert_eq!(
            Paired::new(&a, &b, false, false).verdict,
            Verdict::NotEvidence
        );
        // A made-up T4 random-frame row at chance (|cos| 0.5 in 3D) did not train.
        assert!(!trained(0.503, chance_abs_cos(3), 0.05));
        assert!(trained(0.78, chance_abs_cos(3), 0.05));
        assert!(!trained(f64::NAN, 0.0, 0.05));
    }

    #[test]
    fn chance_and_quantiles_are_right() {
        assert!((chance_abs_cos(2) - 2.0 / std::f64::consts::PI).abs() < 1e-12);
        assert!((chance_abs_cos(3) - 0.5).abs() < 1e-12);
        // d = 4: Gamma(2) / (sqrt(pi) Gamma(5/2)) = 4 / (3 pi).
        assert!((chance_abs_cos(4) - 4.0 / (3.0 * std::f64::consts::PI)).abs() < 1e-12);
        assert!((t95(2) - 4.303).abs() < 1e-9);
        assert!((t95(4) - 2.776).abs() < 1e-9);
        assert!(t95(1000) > 1.96 && t95(1000) < 1.97);
    }
}
