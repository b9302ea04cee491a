//! `tensor-frames train`: train a model from a preset and a TOML configuration, resumably,
//! then score it on canonical and randomly transformed test shapes.

use anyhow::Result;
use tensor_frames::diagnostics::write_atomic;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
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
    /// Where to train: cpu, cuda[:N] or metal[:N] (GPUs need a build with `--features cuda`
    /// or `--features metal`). Same as `[train] device` in the config.
    #[arg(long)]
    device: Option<tensor_frames::models::DeviceChoice>,
}

pub(crate) fn run(a: Args) -> Result<()> {
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
    if let Some(v) = a.device {
        set("train", "device", v.to_string().into());
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
