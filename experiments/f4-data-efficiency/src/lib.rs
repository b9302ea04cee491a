//! Figure 4 of the paper: test error against training-set size for the equivariant model
//! and the augmentation baseline (same architecture), as a log-log plot and a table.

use anyhow::Context;
use tf_experiments::{loglog_svg, Cell, Ctx, Experiment, Paired, Report, Task, Variant};
use tf_train::DataConfig;

/// The experiment.
#[derive(Debug, Clone, Copy)]
pub struct F4;

/// Fractions of the training set: 3, 10, 30 and 300 shapes in standard mode. Normal
/// regression learns from every point of a shape, so the equivariant model's error levels off
/// at a few dozen shapes; the small sizes are where data efficiency shows.
pub const FRACTIONS: [f64; 4] = [0.01, 1.0 / 30.0, 0.1, 1.0];

/// Strength of the random deformation of the synthetic shapes (see `tf_datasets::Warp`). The
/// undeformed generator has too little variation within a class for data efficiency to show:
/// a few shapes per class cover it, and the error stops falling with more.
pub const WARP: f64 = 0.6;

/// Least-squares slope of `ln y` against `ln x`.
pub fn loglog_slope(pts: &[(f64, f64)]) -> f64 {
    let l: Vec<(f64, f64)> = pts
        .iter()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0)
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    let n = l.len() as f64;
    let (mx, my) = (
        l.iter().map(|p| p.0).sum::<f64>() / n,
        l.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxy: f64 = l.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = l.iter().map(|p| (p.0 - mx).powi(2)).sum();
    sxy / sxx.max(1e-12)
}

impl Experiment for F4 {
    fn name(&self) -> &'static str {
        "f4-data-efficiency"
    }
    fn title(&self) -> &'static str {
        "F4: data efficiency (normal regression, test error 1 - mean cos on rotated shapes)"
    }
    fn claim(&self) -> &'static str {
        "The equivariant model's error falls faster with more training data than the augmentation \
         baseline's (a steeper log-log curve); augmentation can win on tiny training sets."
    }
    fn run(&self, ctx: &mut Ctx) -> anyhow::Result<Report> {
        let mut data = ctx.data_config(3)?;
        let mut described = None;
        if let DataConfig::Synthetic { warp, .. } = &mut data {
            *warp = WARP;
            described = Some(format!(
                "{}, each shape deformed by a random smooth warp of strength {WARP} (normals mapped exactly)",
                ctx.describe_data(3)
            ));
        }
        let base = ctx.model("pointnet2-normals", 3, &data, Task::Normals)?;
        let full = ctx.splits(&data)?.train.0.len();
        let mut sizes: Vec<usize> = FRACTIONS
            .iter()
            .map(|f| ((f * full as f64).round() as usize).clamp(1, full))
            .collect();
        // Tiny sets (smoke mode) round several fractions to the same size.
        sizes.dedup();
        let columns: Vec<String> = sizes.iter().map(|n| format!("n = {n}")).collect();
        let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
        let mut report = Report::new(&cols);
        let mut series = Vec::new();
        // Per model, per size, the per-seed errors; and whether every row trained.
        let mut errors: Vec<Vec<Vec<f64>>> = Vec::new();
        let mut trained = true;
        for (v, label) in [
            (
                Variant::LearnedTensorial,
                "TF-PointNet++, tensorial messages",
            ),
            (
                Variant::Augmentation,
                "PointNet++ + augmentation (random global frame)",
            ),
        ] {
            let model = v.apply(base.clone());
            // The full set first: its sweep picks the learning rate that the subsets keep.
            let mut by_size: Vec<Option<(f64, Cell, Vec<f64>)>> = vec![None; sizes.len()];
            let mut lr = None;
            for (k, &n) in sizes.iter().enumerate().rev() {
                // Every size trains with the same epochs, steps and patience: a subset is
                // repeated to the whole set's length (`Ctx::fit`).
                let limit = (n < full).then_some(n);
                let row_label = if n == full {
                    label.to_string()
                } else {
                    format!("{label} n{n}")
                };
                let e = ctx.evaluate_row_with(&row_label, &model, &data, limit, lr)?;
                if lr.is_none() {
                    lr = e.lrs.first().copied();
                }
                let errs: Vec<f64> = e.rotated.iter().map(|m| 1.0 - m["cos"]).collect();
                let s = tf_experiments::Stat::of(&errs);
                trained &= e.trained();
                by_size[k] = Some((s.mean, Cell::from(s), errs));
            }
            let mut cells = Vec::new();
            let mut pts = Vec::new();
            let mut per_size = Vec::new();
            for (&n, cell) in sizes.iter().zip(by_size) {
                let (mean, cell, errs) = cell.context("every size was trained")?;
                pts.push((n as f64, mean));
                cells.push(cell);
                per_size.push(errs);
            }
            report.row(label, cells);
            series.push((label.to_string(), pts));
            errors.push(per_size);
        }
        ctx.curves.clear(); // the figure is the log-log plot, not per-run curves
        let file = format!("{}.svg", self.name());
        loglog_svg(
            &ctx.out.join(&file),
            "Test error (1 - cos, rotated) vs training shapes",
            "training shapes",
            "1 - mean cos",
            &series,
        )?;
        report.figures.push(file);
        let (tf, aug) = (loglog_slope(&series[0].1), loglog_slope(&series[1].1));
        // Per-seed slopes, paired by seed: the claim is that the equivariant one is steeper
        // (more negative), i.e. augmentation's minus the equivariant's is positive.
        let slopes = |m: usize| -> Vec<f64> {
            (0..ctx.seeds.len())
                .map(|s| {
                    let pts: Vec<(f64, f64)> = sizes
                        .iter()
                        .zip(&errors[m])
                        .map(|(&n, e)| (n as f64, e[s]))
                        .collect();
                    loglog_slope(&pts)
                })
                .collect()
        };
        let evidence = ctx.mode.is_evidence();
        let steeper = Paired::new(&slopes(1), &slopes(0), trained, evidence);
        let last = sizes.len() - 1;
        let falls = Paired::new(&errors[0][0], &errors[0][last], trained, evidence);
        let small = Paired::new(&errors[0][0], &errors[1][0], trained, evidence);
        report.verdict = format!(
            "Log-log slopes (mean over seeds): equivariant {tf:.3}, augmentation {aug:.3}. The \
             equivariant curve is steeper: {}. Its error falls from the smallest to the largest \
             training set: {}. Augmentation beats it on the smallest set: {}.",
            steeper.describe(),
            falls.describe(),
            small.describe(),
        );
        report.notes = vec![
            "Every size trains with the same epochs, optimiser steps, validation schedule and patience: a subset of n shapes is repeated to the whole set's length.".into(),
            "Subsets are the first n training shapes (classes interleave, so every subset is balanced).".into(),
            "The learning rate of each model is chosen by the sweep on the full training set (seed 0, validation shapes) and kept for its subsets.".into(),
        ];
        report.data = described;
        report.extra = serde_json::json!({ "sizes": sizes, "slopes": { "equivariant": tf, "augmentation": aug } });
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_power_law() {
        let pts: Vec<(f64, f64)> = [1.0f64, 2.0, 4.0, 8.0]
            .iter()
            .map(|&x| (x, 3.0 * x.powf(-0.5)))
            .collect();
        assert!((loglog_slope(&pts) + 0.5).abs() < 1e-12);
    }
}
