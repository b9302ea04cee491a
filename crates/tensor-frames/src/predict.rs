//! Inference on a user's own point cloud of any size, position and scale.
//!
//! The cloud is centred at its centroid and scaled into the unit ball (as the training shapes
//! were), then its points are dealt at random into groups of about the training size; each
//! group is a uniform subsample of the whole shape, exactly what the model saw in training, so
//! every point gets a prediction from a model input at the training density. Groups run `batch` at a time, which
//! bounds memory for clouds of any size. Normals do not depend on translation and scale, so
//! they need no mapping back; positions are written as read.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use tf_models::{Batch, HeadConfig, Model};
use tf_normals::InputFeatures;

/// Why [`predict`] or its input readers failed.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// The cloud cannot be used: wrong shape, non-finite or coincident points, too few.
    #[error("{0}")]
    Input(String),
    /// The input file could not be read.
    #[error(transparent)]
    Data(#[from] tf_datasets::DataError),
    /// No bundled model where it is looked for.
    #[error(
        "the bundled model (models/normals/model.safetensors) was not found; pass --checkpoint"
    )]
    NoBundledModel,
    /// Computing the model's input features failed.
    #[error("computing the model's input features: {0}")]
    Features(#[source] candle_core::Error),
    /// The model failed.
    #[error(transparent)]
    Model(#[from] candle_core::Error),
    /// The model returned NaN or infinite values (written out, they would look like answers).
    #[error("the model returned {0} non-finite values; no output was written")]
    NonFinite(usize),
}

type Result<T> = std::result::Result<T, PredictError>;

fn bad_input<T>(message: String) -> Result<T> {
    Err(PredictError::Input(message))
}

/// What [`predict`] returns per point (and per shape for classification).
#[derive(Debug, Clone)]
pub enum Output {
    /// Unit normals, `n * d`.
    Normals(Vec<f64>),
    /// Part label per point.
    Parts(Vec<u32>),
    /// One class for the whole cloud (mean logits over groups).
    Class(u32),
}

/// Options of [`predict`].
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// Points per group (0: the checkpoint's training size).
    pub group: usize,
    /// Groups per forward pass.
    pub batch: usize,
    /// Seed of the random grouping.
    pub seed: u64,
    /// Independent random groupings whose predictions are averaged (test-time ensemble).
    pub passes: usize,
    /// Rounds of self-refinement for models that refine normal estimates given as input
    /// features: after each round, every estimate is re-signed to agree with the prediction
    /// and the model runs again (1: a single prediction).
    pub rounds: usize,
    /// Rounds of neighbour orientation consensus after the model (0: off; see
    /// [`orientation_consensus`]). It repairs isolated sign errors on dense smooth scans and
    /// hurts on sparse thin parts, where neighbours across a wall disagree rightly.
    pub consensus: usize,
    /// Repair the orientation after the model (and after consensus) by the winding number of
    /// the cloud ([`tf_normals::orient_by_winding`]): fixes wrongly oriented patches on closed
    /// surfaces and abstains on thin sheets. Directions are unchanged.
    pub winding: bool,
    /// Orient every normal towards this sensor position, last (as Open3D's
    /// `orient_normals_towards_camera_location`): a normal pointing away from it is flipped.
    /// Directions are unchanged. The right choice for a single scan from a known position,
    /// where the model's orientation can only guess which side was seen.
    pub viewpoint: Option<Vec<f64>>,
    /// Neighbours of the first PCA scale of the input features (default: the model's, which
    /// it was trained with; more smooth noisy scans, fewer keep thin parts apart).
    pub k: Option<usize>,
    /// At most this many points cast the orientation votes of the input features (see
    /// `tf_normals::InputFeatures::compute_with`); larger clouds vote on a subsample.
    pub vote_points: usize,
    /// Where the prediction lies within this many degrees of the model's first input
    /// estimate (the smallest-scale PCA normal), take that estimate's direction, signed as the
    /// prediction (0: off). On dense, clean scans the PCA fit over a few nearby points is
    /// more precise than a model that sees the cloud in groups of its training size; where
    /// the two disagree more (edges, noise, thin parts) the prediction is kept. `None`:
    /// [`SNAP_AUTO_DEGREES`] on clouds of more than [`SNAP_AUTO_POINTS`] points, off on
    /// smaller ones (which the model sees at nearly full density).
    pub snap_degrees: Option<f64>,
}

/// Clouds above this many points snap by default (see [`PredictOptions::snap_degrees`]).
pub const SNAP_AUTO_POINTS: usize = 50_000;
/// The default snapping angle of dense clouds, in degrees.
pub const SNAP_AUTO_DEGREES: f64 = 5.0;

impl Default for PredictOptions {
    fn default() -> Self {
        Self {
            group: 0,
            batch: 8,
            seed: 0,
            passes: 1,
            rounds: 1,
            consensus: 0,
            winding: false,
            viewpoint: None,
            k: None,
            vote_points: InputFeatures::VOTE_POINTS,
            snap_degrees: None,
        }
    }
}

/// How long [`predict`] took, and where: the input features (for the bundled model, the
/// three-scale PCA fits and the winding and ray passes that sign them), the model's forward
/// passes (every pass and round) and the orientation post-processes; and what those changed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report {
    /// Points of the cloud per second of the whole prediction.
    pub points_per_second: f64,
    /// Seconds computing the input features.
    pub features: f64,
    /// Seconds after the features: the random groupings and the model's forward passes.
    pub model: f64,
    /// Seconds of the orientation post-processes (consensus, winding).
    pub post: f64,
    /// Signs flipped by the neighbour consensus.
    pub consensus_flips: usize,
    /// Signs flipped by the winding repair, if it ran.
    pub winding_flips: Option<usize>,
    /// Signs flipped towards the viewpoint, if one was given.
    pub viewpoint_flips: Option<usize>,
}

/// Centroid and largest distance from it: the training normalisation (`Shape::normalize`),
/// and equivariant, so rotating the input rotates the output exactly.
fn frame_of(points: &[f64], d: usize) -> (Vec<f64>, f64) {
    let n = (points.len() / d) as f64;
    let mut c = vec![0.0; d];
    for p in points.chunks(d) {
        c.iter_mut().zip(p).for_each(|(a, x)| *a += x / n);
    }
    let r = points
        .chunks(d)
        .map(|p| p.iter().zip(&c).map(|(x, m)| (x - m).powi(2)).sum::<f64>())
        .fold(0.0, f64::max)
        .sqrt();
    (c, r)
}

/// Predicts for every point of `points (n * d)`, then runs the orientation post-processes the
/// options ask for; returns the output and a report of where the time went.
pub fn predict(
    model: &Model,
    points: &[f64],
    group: usize,
    opts: &PredictOptions,
) -> Result<(Output, Report)> {
    let d = model.config().d();
    if points.is_empty() || points.len() % d != 0 {
        return bad_input(format!(
            "expected n x {d} coordinates, got {} numbers",
            points.len()
        ));
    }
    if points.iter().any(|v| !v.is_finite()) {
        return bad_input("the cloud has NaN or infinite coordinates".into());
    }
    let n = points.len() / d;
    if n < 8 {
        return bad_input(format!("need at least 8 points, got {n}"));
    }
    let (c, r) = frame_of(points, d);
    // Relative to the centre's own magnitude (not to 1): a cloud measured at 1e-10 scale is a
    // shape; points that agree to 9 digits of their offset are not.
    let extent = c.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if !(r > 1e-9 * extent && r > f64::MIN_POSITIVE.sqrt()) {
        return bad_input("all points coincide: no shape to estimate normals of".into());
    }
    let unit: Vec<f32> = points
        .chunks(d)
        .flat_map(|p| {
            p.iter()
                .zip(&c)
                .map(|(x, m)| ((x - m) / r) as f32)
                .collect::<Vec<_>>()
        })
        .collect();
    let start = Instant::now();
    // Computed input features see the whole cloud at its full density, as in training.
    let spec = input_features(model, opts)?;
    let unit64: Vec<f64> = unit.iter().map(|v| *v as f64).collect();
    let mut features: Vec<f32> = spec
        .compute_with(&unit64, d, opts.vote_points)
        .map_err(PredictError::Features)?
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let features_seconds = start.elapsed().as_secs_f64();
    let fw = spec.dim(d);
    let group = if opts.group > 0 {
        opts.group
    } else {
        group.max(8)
    };
    let groups = n.div_ceil(group);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
    let orders: Vec<Vec<usize>> = (0..opts.passes.max(1))
        .map(|_| {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut rng);
            order
        })
        .collect();
    let chunks: Vec<&[usize]> = orders
        .iter()
        .flat_map(|order| (0..groups).map(move |g| &order[g * n / groups..(g + 1) * n / groups]))
        .collect();
    let head = model.head();
    let rounds = match (head, spec.estimates()) {
        (HeadConfig::Normals, Some(_)) => opts.rounds.max(1),
        _ => 1,
    };
    let mut out = predict_groups(model, &unit, &features, fw, &chunks, head, opts, n, d)?;
    for round in 1..rounds {
        if let (Output::Normals(prev), Some((offset, count))) = (&out, spec.estimates()) {
            resign(&mut features, fw, offset, count, prev, d);
        }
        out = predict_groups(model, &unit, &features, fw, &chunks, head, opts, n, d)?;
        tracing::debug!(round, "self-refinement round done");
    }
    let bad = match &out {
        Output::Normals(v) => v.iter().filter(|x| !x.is_finite()).count(),
        _ => 0,
    };
    if bad > 0 {
        return Err(PredictError::NonFinite(bad));
    }
    if let (Output::Normals(normals), Some((offset, _))) = (&mut out, spec.estimates()) {
        if let Some(a) = opts.snap_degrees {
            if !(0.0..90.0).contains(&a) {
                return bad_input(format!(
                    "--snap must be an angle in degrees from 0 to below 90, got {a}"
                ));
            }
        }
        let degrees = opts.snap_degrees.unwrap_or(if n > SNAP_AUTO_POINTS {
            SNAP_AUTO_DEGREES
        } else {
            0.0
        });
        if degrees > 0.0 {
            snap(normals, &features, fw, offset, d, degrees);
        }
    }
    let model_done = start.elapsed().as_secs_f64();
    let (mut consensus_flips, mut winding_flips, mut viewpoint_flips) = (0, None, None);
    if let Output::Normals(normals) = &mut out {
        consensus_flips =
            orientation_consensus(points, normals, d, CONSENSUS_NEIGHBOURS, opts.consensus)?;
        if opts.winding {
            let opts = tf_normals::WindingOrientation::default();
            winding_flips = Some(tf_normals::orient_by_winding(points, normals, d, &opts)?);
        }
        if let Some(v) = &opts.viewpoint {
            if v.len() != d || v.iter().any(|c| !c.is_finite()) {
                return bad_input(format!("the viewpoint must be {d} finite coordinates"));
            }
            viewpoint_flips = Some(orient_towards(points, normals, d, v));
        }
    }
    let total = start.elapsed().as_secs_f64();
    Ok((
        out,
        Report {
            points_per_second: n as f64 / total.max(1e-9),
            features: features_seconds,
            model: model_done - features_seconds,
            post: total - model_done,
            consensus_flips,
            winding_flips,
            viewpoint_flips,
        },
    ))
}

/// Flips the normals that point away from `viewpoint` (`n . (v - p) < 0`); returns how many.
pub fn orient_towards(points: &[f64], normals: &mut [f64], d: usize, viewpoint: &[f64]) -> usize {
    let mut flips = 0;
    for (p, m) in points.chunks(d).zip(normals.chunks_mut(d)) {
        let dot: f64 = p
            .iter()
            .zip(m.iter())
            .zip(viewpoint)
            .map(|((x, n), v)| n * (v - x))
            .sum();
        if dot < 0.0 {
            m.iter_mut().for_each(|c| *c = -*c);
            flips += 1;
        }
    }
    flips
}

/// Re-signs each point's normal estimates (`count` `1n` vectors from column `offset` of its
/// feature row, [`tf_models::InputFeatures::estimates`]) to agree with `normals`, the model's
/// last prediction; the estimates share one sign per point, so they flip together. Only the
/// sign of a dot product enters, so this commutes with rotations and reflections. The
/// winding-agreement scalars between the `count` variations and the estimates (`confidence`
/// features) measure agreement with that sign and flip with it; the field of the other points
/// is not recomputed, so for them this is the point's own term only. The `offset` scalars
/// after them are measured along the estimates, and flip with them exactly.
fn resign(features: &mut [f32], fw: usize, offset: usize, count: usize, normals: &[f64], d: usize) {
    for (row, n) in features.chunks_mut(fw).zip(normals.chunks(d)) {
        let dot: f64 = row[offset..offset + d]
            .iter()
            .zip(n)
            .map(|(a, b)| *a as f64 * b)
            .sum();
        if dot < 0.0 {
            row[count..].iter_mut().for_each(|v| *v = -*v);
        }
    }
}

/// Replaces each normal of `normals (n * d)` that lies within `degrees` of the estimate at
/// column `offset` of its feature row (`fw` wide) by that estimate's direction, signed as the
/// normal (see [`PredictOptions::snap_degrees`]). Invariant (an angle and a sign), so
/// equivariance is kept; zero estimates are skipped.
pub fn snap(
    normals: &mut [f64],
    features: &[f32],
    fw: usize,
    offset: usize,
    d: usize,
    degrees: f64,
) {
    let limit = degrees.to_radians().cos();
    for (n, f) in normals.chunks_mut(d).zip(features.chunks(fw)) {
        let e: Vec<f64> = f[offset..offset + d].iter().map(|&x| x as f64).collect();
        let ne = e.iter().map(|x| x * x).sum::<f64>().sqrt();
        if ne == 0.0 {
            continue;
        }
        let dot: f64 = n.iter().zip(&e).map(|(a, b)| a * b).sum::<f64>() / ne;
        if dot.abs() >= limit {
            let sign = if dot < 0.0 { -1.0 } else { 1.0 };
            n.iter_mut().zip(&e).for_each(|(a, b)| *a = sign * b / ne);
        }
    }
}

/// The model's input features, with `opts.k` neighbours if given.
fn input_features(model: &Model, opts: &PredictOptions) -> Result<InputFeatures> {
    let spec = model.config().input_features();
    match opts.k {
        None => Ok(spec),
        Some(k) => match spec.with_k(k) {
            Some(s) => Ok(s),
            None => bad_input(
                "--k: this model computes no neighbourhood features (it reads positions only)"
                    .to_string(),
            ),
        },
    }
}

/// One prediction over the groups `chunks` of the normalised cloud `unit`.
#[allow(clippy::too_many_arguments)]
fn predict_groups(
    model: &Model,
    unit: &[f32],
    features: &[f32],
    fw: usize,
    chunks: &[&[usize]],
    head: HeadConfig,
    opts: &PredictOptions,
    n: usize,
    d: usize,
) -> Result<Output> {
    let spec = input_features(model, opts)?;
    let width = match head {
        HeadConfig::Normals => d,
        HeadConfig::Segmentation { classes } | HeadConfig::Classification { classes } => classes,
    };
    let mut per_point = vec![0f32; n * width];
    let normals_head = head == HeadConfig::Normals;
    let mut reference = vec![0f32; if normals_head { n * width } else { 0 }];
    let mut aligned = vec![0f32; if normals_head { n * width } else { 0 }];
    let mut class_logits = vec![0f64; width];
    let dtype = model
        .varmap()
        .all_vars()
        .first()
        .map_or(DType::F32, |v| v.dtype());
    // Batches are assembled on the host and moved to the model's device once each.
    let dev = model.device();
    for batch in chunks.chunks(opts.batch.max(1)) {
        let mut pos = Vec::new();
        let mut owner = Vec::new();
        let mut feats = Vec::new();
        for (g, idx) in batch.iter().enumerate() {
            for &i in idx.iter() {
                pos.extend_from_slice(&unit[i * d..(i + 1) * d]);
                feats.extend_from_slice(&features[i * fw..(i + 1) * fw]);
                owner.push(g as u32);
            }
        }
        let m = owner.len();
        let pos = Tensor::from_vec(pos, (m, d), &dev)?;
        let owner = Tensor::from_vec(owner, m, &dev)?;
        let feats = if spec.is_some() {
            Some(Tensor::from_vec(feats, (m, fw), &dev)?.to_dtype(dtype)?)
        } else {
            None
        };
        let pred = model.forward(&Batch {
            pos: &pos.to_dtype(dtype)?,
            batch: Some(&owner),
            features: feats.as_ref(),
        })?;
        let values = pred
            .values
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        match head {
            HeadConfig::Classification { .. } => {
                for row in values.chunks(width) {
                    for (a, v) in class_logits.iter_mut().zip(row) {
                        *a += *v as f64;
                    }
                }
            }
            _ => {
                let mut k = 0;
                for idx in batch.iter() {
                    for &i in idx.iter() {
                        // Unit vectors (normals) or logits: averaged over passes.
                        let v = &values[k * width..(k + 1) * width];
                        let scale = if normals_head {
                            1.0 / v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12)
                        } else {
                            1.0
                        };
                        for (a, x) in per_point[i * width..(i + 1) * width].iter_mut().zip(v) {
                            *a += x * scale;
                        }
                        if normals_head {
                            // Directions are averaged sign-aligned with the point's first
                            // prediction: passes that disagree on the sign would otherwise
                            // cancel and leave noise as the direction.
                            let r = &mut reference[i * width..(i + 1) * width];
                            if r.iter().all(|x| *x == 0.0) {
                                r.iter_mut().zip(v).for_each(|(a, x)| *a = x * scale);
                            }
                            let along: f32 = r.iter().zip(v).map(|(a, x)| a * x).sum();
                            let sign = if along < 0.0 { -scale } else { scale };
                            for (a, x) in aligned[i * width..(i + 1) * width].iter_mut().zip(v) {
                                *a += x * sign;
                            }
                        }
                        k += 1;
                    }
                }
            }
        }
    }
    let argmax = |v: &[f32]| -> u32 {
        v.iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, &x)| if x > b.1 { (i, x) } else { b },
            )
            .0 as u32
    };
    let out = match head {
        // The line from the sign-aligned mean, the orientation from the plain mean (a vote
        // weighted by agreement); with one pass this is the prediction itself.
        HeadConfig::Normals => Output::Normals(
            aligned
                .chunks(d)
                .zip(per_point.chunks(d))
                .flat_map(|(v, raw)| {
                    let len = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
                    let vote: f64 = v.iter().zip(raw).map(|(a, b)| *a as f64 * *b as f64).sum();
                    let s = if vote < 0.0 { -1.0 } else { 1.0 };
                    v.iter()
                        .map(move |x| if len > 0.0 { s * *x as f64 / len } else { 0.0 })
                        .collect::<Vec<_>>()
                })
                .collect(),
        ),
        HeadConfig::Segmentation { .. } => {
            Output::Parts(per_point.chunks(width).map(argmax).collect())
        }
        HeadConfig::Classification { .. } => {
            let l: Vec<f32> = class_logits.iter().map(|v| *v as f32).collect();
            Output::Class(argmax(&l))
        }
    };
    Ok(out)
}

/// The bundled normal estimator: `models/normals` under the current directory, else in the
/// source tree this binary was built from.
pub fn bundled_model() -> Result<PathBuf> {
    let candidates = [
        PathBuf::from("models/normals"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/normals"),
    ];
    candidates
        .iter()
        .find(|p| p.join("model.safetensors").is_file())
        .cloned()
        .ok_or(PredictError::NoBundledModel)
}

/// The bundled normal estimator's weights, compiled into this library, so a binary finds it
/// wherever it is installed.
const BUNDLED_WEIGHTS: &[u8] = include_bytes!("../../../models/normals/model.safetensors");
/// Its checkpoint state (model configuration, training settings).
const BUNDLED_STATE: &str = include_str!("../../../models/normals/state.json");

/// The bundled normal estimator (`models/normals`, compiled in) in `dtype`, and the points per
/// model input it was trained with.
pub fn bundled(dtype: candle_core::DType) -> Result<(Model, usize)> {
    bundled_on(dtype, &Device::Cpu)
}

/// [`bundled`] on `device`.
pub fn bundled_on(dtype: candle_core::DType, device: &Device) -> Result<(Model, usize)> {
    let state: tf_train::checkpoint::CheckpointState = serde_json::from_str(BUNDLED_STATE)
        .map_err(|e| PredictError::Input(format!("the bundled model's state: {e}")))?;
    let mut model = Model::new(state.config.model, dtype, device)?;
    model.load_bytes(BUNDLED_WEIGHTS, "the bundled model")?;
    Ok((model, state.config.train.points))
}

/// The points per model input a checkpoint was trained with (its run's `train.points`), or 1024
/// when the checkpoint does not say.
pub fn trained_points(checkpoint: &Path) -> usize {
    tf_train::checkpoint::resolve(checkpoint)
        .and_then(|dir| tf_train::checkpoint::read_state(&dir))
        .map(|s| s.config.train.points)
        .unwrap_or(1024)
}

/// Mean oriented and unoriented cosine of `normals` against `reference` (both `n * d`; the
/// reference need not be unit length): `(mean cos, mean |cos|)`.
pub fn agreement(normals: &[f64], reference: &[f64], d: usize) -> (f64, f64) {
    let n = (normals.len() / d).max(1) as f64;
    let (mut c, mut ac) = (0.0, 0.0);
    for (m, t) in normals.chunks(d).zip(reference.chunks(d)) {
        let len = t.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        let dot: f64 = m.iter().zip(t).map(|(x, y)| x * y).sum::<f64>() / len;
        c += dot;
        ac += dot.abs();
    }
    (c / n, ac / n)
}

/// The output as text: `x y z nx ny nz` per point (normals), `x y z part` (segmentation), or the
/// class on one line. Positions are written in the shortest form that reads back to the same
/// number (whatever their scale); normals with six decimals.
pub fn format_output(points: &[f64], d: usize, out: &Output) -> String {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(points.len() / d.max(1) * 64);
    let point = |text: &mut String, p: &[f64]| {
        for v in p {
            let _ = write!(text, "{v} ");
        }
    };
    match out {
        Output::Normals(normals) => {
            for (p, m) in points.chunks(d).zip(normals.chunks(d)) {
                point(&mut text, p);
                let cols: Vec<String> = m.iter().map(|v| format!("{v:.6}")).collect();
                let _ = writeln!(text, "{}", cols.join(" "));
            }
        }
        Output::Parts(parts) => {
            for (p, l) in points.chunks(d).zip(parts) {
                point(&mut text, p);
                let _ = writeln!(text, "{l}");
            }
        }
        Output::Class(c) => {
            let _ = writeln!(text, "{c}");
        }
    }
    text
}

/// Reads the points of a mesh (its vertices, or `sample` area-uniform surface points), of a PLY
/// or PCD point cloud (its points and stored normals), of an `N x 3` / `N x 6` `.npy` array, or
/// of a point-set text file (3, 6 or 7 columns); returns `(points, reference normals if
/// known)`. Points are returned as stored, non-finite ones included (see
/// [`InputCloud::drop_invalid`]).
pub fn read_input(path: &Path, sample: Option<usize>) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
    read_input_with(path, sample, false)
}

/// [`read_input`]; with `keep_invalid`, text rows with non-finite values are kept too (to be
/// dropped by [`InputCloud::drop_invalid`]) instead of being an error.
pub fn read_input_with(
    path: &Path,
    sample: Option<usize>,
    keep_invalid: bool,
) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
    let c = read_cloud(path, sample, keep_invalid, None)?;
    Ok((c.points, c.normals))
}

/// An input cloud: points, the file's normals if it has them, and its other per-point values
/// (colours, intensity, labels of text files read with columns), to be carried to the output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputCloud {
    /// Positions, `n * 3`.
    pub points: Vec<f64>,
    /// Stored normals.
    pub normals: Option<Vec<f64>>,
    /// Other per-point values by name.
    pub extras: Vec<(String, Vec<f64>)>,
}

impl InputCloud {
    /// Removes the points with a non-finite coordinate and their normals and values, keeping
    /// the order of the rest; returns how many went.
    pub fn drop_invalid(&mut self, d: usize) -> usize {
        let keep: Vec<bool> = self
            .points
            .chunks(d.max(1))
            .map(|p| p.iter().all(|v| v.is_finite()))
            .collect();
        let rows = |v: &[f64], w: usize| -> Vec<f64> {
            v.chunks(w)
                .zip(&keep)
                .filter(|(_, k)| **k)
                .flat_map(|(p, _)| p.iter().copied())
                .collect()
        };
        let before = keep.len();
        self.points = rows(&self.points, d);
        if let Some(m) = self.normals.as_mut() {
            *m = rows(m, d);
        }
        for (_, v) in &mut self.extras {
            *v = rows(v, 1);
        }
        before - self.points.len() / d.max(1)
    }
}

/// [`read_input_with`] with the other per-point values kept; `columns` says what the columns
/// of a text file hold (`--columns`; other formats name their fields themselves).
pub fn read_cloud(
    path: &Path,
    sample: Option<usize>,
    keep_invalid: bool,
    columns: Option<&tf_datasets::TextColumns>,
) -> Result<InputCloud> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.ends_with(".las") || name.ends_with(".laz") {
        if columns.is_some() {
            return bad_input(format!(
                "--columns describes text files; {} names its own fields",
                path.display()
            ));
        }
        let (points, extras) = tf_datasets::read_las(path)?;
        return Ok(InputCloud {
            points,
            normals: None,
            extras,
        });
    }
    if (name.ends_with(".ply") || name.ends_with(".ply.gz")) && sample.is_none() {
        if columns.is_some() {
            return bad_input(format!(
                "--columns describes text files; {} names its own fields",
                path.display()
            ));
        }
        let (points, normals, extras) = tf_datasets::read_ply_cloud(path)?;
        return Ok(InputCloud {
            points,
            normals,
            extras,
        });
    }
    let text = !(name.ends_with(".pcd")
        || name.ends_with(".npy")
        || name.ends_with(".ply")
        || name.ends_with(".ply.gz")
        || tf_datasets::is_mesh_path(path));
    if text {
        let c = tf_datasets::read_text_cloud(path, columns, keep_invalid)?;
        return Ok(InputCloud {
            points: c.points,
            normals: c.normals,
            extras: c.extras,
        });
    }
    if columns.is_some() {
        return bad_input(format!(
            "--columns describes text files; {} names its own fields",
            path.display()
        ));
    }
    let (points, normals) = read_other(path, sample)?;
    Ok(InputCloud {
        points,
        normals,
        extras: Vec::new(),
    })
}

/// Meshes, PLY, PCD and NPY clouds.
fn read_other(path: &Path, sample: Option<usize>) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.ends_with(".pcd") {
        return Ok(tf_datasets::read_pcd(path)?);
    }
    if name.ends_with(".npy") {
        return Ok(tf_datasets::read_npy_points(path)?);
    }
    let ply = name.ends_with(".ply") || name.ends_with(".ply.gz");
    if ply && sample.is_none() {
        // A PLY point cloud (no faces) or a mesh's vertices, with their normals if stored.
        return Ok(tf_datasets::read_ply_points(path)?);
    }
    if tf_datasets::is_mesh_path(path) {
        let mut m = tf_datasets::read_mesh(path)?;
        match sample {
            Some(k) => {
                // Reference normals of closed components point outward.
                m.orient_outward();
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
                let s = m.sample(k, tf_datasets::MeshNormals::Face, 0.0, 0, &mut rng)?;
                Ok((s.points, Some(s.normals)))
            }
            None => Ok((m.vertices.iter().flatten().copied().collect(), None)),
        }
    } else {
        Ok(tf_datasets::read_points(path)?)
    }
}

/// The index of the first point with a non-finite coordinate.
pub fn first_invalid(points: &[f64], d: usize) -> Option<usize> {
    points
        .chunks(d.max(1))
        .position(|p| p.iter().any(|v| !v.is_finite()))
}

/// Neighbours that vote in [`orientation_consensus`] (as many as the PCA features use).
pub const CONSENSUS_NEIGHBOURS: usize = 16;

pub use tf_normals::orientation_consensus;
