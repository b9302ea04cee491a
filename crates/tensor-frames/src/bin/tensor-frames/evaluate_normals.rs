//! `tensor-frames evaluate-normals`: a normal estimator against PCA on held-out real shapes.

use anyhow::Result;
use candle_core::DType;
use clap::ValueEnum;
use tensor_frames::diagnostics::write_atomic;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
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
    /// Where the network runs: cpu, cuda[:N] or metal[:N].
    #[arg(long, default_value = "cpu")]
    device: tensor_frames::models::DeviceChoice,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum SplitArg {
    Test,
    Val,
}

pub(crate) fn run(a: Args) -> Result<()> {
    use tensor_frames::evaluate::{evaluate_normals, normals_markdown, EvalSplit, NormalsEval};
    let ckpt = match a.checkpoint {
        Some(c) => c,
        None => tensor_frames::predict::bundled_model()?,
    };
    let model = tensor_frames::train::load_model_on(&ckpt, DType::F32, &a.device.device()?)?;
    let group = a
        .group
        .unwrap_or_else(|| tensor_frames::predict::trained_points(&ckpt));
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
    let split = match a.split {
        SplitArg::Test => EvalSplit::Test,
        SplitArg::Val => EvalSplit::Validation,
    };
    let md = normals_markdown(
        &rows,
        split,
        secs,
        &command,
        a.k.first().copied().unwrap_or_default(),
        &a.out.with_extension("json"),
    );
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
