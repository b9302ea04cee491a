//! The training loop and evaluation.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Tensor};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tf_datasets::{Augment, BatchConfig, LabelledBatch, Loader, ShapeSource};
use tf_group::orthogonal::haar_orthogonal_host;
use tf_models::{Batch, InputFeatures, Model};

use crate::checkpoint::{self, io as io_error, CheckpointState, FORMAT};
use crate::config::RunConfig;
use crate::error::TrainError;
use crate::optim::{AdamW, Schedule};
use crate::task::{self, Metrics};

/// One training run: a directory, a configuration and resolved data sources.
#[derive(Clone)]
pub struct Run {
    /// Where checkpoints, `metrics.jsonl` and `config.json` go.
    pub dir: PathBuf,
    /// Model and optimisation settings (`data` is informational here: the sources are given).
    pub config: RunConfig,
    /// Training shapes.
    pub train: Arc<dyn ShapeSource>,
    /// Validation shapes, evaluated after every epoch for the curves and the best checkpoint.
    pub val: Option<Arc<dyn ShapeSource>>,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("dir", &self.dir)
            .field("config", &self.config)
            .field("train", &self.train.len())
            .field("val", &self.val.as_ref().map(|v| v.len()))
            .finish()
    }
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Completed epochs (1-based).
    pub epoch: usize,
    /// Optimizer steps so far.
    pub step: usize,
    /// Learning rate at the last step of the epoch.
    pub lr: f64,
    /// Mean training loss of the epoch.
    pub train_loss: f64,
    /// Validation metrics (empty without validation data).
    pub val: BTreeMap<String, f64>,
    /// Frames that fell back to the degenerate-neighbourhood rule during the epoch.
    pub degenerate_frames: usize,
    /// Wall time of the epoch in seconds (excluded from determinism checks).
    pub seconds: f64,
}

/// What a finished [`train`] call returns.
#[derive(Debug)]
pub struct Outcome {
    /// The model after the last completed epoch.
    pub model: Model,
    /// Every epoch's record, including epochs of earlier sessions of a resumed run.
    pub history: Vec<EpochRecord>,
    /// The epoch this session started from (0 for a fresh run).
    pub resumed_from: usize,
    /// Wall time of this session.
    pub seconds: f64,
    /// The best validation value and its (1-based) epoch, if there was validation data.
    pub best: Option<(usize, f64)>,
    /// True when early stopping ended the run before `epochs` (this session or an earlier one).
    pub stopped_early: bool,
}

/// Extra controls of a session.
#[derive(Debug, Clone, Copy, Default)]
pub struct Session {
    /// Stop after this many completed epochs (as if killed after that checkpoint); the run can
    /// be resumed later.
    pub stop_after: Option<usize>,
}

fn stream(seed: u64, epoch: u64, salt: u64) -> u64 {
    seed ^ salt ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn batch_config(cfg: &RunConfig, augment: Augment, seed: u64) -> BatchConfig {
    BatchConfig {
        batch_size: cfg.train.batch_size,
        points: cfg.train.points,
        augment,
        translate: 0.0,
        shuffle: true,
        seed,
        noise: cfg.train.noise,
        noise_uniform: cfg.train.noise_uniform,
        features: cfg.model.input_features(),
    }
}

fn read_history(path: &Path, upto: usize) -> Result<Vec<EpochRecord>, TrainError> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let rec: EpochRecord = serde_json::from_str(line)
            .map_err(|e| TrainError::Checkpoint(format!("{}:{}: {e}", path.display(), i + 1)))?;
        if rec.epoch <= upto {
            out.push(rec);
        }
    }
    Ok(out)
}

/// Writes `text` to `path` atomically (temporary file in the same folder, then rename),
/// creating the folder if needed.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), TrainError> {
    write_atomic_bytes(path, text.as_bytes())
}

/// [`write_atomic`] for bytes.
pub fn write_atomic_bytes(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    // A link is written through: its target is replaced, the link stays.
    let path = &std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    }
    // A name of our own (process and call), so a user's `<file>.tmp` is never touched and
    // concurrent writers never share one; removed again whatever goes wrong.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()));
    let result = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| io_error(path, e))
}

fn append_record(path: &Path, rec: &EpochRecord) -> Result<(), TrainError> {
    let line = serde_json::to_string(rec)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    writeln!(f, "{line}").map_err(|e| io_error(path, e))
}

/// Trains (or resumes, or returns at once if already finished) the run in `run.dir`.
///
/// A run directory belongs to one configuration: resuming with a different one is an error.
/// Metrics lines of epochs after the resumed checkpoint (written before a kill) are dropped.
pub fn train(run: &Run, session: Session) -> Result<Outcome, TrainError> {
    let started = Instant::now();
    let cfg = &run.config;
    cfg.validate()?;
    if run.train.is_empty() {
        return Err(TrainError::Config("the training set is empty".into()));
    }
    std::fs::create_dir_all(&run.dir).map_err(|e| io_error(&run.dir, e))?;
    // Held until this function returns: one training per run folder.
    let _lock = crate::lock::RunLock::acquire(&run.dir)?;
    let metrics_path = run.dir.join("metrics.jsonl");
    let config_json = serde_json::to_string_pretty(cfg)?;

    let dev = cfg.train.device.device()?;
    let mut model = Model::new_seeded(cfg.model.clone(), DType::F32, &dev, cfg.train.seed)?;
    let mut opt = AdamW::new(model.varmap(), cfg.train.weight_decay)?;

    let (mut epoch, mut step, mut best) = (0usize, 0usize, None::<(usize, f64)>);
    if let Some((dir, state)) = checkpoint::latest(&run.dir)? {
        if state.config != *cfg {
            return Err(TrainError::Config(format!(
                "{} holds a run with a different configuration; use another directory",
                run.dir.display()
            )));
        }
        model
            .load(&dir.join("model.safetensors"))
            .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", dir.display())))?;
        checkpoint::load_optimizer(&dir, &mut opt, state.step)?;
        (epoch, step, best) = (state.epoch, state.step, state.best);
        tracing::info!(epoch, step, dir = %dir.display(), "resuming");
    } else if let Some(init) = &cfg.train.init {
        // Fine-tuning: the starting weights must belong to the same model, else the names or
        // shapes of the tensors differ and loading says which.
        let dir = checkpoint::resolve(init)
            .map_err(|e| TrainError::Checkpoint(format!("train.init: {e}")))?;
        let weights = checkpoint::weights_file(init, &dir);
        // A checkpoint of the same model with fewer input scalars (e.g. before `confidence`
        // was added) starts the new inputs at zero weight: the same function, ready to learn.
        let from = match dir.join("state.json").is_file() {
            true => Some(checkpoint::read_state(&dir)?.config.model),
            false => None,
        };
        let loaded = match from {
            // Only when the feature widths differ: other changes of the features (how the
            // estimates are signed, say) keep every shape and load as they are.
            Some(old) if old.input_features().reps() != cfg.model.input_features().reps() => {
                tracing::info!(from = %old.input_features().reps(), to = %cfg.model.input_features().reps(), "widening the input features");
                model.load_widening_inputs(&weights, &old)
            }
            _ => model.load(&weights),
        };
        loaded.map_err(|e| {
            TrainError::Checkpoint(format!("train.init {}: {e}", weights.display()))
        })?;
        tracing::info!(init = %weights.display(), "starting from these weights");
    }
    let resumed_from = epoch;
    let mut history = read_history(&metrics_path, epoch)?;
    // Lines after the checkpoint came from a killed session: rewrite the file without them.
    let kept: String = history
        .iter()
        .filter_map(|r| serde_json::to_string(r).ok())
        .map(|l| l + "\n")
        .collect();
    write_atomic(&metrics_path, &kept)?;
    write_atomic(&run.dir.join("config.json"), &config_json)?;

    let steps_per_epoch = run.train.len().div_ceil(cfg.train.batch_size);
    let schedule = Schedule {
        peak: cfg.train.lr,
        warmup: cfg.train.warmup_steps,
        total: steps_per_epoch * cfg.train.epochs,
        final_fraction: cfg.train.final_lr_fraction,
    };
    let head = model.head();
    let bar = ProgressBar::new((steps_per_epoch * cfg.train.epochs) as u64);
    if !cfg.train.progress || epoch >= cfg.train.epochs {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg} (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(
        run.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    bar.set_position(step as u64);

    let patience_spent = |epoch: usize, best: Option<(usize, f64)>| {
        cfg.train.patience > 0 && best.is_some_and(|(b, _)| epoch >= b + cfg.train.patience)
    };
    let mut stopped_early = false;
    while epoch < cfg.train.epochs {
        if patience_spent(epoch, best) {
            tracing::info!(epoch, best = ?best, "early stopping: no new best validation value");
            stopped_early = true;
            break;
        }
        if session.stop_after.is_some_and(|s| epoch >= s) {
            break;
        }
        let t0 = Instant::now();
        let e = epoch as u64;
        model.reseed(stream(cfg.train.seed, e, 0x6672_616d))?;
        let loader = Loader::epoch(
            run.train.clone(),
            batch_config(cfg, cfg.train.augment.into(), cfg.train.seed),
            e,
        );
        let (mut loss_sum, mut batches, mut degenerate) = (0.0, 0usize, 0usize);
        let mut lr = schedule.lr(step);
        for batch in loader {
            let batch = batch?.to_device(&dev)?;
            let pred = model.forward(&Batch {
                pos: &batch.pos,
                batch: Some(&batch.batch),
                features: batch.features.as_ref(),
            })?;
            degenerate += pred.degenerate_frames;
            let loss =
                task::training_loss(head, &pred.values, &batch, cfg.train.unoriented_weight)?;
            let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !value.is_finite() {
                return Err(TrainError::Diverged {
                    epoch: epoch + 1,
                    step,
                });
            }
            let grads = loss.backward()?;
            let scale = if cfg.train.clip_norm > 0.0 {
                let norm = opt.grad_norm(&grads)?;
                if norm > cfg.train.clip_norm {
                    cfg.train.clip_norm / norm
                } else {
                    1.0
                }
            } else {
                1.0
            };
            lr = schedule.lr(step);
            opt.step(&grads, lr, scale)?;
            step += 1;
            loss_sum += value;
            batches += 1;
            bar.inc(1);
            bar.set_message(format!("epoch {} loss {value:.4}", epoch + 1));
        }
        epoch += 1;
        let val = match &run.val {
            Some(v) => evaluate(&model, v.clone(), &EvalConfig::from_run(cfg, false))?,
            None => BTreeMap::new(),
        };
        let rec = EpochRecord {
            epoch,
            step,
            lr,
            train_loss: loss_sum / batches.max(1) as f64,
            val: val.clone(),
            degenerate_frames: degenerate,
            seconds: t0.elapsed().as_secs_f64(),
        };
        tracing::info!(
            epoch,
            step,
            train_loss = rec.train_loss,
            val = ?rec.val,
            seconds = rec.seconds,
            "epoch done"
        );
        append_record(&metrics_path, &rec)?;
        history.push(rec);
        write_curves(&run.dir, &history)?;
        let primary = val.get(primary_name(head)).copied();
        let is_best = match (primary, best) {
            (Some(v), Some((_, b))) => v > b,
            (Some(_), None) => true,
            (None, _) => epoch == cfg.train.epochs,
        };
        if is_best {
            best = primary.map(|v| (epoch, v));
        }
        let state = CheckpointState {
            format: FORMAT,
            epoch,
            step,
            seed: cfg.train.seed,
            best,
            config: cfg.clone(),
        };
        checkpoint::save(&run.dir, &model, &opt, &state, is_best, cfg.train.keep_last)?;
    }
    bar.finish_and_clear();
    Ok(Outcome {
        model,
        history,
        resumed_from,
        seconds: started.elapsed().as_secs_f64(),
        best,
        stopped_early: stopped_early || (epoch < cfg.train.epochs && patience_spent(epoch, best)),
    })
}

/// The name of the headline metric of a head (higher is better).
pub fn primary_name(head: tf_models::HeadConfig) -> &'static str {
    Metrics::new(head).primary().0
}

/// How a test set is evaluated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalConfig {
    /// Shapes per batch.
    pub batch_size: usize,
    /// Points per shape.
    pub points: usize,
    /// Seed of the point subsets (and of the transformations).
    pub seed: u64,
    /// Apply a Haar-random element of O(d) per shape (to points and normals); the subsets are
    /// the same as without, so rotated and canonical scores are directly comparable.
    pub transform: bool,
}

impl EvalConfig {
    /// Batch size and points of a run's training configuration, a fixed seed.
    pub fn from_run(cfg: &RunConfig, transform: bool) -> Self {
        Self {
            batch_size: cfg.train.batch_size,
            points: cfg.train.points,
            seed: 0x7465_7374,
            transform,
        }
    }
}

/// Applies one Haar-random O(d) element per graph to positions and normals, and to computed
/// input features as their rep `features` declares (they are equivariant, so this equals
/// recomputing them on the transformed shape).
pub fn transform_batch(
    batch: &LabelledBatch,
    features: InputFeatures,
    rng: &mut ChaCha8Rng,
) -> candle_core::Result<LabelledBatch> {
    let (n, d) = batch.pos.dims2()?;
    let owner = batch.batch.to_vec1::<u32>()?;
    let graphs = owner.last().map_or(0, |g| *g as usize + 1);
    let qs: Vec<Vec<f64>> = (0..graphs).map(|_| haar_orthogonal_host(d, rng)).collect();
    let apply = |t: &Tensor| -> candle_core::Result<Tensor> {
        let v = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let mut out = vec![0f32; n * d];
        for i in 0..n {
            let q = &qs[owner[i] as usize];
            for r in 0..d {
                out[i * d + r] = (0..d).map(|c| q[r * d + c] * v[i * d + c]).sum::<f64>() as f32;
            }
        }
        Tensor::from_vec(out, (n, d), t.device())
    };
    let features = match &batch.features {
        Some(f) => {
            let reps = features.reps();
            let rho = tf_group::RepAction::new(&reps, d)?;
            let per_row: Vec<f64> = owner
                .iter()
                .flat_map(|g| qs[*g as usize].iter().copied())
                .collect();
            let u = Tensor::from_vec(per_row, (n, d, d), f.device())?;
            Some(
                rho.apply(&f.to_dtype(DType::F64)?, &u)?
                    .to_dtype(f.dtype())?,
            )
        }
        None => None,
    };
    Ok(LabelledBatch {
        pos: apply(&batch.pos)?,
        normals: apply(&batch.normals)?,
        batch: batch.batch.clone(),
        labels: batch.labels.clone(),
        parts: batch.parts.clone(),
        features,
    })
}

/// Metrics of `model` over all shapes of `source` (in order, fixed subsets).
pub fn evaluate(
    model: &Model,
    source: Arc<dyn ShapeSource>,
    eval: &EvalConfig,
) -> Result<BTreeMap<String, f64>, TrainError> {
    if source.is_empty() {
        return Err(TrainError::Config("the evaluation set is empty".into()));
    }
    let cfg = BatchConfig {
        batch_size: eval.batch_size,
        points: eval.points,
        augment: Augment::None,
        translate: 0.0,
        shuffle: false,
        seed: eval.seed,
        noise: 0.0,
        noise_uniform: false,
        features: model.config().input_features(),
    };
    // The control frames draw from a fixed stream, so evaluation is repeatable.
    model.reseed(eval.seed)?;
    let mut rng = ChaCha8Rng::seed_from_u64(eval.seed ^ 0x0072_6f74);
    let mut metrics = Metrics::new(model.head());
    for batch in Loader::epoch(source, cfg, 0) {
        let mut batch = batch?;
        if eval.transform {
            batch = transform_batch(&batch, model.config().input_features(), &mut rng)?;
        }
        let batch = batch.to_device(&model.device())?;
        let pred = model.forward(&Batch {
            pos: &batch.pos,
            batch: Some(&batch.batch),
            features: batch.features.as_ref(),
        })?;
        metrics.add(&pred.values, &batch)?;
    }
    Ok(metrics
        .values()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect())
}

/// `<run>/curves.svg`: training loss and validation metrics per epoch.
fn write_curves(dir: &Path, history: &[EpochRecord]) -> Result<(), TrainError> {
    let mut series = vec![(
        "train loss".to_string(),
        history
            .iter()
            .map(|r| (r.epoch as f64, r.train_loss))
            .collect::<Vec<_>>(),
    )];
    let mut names: Vec<&String> = history.iter().flat_map(|r| r.val.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        series.push((
            format!("validation {name}"),
            history
                .iter()
                .filter_map(|r| r.val.get(name).map(|v| (r.epoch as f64, *v)))
                .collect(),
        ));
    }
    crate::plot::curves_svg(&dir.join("curves.svg"), "training curves", "value", &series)
}

/// Redraws `<run>/curves.svg` from `<run>/metrics.jsonl`; returns the figure's path.
pub fn draw_curves(dir: &Path) -> Result<PathBuf, TrainError> {
    let history = read_history(&dir.join("metrics.jsonl"), usize::MAX)?;
    if history.is_empty() {
        return Err(TrainError::NoHistory(dir.join("metrics.jsonl")));
    }
    write_curves(dir, &history)?;
    Ok(dir.join("curves.svg"))
}
