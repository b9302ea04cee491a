//! The `tensor-frames` command line.
//!
//! ```sh
//! tensor-frames equivariance --layer edgeconv --dim 5 --dtype f64 --json
//! ```

// Large candle buffers: keep freed memory instead of page-faulting it back every step.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{bail, Context, Result};
use candle_core::DType;
use clap::{Parser, Subcommand, ValueEnum};
use tensor_frames::diagnostics::{
    equivariance_markdown, equivariance_table, layer_equivariance, model_equivariance,
    write_atomic, EquivarianceRequest, EquivarianceResult, FRAME_NAMES,
};
use tensor_frames::group::TensorReps;
use tensor_frames::models::PRESETS;
use tensor_frames::mp::LAYER_NAMES;

#[derive(Parser, Debug)]
#[command(
    name = "tensor-frames",
    version,
    about = "Exactly O(d)-equivariant message passing with tensor frames"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Measure the equivariance error of a built-in layer, end to end (global in -> global out).
    Equivariance(EquivarianceArgs),
    /// Measure every built-in layer in several dimensions and frame builders; write a table.
    EquivarianceTable(TableArgs),
    /// Train a model (resumes when --out already holds checkpoints of the same run), then
    /// report test metrics on canonical and randomly rotated/reflected shapes.
    Train(TrainArgs),
    /// Estimate normals (or parts, or the class) of your own mesh or point cloud, any size,
    /// pose and scale; the bundled normal estimator unless --checkpoint says otherwise.
    Predict(PredictArgs),
    /// Compare a normal estimator with PCA normals on held-out real shapes under random O(3)
    /// transformations; writes a Markdown and a JSON table.
    EvaluateNormals(EvalNormalsArgs),
    /// Redraw a run's training curves (<run>/curves.svg) from its metrics.jsonl.
    Curves {
        /// The run directory.
        run: std::path::PathBuf,
    },
    /// Datasets: write the synthetic set, or inspect a file or folder.
    #[command(subcommand)]
    Data(DataCommand),
}

#[derive(Subcommand, Debug)]
enum DataCommand {
    /// Write the synthetic dataset in the ModelNet40-normal layout.
    Synth {
        /// Output folder.
        #[arg(long)]
        out: std::path::PathBuf,
        /// Shapes per class and split.
        #[arg(long, default_value_t = 20)]
        shapes_per_class: usize,
        /// Points per shape.
        #[arg(long, default_value_t = 1024)]
        points: usize,
        /// Gaussian position noise.
        #[arg(long, default_value_t = 0.0)]
        noise: f64,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Sample every mesh under a folder (OFF/OBJ/STL/PLY/WRL, optionally .gz) into the
    /// ModelNet40-normal layout: class = the mesh's parent folder, train/test split by shape.
    Convert {
        /// Folder searched recursively for meshes.
        #[arg(long)]
        meshes: std::path::PathBuf,
        /// Output folder.
        #[arg(long)]
        out: std::path::PathBuf,
        /// Points per shape.
        #[arg(long, default_value_t = 10_000)]
        points: usize,
        /// Fraction of shapes (by a hash of the file name) in the test split.
        #[arg(long, default_value_t = 0.2)]
        test_fraction: f64,
        /// Seed of the sampling.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Counts, classes and point statistics of a point-set file or a ModelNet-normal folder;
    /// says what is wrong with a bad one.
    Inspect {
        /// A `.xyz`/`.txt` point set or a dataset folder.
        path: std::path::PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct TableArgs {
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

#[derive(clap::Args, Debug)]
struct TrainArgs {
    /// Model preset the configuration starts from.
    #[arg(long, default_value = "pointnet2-normals")]
    preset: String,
    /// Dimension of the preset.
    #[arg(long, default_value_t = 3)]
    dim: usize,
    /// TOML file with [model], [train] and [data] sections (overrides the preset).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Run directory: checkpoints, metrics.jsonl, config.json, test.json.
    #[arg(long)]
    out: std::path::PathBuf,
    /// A ModelNet40-normal folder to train on instead of the configured data.
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// Epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Points per shape.
    #[arg(long)]
    points: Option<usize>,
    /// Shapes per batch.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Gaussian position noise on training points.
    #[arg(long)]
    noise: Option<f64>,
    /// Stop after this many completed epochs (resume later with the same command).
    #[arg(long)]
    stop_after: Option<usize>,
}

fn train(a: TrainArgs) -> Result<()> {
    use tensor_frames::train::{evaluate, open_data, train, EvalConfig, Run, RunConfig, Session};
    let base = RunConfig::preset(&a.preset, a.dim)?;
    let mut flags = serde_json::json!({});
    let mut set = |section: &str, key: &str, v: serde_json::Value| {
        flags[section][key] = v;
    };
    if let Some(v) = a.epochs {
        set("train", "epochs", v.into());
    }
    if let Some(v) = a.lr {
        set("train", "lr", v.into());
    }
    if let Some(v) = a.seed {
        set("train", "seed", v.into());
    }
    if let Some(v) = a.points {
        set("train", "points", v.into());
    }
    if let Some(v) = a.batch_size {
        set("train", "batch_size", v.into());
    }
    if let Some(v) = a.noise {
        set("train", "noise", v.into());
    }
    let mut cfg = RunConfig::load(base, a.config.as_deref(), flags)?;
    if let Some(path) = a.data {
        cfg.data = tensor_frames::train::DataConfig::Modelnet { path };
        cfg.validate()?;
    }
    let splits = open_data(&cfg.data)?;
    tracing::info!(
        train = splits.train.0.len(),
        val = splits.val.0.len(),
        test = splits.test.0.len(),
        "data loaded"
    );
    let run = Run {
        dir: a.out.clone(),
        config: cfg.clone(),
        train: splits.train.clone(),
        val: Some(splits.val.clone()),
    };
    let outcome = train(
        &run,
        Session {
            stop_after: a.stop_after,
        },
    )?;
    if outcome.history.len() < cfg.train.epochs {
        println!(
            "stopped after epoch {} of {}; rerun the same command to resume",
            outcome.history.len(),
            cfg.train.epochs
        );
        return Ok(());
    }
    let canonical = evaluate(
        &outcome.model,
        splits.test.clone(),
        &EvalConfig::from_run(&cfg, false),
    )?;
    let rotated = evaluate(
        &outcome.model,
        splits.test.clone(),
        &EvalConfig::from_run(&cfg, true),
    )?;
    let report = serde_json::json!({
        "test_canonical": canonical,
        "test_rotated": rotated,
        "epochs": outcome.history.len(),
        "session_seconds": outcome.seconds,
        "params": outcome.model.params(),
    });
    write_atomic(
        &a.out.join("test.json"),
        &serde_json::to_string_pretty(&report)?,
    )?;
    println!("test (canonical poses): {canonical:?}");
    println!("test (random O(d) poses): {rotated:?}");
    println!("run directory: {}", a.out.display());
    Ok(())
}

#[derive(clap::Args, Debug)]
struct PredictArgs {
    /// A run directory, checkpoint directory or weights file (default: models/normals).
    #[arg(long)]
    checkpoint: Option<std::path::PathBuf>,
    /// A mesh (.off .obj .stl .ply .wrl, optionally .gz: its vertices are used) or a point set
    /// (text, 3, 6 or 7 columns).
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
    /// model again, at twice the time. 2 rounds on the held-out real shapes: KiCad parts
    /// 0.801 -> 0.802 mean cos, CGAL meshes 0.872 -> 0.867.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Rounds of neighbour orientation consensus after the model (0: off). Repairs isolated
    /// sign errors on dense smooth scans (CGAL meshes: +0.03 mean cos); harmful on sparse thin
    /// CAD parts (KiCad: -0.04). Directions are unchanged.
    #[arg(long, default_value_t = 0)]
    consensus: usize,
    /// Repair the orientation after the model (and after consensus) by the winding number of
    /// the cloud: every point is voted on by the dipole field of all others (nearest loudest),
    /// which fixes wrongly oriented patches on closed surfaces and abstains on thin sheets (see
    /// `tf_frames::orient_by_winding`). Directions are unchanged.
    #[arg(long)]
    winding: bool,
}

fn predict(a: PredictArgs) -> Result<()> {
    use std::fmt::Write as _;
    use tensor_frames::predict::{bundled_model, predict, read_input, Output, PredictOptions};
    let ckpt = match a.checkpoint {
        Some(c) => c,
        None => bundled_model()?,
    };
    let model = tensor_frames::train::load_model(&ckpt, DType::F32)?;
    let dir = tensor_frames::train::checkpoint::resolve(&ckpt)?;
    let group = tensor_frames::train::checkpoint::read_state(&dir)
        .map(|s| s.config.train.points)
        .unwrap_or(1024);
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
    };
    let (mut out, timing) = predict(&model, &points, group, &opts)?;
    if let Output::Normals(normals) = &mut out {
        let flips = tensor_frames::predict::orientation_consensus(
            &points,
            normals,
            d,
            tensor_frames::predict::CONSENSUS_NEIGHBOURS,
            a.consensus,
        )?;
        if a.consensus > 0 {
            println!("orientation consensus: {flips} sign flips");
        }
        if a.winding {
            let start = std::time::Instant::now();
            let wf = tensor_frames::frames::orient_by_winding(
                &points,
                normals,
                d,
                &tensor_frames::frames::WindingOrientation::default(),
            )?;
            println!(
                "winding-number orientation: {wf} sign flips in {:.1} s",
                start.elapsed().as_secs_f64()
            );
        }
    }
    let n = points.len() / d;
    let mut text = String::with_capacity(n * 64);
    let fmt_point = |text: &mut String, p: &[f64]| {
        for v in p {
            let _ = write!(text, "{v:.6} ");
        }
    };
    match &out {
        Output::Normals(normals) => {
            for (p, m) in points.chunks(d).zip(normals.chunks(d)) {
                fmt_point(&mut text, p);
                let cols: Vec<String> = m.iter().map(|v| format!("{v:.6}")).collect();
                let _ = writeln!(text, "{}", cols.join(" "));
            }
            if let Some(r) = &reference {
                let (mut c, mut ac) = (0.0, 0.0);
                for (m, t) in normals.chunks(d).zip(r.chunks(d)) {
                    let len = t.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
                    let dot: f64 = m.iter().zip(t).map(|(x, y)| x * y).sum::<f64>() / len;
                    c += dot;
                    ac += dot.abs();
                }
                println!(
                    "against the file's normals: mean cos {:.4}, mean |cos| {:.4}",
                    c / n as f64,
                    ac / n as f64
                );
            }
        }
        Output::Parts(parts) => {
            for (p, l) in points.chunks(d).zip(parts) {
                fmt_point(&mut text, p);
                let _ = writeln!(text, "{l}");
            }
        }
        Output::Class(c) => {
            let _ = writeln!(text, "{c}");
            println!("class {c}");
        }
    }
    write_atomic(&a.out, &text)?;
    println!(
        "{n} points -> {} with {} ({:.0} points/s: input features {:.2} s, model {:.2} s)",
        a.out.display(),
        ckpt.display(),
        timing.points_per_second,
        timing.features,
        timing.model
    );
    Ok(())
}

#[derive(clap::Args, Debug)]
struct EvalNormalsArgs {
    /// The model (default: the bundled one).
    #[arg(long)]
    checkpoint: Option<std::path::PathBuf>,
    /// ModelNet-normal folders, comma separated (their test splits, or see --split).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "data/real/cgal,data/real/kicad"
    )]
    data: Vec<std::path::PathBuf>,
    /// Neighbour counts of the PCA baselines, comma separated (one row each; the first is also
    /// run on the model's groups).
    #[arg(long, value_delimiter = ',', default_value = "16,8,32")]
    k: Vec<usize>,
    /// At most this many test shapes per folder.
    #[arg(long)]
    max_shapes: Option<usize>,
    /// Seed of the transformations.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Position noise levels (relative to the unit ball), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "0,0.01")]
    noise: Vec<f64>,
    /// Random groupings averaged per point (test-time ensemble).
    #[arg(long, default_value_t = 4)]
    passes: usize,
    /// Self-refinement rounds of the model (see `predict --rounds`).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Points per model input (default: the checkpoint's training size).
    #[arg(long)]
    group: Option<usize>,
    /// Shapes scored: `test` (reported numbers) or `val`, the training shapes the trainer
    /// validates on (every tenth), for choosing between models without the test split.
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    split: SplitArg,
    /// Output stem: writes <out>.md and <out>.json.
    #[arg(long, default_value = "papers/tensor-frames/results/normals-real")]
    out: std::path::PathBuf,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum SplitArg {
    Test,
    Val,
}

fn evaluate_normals(a: EvalNormalsArgs) -> Result<()> {
    use tensor_frames::evaluate::{evaluate_normals, EvalSplit, NormalsEval};
    let ckpt = match a.checkpoint {
        Some(c) => c,
        None => tensor_frames::predict::bundled_model()?,
    };
    let model = tensor_frames::train::load_model(&ckpt, DType::F32)?;
    let dir = tensor_frames::train::checkpoint::resolve(&ckpt)?;
    let trained = tensor_frames::train::checkpoint::read_state(&dir)
        .map(|s| s.config.train.points)
        .unwrap_or(1024);
    let group = a.group.unwrap_or(trained);
    if group < 8 {
        anyhow::bail!("--group must be at least 8 points, got {group}");
    }
    let start = std::time::Instant::now();
    let (mut rows, mut shapes) = (Vec::new(), Vec::new());
    for root in &a.data {
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for &noise in &a.noise {
            let e = NormalsEval {
                group,
                ks: a.k.clone(),
                max_shapes: a.max_shapes,
                seed: a.seed,
                noise,
                passes: a.passes,
                rounds: a.rounds,
                split: match a.split {
                    SplitArg::Test => EvalSplit::Test,
                    SplitArg::Val => EvalSplit::Validation,
                },
            };
            let report = evaluate_normals(&model, &name, root, &e)?;
            rows.extend(report.rows);
            shapes.extend(report.shapes);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let data: Vec<String> = a.data.iter().map(|p| p.display().to_string()).collect();
    let command = format!(
        "tensor-frames evaluate-normals --checkpoint {} --data {} --k {} --seed {} --noise {} --passes {}{}{}{}{}",
        ckpt.display(),
        data.join(","),
        a.k.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","),
        a.seed,
        a.noise.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","),
        a.passes,
        if a.rounds > 1 { format!(" --rounds {}", a.rounds) } else { String::new() },
        a.max_shapes.map(|m| format!(" --max-shapes {m}")).unwrap_or_default(),
        a.group.map(|g| format!(" --group {g}")).unwrap_or_default(),
        if a.split == SplitArg::Val { " --split val" } else { "" }
    );
    let mut md = String::from(if a.split == SplitArg::Val {
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
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.4} | {:.4} |\n",
            r.data, r.noise, r.method, r.shapes, r.points, r.cos, r.abs_cos
        ));
    }
    md.push_str(&format!(
        "
Wall time {secs:.0} s. Command: `{command}`
"
    ));
    md.push_str(&format!(
        "\nPer-shape scores of the model and of PCA (k = {}): `{}`.\n",
        a.k.first().copied().unwrap_or_default(),
        a.out.with_extension("json").display()
    ));
    let json =
        serde_json::json!({ "command": command, "seconds": secs, "rows": rows, "shapes": shapes });
    write_atomic(&a.out.with_extension("md"), &md)?;
    write_atomic(
        &a.out.with_extension("json"),
        &serde_json::to_string_pretty(&json)?,
    )?;
    print!("{md}");
    Ok(())
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Precision {
    F32,
    F64,
}

#[derive(clap::Args, Debug)]
struct EquivarianceArgs {
    /// Layer name (gcn, gcn-scalar, edgeconv, edgeconv-scalar, attention, attention-scalar).
    #[arg(long, required_unless_present_any = ["model", "checkpoint"], conflicts_with_all = ["model", "checkpoint"])]
    layer: Option<String>,
    /// A trained model (run directory, checkpoint directory or weights file): its error on
    /// held-out synthetic shapes instead of random clouds.
    #[arg(long, conflicts_with = "model")]
    checkpoint: Option<std::path::PathBuf>,
    /// Model preset instead of a layer (pointnet2-normals, dgcnn-classification, ...).
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
    /// Frame builder (learned, pca, nearest, identity, random, random-global).
    #[arg(long, default_value = "learned")]
    frames: String,
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
}

fn parse_reps(s: &Option<String>, default: &TensorReps, flag: &str) -> Result<TensorReps> {
    match s {
        Some(s) => s.parse().with_context(|| format!("{flag} {s:?}")),
        None => Ok(default.clone()),
    }
}

fn equivariance(a: EquivarianceArgs) -> Result<()> {
    if a.dim < 2 {
        bail!(
            "--dim must be at least 2 (O(1) has no rotations to test), got {}",
            a.dim
        );
    }
    let dtype = match a.dtype {
        Precision::F32 => DType::F32,
        Precision::F64 => DType::F64,
    };
    if let Some(path) = &a.checkpoint {
        let points = if a.points == 64 { 512 } else { a.points };
        let r = tensor_frames::diagnostics::checkpoint_equivariance(
            path, dtype, a.trials, a.seed, points,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        return report(&r, a.json);
    }
    if let Some(preset) = &a.model {
        if !PRESETS.contains(&preset.as_str()) {
            bail!(
                "unknown model {preset:?}; known models: {}",
                PRESETS.join(", ")
            );
        }
        let r = model_equivariance(preset, a.dim, a.trials, dtype, a.seed, a.points)
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
    if !FRAME_NAMES.contains(&a.frames.as_str()) {
        bail!(
            "unknown frames {:?}; known frames: {}",
            a.frames,
            FRAME_NAMES.join(", ")
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
    let r = layer_equivariance(&req).map_err(|e| anyhow::anyhow!("{e}"))?;
    report(&r, a.json)
}

fn report(r: &EquivarianceResult, json: bool) -> Result<()> {
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

fn table(a: TableArgs) -> Result<()> {
    if let Some(&d) = a.dims.iter().find(|&&d| d < 2) {
        bail!("--dims must all be at least 2, got {d}");
    }
    let start = std::time::Instant::now();
    let frames = ["learned", "pca", "nearest", "identity"];
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

fn stats(s: &tensor_frames::datasets::Shape) -> String {
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for p in s.points.chunks_exact(3) {
        for a in 0..3 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    format!(
        "{} points, bounding box [{:.3}, {:.3}] x [{:.3}, {:.3}] x [{:.3}, {:.3}]{}",
        s.len(),
        lo[0],
        hi[0],
        lo[1],
        hi[1],
        lo[2],
        hi[2],
        s.parts
            .as_ref()
            .map(|p| format!(", {} part labels", p.len()))
            .unwrap_or_default()
    )
}

fn mesh_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("{}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        if p.is_dir() {
            mesh_files(&p, out)?;
        } else if [".off", ".obj", ".stl", ".ply", ".wrl"]
            .iter()
            .any(|e| name.ends_with(e))
        {
            out.push(p);
        }
    }
    Ok(())
}

fn convert(
    meshes: &std::path::Path,
    out: &std::path::Path,
    points: usize,
    test_fraction: f64,
    seed: u64,
) -> Result<()> {
    use rand::SeedableRng;
    use tensor_frames::datasets::{read_mesh, write_modelnet_normal, MeshNormals};
    if points == 0 || !(0.0..1.0).contains(&test_fraction) {
        bail!("--points must be positive and --test-fraction in [0, 1)");
    }
    let mut files = Vec::new();
    mesh_files(meshes, &mut files)?;
    if files.is_empty() {
        bail!(
            "no meshes (.off, .obj, .stl, .ply, .wrl, optionally .gz) under {}",
            meshes.display()
        );
    }
    let class_of = |p: &std::path::Path| -> String {
        let folder = p
            .parent()
            .and_then(|d| d.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or("shapes");
        // KiCad's library folders are "<Category>.3dshapes"
        folder
            .trim_end_matches(".3dshapes")
            .replace(['_', ' ', '.'], "-")
    };
    let mut classes: Vec<String> = files.iter().map(|p| class_of(p)).collect();
    classes.sort();
    classes.dedup();
    let (mut train, mut test, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    // Per written shape: its source mesh and how its components were oriented.
    let (mut train_src, mut test_src) = (Vec::new(), Vec::new());
    let mut orientation = tensor_frames::datasets::Orientation::default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for f in &files {
        let label = classes.iter().position(|c| *c == class_of(f)).unwrap_or(0) as u32;
        // Ground-truth normals must point outward: reverse inside-out closed components first.
        let mut this = tensor_frames::datasets::Orientation::default();
        let sampled = read_mesh(f).and_then(|mut m| {
            let o = m.orient_outward();
            tracing::debug!(mesh = %f.display(), ?o, "orientation");
            orientation.closed += o.closed;
            orientation.open += o.open;
            orientation.flipped += o.flipped;
            orientation.undefined += o.undefined;
            this = o;
            m.sample(points, MeshNormals::Face, 0.0, label, &mut rng)
        });
        let source = f.strip_prefix(meshes).unwrap_or(f).display().to_string();
        match sampled {
            Ok(mut shape) => {
                shape.normalize();
                // Split by shape, from the file name only: stable when meshes are added.
                let h = f
                    .file_name()
                    .map(|n| {
                        n.to_string_lossy()
                            .bytes()
                            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                                (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
                            })
                    })
                    .unwrap_or(0);
                if (h % 1000) as f64 / 1000.0 < test_fraction {
                    test.push(shape);
                    test_src.push((source, this));
                } else {
                    train.push(shape);
                    train_src.push((source, this));
                }
            }
            Err(e) => skipped.push(e.to_string()),
        }
    }
    let names: Vec<&str> = classes.iter().map(String::as_str).collect();
    let ids = write_modelnet_normal(out, "real", &names, &train, &test)?;
    // Provenance: which mesh each shape came from, and whether its outside is defined (the
    // oriented score of a shape without one, e.g. a single triangle, is meaningless).
    let mut tsv = String::from("id\tsplit\tsource\tclosed\topen\treversed\tundefined\n");
    let splits =
        std::iter::repeat_n("train", train.len()).chain(std::iter::repeat_n("test", test.len()));
    for ((id, split), (source, o)) in ids
        .iter()
        .zip(splits)
        .zip(train_src.iter().chain(&test_src))
    {
        tsv.push_str(&format!(
            "{id}\t{split}\t{source}\t{}\t{}\t{}\t{}\n",
            o.closed, o.open, o.flipped, o.undefined
        ));
    }
    write_atomic(&out.join(tensor_frames::datasets::SOURCES_FILE), &tsv)?;
    println!(
        "{} meshes -> {} train + {} test shapes of {points} points in {} classes at {}; {} skipped",
        files.len(),
        train.len(),
        test.len(),
        classes.len(),
        out.display(),
        skipped.len()
    );
    println!(
        "mesh components: {} closed and {} open with consistent winding ({} were inside out and \
         got reversed), {} without a defined outside (kept as wound)",
        orientation.closed, orientation.open, orientation.flipped, orientation.undefined
    );
    for s in skipped {
        println!("  skipped: {s}");
    }
    Ok(())
}

fn data(cmd: DataCommand) -> Result<()> {
    use tensor_frames::datasets::{
        read_point_set, write_modelnet_normal, Columns, ModelNetNormal, Split, Synthetic,
        SYNTHETIC_CLASS_NAMES,
    };
    match cmd {
        DataCommand::Synth {
            out,
            shapes_per_class,
            points,
            noise,
            seed,
        } => {
            if points == 0 || !(noise >= 0.0 && noise.is_finite()) {
                bail!("--points must be positive and --noise finite and non-negative");
            }
            let d = Synthetic {
                shapes_per_class,
                points,
                noise,
                seed,
            };
            let train: Vec<_> = (0..d.len()).map(|i| d.shape(Split::Train, i)).collect();
            let test: Vec<_> = (0..d.len()).map(|i| d.shape(Split::Test, i)).collect();
            write_modelnet_normal(&out, "synthetic", &SYNTHETIC_CLASS_NAMES, &train, &test)?;
            println!(
                "wrote {} train and {} test shapes of {points} points to {}",
                train.len(),
                test.len(),
                out.display()
            );
        }
        DataCommand::Convert {
            meshes,
            out,
            points,
            test_fraction,
            seed,
        } => convert(&meshes, &out, points, test_fraction, seed)?,
        DataCommand::Inspect { path } => {
            if path.is_dir() {
                let m = ModelNetNormal::open(&path)?;
                println!(
                    "ModelNet-normal layout: {} classes, {} train, {} test shapes",
                    m.classes.len(),
                    m.train.len(),
                    m.test.len()
                );
                for (label, name) in m.classes.iter().enumerate() {
                    let count = |split: Split| {
                        m.entries(split)
                            .iter()
                            .filter(|e| e.label as usize == label)
                            .count()
                    };
                    println!(
                        "  {label:>3} {name:<24} train {:>5}  test {:>5}",
                        count(Split::Train),
                        count(Split::Test)
                    );
                }
                if let Some(e) = m.train.first() {
                    println!("first shape {}: {}", e.id, stats(&m.load(e)?));
                }
            } else {
                let s = read_point_set(&path, Columns::Normals, 0)
                    .or_else(|_| read_point_set(&path, Columns::NormalsAndPart, 0))
                    .or_else(|_| read_point_set(&path, Columns::Normals, 0))?;
                println!("{}: {}", path.display(), stats(&s));
            }
        }
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    // Logs go to stderr; RUST_LOG overrides the default level.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Train(a) => train(a),
        Command::Predict(a) => predict(a),
        Command::Curves { run } => tensor_frames::train::draw_curves(&run)
            .map(|p| println!("wrote {}", p.display()))
            .map_err(Into::into),
        Command::EvaluateNormals(a) => evaluate_normals(a),
        Command::Equivariance(a) => equivariance(a),
        Command::EquivarianceTable(a) => table(a),
        Command::Data(c) => data(c),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}
