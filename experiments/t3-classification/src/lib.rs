//! Table 3 of the paper: shape classification, tested under random rotations and
//! reflections. Rows as in table 1.

use tf_experiments::{compare_paper_rows, Column, Ctx, Experiment, Report, Task};

/// The experiment.
#[derive(Debug, Clone, Copy)]
pub struct T3;

impl Experiment for T3 {
    fn name(&self) -> &'static str {
        "t3-classification"
    }
    fn title(&self) -> &'static str {
        "T3: classification (accuracy, rotated/reflected test)"
    }
    fn claim(&self) -> &'static str {
        "TF-PointNet++ is competitive on ModelNet40 classification, and as an invariant model its \
         accuracy does not depend on the test pose."
    }
    fn run(&self, ctx: &mut Ctx) -> anyhow::Result<Report> {
        let data = ctx.data_config(3)?;
        let base = ctx.model("pointnet2-classification", 3, &data, Task::Classification)?;
        let columns = [
            ("rotated accuracy", Column::Rotated("accuracy")),
            ("canonical accuracy", Column::Canonical("accuracy")),
            ("max |rotated - canonical|", Column::Gap("accuracy")),
            ("params", Column::Params),
            ("lr", Column::Lr),
        ];
        let (mut report, c) = compare_paper_rows(ctx, "cls", &base, &data, &columns, "accuracy")?;
        let gap = c.equivariant_gap;
        report.verdict = format!(
            "Rotated accuracy: TF-PointNet++ (tensorial) {:.4}, plain {:.4}, augmentation {:.4}. \
             Competitive (within 0.02 of the better baseline, or ahead): {}. Equivariant rows \
             are pose-independent (largest gap {gap:.1e}).",
            c.tensorial.rotated("accuracy").mean,
            c.plain.rotated("accuracy").mean,
            c.augmentation.rotated("accuracy").mean,
            c.competitive(ctx, "accuracy", 0.02).describe(),
        );
        report.notes = vec![
            "Without `--data` the classes are the synthetic set's 10; `--data` takes ModelNet40 (or the offline KiCad set with 90 classes) in the ModelNet-normal layout.".into(),
            "The classification model is TF-PointNet++ with set abstraction and the global layer only (no feature propagation).".into(),
        ];
        Ok(report)
    }
}
