//! Losses and metrics per head: normals (cosine), segmentation (cross-entropy, mIoU) and
//! classification (cross-entropy, accuracy).

use std::collections::BTreeMap;

use candle_core::{DType, Result, Tensor, D};
use tf_datasets::LabelledBatch;
use tf_models::HeadConfig;

/// The loss the model is trained on.
///
/// Normals: `1 - cos(pred, n)` averaged over points (oriented: the sign matters).
/// Classes: cross-entropy of the logits.
pub fn loss(head: HeadConfig, pred: &Tensor, batch: &LabelledBatch) -> Result<Tensor> {
    match head {
        HeadConfig::Normals => Ok((1.0 - cosine(pred, &batch.normals)?.mean_all()?)?),
        HeadConfig::Segmentation { .. } => {
            let Some(parts) = &batch.parts else {
                candle_core::bail!("segmentation needs part labels, and this data has none");
            };
            candle_nn::loss::cross_entropy(pred, parts)
        }
        HeadConfig::Classification { .. } => candle_nn::loss::cross_entropy(pred, &batch.labels),
    }
}

/// The training objective: [`loss`], plus `unoriented_weight * (1 - mean |cos|)` for normals.
pub fn training_loss(
    head: HeadConfig,
    pred: &Tensor,
    batch: &LabelledBatch,
    unoriented_weight: f64,
) -> Result<Tensor> {
    match head {
        HeadConfig::Normals if unoriented_weight > 0.0 => {
            let c = cosine(pred, &batch.normals)?;
            let oriented = (1.0 - c.mean_all()?)?;
            let unoriented = ((1.0 - c.abs()?.mean_all()?)? * unoriented_weight)?;
            oriented + unoriented
        }
        _ => loss(head, pred, batch),
    }
}

/// Row-wise cosine similarity of `(N, d)` tensors; zero-length predictions count as 0.
pub fn cosine(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    let dot = (pred * target)?.sum(D::Minus1)?;
    let norm = (pred.sqr()?.sum(D::Minus1)? + 1e-12)?.sqrt()?;
    let tnorm = (target.sqr()?.sum(D::Minus1)? + 1e-12)?.sqrt()?;
    dot / (norm * tnorm)?
}

/// Accumulates a task's metrics over batches.
#[derive(Debug, Clone)]
pub struct Metrics {
    head: HeadConfig,
    loss_sum: f64,
    batches: usize,
    // normals
    cos_sum: f64,
    abs_cos_sum: f64,
    points: usize,
    // classes
    correct: usize,
    total: usize,
    iou_sum: f64,
    shapes: usize,
}

impl Metrics {
    /// Empty accumulator.
    pub fn new(head: HeadConfig) -> Self {
        Self {
            head,
            loss_sum: 0.0,
            batches: 0,
            cos_sum: 0.0,
            abs_cos_sum: 0.0,
            points: 0,
            correct: 0,
            total: 0,
            iou_sum: 0.0,
            shapes: 0,
        }
    }

    /// Adds one batch's predictions.
    pub fn add(&mut self, pred: &Tensor, batch: &LabelledBatch) -> Result<()> {
        self.loss_sum += loss(self.head, pred, batch)?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        self.batches += 1;
        match self.head {
            HeadConfig::Normals => {
                let c = cosine(pred, &batch.normals)?
                    .to_dtype(DType::F64)?
                    .to_vec1::<f64>()?;
                self.cos_sum += c.iter().sum::<f64>();
                self.abs_cos_sum += c.iter().map(|v| v.abs()).sum::<f64>();
                self.points += c.len();
            }
            HeadConfig::Classification { .. } => {
                let guess = pred.argmax(D::Minus1)?.to_vec1::<u32>()?;
                let truth = batch.labels.to_vec1::<u32>()?;
                self.correct += guess.iter().zip(&truth).filter(|(a, b)| a == b).count();
                self.total += truth.len();
            }
            HeadConfig::Segmentation { classes } => {
                let Some(parts) = &batch.parts else {
                    candle_core::bail!("segmentation needs part labels");
                };
                let guess = pred.argmax(D::Minus1)?.to_vec1::<u32>()?;
                let truth = parts.to_vec1::<u32>()?;
                let owner = batch.batch.to_vec1::<u32>()?;
                self.correct += guess.iter().zip(&truth).filter(|(a, b)| a == b).count();
                self.total += truth.len();
                let mut start = 0;
                while start < owner.len() {
                    let mut end = start;
                    while end < owner.len() && owner[end] == owner[start] {
                        end += 1;
                    }
                    self.iou_sum += shape_iou(&guess[start..end], &truth[start..end], classes);
                    self.shapes += 1;
                    start = end;
                }
            }
        }
        Ok(())
    }

    /// The task's headline metric (higher is better): mean cos, accuracy or mIoU.
    pub fn primary(&self) -> (&'static str, f64) {
        let m = self.values();
        let name = match self.head {
            HeadConfig::Normals => "cos",
            HeadConfig::Segmentation { .. } => "miou",
            HeadConfig::Classification { .. } => "accuracy",
        };
        (name, m.get(name).copied().unwrap_or(f64::NAN))
    }

    /// All metrics by name.
    pub fn values(&self) -> BTreeMap<&'static str, f64> {
        let mut m = BTreeMap::new();
        m.insert("loss", self.loss_sum / self.batches.max(1) as f64);
        match self.head {
            HeadConfig::Normals => {
                let n = self.points.max(1) as f64;
                m.insert("cos", self.cos_sum / n);
                m.insert("abs_cos", self.abs_cos_sum / n);
            }
            HeadConfig::Classification { .. } => {
                m.insert("accuracy", self.correct as f64 / self.total.max(1) as f64);
            }
            HeadConfig::Segmentation { .. } => {
                m.insert("accuracy", self.correct as f64 / self.total.max(1) as f64);
                m.insert("miou", self.iou_sum / self.shapes.max(1) as f64);
            }
        }
        m
    }
}

/// Mean IoU of one shape over the parts present in its prediction or its labels (ShapeNet's
/// instance mIoU; a part absent from both does not count).
pub fn shape_iou(guess: &[u32], truth: &[u32], classes: usize) -> f64 {
    let (mut sum, mut count) = (0.0, 0);
    for c in 0..classes as u32 {
        let inter = guess
            .iter()
            .zip(truth)
            .filter(|(g, t)| **g == c && **t == c)
            .count();
        let union = guess
            .iter()
            .zip(truth)
            .filter(|(g, t)| **g == c || **t == c)
            .count();
        if union > 0 {
            sum += inter as f64 / union as f64;
            count += 1;
        }
    }
    if count == 0 {
        1.0
    } else {
        sum / count as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_counts_present_parts_only() {
        assert_eq!(shape_iou(&[0, 0, 1, 1], &[0, 0, 1, 1], 4), 1.0);
        // part 0: inter 1, union 2; part 1: inter 2, union 3.
        let v = shape_iou(&[0, 1, 1, 1], &[0, 0, 1, 1], 4);
        assert!((v - (0.5 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert_eq!(shape_iou(&[], &[], 3), 1.0);
    }

    #[test]
    fn cosine_is_scale_free_and_signed() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        let p = Tensor::new(&[[2.0f32, 0.0], [0.0, -3.0], [0.0, 0.0]], &dev)?;
        let t = Tensor::new(&[[1.0f32, 0.0], [0.0, 1.0], [1.0, 0.0]], &dev)?;
        let c = cosine(&p, &t)?.to_vec1::<f32>()?;
        assert!((c[0] - 1.0).abs() < 1e-6 && (c[1] + 1.0).abs() < 1e-6 && c[2].abs() < 1e-6);
        Ok(())
    }
}
