//! Measuring the equivariance error of built-in layers, as `tensor-frames equivariance` does.
//!
//! For each trial: a fresh uniform point cloud in `[-1, 1]^d` and input features, one network
//! (frames -> embed -> layer -> readout) with seeded weights, and one proper and one improper
//! element of E(d) from the trial's seed. The error is `f(g x)` against `g f(x)` in f64,
//! maximised over trials and both determinant signs.

use candle_core::{bail, DType, Device, Result};
use candle_nn::{VarBuilder, VarMap};
use serde::Serialize;
use tf_frames::{FrameChoice, FrameConfig};
use tf_group::TensorReps;
use tf_mp::{LayerNet, LAYER_NAMES};
use tf_testing::strategies::{features, PointCloud};
use tf_testing::{equivariance_error, reseed_varmap, Declared, Kind, Transform};

/// The largest dimension the measurements accept: an order-k feature has `d^k` components
/// per channel, and the default reps (order 2) at `d = 64` already hold 4,096 per channel.
pub const MAX_DIM: usize = 64;

/// What to measure.
#[derive(Debug, Clone)]
pub struct EquivarianceRequest {
    /// A name from [`tf_mp::LAYER_NAMES`].
    pub layer: String,
    /// Dimension `d >= 2`.
    pub dim: usize,
    /// Number of trials (each checks a proper and an improper transform).
    pub trials: usize,
    /// `F32` or `F64`: the dtype the network runs in (the error is always computed in f64).
    pub dtype: DType,
    /// Seed of clouds, weights and transforms.
    pub seed: u64,
    /// The frame builder.
    pub frames: FrameChoice,
    /// Points per cloud.
    pub points: usize,
    /// Global input rep.
    pub in_reps: TensorReps,
    /// Hidden (local) rep.
    pub hidden_reps: TensorReps,
    /// Global output rep.
    pub out_reps: TensorReps,
    /// Where the network runs (inputs and errors stay on the host).
    pub device: Device,
}

impl EquivarianceRequest {
    /// Defaults: 64 points, learned frames, `4x0n+2x1n+1x1p+1x2n` in and hidden,
    /// `2x0n+1x1n+1x1p+1x2n` out.
    pub fn new(layer: &str, dim: usize) -> Self {
        Self {
            layer: layer.to_string(),
            dim,
            trials: 4,
            dtype: DType::F64,
            seed: 0,
            frames: FrameChoice::Learned,
            points: 64,
            in_reps: "4x0n+2x1n+1x1p+1x2n".parse().expect("valid default reps"),
            hidden_reps: "4x0n+2x1n+1x1p+1x2n".parse().expect("valid default reps"),
            out_reps: "2x0n+1x1n+1x1p+1x2n".parse().expect("valid default reps"),
            device: Device::Cpu,
        }
    }
}

/// The measured errors (the CLI prints this as JSON).
#[derive(Debug, Clone, Serialize)]
pub struct EquivarianceResult {
    /// Layer name.
    pub layer: String,
    /// Dimension.
    pub dim: usize,
    /// `"f32"` or `"f64"`.
    pub dtype: String,
    /// Trials run.
    pub trials: usize,
    /// Frame builder name.
    pub frames: String,
    /// Points per cloud.
    pub points: usize,
    /// Largest absolute error over trials and both determinant signs.
    pub max_abs_error: f64,
    /// Largest error relative to the output scale.
    pub max_rel_error: f64,
    /// Nodes (summed over trials) whose frames used the degenerate fallback.
    pub degenerate_frames: usize,
    /// Trainable parameters of the network.
    pub params: usize,
    /// The reps used.
    pub in_reps: String,
    /// The reps used.
    pub out_reps: String,
}

/// The frames of a measurement in dimension `d`. The learned frames' cutoff spans the diagonal
/// of `[-1, 1]^d`, so every kNN neighbour contributes to the learned vectors, however sparse the
/// cloud is in high d.
fn frame_config(kind: FrameChoice, d: usize, seed: u64) -> FrameConfig {
    FrameConfig {
        cutoff: 2.0 * (d as f64).sqrt(),
        seed,
        ..FrameConfig::new(kind)
    }
}

/// Runs the measurement described by `req`.
pub fn layer_equivariance(req: &EquivarianceRequest) -> Result<EquivarianceResult> {
    if req.dim < 2 {
        bail!(
            "--dim must be at least 2 (O(1) has no rotations to test), got {}",
            req.dim
        );
    }
    if !LAYER_NAMES.contains(&req.layer.as_str()) {
        bail!(
            "unknown layer {:?}; known layers: {}",
            req.layer,
            LAYER_NAMES.join(", ")
        );
    }
    if !matches!(req.dtype, DType::F32 | DType::F64) {
        bail!("dtype must be f32 or f64");
    }
    if req.trials == 0 || req.points < 2 {
        bail!("need at least one trial and two points");
    }
    let d = req.dim;
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, req.dtype, &req.device);
    let frames = frame_config(req.frames, d, req.seed).builder(d, vb.pp("frames"))?;
    let k = (d + 3).min(req.points - 1);
    let net = LayerNet::new(
        d,
        frames,
        &req.layer,
        &req.in_reps,
        &req.hidden_reps,
        &req.out_reps,
        k,
        vb,
    )?;
    reseed_varmap(&vm, req.seed, 0.4)?;
    let params = vm.all_vars().iter().map(|v| v.elem_count()).sum();
    let (mut max_abs, mut max_rel, mut degenerate) = (0.0f64, 0.0f64, 0usize);
    for t in 0..req.trials {
        let seed = req.seed.wrapping_add(t as u64 + 1);
        let pos = PointCloud::uniform(d, req.points, seed).tensor(req.dtype, &dev)?;
        let x = features(
            req.points,
            req.in_reps.dim(d),
            seed ^ 0x5eed,
            req.dtype,
            &dev,
        )?;
        let inputs = [
            (Kind::Positions, pos.clone()),
            (Kind::Features(req.in_reps.clone()), x.clone()),
        ];
        let outputs = [Declared::new(
            req.layer.as_str(),
            Kind::Features(req.out_reps.clone()),
        )];
        let on = |t: &candle_core::Tensor| t.to_device(&req.device);
        degenerate += net.forward(&on(&pos)?, &on(&x)?)?.1;
        for g in Transform::pair(d, seed) {
            let r = equivariance_error(
                &inputs,
                &outputs,
                |xs| {
                    Ok(vec![net
                        .forward(&on(&xs[0])?, &on(&xs[1])?)?
                        .0
                        .to_device(&dev)?])
                },
                &g,
            )?;
            max_abs = max_abs.max(r.max_abs_error());
            max_rel = max_rel.max(r.max_rel_error());
        }
    }
    Ok(EquivarianceResult {
        layer: req.layer.clone(),
        dim: d,
        dtype: if req.dtype == DType::F32 {
            "f32"
        } else {
            "f64"
        }
        .into(),
        trials: req.trials,
        frames: req.frames.to_string(),
        points: req.points,
        max_abs_error: max_abs,
        max_rel_error: max_rel,
        degenerate_frames: degenerate,
        params,
        in_reps: req.in_reps.to_string(),
        out_reps: req.out_reps.to_string(),
    })
}

/// Every built-in layer x dimension x frame builder: the table `just reproduce` writes today.
pub fn equivariance_table(
    dims: &[usize],
    frames: &[FrameChoice],
    trials: usize,
    seed: u64,
) -> Result<Vec<EquivarianceResult>> {
    let mut rows = Vec::new();
    for &layer in LAYER_NAMES {
        for &f in frames {
            for &d in dims {
                let mut req = EquivarianceRequest::new(layer, d);
                req.frames = f;
                req.trials = trials;
                req.seed = seed;
                rows.push(layer_equivariance(&req)?);
            }
        }
    }
    Ok(rows)
}

/// Markdown rendering of [`equivariance_table`] rows, with how they were produced.
pub fn equivariance_markdown(rows: &[EquivarianceResult], command: &str, seconds: f64) -> String {
    let mut s = String::from(
        "# Measured equivariance errors\n\n\
         Beyond the paper: the error `max |f(gx) - g f(x)| / max |g f(x)|` of each built-in layer,\n\
         run end to end (`frames -> embed -> layer -> readout`, global in, global out) on uniform\n\
         random clouds in `[-1, 1]^d`, over one proper and one improper `g` per trial, computed in\n\
         f64. Equivariant frame builders must sit at float precision; the `identity` rows are the\n\
         non-equivariant control (plain network) and must not.\n\n",
    );
    s.push_str(&format!("Produced by `{command}` in {seconds:.1} s.\n\n"));
    s.push_str("| layer | frames | d | dtype | trials | max rel error | max abs error | degenerate frames | params |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.2e} | {:.2e} | {} / {} | {} |\n",
            r.layer,
            r.frames,
            r.dim,
            r.dtype,
            r.trials,
            r.max_rel_error,
            r.max_abs_error,
            r.degenerate_frames,
            r.trials * r.points,
            r.params
        ));
    }
    s
}

/// Atomic text writes (temporary file, then rename), shared with training.
pub use tf_train::{write_atomic, write_atomic_bytes};

/// Equivariance error of a built-in model preset (see [`tf_models::PRESETS`]) on two random
/// shapes of `points` points in `[-0.5, 0.5]^d`: normals must rotate with the input, logits
/// must not change. The `layer` field of the result holds the preset name.
pub fn model_equivariance(
    preset: &str,
    dim: usize,
    trials: usize,
    dtype: DType,
    seed: u64,
    points: usize,
    device: &Device,
) -> Result<EquivarianceResult> {
    use tf_models::{Model, ModelConfig};
    if dim < 2 {
        bail!("--dim must be at least 2 (O(1) has no rotations to test), got {dim}");
    }
    if trials == 0 || points < 8 {
        bail!("need at least one trial and eight points per shape");
    }
    let cfg =
        ModelConfig::preset(preset, dim).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let frames = cfg.frames().kind;
    let dev = Device::Cpu;
    let model = Model::new(cfg, dtype, device)?;
    reseed_varmap(model.varmap(), seed, 0.3)?;
    let cloud = |s: u64| -> Result<candle_core::Tensor> {
        PointCloud::uniform(dim, 2 * points, s).tensor(DType::F64, &dev)? * 0.5
    };
    measure_model(&model, preset, frames, trials, seed, points, &cloud)
}

/// The equivariance error of a trained model from a checkpoint (a run directory, checkpoint
/// directory or weights file), run in `dtype` on pairs of held-out synthetic shapes of
/// `points` points (the 3D set for d = 3, the hypersurfaces otherwise).
pub fn checkpoint_equivariance(
    path: &std::path::Path,
    dtype: DType,
    trials: usize,
    seed: u64,
    points: usize,
    device: &Device,
) -> Result<EquivarianceResult> {
    use tf_datasets::{Split, Synthetic, SyntheticNd};
    if trials == 0 || points < 8 {
        bail!("need at least one trial and eight points per shape");
    }
    let model = tf_train::load_model_on(path, dtype, device)
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let dim = model.config().d();
    let frames = model.config().frames().kind;
    let dev = Device::Cpu;
    let cloud = |s: u64| -> Result<candle_core::Tensor> {
        let shapes: Vec<tf_datasets::Shape> = (0..2)
            .map(|k| {
                let i = (2 * s as usize + k) % 30;
                if dim == 3 {
                    Synthetic {
                        shapes_per_class: 3,
                        points,
                        noise: 0.0,
                        warp: 0.0,
                        seed,
                    }
                    .shape(Split::Test, i)
                } else {
                    SyntheticNd {
                        d: dim,
                        shapes_per_class: 10,
                        points,
                        seed,
                    }
                    .shape(Split::Test, i)
                }
            })
            .collect();
        let flat: Vec<f64> = shapes
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .collect();
        candle_core::Tensor::from_vec(flat, (2 * points, dim), &dev)
    };
    measure_model(
        &model,
        &path.display().to_string(),
        frames,
        trials,
        seed,
        points,
        &cloud,
    )
}

fn measure_model(
    model: &tf_models::Model,
    name: &str,
    frames: FrameChoice,
    trials: usize,
    seed: u64,
    points: usize,
    cloud: &dyn Fn(u64) -> Result<candle_core::Tensor>,
) -> Result<EquivarianceResult> {
    use tf_models::{Batch, HeadConfig};
    // Inputs, transforms and errors on the host; the network on its own device.
    let dev = Device::Cpu;
    let net_dev = model.device();
    let dim = model.config().d();
    let dtype = model
        .varmap()
        .all_vars()
        .first()
        .map_or(DType::F64, |v| v.dtype());
    let out_kind = match model.head() {
        HeadConfig::Normals => Kind::Features(TensorReps::vectors(1)),
        _ => Kind::Invariant,
    };
    let ids: Vec<u32> = (0..2 * points as u32).map(|i| i / points as u32).collect();
    let batch = candle_core::Tensor::new(ids.as_slice(), &dev)?;
    let (mut max_abs, mut max_rel, mut degenerate) = (0.0f64, 0.0f64, 0usize);
    for t in 0..trials {
        let s = seed.wrapping_add(t as u64 + 1);
        let pos = cloud(s)?.to_dtype(dtype)?;
        // Computed input features are recomputed from the transformed cloud: the check covers
        // the whole pipeline a user runs, not the network alone.
        let spec = model.config().input_features();
        let run = |pos: &candle_core::Tensor| -> Result<tf_models::Prediction> {
            let feats = tf_models::compute_features(spec, pos, Some(&batch))?
                .map(|t| t.to_device(&net_dev))
                .transpose()?;
            model.forward(&Batch {
                pos: &pos.to_device(&net_dev)?,
                batch: Some(&batch.to_device(&net_dev)?),
                features: feats.as_ref(),
            })
        };
        let f = |xs: &[candle_core::Tensor]| -> Result<Vec<candle_core::Tensor>> {
            Ok(vec![run(&xs[0])?.values.to_device(&dev)?])
        };
        degenerate += run(&pos)?.degenerate_frames;
        for g in Transform::pair(dim, s) {
            let r = equivariance_error(
                &[(Kind::Positions, pos.clone())],
                &[Declared::new(name, out_kind.clone())],
                f,
                &g,
            )?;
            max_abs = max_abs.max(r.max_abs_error());
            max_rel = max_rel.max(r.max_rel_error());
        }
    }
    Ok(EquivarianceResult {
        layer: name.to_string(),
        dim,
        dtype: if dtype == DType::F32 { "f32" } else { "f64" }.into(),
        trials,
        frames: frames.to_string(),
        points: 2 * points,
        max_abs_error: max_abs,
        max_rel_error: max_rel,
        degenerate_frames: degenerate,
        params: model.params(),
        in_reps: String::new(),
        out_reps: match model.head() {
            HeadConfig::Normals => "1x1n".into(),
            HeadConfig::Segmentation { classes } | HeadConfig::Classification { classes } => {
                format!("{classes}x0n")
            }
        },
    })
}

/// The model name `equivariance --model` accepts for the N-body network
/// ([`tf_models::NBodyGnn`], learned frames and tensorial messages unless `frames` says
/// otherwise).
pub const NBODY_MODEL: &str = "nbody-gnn";

/// Equivariance error of the N-body network in dimension `dim`: `trials` batches of three
/// random 5-particle systems (positions, velocities, charges), one proper and one improper
/// element of E(d) each; predicted positions must move with the input.
pub fn nbody_equivariance(
    dim: usize,
    frames: FrameChoice,
    trials: usize,
    dtype: DType,
    seed: u64,
    device: &Device,
) -> Result<EquivarianceResult> {
    use rand::{Rng, SeedableRng};
    use tf_models::{fully_connected, NBodyConfig, NBodyGnn, NBodyInput};
    if dim < 2 || trials == 0 {
        bail!("need d >= 2 and at least one trial");
    }
    let dev = Device::Cpu;
    let mut cfg = NBodyConfig::new(dim);
    cfg.frames.kind = frames;
    let net = NBodyGnn::new(cfg, dtype, device, seed)?;
    // Larger weights than the initialisation (whose last layer is zero), so every path of the
    // network carries signal into the measured output.
    reseed_varmap(net.varmap(), seed, 0.3)?;
    let (systems, particles) = (3, 5);
    let n = systems * particles;
    let edges = fully_connected(systems, particles, &dev)?;
    let batch = candle_core::Tensor::from_vec(
        (0..n as u32)
            .map(|i| i / particles as u32)
            .collect::<Vec<_>>(),
        n,
        &dev,
    )?;
    let (mut max_abs, mut max_rel, mut degenerate) = (0f64, 0f64, 0usize);
    for trial in 0..trials {
        let s = seed.wrapping_add(trial as u64);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(s);
        let mut draw = |c: usize, scale: f64| -> Result<candle_core::Tensor> {
            let v: Vec<f64> = (0..n * c)
                .map(|_| scale * (2.0 * rng.random::<f64>() - 1.0))
                .collect();
            candle_core::Tensor::from_vec(v, (n, c), &dev)
        };
        let (loc, vel) = (draw(dim, 2.0)?, draw(dim, 0.5)?);
        let q = draw(1, 1.0)?.sign()?;
        let run = |x: &[candle_core::Tensor]| -> Result<(candle_core::Tensor, usize)> {
            let on = |t: &candle_core::Tensor| t.to_dtype(dtype)?.to_device(device);
            net.forward(&NBodyInput {
                loc: &on(&x[0])?,
                vel: &on(&x[1])?,
                charges: &on(&x[2])?,
                edge_index: &edges,
                batch: Some(&batch),
            })
        };
        let f = |x: &[candle_core::Tensor]| -> Result<Vec<candle_core::Tensor>> {
            Ok(vec![run(x)?.0.to_device(&dev)?])
        };
        degenerate += run(&[loc.clone(), vel.clone(), q.clone()])?.1;
        for g in Transform::pair(dim, s) {
            let r = equivariance_error(
                &[
                    (Kind::Positions, loc.clone()),
                    (Kind::Displacements, vel.clone()),
                    (Kind::Invariant, q.clone()),
                ],
                &[Declared::new("positions", Kind::Positions)],
                f,
                &g,
            )?;
            max_abs = max_abs.max(r.max_abs_error());
            max_rel = max_rel.max(r.max_rel_error());
        }
    }
    Ok(EquivarianceResult {
        layer: NBODY_MODEL.to_string(),
        dim,
        dtype: if dtype == DType::F32 { "f32" } else { "f64" }.into(),
        trials,
        frames: frames.to_string(),
        points: n,
        max_abs_error: max_abs,
        max_rel_error: max_rel,
        degenerate_frames: degenerate,
        params: net.params(),
        in_reps: "positions, 1x1n velocities, 1x0n charges".into(),
        out_reps: "positions".into(),
    })
}
