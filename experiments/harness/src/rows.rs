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
use crate::verdict::Paired;

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

/// The rows a T2/T3 verdict compares.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// TF-PointNet++ with learned frames and tensorial messages.
    pub tensorial: Evaluated,
    /// Plain PointNet++ (identity frames).
    pub plain: Evaluated,
    /// PointNet++ with one random frame per shape (augmentation).
    pub augmentation: Evaluated,
    /// The largest rotated-canonical gap of any equivariant row.
    pub equivariant_gap: f64,
}

impl Comparison {
    /// The claim "the tensorial row is within `margin` of the better baseline (by mean), or
    /// ahead of it" on the rotated-pose `metric`, as a paired comparison.
    pub fn competitive(&self, ctx: &Ctx, metric: &str, margin: f64) -> Paired {
        let better = if self.plain.rotated(metric).mean >= self.augmentation.rotated(metric).mean {
            &self.plain
        } else {
            &self.augmentation
        };
        ctx.compare(&self.tensorial, better, metric, margin)
    }
}

/// Trains and tests every [`PAPER_ROWS`] variant of `base` (run labels `"<tag> <row label>"`),
/// fills one table row each with `columns` (headed `headers`) and the epochs trained, and
/// keeps the rows the verdict compares on the rotated-pose `metric`.
pub fn compare_paper_rows(
    ctx: &mut Ctx,
    tag: &str,
    base: &ModelConfig,
    data: &DataConfig,
    columns: &[(&str, Column)],
    metric: &str,
) -> Result<(Report, Comparison)> {
    let mut headers: Vec<&str> = columns.iter().map(|c| c.0).collect();
    headers.push("epochs");
    let mut report = Report::new(&headers);
    let mut rows = Vec::new();
    let mut gap: f64 = 0.0;
    for v in PAPER_ROWS {
        let label = v.label("PointNet++");
        let e = ctx.evaluate_row(
            &format!("{tag} {label}"),
            &v.apply(base.clone()),
            data,
            None,
        )?;
        let mut cells: Vec<Cell> = columns.iter().map(|c| c.1.cell(&e)).collect();
        cells.push(e.epochs_cell());
        report.row(&e.label(&label), cells);
        if v.is_equivariant() {
            gap = gap.max(e.gap(metric));
        }
        rows.push(e);
    }
    // PAPER_ROWS order: plain, augmentation, learned scalar, learned tensorial, refined.
    rows.truncate(4);
    let tensorial = rows.pop();
    rows.truncate(2);
    let (augmentation, plain) = (rows.pop(), rows.pop());
    let (Some(tensorial), Some(augmentation), Some(plain)) = (tensorial, augmentation, plain)
    else {
        anyhow::bail!("the paper's rows are missing");
    };
    Ok((
        report,
        Comparison {
            tensorial,
            plain,
            augmentation,
            equivariant_gap: gap,
        },
    ))
}
