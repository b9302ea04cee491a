//! The normal estimator against classical PCA on held-out real shapes under random O(3)
//! transformations (`tensor-frames evaluate-normals`).

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use tf_datasets::{ModelNetNormal, ShapeSource, Split};
use tf_group::orthogonal::haar_orthogonal_host;
use tf_models::Model;

use crate::predict::{predict, Output, PredictError, PredictOptions};

type Result<T> = std::result::Result<T, PredictError>;

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

/// Scores of the model (without consensus) and of PCA at the first `k` on one test shape.
#[derive(Debug, Clone, Serialize)]
pub struct ShapeScores {
    /// Dataset name.
    pub data: String,
    /// Gaussian position noise added.
    pub noise: f64,
    /// Shape id, e.g. `mech_0003`.
    pub id: String,
    /// Points scored.
    pub points: usize,
    /// The model's mean cos and mean |cos|.
    pub cos: f64,
    /// See `cos`.
    pub abs_cos: f64,
    /// PCA's mean cos and mean |cos|.
    pub pca_cos: f64,
    /// See `pca_cos`.
    pub pca_abs_cos: f64,
    /// Whether the source mesh has an outside (from the folder's provenance file, if any).
    pub has_outside: Option<bool>,
}

/// What [`evaluate_normals`] measures: one row per method, and per-shape scores.
#[derive(Debug, Clone, Serialize)]
pub struct NormalsReport {
    /// One row per method.
    pub rows: Vec<NormalScores>,
    /// One entry per test shape.
    pub shapes: Vec<ShapeScores>,
}

fn add(acc: &mut (f64, f64, usize), a: (f64, f64, usize)) {
    *acc = (acc.0 + a.0, acc.1 + a.1, acc.2 + a.2);
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
#[derive(Debug, Clone)]
pub struct NormalsEval {
    /// Points per model input (the training size).
    pub group: usize,
    /// Neighbour counts of the PCA baselines on all points (one row each; the first is also
    /// run on the model's groups).
    pub ks: Vec<usize>,
    /// At most this many test shapes.
    pub max_shapes: Option<usize>,
    /// Seed of the transformations, noise and groupings.
    pub seed: u64,
    /// Gaussian position noise relative to the unit ball.
    pub noise: f64,
    /// Random groupings averaged per point.
    pub passes: usize,
    /// Self-refinement rounds of the model ([`PredictOptions::rounds`]).
    pub rounds: usize,
    /// The shapes scored: the test split, or the trainer's validation shapes (for choosing
    /// between models without looking at the test split).
    pub split: EvalSplit,
}

/// Which shapes of a ModelNet-normal folder [`evaluate_normals`] scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EvalSplit {
    /// The held-out test split (reported numbers).
    #[default]
    Test,
    /// Every tenth training shape, the ones the trainer validates on
    /// ([`tf_train::is_validation`]).
    Validation,
}

/// Scores `model` (grouped inference, alone, with orientation consensus and with winding-number
/// orientation) and PCA (on all points at every `k` of `e.ks`, with winding-number orientation
/// at the first `k`, and on the model's groups at the first) on every test shape
/// of a ModelNet-normal folder, each under its own Haar-random element of O(3).
pub fn evaluate_normals(
    model: &Model,
    name: &str,
    root: &std::path::Path,
    e: &NormalsEval,
) -> Result<NormalsReport> {
    let NormalsEval {
        group,
        ref ks,
        max_shapes,
        seed,
        noise,
        passes,
        rounds,
        split: which,
    } = *e;
    let Some(&k) = ks.first() else {
        return Err(PredictError::Input(
            "evaluate-normals needs at least one PCA neighbour count".into(),
        ));
    };
    let set = ModelNetNormal::open(root)?;
    let (from, picked): (Split, Vec<usize>) = match which {
        EvalSplit::Test => (Split::Test, (0..set.entries(Split::Test).len()).collect()),
        EvalSplit::Validation => (
            Split::Train,
            (0..set.entries(Split::Train).len())
                .filter(|&i| tf_train::is_validation(i))
                .collect(),
        ),
    };
    if picked.is_empty() {
        let what = match which {
            EvalSplit::Test => "test shapes",
            EvalSplit::Validation => {
                "validation shapes (every tenth training shape: at least 10 are needed)"
            }
        };
        return Err(PredictError::Input(format!(
            "{}: no {what} to score",
            root.display()
        )));
    }
    let ids: Vec<String> = {
        let entries = set.entries(from);
        picked.iter().map(|&i| entries[i].id.clone()).collect()
    };
    let split = tf_datasets::ModelNetSplit(set, from);
    let sources = tf_datasets::read_sources(root)?;
    let mut per_shape = Vec::new();
    // (sum of cos, sum of |cos|, points) per method.
    let zero = (0.0, 0.0, 0usize);
    // The model, with winding, and PCA (first k) on the shapes whose outside is defined.
    let (mut ours_defined, mut pca_defined, mut winding_defined, mut defined) =
        (zero, zero, zero, 0usize);
    let n = max_shapes.map_or(picked.len(), |m| m.min(picked.len()));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (mut ours, mut ours_consensus, mut ours_winding, mut pca_winding, mut pca_sub) =
        (zero, zero, zero, zero, zero);
    let mut pca_visibility = zero;
    let winding = tf_normals::WindingOrientation::default();
    let mut pca = vec![zero; ks.len()];
    for (i, &index) in picked.iter().enumerate().take(n) {
        let shape = split.get(index)?;
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
            rounds,
            ..Default::default()
        };
        let (mut shape_ours, mut shape_winding) = (zero, zero);
        if let (Output::Normals(est), _) = predict(model, &pts, group, &opts)? {
            accumulate(&est, &nrm, d, &mut shape_ours);
            add(&mut ours, shape_ours);
            let mut c = est.clone();
            crate::predict::orientation_consensus(
                &pts,
                &mut c,
                d,
                crate::predict::CONSENSUS_NEIGHBOURS,
                8,
            )?;
            accumulate(&c, &nrm, d, &mut ours_consensus);
            let mut w = est;
            tf_normals::orient_by_winding(&pts, &mut w, d, &winding)?;
            accumulate(&w, &nrm, d, &mut shape_winding);
            add(&mut ours_winding, shape_winding);
        }
        let mut shape_pca = zero;
        for (j, (&k, acc)) in ks.iter().zip(pca.iter_mut()).enumerate() {
            let est = tf_normals::pca_normals(&pts, d, k)?;
            accumulate(&est, &nrm, d, acc);
            if j == 0 {
                accumulate(&est, &nrm, d, &mut shape_pca);
                let mut w = est.clone();
                tf_normals::orient_by_winding(&pts, &mut w, d, &winding)?;
                accumulate(&w, &nrm, d, &mut pca_winding);
                let mut v = est;
                tf_normals::orient_by_visibility(&pts, &mut v, d, &Default::default())?;
                accumulate(&v, &nrm, d, &mut pca_visibility);
            }
        }
        let id = ids.get(i).cloned().unwrap_or_default();
        let has_outside = sources
            .as_ref()
            .map(|m| m.get(&id).is_none_or(|s| s.has_outside()));
        if has_outside == Some(true) {
            defined += 1;
            add(&mut ours_defined, shape_ours);
            add(&mut pca_defined, shape_pca);
            add(&mut winding_defined, shape_winding);
        }
        let mean = |a: (f64, f64, usize)| (a.0 / a.2.max(1) as f64, a.1 / a.2.max(1) as f64);
        let ((cos, abs_cos), (pca_cos, pca_abs_cos)) = (mean(shape_ours), mean(shape_pca));
        per_shape.push(ShapeScores {
            data: name.into(),
            noise,
            id,
            points: shape_pca.2,
            cos,
            abs_cos,
            pca_cos,
            pca_abs_cos,
            has_outside,
        });
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
            let e = tf_normals::pca_normals(&sub, d, k.min(idx.len().saturating_sub(1)))?;
            for (j, &i) in idx.iter().enumerate() {
                est[i * d..(i + 1) * d].copy_from_slice(&e[j * d..(j + 1) * d]);
            }
        }
        accumulate(&est, &nrm, d, &mut pca_sub);
    }
    let row_of = |method: String, a: (f64, f64, usize), shapes: usize| NormalScores {
        data: name.into(),
        method,
        shapes,
        points: a.2,
        noise,
        cos: a.0 / a.2.max(1) as f64,
        abs_cos: a.1 / a.2.max(1) as f64,
    };
    let row = |method: String, a: (f64, f64, usize)| row_of(method, a, n);
    let mut rows = vec![
        row(
            match model.config().input_features() {
                tf_models::InputFeatures::PcaNormal {
                    k,
                    scales,
                    orient,
                    confidence,
                    offset,
                    visibility,
                } => {
                    let ks: Vec<String> = (0..scales).map(|s| (k << s).to_string()).collect();
                    let signed = match orient {
                        tf_normals::PcaOrientation::Centroid => "",
                        tf_normals::PcaOrientation::Winding => ", winding-oriented",
                        tf_normals::PcaOrientation::WindingCoarse => {
                            ", winding-oriented coarse to fine"
                        }
                        tf_normals::PcaOrientation::Visibility => {
                            ", winding-oriented coarse to fine, then by visibility"
                        }
                        tf_normals::PcaOrientation::VisibilityConfident => {
                            ", winding-oriented coarse to fine, then by confident visibility"
                        }
                    };
                    let scored = if confidence {
                        ", with the vote's agreement"
                    } else {
                        ""
                    };
                    let sided = if offset { ", with the offsets" } else { "" };
                    let seen = if visibility {
                        ", with the visibility score"
                    } else {
                        ""
                    };
                    format!(
                        "TF-PointNet++ refining PCA normals (k = {}{signed}{scored}{sided}{seen})",
                        ks.join(", ")
                    )
                }
                _ => "TF-PointNet++".into(),
            },
            ours,
        ),
        row(
            "the same + neighbour orientation consensus".into(),
            ours_consensus,
        ),
        row("the same + winding-number orientation".into(), ours_winding),
    ];
    for (&k, acc) in ks.iter().zip(pca) {
        rows.push(row(
            format!("PCA, k = {k}, all points, oriented away from the centroid"),
            acc,
        ));
    }
    rows.push(row(
        format!("PCA, k = {k}, all points, winding-number orientation"),
        pca_winding,
    ));
    rows.push(row(
        format!("PCA, k = {k}, all points, visibility orientation"),
        pca_visibility,
    ));
    rows.push(row(
        format!("PCA, k = {k}, on the model's groups of {group} points"),
        pca_sub,
    ));
    if sources.is_some() {
        // Orientation is only defined where the mesh has an outside (not, e.g., for a single
        // triangle): the oriented scores on those shapes alone.
        rows.push(row_of(
            "the model, on the shapes whose mesh has an outside".into(),
            ours_defined,
            defined,
        ));
        rows.push(row_of(
            "the model + winding-number orientation, on the same shapes".into(),
            winding_defined,
            defined,
        ));
        rows.push(row_of(
            format!("PCA, k = {k}, all points, on the same shapes"),
            pca_defined,
            defined,
        ));
    }
    Ok(NormalsReport {
        rows,
        shapes: per_shape,
    })
}

/// The Markdown table `tensor-frames evaluate-normals` writes: a header saying what was scored
/// and how, one line per row, the wall time and command, and where the per-shape scores are.
pub fn normals_markdown(
    rows: &[NormalScores],
    split: EvalSplit,
    seconds: f64,
    command: &str,
    first_k: usize,
    per_shape: &std::path::Path,
) -> String {
    let mut md = String::from(if split == EvalSplit::Validation {
        "# Normal estimation on validation shapes: model vs PCA\n\n\
         **Validation shapes** (every tenth training shape, the trainer's validation set; for \
         choosing between models, not for reporting) of the offline real sets"
    } else {
        "# Normal estimation on held-out real shapes: bundled model vs PCA\n\n\
         Test splits (split by shape) of the offline real sets"
    });
    md.push_str(
        " (`just data-real`); every shape \
         under its own Haar-random rotation or reflection, optionally with Gaussian position \
         noise (relative to the unit ball). The model predicts at its training density (random \
         groups of points, averaged over several groupings, see `tensor-frames predict`); a \
         model that refines PCA normals gets them computed on all points and predicts \
         `sum_s a_s(f) * estimate_s + correction`. PCA uses k nearest neighbours, on all points \
         (at several k, so the baseline is not held to one neighbourhood size) or on the model's \
         groups, and orients normals away from the centroid. Every row sees the same noisy \
         points.\n\n\
         | data | noise | method | shapes | points | mean cos (oriented) | mean abs cos (unoriented) |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.4} | {:.4} |\n",
            r.data, r.noise, r.method, r.shapes, r.points, r.cos, r.abs_cos
        ));
    }
    md.push_str(&format!(
        "\nWall time {seconds:.0} s. Command: `{command}`\n"
    ));
    md.push_str(&format!(
        "\nPer-shape scores of the model and of PCA (k = {first_k}): `{}`.\n",
        per_shape.display()
    ));
    md
}
