//! `tensor-frames equivariance` and `equivariance-table`: measured equivariance errors of the
//! built-in layers, models and trained checkpoints.

use anyhow::{bail, Context, Result};
use candle_core::DType;
use clap::ValueEnum;
use tensor_frames::diagnostics::{
    equivariance_markdown, equivariance_table, layer_equivariance, model_equivariance,
    nbody_equivariance, write_atomic, EquivarianceRequest, EquivarianceResult, NBODY_MODEL,
};
use tensor_frames::frames::FrameChoice;
use tensor_frames::group::TensorReps;
use tensor_frames::models::{preset_names, PRESETS};
use tensor_frames::mp::LAYER_NAMES;

#[derive(clap::Args, Debug)]
pub(crate) struct TableArgs {
    /// Output folder: writes equivariance.md and equivariance.json there.
    #[arg(long, default_value = "papers/tensor-frames/results")]
    out: std::path::PathBuf,
    /// Trials per cell.
    #[arg(long, default_value_t = 2)]
    trials: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Dimensions, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "2,3,4,5,7")]
    dims: Vec<usize>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Precision {
    F32,
    F64,
}

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Layer name (gcn, gcn-scalar, edgeconv, edgeconv-scalar, attention, attention-scalar).
    #[arg(long, required_unless_present_any = ["model", "checkpoint"], conflicts_with_all = ["model", "checkpoint"])]
    layer: Option<String>,
    /// A trained model (run directory, checkpoint directory or weights file): its error on
    /// held-out synthetic shapes instead of random clouds.
    #[arg(long, conflicts_with = "model")]
    checkpoint: Option<std::path::PathBuf>,
    /// Model preset instead of a layer (pointnet2-normals, dgcnn-classification, ..., or
    /// nbody-gnn: the N-body network on random charged systems).
    #[arg(long)]
    model: Option<String>,
    /// Dimension d >= 2.
    #[arg(long, default_value_t = 3)]
    dim: usize,
    /// Number of random trials; each checks one proper and one improper transformation.
    #[arg(long, default_value_t = 4)]
    trials: usize,
    /// Precision the network runs in (the error is always computed in f64).
    #[arg(long, value_enum, default_value_t = Precision::F64)]
    dtype: Precision,
    /// Seed for clouds, weights and transformations.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Frame builder (learned, pca, nearest, random, random-global, identity).
    #[arg(long, default_value = "learned")]
    frames: FrameChoice,
    /// Points per random cloud.
    #[arg(long, default_value_t = 64)]
    points: usize,
    /// Global input rep.
    #[arg(long)]
    in_reps: Option<String>,
    /// Hidden (local) rep.
    #[arg(long)]
    hidden_reps: Option<String>,
    /// Global output rep.
    #[arg(long)]
    out_reps: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Where the network runs: cpu, cuda[:N] or metal[:N] (inputs, transformations and the
    /// error stay on the host, in f64).
    #[arg(long, default_value = "cpu")]
    device: tensor_frames::models::DeviceChoice,
}

fn parse_reps(s: &Option<String>, default: &TensorReps, flag: &str) -> Result<TensorReps> {
    match s {
        Some(s) => s.parse().with_context(|| format!("{flag} {s:?}")),
        None => Ok(default.clone()),
    }
}

pub(crate) fn run(a: Args) -> Result<()> {
    if a.dim < 2 {
        bail!(
            "--dim must be at least 2 (O(1) has no rotations to test), got {}",
            a.dim
        );
    }
    if a.dim > tensor_frames::diagnostics::MAX_DIM {
        bail!(
            "--dim {} is above {}: an order-k feature has d^k components per channel, so the \
             default reps would not fit in memory",
            a.dim,
            tensor_frames::diagnostics::MAX_DIM
        );
    }
    let dtype = match a.dtype {
        Precision::F32 => DType::F32,
        Precision::F64 => DType::F64,
    };
    if let Some(path) = &a.checkpoint {
        let points = if a.points == 64 { 512 } else { a.points };
        let r = tensor_frames::diagnostics::checkpoint_equivariance(
            path,
            dtype,
            a.trials,
            a.seed,
            points,
            &a.device.device()?,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        return report(&r, a.json);
    }
    if a.model.as_deref() == Some(NBODY_MODEL) {
        let r = nbody_equivariance(
            a.dim,
            a.frames,
            a.trials,
            dtype,
            a.seed,
            &a.device.device()?,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        return report(&r, a.json);
    }
    if let Some(preset) = &a.model {
        if !PRESETS.iter().any(|p| p.name == preset) {
            bail!(
                "unknown model {preset:?}; known models: {}, {NBODY_MODEL}",
                preset_names()
            );
        }
        let r = model_equivariance(
            preset,
            a.dim,
            a.trials,
            dtype,
            a.seed,
            a.points,
            &a.device.device()?,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        return report(&r, a.json);
    }
    let layer = a.layer.clone().unwrap_or_default();
    if !LAYER_NAMES.contains(&layer.as_str()) {
        bail!(
            "unknown layer {layer:?}; known layers: {}",
            LAYER_NAMES.join(", ")
        );
    }
    let mut req = EquivarianceRequest::new(&layer, a.dim);
    req.in_reps = parse_reps(&a.in_reps, &req.in_reps, "--in-reps")?;
    req.hidden_reps = parse_reps(&a.hidden_reps, &req.hidden_reps, "--hidden-reps")?;
    req.out_reps = parse_reps(&a.out_reps, &req.out_reps, "--out-reps")?;
    req.trials = a.trials;
    req.seed = a.seed;
    req.frames = a.frames;
    req.points = a.points;
    req.dtype = dtype;
    req.device = a.device.device()?;
    let r = layer_equivariance(&req).map_err(|e| anyhow::anyhow!("{e}"))?;
    report(&r, a.json)
}

/// Above this relative error (f64) an equivariant network is flagged: exact equivariance holds
/// to about 1e-12 in low dimensions, and the error grows with the conditioning of the frames.
const WARN_ABOVE: f64 = 1e-9;

fn report(r: &EquivarianceResult, json: bool) -> Result<()> {
    let controls = ["identity", "random", "random-global"];
    if r.dtype == "f64" && r.max_rel_error > WARN_ABOVE && !controls.contains(&r.frames.as_str()) {
        eprintln!(
            "warning: relative equivariance error {:.2e} is above {WARN_ABOVE:.0e} for {} frames \
             in d = {}: the frames are ill-conditioned here (nearly dependent candidate axes), \
             so rounding is amplified",
            r.max_rel_error, r.frames, r.dim
        );
    }
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("layer or model     {}", r.layer);
        println!("frames             {}", r.frames);
        println!("dimension          {}", r.dim);
        println!("dtype              {}", r.dtype);
        println!("trials             {} (x2: det +1 and -1)", r.trials);
        println!("points per cloud   {}", r.points);
        println!("reps in -> out     {} -> {}", r.in_reps, r.out_reps);
        println!("parameters         {}", r.params);
        println!("max abs error      {:.3e}", r.max_abs_error);
        println!("max rel error      {:.3e}", r.max_rel_error);
        println!("degenerate frames  {}", r.degenerate_frames);
    }
    Ok(())
}

pub(crate) fn table(a: TableArgs) -> Result<()> {
    if let Some(&d) = a.dims.iter().find(|&&d| d < 2) {
        bail!("--dims must all be at least 2, got {d}");
    }
    let start = std::time::Instant::now();
    let frames = [
        FrameChoice::Learned,
        FrameChoice::Pca,
        FrameChoice::Nearest,
        FrameChoice::Identity,
    ];
    let rows = equivariance_table(&a.dims, &frames, a.trials, a.seed)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let secs = start.elapsed().as_secs_f64();
    let dims: Vec<String> = a.dims.iter().map(|d| d.to_string()).collect();
    let command = format!(
        "tensor-frames equivariance-table --trials {} --seed {} --dims {}",
        a.trials,
        a.seed,
        dims.join(",")
    );
    let md = equivariance_markdown(&rows, &command, secs);
    write_atomic(&a.out.join("equivariance.md"), &md)?;
    let json = serde_json::json!({ "command": command, "seconds": secs, "rows": rows });
    write_atomic(
        &a.out.join("equivariance.json"),
        &serde_json::to_string_pretty(&json)?,
    )?;
    for r in rows.iter().filter(|r| r.frames != "identity") {
        if r.max_rel_error > 1e-9 {
            bail!(
                "{} with {} frames in d = {}: error {:.2e} above 1e-9",
                r.layer,
                r.frames,
                r.dim,
                r.max_rel_error
            );
        }
    }
    println!(
        "wrote {} rows to {} in {secs:.1} s",
        rows.len(),
        a.out.display()
    );
    Ok(())
}
