//! Beyond the paper: the same normal regression for hypersurfaces in d = 2 (closed curves)
//! and d = 4, with the same code and configuration as in 3D.

use tf_experiments::{Cell, Ctx, Experiment, Mode, Report, Task, Variant};

/// The experiment.
#[derive(Debug, Clone, Copy)]
pub struct NormalsNd;

impl Experiment for NormalsNd {
    fn name(&self) -> &'static str {
        "normals-nd"
    }
    fn title(&self) -> &'static str {
        "Normal regression in d = 2 and d = 4 (mean cos, test under random O(d) elements)"
    }
    fn claim(&self) -> &'static str {
        "Not in the paper: tensor frames are defined for O(d) in any d, so the equivariant model \
         should be pose-independent and beat the plain network on rotated shapes in every d."
    }
    fn run(&self, ctx: &mut Ctx) -> anyhow::Result<Report> {
        let mut report = Report::new(&[
            "rotated cos",
            "rotated |cos|",
            "canonical cos",
            "max |rotated - canonical|",
            "PCA |cos| (rotated)",
            "params",
            "lr",
        ]);
        let mut verdicts = Vec::new();
        for d in [2usize, 4] {
            let data = ctx.data_config(d)?;
            let base = ctx.model("pointnet2-normals", d, &data, Task::Normals)?;
            let k = if ctx.mode == Mode::Smoke { 8 } else { 16 };
            let (_, pca_abs) = ctx.pca_test(&data, k, true)?;
            let mut rows = Vec::new();
            let mut gap = 0.0;
            for v in [Variant::Plain, Variant::LearnedTensorial] {
                let label = format!("d = {d}: {}", v.label("PointNet++"));
                let e = ctx.evaluate_row(&label, &v.apply(base.clone()), &data, None)?;
                report.row(
                    &e.label(&label),
                    vec![
                        e.rotated("cos").into(),
                        e.rotated("abs_cos").into(),
                        e.canonical("cos").into(),
                        e.gap("cos").into(),
                        Cell::from(pca_abs),
                        (e.params as f64).into(),
                        e.lr_cell(),
                    ],
                );
                if v.is_equivariant() {
                    gap = e.gap("cos");
                }
                rows.push(e);
            }
            verdicts.push(format!(
                "d = {d}: TF {:.4} vs plain {:.4} on rotated shapes, TF better: {}; TF gap {gap:.1e}",
                rows[1].rotated("cos").mean,
                rows[0].rotated("cos").mean,
                ctx.compare(&rows[1], &rows[0], "cos", 0.0).describe(),
            ));
        }
        report.verdict = verdicts.join("; ") + ".";
        report.data = Some(format!(
            "{}; {}",
            ctx.describe_data(2),
            ctx.describe_data(4)
        ));
        report.notes = vec![
            "The hypersurfaces: ellipsoids, rounded boxes and two-blob unions with exact normals; see tf_datasets::SyntheticNd.".into(),
        ];
        Ok(report)
    }
}
