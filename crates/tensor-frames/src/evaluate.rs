//! The normal estimator against classical PCA on held-out real shapes under random O(3)
//! transformations (`tensor-frames evaluate-normals`).

use anyhow::Result;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use tf_datasets::{ModelNetNormal, ShapeSource, Split};
use tf_group::orthogonal::haar_orthogonal_host;
use tf_models::Model;

use crate::predict::{predict, Output, PredictOptions};

/// Scores of one method on one dataset.
#[derive(Debug, Clone, Serialize)]
pub struct NormalScores {
    /// Dataset name.
    pub data: String,
    /// Method name.
    pub method: String,
    /// Test shapes.
    pub shapes: usize,
    /// Points scored.
    pub points: usize,
    /// Gaussian position noise added (relative to the unit ball).
    pub noise: f64,
    /// Mean cosine similarity (oriented).
    pub cos: f64,
    /// Mean |cos| (unoriented).
    pub abs_cos: f64,
}

fn accumulate(est: &[f64], truth: &[f64], d: usize, acc: &mut (f64, f64, usize)) {
    for (e, t) in est.chunks(d).zip(truth.chunks(d)) {
        let len = t.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        let c = e.iter().zip(t).map(|(a, b)| a * b).sum::<f64>() / len;
        acc.0 += c;
        acc.1 += c.abs();
        acc.2 += 1;
    }
}

/// How [`evaluate_normals`] runs.
#[derive(Debug, Clone, Copy)]
pub struct NormalsEval {
    /// Points per model input (the training size).
    pub group: usize,
    /// Neighbours of PCA.
    pub k: usize,
    /// At most this many test shapes.
    pub max_shapes: Option<usize>,
    /// Seed of the transformations, noise and groupings.
    pub seed: u64,
    /// Gaussian position noise relative to the unit ball.
    pub noise: f64,
    /// Random groupings averaged per point.
    pub passes: usize,
}

/// Scores `model` (grouped inference) and PCA (all points, and the model's groups) on every
/// test shape of a ModelNet-normal folder, each under its own Haar-random element of O(3).
pub fn evaluate_normals(
    model: &Model,
    name: &str,
    root: &std::path::Path,
    e: &NormalsEval,
) -> Result<[NormalScores; 4]> {
    let NormalsEval {
        group,
        k,
        max_shapes,
        seed,
        noise,
        passes,
    } = *e;
    let set = ModelNetNormal::open(root)?;
    let split = tf_datasets::ModelNetSplit(set, Split::Test);
    let n = max_shapes.map_or(split.len(), |m| m.min(split.len()));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (mut ours, mut ours_consensus, mut pca, mut pca_sub) = (
        (0.0, 0.0, 0usize),
        (0.0, 0.0, 0usize),
        (0.0, 0.0, 0usize),
        (0.0, 0.0, 0usize),
    );
    for i in 0..n {
        let shape = split.get(i)?;
        let d = shape.d;
        let q = haar_orthogonal_host(d, &mut rng);
        let rot = |v: &[f64]| -> Vec<f64> {
            v.chunks(d)
                .flat_map(|p| {
                    (0..d)
                        .map(|r| (0..d).map(|c| q[r * d + c] * p[c]).sum::<f64>())
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let (mut pts, nrm) = (rot(&shape.points), rot(&shape.normals));
        // Scanner-like noise, relative to the unit ball the shapes are normalised into.
        if noise > 0.0 {
            use rand_distr::{Distribution, StandardNormal};
            for v in pts.iter_mut() {
                let e: f64 = StandardNormal.sample(&mut rng);
                *v += noise * e;
            }
        }
        let opts = PredictOptions {
            seed: seed ^ i as u64,
            passes,
            ..Default::default()
        };
        if let (Output::Normals(est), _) = predict(model, &pts, group, &opts)? {
            accumulate(&est, &nrm, d, &mut ours);
            let mut c = est.clone();
            crate::predict::orientation_consensus(
                &pts,
                &mut c,
                d,
                crate::predict::CONSENSUS_NEIGHBOURS,
                8,
            )?;
            accumulate(&c, &nrm, d, &mut ours_consensus);
        }
        accumulate(&tf_frames::pca_normals(&pts, d, k)?, &nrm, d, &mut pca);
        // PCA on exactly the groups the model sees (the same density as the model).
        let m = pts.len() / d;
        let mut order: Vec<usize> = (0..m).collect();
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed));
        let groups = m.div_ceil(group.max(8));
        let mut est = vec![0.0; m * d];
        for g in 0..groups {
            let idx = &order[g * m / groups..(g + 1) * m / groups];
            let sub: Vec<f64> = idx
                .iter()
                .flat_map(|&i| pts[i * d..(i + 1) * d].to_vec())
                .collect();
            let e = tf_frames::pca_normals(&sub, d, k.min(idx.len().saturating_sub(1)))?;
            for (j, &i) in idx.iter().enumerate() {
                est[i * d..(i + 1) * d].copy_from_slice(&e[j * d..(j + 1) * d]);
            }
        }
        accumulate(&est, &nrm, d, &mut pca_sub);
    }
    let row = |method: String, a: (f64, f64, usize)| NormalScores {
        data: name.into(),
        method,
        shapes: n,
        points: a.2,
        noise,
        cos: a.0 / a.2.max(1) as f64,
        abs_cos: a.1 / a.2.max(1) as f64,
    };
    Ok([
        row(
            match model.config().input_features() {
                tf_models::InputFeatures::PcaNormal { k } => {
                    format!("TF-PointNet++ refining PCA normals (k = {k})")
                }
                _ => "TF-PointNet++".into(),
            },
            ours,
        ),
        row(
            "the same + neighbour orientation consensus".into(),
            ours_consensus,
        ),
        row(
            format!("PCA, k = {k}, all points, oriented away from the centroid"),
            pca,
        ),
        row(
            format!("PCA, k = {k}, on the model's groups of {group} points"),
            pca_sub,
        ),
    ])
}
