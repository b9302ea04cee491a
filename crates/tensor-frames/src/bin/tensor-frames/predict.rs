//! `tensor-frames predict`: normals (or parts, or the class) of a user's mesh or point cloud.

use anyhow::{bail, Context, Result};
use candle_core::DType;
use tensor_frames::diagnostics::write_atomic;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// A run directory, checkpoint directory or weights file (default: the bundled normal
    /// estimator, compiled into this binary).
    #[arg(long)]
    checkpoint: Option<std::path::PathBuf>,
    /// A mesh (.off .obj .stl .ply .wrl, optionally .gz: its vertices are used), a PLY point
    /// cloud (ASCII or binary, with or without normals) or a point set (text, 3, 6 or 7
    /// columns).
    #[arg(long)]
    input: std::path::PathBuf,
    /// Output: `x y z nx ny nz` per line (normals), `x y z part` (segmentation), or the class.
    #[arg(long)]
    out: std::path::PathBuf,
    /// For meshes: sample this many surface points instead of using the vertices.
    #[arg(long)]
    sample: Option<usize>,
    /// Points per model input (default: the checkpoint's training size).
    #[arg(long, default_value_t = 0)]
    group: usize,
    /// Model inputs per forward pass (bounds memory).
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Seed of the grouping.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Random groupings averaged per point (more passes: smoother, slower).
    #[arg(long, default_value_t = 1)]
    passes: usize,
    /// Self-refinement rounds for models that refine input normal estimates (the bundled
    /// one): each round re-signs the estimates to agree with the last prediction and runs the
    /// model again, so each round adds the model's time again.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Rounds of neighbour orientation consensus after the model (0: off). Repairs isolated
    /// sign errors on dense smooth scans; harmful on sparse thin parts, where neighbours across
    /// a wall rightly disagree. Directions are unchanged.
    #[arg(long, default_value_t = 0)]
    consensus: usize,
    /// Repair the orientation after the model (and after consensus) by the winding number of
    /// the cloud: every point is voted on by the dipole field of all others (nearest loudest),
    /// which fixes wrongly oriented patches on closed surfaces and abstains on thin sheets (see
    /// `tf_normals::orient_by_winding`). Directions are unchanged.
    #[arg(long)]
    winding: bool,
    /// Where the network runs: cpu, cuda[:N] or metal[:N] (GPUs need a build with
    /// `--features cuda` or `--features metal`; the input features are computed on the host).
    #[arg(long, default_value = "cpu")]
    device: tensor_frames::models::DeviceChoice,
}

pub(crate) fn run(a: Args) -> Result<()> {
    use tensor_frames::predict::{
        agreement, bundled_on, format_output, predict, read_input, trained_points, Output,
        PredictOptions,
    };
    let dev = a.device.device()?;
    let (model, group, name) = match &a.checkpoint {
        Some(c) => (
            tensor_frames::train::load_model_on(c, DType::F32, &dev)?,
            trained_points(c),
            c.display().to_string(),
        ),
        None => {
            let (m, group) = bundled_on(DType::F32, &dev)?;
            (m, group, "the bundled model".to_string())
        }
    };
    let same = |a: &std::path::Path, b: &std::path::Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y);
    if same(&a.input, &a.out) {
        bail!(
            "--out {} is the input file; write the output elsewhere",
            a.out.display()
        );
    }
    let (points, reference) =
        read_input(&a.input, a.sample).with_context(|| format!("reading {}", a.input.display()))?;
    let d = model.config().d();
    if points.len() % d != 0 {
        bail!("{}: coordinates are not {d}-dimensional", a.input.display());
    }
    let opts = PredictOptions {
        group: a.group,
        batch: a.batch,
        seed: a.seed,
        passes: a.passes,
        rounds: a.rounds,
        consensus: a.consensus,
        winding: a.winding,
    };
    let (out, report) = predict(&model, &points, group, &opts)?;
    if a.consensus > 0 {
        println!(
            "orientation consensus: {} sign flips",
            report.consensus_flips
        );
    }
    if let Some(flips) = report.winding_flips {
        println!("winding-number orientation: {flips} sign flips");
    }
    match (&out, &reference) {
        (Output::Normals(normals), Some(r)) => {
            let (cos, abs_cos) = agreement(normals, r, d);
            println!("against the file's normals: mean cos {cos:.4}, mean |cos| {abs_cos:.4}");
        }
        (Output::Class(c), _) => println!("class {c}"),
        _ => {}
    }
    write_atomic(&a.out, &format_output(&points, d, &out))?;
    println!(
        "{} points -> {} with {} ({:.0} points/s: input features {:.2} s, model {:.2} s, \
         orientation post-processing {:.2} s)",
        points.len() / d,
        a.out.display(),
        name,
        report.points_per_second,
        report.features,
        report.model,
        report.post
    );
    Ok(())
}
