//! Table 2 of the paper: part segmentation, mean IoU per shape, tested under random
//! rotations and reflections. Rows as in table 1.

use tf_experiments::{compare_paper_rows, Column, Ctx, Experiment, Report, Task};

/// The experiment.
#[derive(Debug, Clone, Copy)]
pub struct T2;

impl Experiment for T2 {
    fn name(&self) -> &'static str {
        "t2-segmentation"
    }
    fn title(&self) -> &'static str {
        "T2: part segmentation (instance mIoU, rotated/reflected test)"
    }
    fn claim(&self) -> &'static str {
        "TF-PointNet++ is competitive on ShapeNet part segmentation (close to the best published \
         models, with exact O(3)-equivariance, so its score does not depend on the test pose)."
    }
    fn run(&self, ctx: &mut Ctx) -> anyhow::Result<Report> {
        let data = ctx.data_config(3)?;
        let base = ctx.model("pointnet2-segmentation", 3, &data, Task::Segmentation)?;
        let columns = [
            ("rotated mIoU", Column::Rotated("miou")),
            ("rotated accuracy", Column::Rotated("accuracy")),
            ("canonical mIoU", Column::Canonical("miou")),
            ("max |rotated - canonical| mIoU", Column::Gap("miou")),
            ("params", Column::Params),
            ("lr", Column::Lr),
        ];
        let (mut report, c) = compare_paper_rows(ctx, "seg", &base, &data, &columns, "miou")?;
        let gap = c.equivariant_gap;
        report.verdict = format!(
            "Rotated mIoU: TF-PointNet++ (tensorial) {:.4}, plain {:.4}, augmentation {:.4}. \
             Competitive (within 0.02 of the better baseline, or ahead): {}. Equivariant rows \
             are pose-independent (largest gap {gap:.1e}).",
            c.tensorial.rotated("miou").mean,
            c.plain.rotated("miou").mean,
            c.augmentation.rotated("miou").mean,
            c.competitive(ctx, "miou", 0.02).describe(),
        );
        report.notes = vec![
            "Quick mode uses the synthetic set's part labels (2-3 parts per class, up to 4 labels) instead of ShapeNet's 50 parts; ShapeNet's layout is readable by tf-datasets (ShapeNetParts) but not yet wired into this binary.".into(),
            "mIoU: per shape, the mean IoU over the parts present in its labels or prediction; then the mean over shapes.".into(),
        ];
        Ok(report)
    }
}
