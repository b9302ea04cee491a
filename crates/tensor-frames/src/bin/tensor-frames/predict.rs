//! `tensor-frames predict`: normals (or parts, or the class) of a user's mesh or point cloud.

use anyhow::{bail, Context, Result};
use candle_core::DType;
use tensor_frames::diagnostics::write_atomic_bytes;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  tensor-frames predict --input scan.ply --out scan_normals.ply
      oriented normals of a PLY cloud, written as binary PLY (nx ny nz) for Open3D or MeshLab
  tensor-frames predict --input cloud.pcd --out - --skip-invalid --viewpoint 0,0,1.5 > cloud.xyzn
      a PCL cloud with NaN holes, oriented towards the sensor, as text on stdout")]
pub(crate) struct Args {
    /// A run directory, checkpoint directory or weights file (default: the bundled normal
    /// estimator, compiled into this binary).
    #[arg(long)]
    checkpoint: Option<std::path::PathBuf>,
    /// A mesh (.off .obj .stl .ply .wrl, optionally .gz: its vertices are used), a point cloud
    /// (.ply ASCII or binary, .pcd ASCII or binary, .npy N x 3 or N x 6, .las/.laz lidar;
    /// stored normals are compared with the prediction) or a point set (text, 3, 6 or 7 columns; `-` reads it
    /// from stdin).
    #[arg(long)]
    input: std::path::PathBuf,
    /// Output file, its format from the extension (.ply binary, .pcd binary, .npy, or text
    /// for .xyz .xyzn .txt .pts .csv .asc and names without one) unless --format says
    /// otherwise; `-` writes text to stdout. Normals: `x y z nx ny nz`; segmentation:
    /// `x y z part` (text); classification: the class (text).
    #[arg(long)]
    out: std::path::PathBuf,
    /// What the columns of a text input hold: xyz followed by n (normal), rgb (colour), i
    /// (intensity) or l (label), e.g. xyzi, xyzrgb, xyznrgb. Colours, intensity and labels are
    /// carried to the output (PLY red/green/blue as uchar). Without it, text rows of 3, 6
    /// (normals) or 7 values are read, and six columns of colours are refused.
    #[arg(long)]
    columns: Option<tensor_frames::datasets::TextColumns>,
    /// Output format: ply, ply-ascii, pcd, pcd-ascii, npy or text.
    #[arg(long)]
    format: Option<tensor_frames::datasets::CloudFormat>,
    /// Orient every normal towards a sensor at x,y,z (as Open3D's
    /// orient_normals_towards_camera_location), after everything else: normals pointing away
    /// from it are flipped; directions are unchanged. For single scans from a known position.
    #[arg(long, value_delimiter = ',', num_args = 1)]
    viewpoint: Option<Vec<f64>>,
    /// Neighbours of the first PCA scale of the model's input features (default: the
    /// model's own, 8 for the bundled one, which it was trained with; the other scales use 2k
    /// and 4k). More neighbours smooth noisy scans; fewer keep thin parts and sharp edges apart.
    #[arg(long)]
    k: Option<usize>,
    /// Clouds with more points than this take the orientation votes of the input features
    /// (winding number and rays) on a fixed subsample of this many points, and every other
    /// point follows a nearby sample on its own surface, so the time grows linearly with the
    /// cloud. Smaller or equal clouds are unaffected.
    #[arg(long, default_value_t = tensor_frames::normals::InputFeatures::VOTE_POINTS)]
    vote_points: usize,
    /// Where the prediction lies within this many degrees of the smallest-scale PCA normal,
    /// take the PCA direction (signed as the prediction): more precise on dense, clean scans,
    /// where PCA over a few nearby points is nearly exact, while edges, noise and thin parts
    /// keep the model's. Default: 5 on clouds of more than 50,000 points, off on smaller ones;
    /// 0 turns it off.
    #[arg(long)]
    snap: Option<f64>,
    /// No progress spinners and no status lines (errors still go to stderr).
    #[arg(long)]
    quiet: bool,
    /// Drop points with a non-finite coordinate (the NaN holes of organised PCL clouds) and
    /// report how many; without it they are an error.
    #[arg(long)]
    skip_invalid: bool,
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
    use tensor_frames::datasets::{write_cloud, CloudFormat, CloudRef};
    use tensor_frames::predict::{
        agreement, bundled_on, first_invalid, format_output, predict, read_cloud, trained_points,
        Output, PredictOptions,
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
    let stdout = a.out.as_os_str() == "-";
    let format =
        match (a.format, CloudFormat::from_path(&a.out)) {
            (Some(f), _) => f,
            (None, Some(f)) => f,
            (None, None) if stdout || a.out.extension().is_none() => CloudFormat::Text,
            (None, None) => bail!(
            "--out {}: unknown output format {:?}; name it with --format (ply, ply-ascii, pcd, \
             pcd-ascii, npy, text)",
            a.out.display(),
            a.out.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default()
        ),
        };
    // Status lines go to stderr when the output is stdout.
    let quiet = a.quiet;
    let say = |line: String| {
        if quiet {
        } else if stdout {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    // `-`: the text on stdin, through a temporary file (the readers take paths).
    let stdin_copy = if a.input.as_os_str() == "-" {
        let mut f = tempfile::Builder::new().suffix(".xyz").tempfile()?;
        std::io::copy(&mut std::io::stdin().lock(), &mut f)?;
        Some(f)
    } else {
        None
    };
    let input = stdin_copy
        .as_ref()
        .map_or(a.input.clone(), |f| f.path().to_path_buf());
    let spin = stage(quiet, "reading");
    let read = read_cloud(&input, a.sample, a.skip_invalid, a.columns.as_ref());
    spin.finish_and_clear();
    let mut cloud = read.with_context(|| format!("reading {}", a.input.display()))?;
    let d = model.config().d();
    if cloud.points.len() % d != 0 {
        bail!("{}: coordinates are not {d}-dimensional", a.input.display());
    }
    if a.skip_invalid {
        let dropped = cloud.drop_invalid(d);
        if dropped > 0 {
            say(format!(
                "skipped {dropped} points with a non-finite coordinate"
            ));
        }
    } else if let Some(i) = first_invalid(&cloud.points, d) {
        bail!(
            "{}: point {} has a non-finite coordinate (use --skip-invalid to drop such points)",
            a.input.display(),
            i + 1
        );
    }
    let opts = PredictOptions {
        group: a.group,
        batch: a.batch,
        seed: a.seed,
        passes: a.passes,
        rounds: a.rounds,
        consensus: a.consensus,
        winding: a.winding,
        viewpoint: a.viewpoint.clone(),
        k: a.k,
        vote_points: a.vote_points,
        snap_degrees: a.snap,
    };
    let spin = stage(quiet, "input features, model and orientation");
    let (points, reference) = (&cloud.points, &cloud.normals);
    let predicted = predict(&model, points, group, &opts);
    spin.finish_and_clear();
    let (out, report) = predicted?;
    if a.consensus > 0 {
        say(format!(
            "orientation consensus: {} sign flips",
            report.consensus_flips
        ));
    }
    if let Some(flips) = report.winding_flips {
        say(format!("winding-number orientation: {flips} sign flips"));
    }
    if let Some(flips) = report.viewpoint_flips {
        say(format!(
            "oriented towards the viewpoint: {flips} sign flips"
        ));
    }
    match (&out, reference) {
        (Output::Normals(normals), Some(r)) => {
            let (cos, abs_cos) = agreement(normals, r, d);
            say(format!(
                "against the file's normals: mean cos {cos:.4}, mean |cos| {abs_cos:.4}"
            ));
        }
        (Output::Class(c), _) => say(format!("class {c}")),
        _ => {}
    }
    let bytes = match (&out, format) {
        (Output::Normals(normals), f) => {
            let mut bytes = Vec::new();
            write_cloud(
                &mut bytes,
                f,
                CloudRef {
                    points,
                    d,
                    normals: Some(normals),
                    extras: &cloud.extras,
                },
            )?;
            bytes
        }
        (_, CloudFormat::Text) => format_output(points, d, &out).into_bytes(),
        (_, f) => bail!("--format {f} holds points and normals; this model's output is text"),
    };
    let spin = stage(quiet, "writing");
    if stdout {
        use std::io::Write as _;
        std::io::stdout().lock().write_all(&bytes)?;
    } else {
        write_atomic_bytes(&a.out, &bytes)?;
    }
    spin.finish_and_clear();
    say(format!(
        "{} points -> {} with {} ({:.0} points/s: input features {:.2} s, model {:.2} s, \
         orientation post-processing {:.2} s)",
        points.len() / d,
        a.out.display(),
        name,
        report.points_per_second,
        report.features,
        report.model,
        report.post
    ));
    Ok(())
}

/// A spinner on stderr naming the running stage with its elapsed time; hidden when stderr is
/// not a terminal or with `--quiet`.
fn stage(quiet: bool, what: &str) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}
