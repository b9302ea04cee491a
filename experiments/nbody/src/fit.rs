//! Training one row: Adam at a fixed learning rate, batches of systems, validation every few
//! epochs, the test error recorded at the best validation epoch, early stopping, and
//! checkpoints that let a killed run resume where it was.
//!
//! A run folder holds `config.json` (the [`FitConfig`]), `state.json` (epochs done, history,
//! best so far) and the weights and optimiser moments of the last evaluation
//! (`last-e<epoch>.safetensors`, `adam-e<epoch>.safetensors`) and of the best validation epoch
//! (`best.safetensors`). The state is written last and names its files, so a run killed
//! between writes resumes from the previous complete checkpoint.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tf_models::{NBodyConfig, NBodyGnn, NBodyInput};
use tf_train::{write_atomic, AdamW, RunLock};

use crate::data::{Batch, Samples, Splits};

/// Everything that decides a run's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitConfig {
    /// The network.
    pub model: NBodyConfig,
    /// Adam's learning rate (constant, as published).
    pub lr: f64,
    /// Systems per batch.
    pub batch: usize,
    /// Cap on epochs.
    pub max_epochs: usize,
    /// Validate every this many epochs.
    pub eval_every: usize,
    /// Stop after this many epochs without a better validation error.
    pub patience: usize,
    /// Seed of the weights, the batch order and the random controls.
    pub seed: u64,
    /// Description of the data (part of the run's identity).
    pub data: String,
}

impl FitConfig {
    /// A stable hash of the configuration (names run folders and summaries).
    pub fn hash(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        let h = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        format!("{h:016x}")
    }

    fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0)
            || self.batch == 0
            || self.max_epochs == 0
            || self.eval_every == 0
        {
            bail!("a run needs lr > 0, batch > 0, max_epochs > 0 and eval_every > 0: {self:?}");
        }
        Ok(())
    }
}

/// One validation point of the curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Epochs done.
    pub epoch: usize,
    /// Mean training loss of the epochs since the last point.
    pub train: f64,
    /// Validation MSE.
    pub valid: f64,
}

/// Where a run is (`state.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Epochs done.
    pub epoch: usize,
    /// Optimiser steps done.
    pub steps: usize,
    /// Validation curve.
    pub history: Vec<Point>,
    /// Best validation MSE and its epoch.
    pub best_valid: f64,
    /// See `best_valid`.
    pub best_epoch: usize,
    /// Test MSE at the best validation epoch.
    pub test_at_best: f64,
    /// Training seconds spent so far (over all sittings).
    pub seconds: f64,
    /// Whether training ended (early stop or cap).
    pub done: bool,
    /// Whether it ended at the cap rather than by early stopping.
    pub capped: bool,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Its final state.
    pub state: State,
    /// Its folder.
    pub dir: PathBuf,
}

fn mse(net: &NBodyGnn, b: &Batch) -> candle_core::Result<Tensor> {
    let (pred, _) = net.forward(&NBodyInput {
        loc: &b.loc,
        vel: &b.vel,
        charges: &b.charges,
        edge_index: &b.edges,
        batch: Some(&b.batch),
    })?;
    (pred - &b.target)?.sqr()?.mean_all()
}

/// Mean squared error of the predicted positions over all systems of `samples` (per
/// coordinate, as published), in batches of `chunk` systems, accumulated in f64.
pub fn evaluate(net: &NBodyGnn, samples: &Samples, dtype: DType, chunk: usize) -> Result<f64> {
    let dev = net.device();
    let n = samples.len();
    if n == 0 {
        bail!("no systems to evaluate");
    }
    let mut sum = 0.0;
    for start in (0..n).step_by(chunk.max(1)) {
        let idx: Vec<usize> = (start..(start + chunk).min(n)).collect();
        let b = samples.batch(&idx, dtype, &dev)?;
        let m = mse(net, &b)?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        sum += m * idx.len() as f64;
    }
    let out = sum / n as f64;
    if !out.is_finite() {
        bail!("the network's predictions are not finite (MSE {out})");
    }
    Ok(out)
}

fn ckpt(dir: &Path, kind: &str, epoch: usize) -> PathBuf {
    dir.join(format!("{kind}-e{epoch}.safetensors"))
}

/// Trains the run `cfg` in `dir` (created if needed), or resumes it, or returns it if it is
/// finished. `dtype` is the training precision.
pub fn fit(cfg: &FitConfig, splits: &Splits, dir: &Path, dtype: DType) -> Result<Outcome> {
    fit_for(cfg, splits, dir, dtype, &Device::Cpu, usize::MAX)
}

/// As [`fit`] on `device` (batches are assembled on the host and moved once each), ending
/// this sitting at the first checkpoint after `sitting` more epochs and leaving the run to be
/// resumed (the outcome's state then says `done: false`); the resumed run computes exactly
/// what an uninterrupted one would.
pub fn fit_for(
    cfg: &FitConfig,
    splits: &Splits,
    dir: &Path,
    dtype: DType,
    device: &Device,
    sitting: usize,
) -> Result<Outcome> {
    cfg.validate()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = RunLock::acquire(dir)?;
    let config_path = dir.join("config.json");
    if config_path.exists() {
        let old: FitConfig = serde_json::from_str(
            &std::fs::read_to_string(&config_path)
                .with_context(|| format!("reading {}", config_path.display()))?,
        )
        .with_context(|| format!("parsing {}", config_path.display()))?;
        if old != *cfg {
            bail!(
                "{} belongs to another configuration; use another folder",
                dir.display()
            );
        }
    } else {
        write_atomic(&config_path, &serde_json::to_string_pretty(cfg)?)?;
    }
    let dev = device.clone();
    let mut net = NBodyGnn::new(cfg.model.clone(), dtype, &dev, cfg.seed)?;
    let mut opt = AdamW::new(net.varmap(), 0.0)?;
    let state_path = dir.join("state.json");
    let mut state = if state_path.exists() {
        let s: State = serde_json::from_str(
            &std::fs::read_to_string(&state_path)
                .with_context(|| format!("reading {}", state_path.display()))?,
        )
        .with_context(|| format!("parsing {}", state_path.display()))?;
        if s.done {
            return Ok(Outcome {
                state: s,
                dir: dir.to_path_buf(),
            });
        }
        if s.epoch > 0 {
            net.load(&ckpt(dir, "last", s.epoch))?;
            let moments = candle_core::safetensors::load(ckpt(dir, "adam", s.epoch), &Device::Cpu)?;
            opt.load_state(&moments, s.steps)?;
            tracing::info!(dir = %dir.display(), epoch = s.epoch, "resuming");
        }
        s
    } else {
        State {
            epoch: 0,
            steps: 0,
            history: Vec::new(),
            best_valid: f64::INFINITY,
            best_epoch: 0,
            test_at_best: f64::NAN,
            seconds: 0.0,
            done: false,
            capped: false,
        }
    };
    let n = splits.train.len();
    if n == 0 {
        bail!("no training systems");
    }
    let eval_chunk = 500;
    let (mut loss_sum, mut loss_batches) = (0.0, 0usize);
    let mut clock = Instant::now();
    let stop_at = state.epoch.saturating_add(sitting);
    while !state.done {
        let epoch = state.epoch;
        // Batch order and random frames are functions of (seed, epoch): a resumed run draws
        // what an uninterrupted one would.
        let epoch_seed = cfg.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64);
        net.frames().reseed(epoch_seed)?;
        net.set_training(Some(epoch_seed))?;
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(epoch_seed));
        for idx in order.chunks(cfg.batch) {
            let b = splits.train.batch(idx, dtype, &dev)?;
            let loss = mse(&net, &b)?;
            let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !value.is_finite() {
                bail!("training diverged at epoch {} (loss {value})", epoch + 1);
            }
            let grads = loss.backward()?;
            opt.step(&grads, cfg.lr, 1.0)?;
            loss_sum += value;
            loss_batches += 1;
        }
        state.epoch += 1;
        state.steps = opt.step_count();
        if state.epoch % cfg.eval_every == 0 || state.epoch == cfg.max_epochs {
            // Evaluation draws no training randomness; the random controls get a fixed stream.
            net.frames().reseed(u64::MAX - cfg.seed)?;
            net.set_training(None)?;
            let valid = evaluate(&net, &splits.valid, dtype, eval_chunk)?;
            state.history.push(Point {
                epoch: state.epoch,
                train: loss_sum / loss_batches.max(1) as f64,
                valid,
            });
            (loss_sum, loss_batches) = (0.0, 0);
            if valid < state.best_valid {
                state.best_valid = valid;
                state.best_epoch = state.epoch;
                state.test_at_best = evaluate(&net, &splits.test, dtype, eval_chunk)?;
                net.save(&dir.join("best.safetensors"))?;
            }
            if state.epoch >= cfg.max_epochs {
                state.done = true;
                state.capped = true;
            } else if state.epoch - state.best_epoch >= cfg.patience {
                state.done = true;
            }
            tracing::info!(
                run = %dir.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
                epoch = state.epoch,
                train = state.history.last().map(|p| p.train),
                valid,
                best = state.best_valid,
                "evaluated"
            );
            state.seconds += clock.elapsed().as_secs_f64();
            clock = Instant::now();
            let previous = state
                .history
                .len()
                .checked_sub(2)
                .map(|i| state.history[i].epoch);
            net.save(&ckpt(dir, "last", state.epoch))?;
            let moments = opt.state();
            let tmp = dir.join(format!(".adam.{}.tmp", std::process::id()));
            candle_core::safetensors::save(&moments, &tmp)?;
            std::fs::rename(&tmp, ckpt(dir, "adam", state.epoch))
                .with_context(|| format!("writing the optimiser state in {}", dir.display()))?;
            write_atomic(&state_path, &serde_json::to_string_pretty(&state)?)?;
            if let Some(p) = previous {
                let _ = std::fs::remove_file(ckpt(dir, "last", p));
                let _ = std::fs::remove_file(ckpt(dir, "adam", p));
            }
            if state.epoch >= stop_at {
                break;
            }
        }
    }
    Ok(Outcome {
        state,
        dir: dir.to_path_buf(),
    })
}

/// Loads a trained network: a run folder (its `best.safetensors` and `config.json`) or a
/// weights file with `config.json` beside it.
pub fn load(path: &Path, dtype: DType) -> Result<NBodyGnn> {
    load_on(path, dtype, &Device::Cpu)
}

/// [`load`] onto `device`.
pub fn load_on(path: &Path, dtype: DType, device: &Device) -> Result<NBodyGnn> {
    let (dir, weights) = if path.is_dir() {
        (path.to_path_buf(), path.join("best.safetensors"))
    } else {
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        (dir, path.to_path_buf())
    };
    let config_path = dir.join("config.json");
    let cfg: FitConfig =
        serde_json::from_str(&std::fs::read_to_string(&config_path).with_context(|| {
            format!(
                "reading {} (the run's configuration)",
                config_path.display()
            )
        })?)
        .with_context(|| format!("parsing {}", config_path.display()))?;
    let mut net = NBodyGnn::new(cfg.model, dtype, device, cfg.seed)?;
    net.load(&weights)
        .with_context(|| format!("loading {}", weights.display()))?;
    Ok(net)
}
