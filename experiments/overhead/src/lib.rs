//! The cost of the frame network per task: parameters (the paper reports about 0.33% for
//! normal regression) and the time of one training step against the same network with
//! identity frames and scalar messages.

use std::time::Instant;

use candle_core::{DType, Device};
use rand::SeedableRng;
use tf_datasets::{make_batch, Augment, BatchConfig};
use tf_experiments::{Ctx, Experiment, Mode, Report, Task, Variant};
use tf_models::{Batch, Model, ModelConfig};

/// The experiment.
#[derive(Debug, Clone, Copy)]
pub struct Overhead;

const ROWS: [(&str, Task); 8] = [
    ("pointnet2-normals", Task::Normals),
    ("pointnet2-normals-ssg", Task::Normals),
    ("pointnet2-normals-refined", Task::Normals),
    ("pointnet2-segmentation", Task::Segmentation),
    ("pointnet2-classification", Task::Classification),
    ("dgcnn-normals", Task::Normals),
    ("dgcnn-classification", Task::Classification),
    ("attention-normals", Task::Normals),
];

fn step_seconds(
    model: &Model,
    batch: &tf_datasets::LabelledBatch,
    steps: usize,
) -> anyhow::Result<f64> {
    let run = || -> anyhow::Result<()> {
        let pred = model.forward(&Batch {
            pos: &batch.pos,
            batch: Some(&batch.batch),
            features: None,
        })?;
        let loss = tf_train::task::loss(model.head(), &pred.values, batch)?;
        loss.backward()?;
        Ok(())
    };
    run()?; // warm-up
    let t = Instant::now();
    for _ in 0..steps {
        run()?;
    }
    Ok(t.elapsed().as_secs_f64() / steps as f64)
}

impl Experiment for Overhead {
    fn name(&self) -> &'static str {
        "overhead"
    }
    fn title(&self) -> &'static str {
        "Overhead of the frame network: parameters and training-step time"
    }
    fn claim(&self) -> &'static str {
        "The frame network adds about 0.33% parameters for normal regression (paper); follow-up \
         work reports +10-50% FLOPs and +60-100% training time over the plain network."
    }
    fn run(&self, ctx: &mut Ctx) -> anyhow::Result<Report> {
        let data = ctx.data_config(3)?;
        let train = ctx.train_config();
        let splits = ctx.splits(&data)?;
        let shapes: Vec<_> = splits
            .train
            .0
            .iter()
            .take(train.batch_size)
            .cloned()
            .collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let cfg = BatchConfig {
            batch_size: train.batch_size,
            points: train.points,
            augment: Augment::None,
            translate: 0.0,
            shuffle: false,
            seed: 0,
            noise: 0.0,
            noise_uniform: false,
            features: Default::default(),
        };
        let batch = make_batch(&shapes, &cfg, &mut rng)?;
        let steps = if ctx.mode == Mode::Smoke { 1 } else { 5 };
        let mut report = Report::new(&[
            "params",
            "frame network",
            "overhead",
            "step s (TF)",
            "step s (plain)",
            "time ratio",
        ]);
        let (mut normals_overhead, mut ssg_overhead) = (f64::NAN, f64::NAN);
        let mut ratios = Vec::new();
        for (preset, task) in ROWS {
            let m: ModelConfig = ctx.model(preset, 3, &data, task)?;
            let tf = Model::new(m.clone(), DType::F32, &Device::Cpu)?;
            let plain = Model::new(Variant::Plain.apply(m), DType::F32, &Device::Cpu)?;
            let (t_tf, t_plain) = (
                step_seconds(&tf, &batch, steps)?,
                step_seconds(&plain, &batch, steps)?,
            );
            match preset {
                "pointnet2-normals" => normals_overhead = tf.frame_overhead(),
                "pointnet2-normals-ssg" => ssg_overhead = tf.frame_overhead(),
                _ => {}
            }
            ratios.push(t_tf / t_plain);
            report.row(
                preset,
                vec![
                    (tf.params() as f64).into(),
                    (tf.frame_params() as f64).into(),
                    format!("{:.2}%", 100.0 * tf.frame_overhead()).into(),
                    t_tf.into(),
                    t_plain.into(),
                    format!("{:.2}x", t_tf / t_plain).into(),
                ],
            );
        }
        report.verdict = format!(
            "Frame-network parameters for normal regression: {:.2}% of the rest of our default \
             TF-PointNet++ and {:.3}% of the paper-sized trunk (PointNet++ SSG widths, \
             `pointnet2-normals-ssg`), against about 0.33% in the paper: {}. Step time with \
             learned frames and tensorial messages: {:.2}x-{:.2}x the plain network at {} shapes x \
             {} points.",
            100.0 * normals_overhead,
            100.0 * ssg_overhead,
            if ssg_overhead < 0.0033 {
                "at most the paper's share"
            } else {
                "above the paper's share"
            },
            ratios.iter().cloned().fold(f64::INFINITY, f64::min),
            ratios.iter().cloned().fold(0.0, f64::max),
            train.batch_size,
            train.points
        );
        report.notes = vec![
            "Overhead = frame-network (and refinement) parameters / all other parameters.".into(),
            "Plain = the same configuration with identity frames and scalar messages. A step is forward + loss + backward (no optimiser), averaged after one warm-up step.".into(),
        ];
        Ok(report)
    }
}
