//! The charged N-body benchmark of equivariant message passing (Satorras et al. 2021's
//! protocol): a plain GNN, the same GNN made exactly O(d)-equivariant with learned local frames
//! and tensorial messages, the paper's controls, and the published test errors of other
//! equivariant models beside ours.
//!
//! Rows: the constant-velocity fit (`x + tau v`, `tau` fitted on the training systems), the
//! plain GNN (identity frames), the plain GNN with one random rotation or reflection per system
//! (augmentation), and TF-GNN with learned frames and scalar or tensorial messages. Every
//! trained row uses the published optimiser settings (Adam, learning rate 5e-4, batches of 100
//! systems) and is tested at its best validation epoch.
//!
//! `--data <folder>` trains on the published generator's `.npy` files instead of our
//! simulation; `--evaluate <run>` tests a trained run on such a folder (see the binary).
//!
//! ```no_run
//! let splits = nbody::data::simulated(3, [100, 50, 50]).expect("simulated");
//! let (tau, mse) = splits.train.linear_fit();
//! assert!(tau > 0.0 && mse > 0.0);
//! ```

pub mod data;
pub mod fit;
mod published;

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::DType;
use serde::{Deserialize, Serialize};
use tf_experiments::verdict::t95;
use tf_experiments::{Ctx, Experiment, Mode, Paired, Report, Stat};
use tf_models::{FrameChoice, Messages, NBodyConfig};

use crate::data::Splits;
use crate::fit::FitConfig;
pub use crate::published::{Published, PUBLISHED};

/// The experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct NBody {
    /// Training runs at a time (default: one per core; a run barely uses more than one).
    pub jobs: Option<usize>,
    /// Train nothing: the table from the runs already summarised (marked incomplete when
    /// runs of the plan are missing, with their verdicts pending).
    pub summaries_only: bool,
}

/// The published protocol's learning rate and batch size.
pub const LR: f64 = 5e-4;
/// See [`LR`].
pub const BATCH: usize = 100;

/// Sizes and budgets of a mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Systems per split (train, validation, test).
    pub counts: [usize; 3],
    /// Cap on epochs.
    pub max_epochs: usize,
    /// Validation every this many epochs.
    pub eval_every: usize,
    /// Early-stopping patience in epochs.
    pub patience: usize,
    /// Dimensions with their own (smaller) table rows beyond d = 3.
    pub extra_dims: &'static [usize],
}

impl Budget {
    /// The budget of `mode`.
    pub fn of(mode: Mode) -> Self {
        match mode {
            Mode::Smoke => Self {
                counts: [40, 20, 20],
                max_epochs: 2,
                eval_every: 1,
                patience: 2,
                extra_dims: &[],
            },
            Mode::Quick => Self {
                counts: [1000, 500, 500],
                max_epochs: 20,
                eval_every: 5,
                patience: 20,
                extra_dims: &[],
            },
            Mode::Standard => Self {
                counts: [3000, 2000, 2000],
                max_epochs: 1000,
                eval_every: 10,
                patience: 200,
                extra_dims: &[2, 4],
            },
        }
    }
}

/// A trained row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    /// Identity frames: the plain GNN.
    Plain,
    /// One random O(d) frame per system: augmentation.
    Augmented,
    /// Learned frames, scalar messages.
    Scalar,
    /// Learned frames, tensorial messages (the method).
    Tensorial,
    /// The method trained with frame jitter (random local frames while training, the learned
    /// ones at evaluation: exactly equivariant like the method).
    Jittered,
}

impl Row {
    /// All trained rows, in table order.
    pub const ALL: [Row; 5] = [
        Row::Plain,
        Row::Augmented,
        Row::Scalar,
        Row::Tensorial,
        Row::Jittered,
    ];

    /// Table label.
    pub fn label(self) -> &'static str {
        match self {
            Row::Plain => "GNN (identity frames)",
            Row::Augmented => "GNN + augmentation (random global frame)",
            Row::Scalar => "TF-GNN, learned frames, scalar messages",
            Row::Tensorial => "TF-GNN, learned frames, tensorial messages",
            Row::Jittered => "TF-GNN, tensorial messages, trained with frame jitter",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Row::Plain => "gnn",
            Row::Augmented => "gnn-aug",
            Row::Scalar => "tf-gnn-scalar",
            Row::Tensorial => "tf-gnn-tensorial",
            Row::Jittered => "tf-gnn-jitter",
        }
    }

    /// The network of this row in dimension `d`.
    pub fn model(self, d: usize) -> NBodyConfig {
        let mut m = NBodyConfig::new(d);
        let (frames, messages) = match self {
            Row::Plain => (FrameChoice::Identity, Messages::Tensorial),
            Row::Augmented => (FrameChoice::RandomGlobal, Messages::Tensorial),
            Row::Scalar => (FrameChoice::Learned, Messages::Scalar),
            Row::Tensorial | Row::Jittered => (FrameChoice::Learned, Messages::Tensorial),
        };
        m.frames.kind = frames;
        m.messages = messages;
        m.frame_jitter = self == Row::Jittered;
        m
    }
}

/// What a finished run contributes to the table (committed in standard mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Hash of the run's [`FitConfig`].
    pub config_hash: String,
    /// Row label.
    pub row: String,
    /// Dimension.
    pub d: usize,
    /// Seed.
    pub seed: u64,
    /// Learning rate.
    pub lr: f64,
    /// Epochs trained, and the best validation epoch.
    pub epochs: usize,
    /// See `epochs`.
    pub best_epoch: usize,
    /// Whether the run ended at the epoch cap.
    pub capped: bool,
    /// Best validation MSE.
    pub valid_mse: f64,
    /// Test MSE at the best validation epoch.
    pub test_mse: f64,
    /// Trainable parameters.
    pub params: usize,
    /// Training wall seconds and optimiser steps.
    pub seconds: f64,
    /// See `seconds`.
    pub steps: usize,
}

/// What a run needs from the context: the mode and the folders.
#[derive(Debug, Clone)]
struct Where {
    mode: Mode,
    device: tf_models::DeviceChoice,
    runs: std::path::PathBuf,
    summaries: std::path::PathBuf,
}

/// One trained run: its summary and validation curve.
type Trained = (Summary, Vec<(f64, f64)>);

/// A run's place in the table: row, dimension, seed.
type Job = (Row, usize, u64);

impl Where {
    fn config(&self, splits: &Splits, row: Row, d: usize, seed: u64) -> FitConfig {
        let b = Budget::of(self.mode);
        FitConfig {
            model: row.model(d),
            lr: LR,
            batch: BATCH,
            max_epochs: b.max_epochs,
            eval_every: b.eval_every,
            patience: b.patience,
            seed,
            data: splits.id.clone(),
        }
    }

    fn summary_path(&self, row: Row, d: usize, cfg: &FitConfig) -> std::path::PathBuf {
        self.summaries.join(format!(
            "nbody-{}-d{d}-seed{}-{}.json",
            row.slug(),
            cfg.seed,
            cfg.hash()
        ))
    }

    /// A committed summary of this run, if standard mode has one with the same hash.
    fn reuse(&self, splits: &Splits, row: Row, d: usize, seed: u64) -> Result<Option<Summary>> {
        let cfg = self.config(splits, row, d, seed);
        let path = self.summary_path(row, d, &cfg);
        if self.mode != Mode::Standard || !path.exists() {
            return Ok(None);
        }
        let s: Summary = serde_json::from_str(
            &std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("parsing {}", path.display()))?;
        Ok((s.config_hash == cfg.hash()).then_some(s))
    }

    /// Trains (or resumes) one run and writes its summary (standard mode).
    fn train(&self, splits: &Splits, row: Row, d: usize, seed: u64) -> Result<Trained> {
        let cfg = self.config(splits, row, d, seed);
        let dir = self.runs.join(format!(
            "nbody-{}-d{d}-seed{seed}-{}",
            row.slug(),
            cfg.hash()
        ));
        let out = fit::fit_for(
            &cfg,
            splits,
            &dir,
            DType::F32,
            &self.device.device()?,
            usize::MAX,
        )?;
        let params = fit::load(&dir, DType::F32)?.params();
        let s = Summary {
            config_hash: cfg.hash(),
            row: row.label().to_string(),
            d,
            seed,
            lr: cfg.lr,
            epochs: out.state.epoch,
            best_epoch: out.state.best_epoch,
            capped: out.state.capped,
            valid_mse: out.state.best_valid,
            test_mse: out.state.test_at_best,
            params,
            seconds: out.state.seconds,
            steps: out.state.steps,
        };
        if self.mode == Mode::Standard {
            tf_train::write_atomic(
                &self.summary_path(row, d, &cfg),
                &serde_json::to_string_pretty(&s)?,
            )?;
        }
        let curve = out
            .state
            .history
            .iter()
            .map(|p| (p.epoch as f64, p.valid))
            .collect();
        Ok((s, curve))
    }
}

/// Trains every `(row, d, seed)` job not already summarised, `jobs` at a time (the network is
/// small: one run barely uses more than one core, so parallel runs use the machine), seed
/// before row so that a partial run of standard mode finishes whole comparisons first.
fn train_all(
    at: &Where,
    splits: &[(usize, Splits)],
    plan: &[Job],
    jobs: usize,
    train: bool,
) -> Result<Vec<(Job, Trained)>> {
    let mut done = Vec::new();
    let mut todo = Vec::new();
    for &(row, d, seed) in plan {
        let sp = &splits.iter().find(|(x, _)| *x == d).context("splits")?.1;
        match at.reuse(sp, row, d, seed)? {
            Some(s) => {
                tracing::info!(row = row.label(), d, seed, "reusing a committed summary");
                done.push(((row, d, seed), (s, Vec::new())));
            }
            None if train => todo.push((row, d, seed)),
            None => {}
        }
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(&(row, d, seed)) = todo.get(k) else {
                    break;
                };
                let Some((_, sp)) = splits.iter().find(|(x, _)| *x == d) else {
                    break;
                };
                let r = at.train(sp, row, d, seed);
                if let Ok(mut v) = results.lock() {
                    v.push(((row, d, seed), r));
                }
            });
        }
    });
    for (key, r) in results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a training thread panicked"))?
    {
        done.push((
            key,
            r.with_context(|| format!("training {} d = {} seed {}", key.0.label(), key.1, key.2))?,
        ));
    }
    Ok(done)
}

/// The verdict on "`name` has a test MSE below EGNN's published 0.0071" from its seeds' 95%
/// interval.
fn below_egnn(name: &str, tests: &[f64], evidence: bool, seeds: usize) -> String {
    let egnn = 0.0071;
    if tests.len() < seeds {
        return format!(
            "d = 3: {name} below EGNN's published 0.0071: pending (mean {:.4} over {} of {seeds} seeds)",
            Stat::of(tests).mean,
            tests.len()
        );
    }
    let (lo, hi) = interval(tests);
    let word = if !evidence {
        "not evidence"
    } else if hi < egnn {
        "confirmed"
    } else if lo > egnn {
        "contradicted"
    } else {
        "inconclusive"
    };
    format!(
        "d = 3: {name} below EGNN's published 0.0071: {word} (mean {:.4}, 95% interval [{lo:.4}, {hi:.4}] over {} seeds)",
        Stat::of(tests).mean,
        tests.len()
    )
}

/// The trained rows of dimension `d`: all in d = 3; beyond, the plain network, the tensorial
/// one and the tensorial one trained with frame jitter (in d = 3 the only variant of the
/// method below EGNN's figure).
fn rows_of(d: usize) -> Vec<Row> {
    if d == 3 {
        Row::ALL.to_vec()
    } else {
        vec![Row::Plain, Row::Tensorial, Row::Jittered]
    }
}

/// The splits of dimension `d` for this run: `--data` (published files, d = 3 only) or our
/// simulation at the mode's sizes.
fn splits(ctx: &Ctx, d: usize) -> Result<Splits> {
    match (&ctx.data, d) {
        (Some(folder), 3) => data::published(folder),
        _ => data::simulated(d, Budget::of(ctx.mode).counts),
    }
}

fn interval(values: &[f64]) -> (f64, f64) {
    let s = Stat::of(values);
    let h = if s.n > 1 {
        t95(s.n - 1) * s.std / (s.n as f64).sqrt()
    } else {
        f64::INFINITY
    };
    (s.mean - h, s.mean + h)
}

impl Experiment for NBody {
    fn name(&self) -> &'static str {
        "nbody"
    }
    fn title(&self) -> &'static str {
        "Charged N-body: test MSE of positions 1,000 steps ahead"
    }
    fn claim(&self) -> &'static str {
        "A plain GNN made equivariant with learned local frames and tensorial messages predicts \
         the charged particles' positions better than the plain GNN, than scalar messages, and \
         than EGNN's published test MSE of 0.0071."
    }
    fn run(&self, ctx: &mut Ctx) -> Result<Report> {
        let evidence = ctx.mode.is_evidence();
        let mut report = Report::new(&[
            "d",
            "test MSE",
            "validation MSE",
            "epochs (best / run)",
            "params",
            "steps/s",
            "source",
        ]);
        let seeds = ctx.seeds.clone();
        let mut dims = vec![3];
        dims.extend_from_slice(Budget::of(ctx.mode).extra_dims);
        let all_splits = dims
            .iter()
            .map(|&d| Ok((d, splits(ctx, d)?)))
            .collect::<Result<Vec<_>>>()?;
        let mut plan = Vec::new();
        for &d in &dims {
            for &seed in &seeds {
                for row in rows_of(d) {
                    plan.push((row, d, seed));
                }
            }
        }
        let at = Where {
            mode: ctx.mode,
            device: ctx.device,
            runs: ctx.runs.clone(),
            summaries: ctx.summaries.clone(),
        };
        // The method's own rows first (all seeds), then the others seed by seed: a standard run
        // cut short by a sitting's end has the headline comparison with the published models
        // whole, and then whole comparisons with the controls.
        // Frame jitter comes second: it is the method's variant that generalises best in short
        // runs (see the notes).
        let rank = |row: Row| match row {
            Row::Tensorial => 0,
            Row::Jittered => 1,
            _ => 2,
        };
        plan.sort_by_key(|&(row, d, seed)| (d != 3, d, rank(row), seed));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let jobs = self.jobs.unwrap_or(cores).clamp(1, plan.len().max(1));
        let mut trained = train_all(&at, &all_splits, &plan, jobs, !self.summaries_only)?;
        let missing = plan.len() - trained.len();
        // A verdict needs every seed of its rows; with runs missing it is pending.
        let whole = |n: usize| n >= seeds.len();
        // Table order: by dimension, row, seed.
        trained.sort_by_key(|((row, d, seed), _)| {
            (*d != 3, *d, Row::ALL.iter().position(|r| r == row), *seed)
        });
        for ((row, d, seed), (_, curve)) in &trained {
            if !curve.is_empty() {
                ctx.curves
                    .push((format!("{} d={d} seed {seed}", row.label()), curve.clone()));
            }
        }
        let mut extra = serde_json::Map::new();
        let mut verdicts = Vec::new();
        for (d, splits) in &all_splits {
            let d = *d;
            if d == 3 {
                report.data = Some(splits.source.clone());
            } else {
                report
                    .notes
                    .push(format!("d = {d} rows: {}.", splits.source));
            }
            let (tau, train_mse) = splits.train.linear_fit();
            let lin_test = splits.test.linear_mse(tau);
            let _ = train_mse;
            report.row(
                &format!("Linear (x + {tau:.3} v, fitted on training systems)"),
                vec![
                    (d as f64).into(),
                    lin_test.into(),
                    splits.valid.linear_mse(tau).into(),
                    "-".into(),
                    0.0.into(),
                    "-".into(),
                    "ours".into(),
                ],
            );
            let mut tests = Vec::new();
            for row in rows_of(d) {
                let runs: Vec<Summary> = trained
                    .iter()
                    .filter(|((r, dd, _), _)| *r == row && *dd == d)
                    .map(|(_, (s, _))| s.clone())
                    .collect();
                if runs.is_empty() {
                    continue;
                }
                let test: Vec<f64> = runs.iter().map(|r| r.test_mse).collect();
                let valid: Vec<f64> = runs.iter().map(|r| r.valid_mse).collect();
                let best: Vec<f64> = runs.iter().map(|r| r.best_epoch as f64).collect();
                let ran: Vec<f64> = runs.iter().map(|r| r.epochs as f64).collect();
                let secs: f64 = runs.iter().map(|r| r.seconds).sum();
                let steps: usize = runs.iter().map(|r| r.steps).sum();
                ctx.train_seconds += secs;
                ctx.runs_capped.0 += runs.len();
                ctx.runs_capped.1 += runs.iter().filter(|r| r.capped).count();
                report.row(
                    row.label(),
                    vec![
                        (d as f64).into(),
                        Stat::of(&test).into(),
                        Stat::of(&valid).into(),
                        format!("{:.0} / {:.0}", Stat::of(&best).mean, Stat::of(&ran).mean).into(),
                        (runs[0].params as f64).into(),
                        (steps as f64 / secs.max(1e-9)).into(),
                        "ours".into(),
                    ],
                );
                extra.insert(format!("{}-d{d}", row.slug()), serde_json::to_value(&runs)?);
                tests.push((row, test));
            }
            let get = |r: Row| tests.iter().find(|(x, _)| *x == r).map(|(_, v)| v.clone());
            // Lower is better: the claim "a below b" is "-a > -b".
            let neg = |v: &[f64]| v.iter().map(|x| -x).collect::<Vec<_>>();
            for (a, b, claim) in [
                (
                    Row::Tensorial,
                    Row::Plain,
                    "TF-GNN (tensorial) below the plain GNN",
                ),
                (
                    Row::Tensorial,
                    Row::Scalar,
                    "tensorial below scalar messages",
                ),
                (
                    Row::Jittered,
                    Row::Tensorial,
                    "frame jitter below the same network without it",
                ),
                (
                    Row::Jittered,
                    Row::Plain,
                    "TF-GNN with frame jitter below the plain GNN",
                ),
                (
                    Row::Jittered,
                    Row::Augmented,
                    "TF-GNN with frame jitter below GNN + augmentation",
                ),
            ] {
                if let (Some(a), Some(b)) = (get(a), get(b)) {
                    if whole(a.len()) && whole(b.len()) {
                        let p = Paired::new(&neg(&a), &neg(&b), true, evidence);
                        verdicts.push(format!("d = {d}: {claim}: {}", p.describe()));
                    } else {
                        verdicts.push(format!(
                            "d = {d}: {claim}: pending ({} and {} of {} seeds)",
                            a.len(),
                            b.len(),
                            seeds.len()
                        ));
                    }
                }
            }
            if d == 3 {
                for (row, name) in [
                    (Row::Tensorial, "TF-GNN (tensorial)"),
                    (Row::Jittered, "TF-GNN (tensorial, frame jitter)"),
                    (Row::Augmented, "GNN + augmentation"),
                ] {
                    if let Some(v) = get(row) {
                        verdicts.push(below_egnn(name, &v, evidence, seeds.len()));
                    }
                }
            }
        }
        for p in PUBLISHED {
            report.row(
                &format!("{} (published)", p.model),
                vec![
                    3.0.into(),
                    p.test_mse.into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    p.source.into(),
                ],
            );
        }
        report.verdict = verdicts.join("; ");
        if missing > 0 {
            report.verdict = format!(
                "Incomplete: {missing} of the {} planned runs have not trained yet. {}",
                plan.len(),
                report.verdict
            );
            report.notes.push(format!(
                "Written from the committed run summaries while {missing} of the {} planned \
                 runs are missing (`--summaries-only`); `nbody --standard` trains the rest. A \
                 verdict needs all {} seeds of its rows and is pending until then.",
                plan.len(),
                seeds.len()
            ));
        }
        let b = Budget::of(ctx.mode);
        report.protocol = Some(format!(
            "inputs at saved frame {} (positions, velocities, charges), target the positions at \
             frame {}; MSE per coordinate; every trained row: Adam, learning rate {LR} (the \
             published setting, the same for every row, no sweep), batches of {BATCH} systems, \
             validation every {} epochs, tested at its best validation epoch, early stopping \
             after {} epochs without improvement, at most {} epochs (the published runs allow \
             10,000)",
            data::INPUT_FRAME,
            data::TARGET_FRAME,
            b.eval_every,
            b.patience,
            b.max_epochs
        ));
        report.epoch_cap = Some(b.max_epochs);
        report.published = Some(
            "Published test MSEs of other models on the same protocol are listed as their papers \
             report them (source column; not rerun here). The tensor-frames paper itself has no \
             N-body table."
                .to_string(),
        );
        if ctx.mode == Mode::Standard {
            report.notes.push(
                "Tried on the standard protocol to close the gap to the equivariant models \
                 (TF-GNN tensorial, d = 3, seed 0, best validation MSE over the first 60 \
                 epochs; the default row reaches 0.0206 there): the particle's velocity among \
                 the learned frames' candidates (`frame_velocity`) 0.0226; that plus EGNN's form \
                 of position update beside the local head (`pairwise_head`) 0.0231. Neither \
                 lowered it, so both are off; the training error falls far below the \
                 validation error in every variant (about 0.006 against 0.02 at epoch 60). \
                 Frame jitter (its own row) closes that gap: training 0.026 against \
                 validation 0.024 at epoch 60, 0.0063 against 0.0075 at epoch 400, the way \
                 rotation augmentation does for the plain GNN. \
                 The epoch cap is a tenth of the published runs' 10,000 epochs because one \
                 epoch (30 steps, and a validation pass every tenth epoch) takes 1-4 s on one \
                 core here (the steps/s column; two runs train at a time, and the slower runs \
                 predate the one-pass MLP ops), so 10,000 epochs would take 3-11 hours per \
                 run, with 15 runs in d = 3; runs that end at the cap were still improving \
                 slowly, so the comparison with the published figures is at a smaller budget."
                    .to_string(),
            );
        }
        report.extra = serde_json::Value::Object(extra);
        Ok(report)
    }
}

/// Test MSE of a trained run on the `split` of a folder of the published generator's files.
pub fn evaluate_published(
    run: &Path,
    folder: &Path,
    split: &str,
    device: &candle_core::Device,
) -> Result<(f64, usize)> {
    let net = fit::load_on(run, DType::F64, device)?;
    let t = tf_datasets::read_published(folder, split)
        .with_context(|| format!("reading the {split} split of {}", folder.display()))?;
    let samples = data::Samples::from_trajectories(&t)?;
    if samples.d != net.config().d {
        anyhow::bail!(
            "the data is {}-dimensional, the network {}-dimensional",
            samples.d,
            net.config().d
        );
    }
    Ok((
        fit::evaluate(&net, &samples, DType::F64, 500)?,
        samples.len(),
    ))
}

#[cfg(test)]
mod tests {
    use super::below_egnn;

    #[test]
    fn the_egnn_verdict_waits_for_every_seed() {
        let tight = [0.0064, 0.0063, 0.0062];
        assert!(below_egnn("x", &tight[..2], true, 3).contains(": pending"));
        assert!(below_egnn("x", &tight, true, 3).contains(": confirmed"));
        assert!(below_egnn("x", &tight, false, 3).contains(": not evidence"));
        assert!(below_egnn("x", &[0.02, 0.021, 0.019], true, 3).contains(": contradicted"));
        assert!(below_egnn("x", &[0.004, 0.0071, 0.010], true, 3).contains(": inconclusive"));
    }
}
