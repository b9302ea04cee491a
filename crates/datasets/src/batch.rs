//! Batching and augmentation: shapes -> one disjoint point cloud with a `batch` vector, as the
//! models take it.
//!
//! Per shape: a fixed number of points (a random subset without replacement, or with
//! replacement when the shape has fewer points), then an optional random element of O(d)
//! (rotation, or rotation/reflection) and translation applied to the points, and the rotation
//! alone to the normals. Randomness comes from a seeded ChaCha RNG, so a batch is a pure
//! function of the shapes, the configuration and the seed.
//!
//! [`Loader`] walks a [`ShapeSource`] in a seeded order per epoch and prepares the next batch on
//! a background thread while the caller trains on the current one.
//!
//! # Shapes
//! `pos (N, d)`, `normals (N, d)` f32; `batch (N,)` u32; `labels (G,)` u32; `parts (N,)` u32.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use tf_group::orthogonal::{haar_orthogonal_host, haar_special_orthogonal_host};
use tf_normals::InputFeatures;

use crate::error::DataError;
use crate::modelnet::ModelNetNormal;
use crate::shape::Shape;
use crate::synthetic::{Split, Synthetic};
use crate::synthetic_nd::SyntheticNd;

/// Random transformation applied to each shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Augment {
    /// None: canonical orientation.
    None,
    /// A Haar-random rotation (SO(d)).
    Rotate,
    /// A Haar-random rotation or reflection (O(d)): the test for O(d)-equivariant models and
    /// the data-augmentation baseline.
    RotateReflect,
}

/// How shapes become batches.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchConfig {
    /// Shapes per batch.
    pub batch_size: usize,
    /// Points kept per shape.
    pub points: usize,
    /// Random O(d) transformation per shape.
    pub augment: Augment,
    /// Each shape is also translated by a uniform vector in `[-t, t]^d`.
    pub translate: f64,
    /// Shuffle the shape order every epoch.
    pub shuffle: bool,
    /// Seed of order, subsets and transformations.
    pub seed: u64,
    /// Standard deviation of Gaussian noise added to every coordinate (after the
    /// transformation; normals are kept).
    pub noise: f64,
    /// Draw each shape's noise standard deviation uniformly from `[0, noise]` instead, so one
    /// model learns clean and noisy inputs alike.
    pub noise_uniform: bool,
    /// Features computed from the whole (transformed, noisy) shape, then subset with the points.
    pub features: InputFeatures,
}

/// One batch of shapes with their targets (normals, labels, parts), as tensors: the model reads
/// its positions and batch vector, the loss its targets.
#[derive(Debug, Clone)]
pub struct LabelledBatch {
    /// Positions `(N, d)`.
    pub pos: Tensor,
    /// Unit normals `(N, d)`.
    pub normals: Tensor,
    /// Graph id per point `(N,)`.
    pub batch: Tensor,
    /// Class per shape `(G,)`.
    pub labels: Tensor,
    /// Part per point `(N,)`, when every shape has parts.
    pub parts: Option<Tensor>,
    /// Computed input features `(N, features.dim(d))`, when configured.
    pub features: Option<Tensor>,
}

impl LabelledBatch {
    /// The batch on `device`, moved in one go (batches are assembled on the host).
    pub fn to_device(&self, device: &candle_core::Device) -> candle_core::Result<Self> {
        if device.same_device(self.pos.device()) {
            return Ok(self.clone());
        }
        let mv = |t: &Tensor| t.to_device(device);
        Ok(Self {
            pos: mv(&self.pos)?,
            normals: mv(&self.normals)?,
            batch: mv(&self.batch)?,
            labels: mv(&self.labels)?,
            parts: self.parts.as_ref().map(mv).transpose()?,
            features: self.features.as_ref().map(mv).transpose()?,
        })
    }
}

/// Builds one batch from `shapes`, using `rng` for subsets and transformations.
pub fn make_batch(
    shapes: &[Shape],
    cfg: &BatchConfig,
    rng: &mut ChaCha8Rng,
) -> Result<LabelledBatch, DataError> {
    let bad = |m: String| DataError::Layout {
        path: "<batch>".into(),
        message: m,
    };
    let Some(first) = shapes.first() else {
        return Err(bad("a batch needs at least one shape".into()));
    };
    let d = first.d;
    if cfg.points == 0 {
        return Err(bad("points per shape must be positive".into()));
    }
    let (mut pos, mut nrm, mut ids, mut labels, mut parts, mut feats) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let with_parts = shapes.iter().all(|s| s.parts.is_some());
    for (g, s) in shapes.iter().enumerate() {
        if s.d != d || s.is_empty() {
            return Err(bad(format!(
                "shape {g} has dimension {} and {} points (batch dimension {d})",
                s.d,
                s.len()
            )));
        }
        let n = s.len();
        let idx: Vec<usize> = if n >= cfg.points {
            rand::seq::index::sample(rng, n, cfg.points).into_vec()
        } else {
            (0..cfg.points).map(|_| rng.random_range(0..n)).collect()
        };
        let q = match cfg.augment {
            Augment::None => None,
            Augment::Rotate => Some(haar_special_orthogonal_host(d, rng)),
            Augment::RotateReflect => Some(haar_orthogonal_host(d, rng)),
        };
        let t: Vec<f64> = (0..d)
            .map(|_| {
                if cfg.translate > 0.0 {
                    rng.random_range(-cfg.translate..=cfg.translate)
                } else {
                    0.0
                }
            })
            .collect();
        let apply = |v: &[f64]| -> Vec<f64> {
            match &q {
                Some(q) => (0..d)
                    .map(|i| (0..d).map(|j| q[i * d + j] * v[j]).sum())
                    .collect(),
                None => v.to_vec(),
            }
        };
        let sigma = if cfg.noise_uniform && cfg.noise > 0.0 {
            rng.random_range(0.0..=cfg.noise)
        } else {
            cfg.noise
        };
        let place = |v: &[f64], rng: &mut ChaCha8Rng| -> Vec<f64> {
            let mut p = apply(v);
            for (a, b) in p.iter_mut().zip(&t) {
                *a += b;
                if sigma > 0.0 {
                    let e: f64 = StandardNormal.sample(rng);
                    *a += sigma * e;
                }
            }
            p
        };
        if cfg.features.is_some() {
            // Features see the whole shape at its full density, as at inference.
            let mut all = Vec::with_capacity(n * d);
            for p in s.points.chunks(d) {
                all.extend(place(p, rng));
            }
            let f = cfg
                .features
                .compute(&all, d)
                .map_err(|e| bad(format!("shape {g}: {e}")))?;
            let w = cfg.features.dim(d);
            for &i in &idx {
                pos.extend(all[i * d..(i + 1) * d].iter().map(|v| *v as f32));
                feats.extend(f[i * w..(i + 1) * w].iter().map(|v| *v as f32));
            }
        } else {
            for &i in &idx {
                pos.extend(
                    place(&s.points[i * d..(i + 1) * d], rng)
                        .iter()
                        .map(|v| *v as f32),
                );
            }
        }
        for &i in &idx {
            nrm.extend(
                apply(&s.normals[i * d..(i + 1) * d])
                    .into_iter()
                    .map(|v| v as f32),
            );
            ids.push(g as u32);
            if with_parts {
                parts.push(s.parts.as_ref().map_or(0, |p| p[i]));
            }
        }
        labels.push(s.label);
    }
    let dev = Device::Cpu;
    let n = ids.len();
    let t = |e: candle_core::Error| bad(e.to_string());
    Ok(LabelledBatch {
        pos: Tensor::from_vec(pos, (n, d), &dev).map_err(t)?,
        normals: Tensor::from_vec(nrm, (n, d), &dev).map_err(t)?,
        batch: Tensor::from_vec(ids, n, &dev).map_err(t)?,
        labels: Tensor::from_vec(labels, shapes.len(), &dev).map_err(t)?,
        parts: if with_parts {
            Some(Tensor::from_vec(parts, n, &dev).map_err(t)?)
        } else {
            None
        },
        features: if cfg.features.is_some() {
            let w = cfg.features.dim(d);
            Some(Tensor::from_vec(feats, (n, w), &dev).map_err(t)?)
        } else {
            None
        },
    })
}

/// Anything that yields shapes by index.
pub trait ShapeSource: Send + Sync {
    /// Number of shapes.
    fn len(&self) -> usize;
    /// True without shapes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Shape `i`.
    fn get(&self, i: usize) -> Result<Shape, DataError>;
}

/// A split of the synthetic set.
#[derive(Debug, Clone)]
pub struct SyntheticSplit(pub Synthetic, pub Split);

impl ShapeSource for SyntheticSplit {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn get(&self, i: usize) -> Result<Shape, DataError> {
        Ok(self.0.shape(self.1, i))
    }
}

/// A split of the any-dimensional synthetic set.
#[derive(Debug, Clone)]
pub struct SyntheticNdSplit(pub SyntheticNd, pub Split);

impl ShapeSource for SyntheticNdSplit {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn get(&self, i: usize) -> Result<Shape, DataError> {
        Ok(self.0.shape(self.1, i))
    }
}

/// Shapes held in memory: generate or load once, then reuse every epoch.
#[derive(Debug, Clone)]
pub struct InMemory(pub Vec<Shape>);

impl InMemory {
    /// Loads every shape of `source` (in parallel).
    pub fn collect(source: &dyn ShapeSource) -> Result<Self, DataError> {
        use rayon::prelude::*;
        (0..source.len())
            .into_par_iter()
            .map(|i| source.get(i))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// The first `n` shapes (all if fewer).
    pub fn truncated(&self, n: usize) -> Self {
        Self(self.0.iter().take(n).cloned().collect())
    }

    /// The first `n` shapes (all if fewer), repeated in order until there are `len`: a subset
    /// that trains with the whole set's epoch length, so sizes can share epochs, steps, the
    /// validation schedule and patience.
    pub fn truncated_repeated(&self, n: usize, len: usize) -> Self {
        let first = &self.0[..n.min(self.0.len())];
        if first.is_empty() {
            return Self(Vec::new());
        }
        Self(
            first
                .iter()
                .cycle()
                .take(len.max(first.len()))
                .cloned()
                .collect(),
        )
    }
}

impl ShapeSource for InMemory {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn get(&self, i: usize) -> Result<Shape, DataError> {
        self.0
            .get(i)
            .cloned()
            .ok_or_else(|| DataError::layout("<memory>", format!("shape index {i} out of range")))
    }
}

/// A split of a ModelNet-normal folder (each shape normalised into the unit ball on load).
#[derive(Debug, Clone)]
pub struct ModelNetSplit(pub ModelNetNormal, pub Split);

impl ShapeSource for ModelNetSplit {
    fn len(&self) -> usize {
        self.0.entries(self.1).len()
    }
    fn get(&self, i: usize) -> Result<Shape, DataError> {
        let mut s = self.0.load(&self.0.entries(self.1)[i])?;
        s.normalize();
        Ok(s)
    }
}

/// The batches of one epoch, prepared one ahead on a background thread.
#[derive(Debug)]
pub struct Loader {
    rx: Receiver<Result<LabelledBatch, DataError>>,
}

impl Loader {
    /// Starts epoch `epoch` over `source`: order and randomness depend on `(cfg.seed, epoch)`
    /// only, so every run (and a resumed run) sees the same batches.
    pub fn epoch(source: Arc<dyn ShapeSource>, cfg: BatchConfig, epoch: u64) -> Self {
        let (tx, rx) = sync_channel(1);
        std::thread::spawn(move || {
            let mut rng =
                ChaCha8Rng::seed_from_u64(cfg.seed ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut order: Vec<usize> = (0..source.len()).collect();
            if cfg.shuffle {
                order.shuffle(&mut rng);
            }
            for chunk in order.chunks(cfg.batch_size.max(1)) {
                let batch = chunk
                    .iter()
                    .map(|&i| source.get(i))
                    .collect::<Result<Vec<_>, _>>()
                    .and_then(|shapes| make_batch(&shapes, &cfg, &mut rng));
                let stop = batch.is_err();
                if tx.send(batch).is_err() || stop {
                    return; // receiver dropped, or an error was delivered
                }
            }
        });
        Self { rx }
    }
}

impl Iterator for Loader {
    type Item = Result<LabelledBatch, DataError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(label: u32) -> Shape {
        Shape {
            d: 3,
            points: vec![0.0; 3],
            normals: vec![0.0, 0.0, 1.0],
            label,
            parts: None,
        }
    }

    #[test]
    fn a_repeated_subset_cycles_its_first_shapes_to_the_length() {
        let set = InMemory((0..10).map(shape).collect());
        let labels = |s: &InMemory| s.0.iter().map(|x| x.label).collect::<Vec<_>>();
        assert_eq!(labels(&set.truncated_repeated(3, 7)), [0, 1, 2, 0, 1, 2, 0]);
        // A subset longer than the length is kept whole; an empty one stays empty.
        assert_eq!(labels(&set.truncated_repeated(5, 2)), [0, 1, 2, 3, 4]);
        assert!(set.truncated_repeated(0, 7).0.is_empty());
        assert_eq!(labels(&set.truncated_repeated(20, 10)), labels(&set));
    }
}
