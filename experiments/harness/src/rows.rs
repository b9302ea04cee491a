//! The paper's rows of a table that scores one metric per shape or point (T2, T3): each
//! [`PAPER_ROWS`] variant trained and tested on canonical and transformed shapes, its cells, and
//! the comparison the verdict rests on.

use anyhow::Result;
use tf_models::ModelConfig;
use tf_train::DataConfig;

use crate::ctx::{Ctx, Evaluated};
use crate::report::Report;
use crate::stat::Cell;
use crate::variant::PAPER_ROWS;

/// A column of a paper-rows table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// A test metric under random O(d) elements, over seeds.
    Rotated(&'static str),
    /// A test metric on canonical poses, over seeds.
    Canonical(&'static str),
    /// The largest `|rotated - canonical|` of a metric over seeds.
    Gap(&'static str),
    /// Parameter count.
    Params,
    /// The learning rate(s) used.
    Lr,
}

impl Column {
    fn cell(self, e: &Evaluated) -> Cell {
        match self {
            Column::Rotated(m) => e.rotated(m).into(),
            Column::Canonical(m) => e.canonical(m).into(),
            Column::Gap(m) => e.gap(m).into(),
            Column::Params => (e.params as f64).into(),
            Column::Lr => e.lr_cell(),
        }
    }
}

/// The figures a T2/T3 verdict compares: mean rotated-pose scores of the main rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// TF-PointNet++ with learned frames and tensorial messages.
    pub tensorial: f64,
    /// Plain PointNet++ (identity frames).
    pub plain: f64,
    /// PointNet++ with one random frame per shape (augmentation).
    pub augmentation: f64,
    /// The largest rotated-canonical gap of any equivariant row.
    pub equivariant_gap: f64,
}

impl Comparison {
    /// Within `margin` of the better baseline, or ahead of it.
    pub fn competitive(&self, margin: f64) -> bool {
        self.tensorial >= self.plain.max(self.augmentation) - margin
    }
}

/// Trains and tests every [`PAPER_ROWS`] variant of `base` (run labels `"<tag> <row label>"`),
/// fills one table row each with `columns` (headed `headers`), and compares the rows on the
/// rotated-pose `metric`.
pub fn compare_paper_rows(
    ctx: &mut Ctx,
    tag: &str,
    base: &ModelConfig,
    data: &DataConfig,
    columns: &[(&str, Column)],
    metric: &str,
) -> Result<(Report, Comparison)> {
    let headers: Vec<&str> = columns.iter().map(|c| c.0).collect();
    let mut report = Report::new(&headers);
    let mut scores = Vec::new();
    for v in PAPER_ROWS {
        let label = v.label("PointNet++");
        let e = ctx.evaluate_row(
            &format!("{tag} {label}"),
            &v.apply(base.clone()),
            data,
            None,
        )?;
        report.row(&label, columns.iter().map(|c| c.1.cell(&e)).collect());
        scores.push((v, e.rotated(metric).mean, e.gap(metric)));
    }
    let score = |i: usize| scores[i].1;
    let comparison = Comparison {
        tensorial: score(3),
        plain: score(0),
        augmentation: score(1),
        equivariant_gap: scores
            .iter()
            .filter(|s| s.0.is_equivariant())
            .map(|s| s.2)
            .fold(0.0, f64::max),
    };
    Ok((report, comparison))
}
