//! Checkpoints: one directory per saved epoch, written under a temporary name and renamed into
//! place, so a killed run leaves either a complete checkpoint or none.
//!
//! ```text
//! <run>/checkpoints/epoch-0007/model.safetensors      weights (keys mirror the module tree)
//!                              optimizer.safetensors  AdamW moments m.<var>, v.<var>
//!                              checksums.json         CRC-32 of the two files above
//!                              state.json             epoch, step, seed, best, configs
//! <run>/best/                                         a copy of the best epoch's checkpoint
//! ```
//!
//! A checkpoint whose files no longer match their checksums (overwritten, truncated, bit rot)
//! is damaged: resuming falls back to the newest intact one with a warning that names the
//! epochs to be retrained, and loading a damaged checkpoint is an error. Checkpoints written
//! before checksums existed are read without the check.
//!
//! The random state needs no bytes of its own: every random stream of training (weight
//! initialisation, batch order and subsets, augmentation, control frames) is derived from
//! `(seed, epoch)`, and checkpoints are taken at epoch boundaries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};
use tf_models::{Model, ModelConfig};

use crate::config::RunConfig;
use crate::error::TrainError;
use crate::optim::AdamW;

/// Format version written to `state.json`.
pub const FORMAT: u32 = 1;

/// Everything in `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Format version.
    pub format: u32,
    /// Completed epochs.
    pub epoch: usize,
    /// Optimizer steps taken.
    pub step: usize,
    /// The run's seed (all random streams derive from it and the epoch).
    pub seed: u64,
    /// Best validation value so far and its epoch.
    pub best: Option<(usize, f64)>,
    /// The run configuration (model, training, data).
    pub config: RunConfig,
}

pub(crate) fn io(path: &Path, source: std::io::Error) -> TrainError {
    TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_dir(
    target: &Path,
    model: &Model,
    opt: &AdamW,
    state: &CheckpointState,
) -> Result<(), TrainError> {
    let parent = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    model.save(&tmp.join("model.safetensors"))?;
    candle_core::safetensors::save(&opt.state(), tmp.join("optimizer.safetensors"))?;
    let mut sums = std::collections::BTreeMap::new();
    for f in CHECKED {
        sums.insert(f, crc_of(&tmp.join(f))?);
    }
    std::fs::write(tmp.join(CHECKSUMS), serde_json::to_string_pretty(&sums)?)
        .map_err(|e| io(&tmp, e))?;
    let json = serde_json::to_string_pretty(state)?;
    std::fs::write(tmp.join("state.json"), json).map_err(|e| io(&tmp, e))?;
    // Replace an older copy: move it aside first so the rename below is atomic.
    let old = parent.join(format!(".{name}.old"));
    if target.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
        }
        std::fs::rename(target, &old).map_err(|e| io(target, e))?;
    }
    std::fs::rename(&tmp, target).map_err(|e| io(target, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
    }
    Ok(())
}

/// Saves epoch `state.epoch` under `<run>/checkpoints/`, updates `<run>/best` when `is_best`,
/// and deletes all but the newest `keep_last` epoch checkpoints.
pub fn save(
    run: &Path,
    model: &Model,
    opt: &AdamW,
    state: &CheckpointState,
    is_best: bool,
    keep_last: usize,
) -> Result<PathBuf, TrainError> {
    let dir = run
        .join("checkpoints")
        .join(format!("epoch-{:04}", state.epoch));
    write_dir(&dir, model, opt, state)?;
    if is_best {
        write_dir(&run.join("best"), model, opt, state)?;
    }
    let mut all = list(run)?;
    all.sort();
    let keep = keep_last.max(1);
    if all.len() > keep {
        for (_, old) in &all[..all.len() - keep] {
            std::fs::remove_dir_all(old).map_err(|e| io(old, e))?;
        }
    }
    Ok(dir)
}

/// Complete epoch checkpoints of a run, as `(epoch, dir)`.
fn list(run: &Path) -> Result<Vec<(usize, PathBuf)>, TrainError> {
    let dir = run.join("checkpoints");
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
        let entry = entry.map_err(|e| io(&dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(n) = name.strip_prefix("epoch-").and_then(|n| n.parse().ok()) {
            if entry.path().join("state.json").is_file() {
                out.push((n, entry.path()));
            }
        }
    }
    Ok(out)
}

/// The files of a checkpoint that carry checksums, and the file holding them.
const CHECKED: [&str; 2] = ["model.safetensors", "optimizer.safetensors"];
const CHECKSUMS: &str = "checksums.json";

fn crc_of(path: &Path) -> Result<String, TrainError> {
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    Ok(format!("{:08x}", crc32fast::hash(&bytes)))
}

/// Checks a checkpoint directory's files against `checksums.json` (if it has one): an error
/// names the first file that does not match.
pub fn verify(dir: &Path) -> Result<(), TrainError> {
    let path = dir.join(CHECKSUMS);
    if !path.is_file() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
    let sums: std::collections::BTreeMap<String, String> = serde_json::from_str(&text)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))?;
    for (file, want) in &sums {
        let f = dir.join(file);
        let got = crc_of(&f)?;
        if &got != want {
            return Err(TrainError::Checkpoint(format!(
                "{} is damaged: its checksum is {got}, {} says {want}",
                f.display(),
                CHECKSUMS
            )));
        }
    }
    Ok(())
}

/// The newest intact checkpoint of a run, if any. Damaged newer ones are skipped with a
/// warning naming the epochs that will be trained again; if every checkpoint is damaged, the
/// newest one's damage is the error.
pub fn latest(run: &Path) -> Result<Option<(PathBuf, CheckpointState)>, TrainError> {
    let mut all = list(run)?;
    all.sort();
    let newest = all.last().map(|(e, _)| *e);
    let mut first_error = None;
    while let Some((epoch, dir)) = all.pop() {
        match read_state(&dir).and_then(|s| verify(&dir).map(|_| s)) {
            Ok(state) => {
                if let (Some(n), Some(e)) = (newest, &first_error) {
                    tracing::warn!(
                        "{e}; resuming from epoch {epoch} instead of {n}: epochs {}..={n} will be trained again",
                        epoch + 1
                    );
                }
                return Ok(Some((dir, state)));
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// Reads `state.json` of a checkpoint directory.
pub fn read_state(dir: &Path) -> Result<CheckpointState, TrainError> {
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
    let state: CheckpointState = serde_json::from_str(&text)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))?;
    if state.format != FORMAT {
        return Err(TrainError::Checkpoint(format!(
            "{}: format {} (this build reads {FORMAT})",
            path.display(),
            state.format
        )));
    }
    Ok(state)
}

/// Restores the optimizer moments of a checkpoint directory.
pub fn load_optimizer(dir: &Path, opt: &mut AdamW, step: usize) -> Result<(), TrainError> {
    let path = dir.join("optimizer.safetensors");
    let state: HashMap<String, candle_core::Tensor> =
        candle_core::safetensors::load(&path, &Device::Cpu)
            .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))?;
    opt.load_state(&state, step)?;
    Ok(())
}

/// A model from a checkpoint: a checkpoint directory (or a run directory, meaning its `best`
/// or else newest checkpoint), or a `.safetensors` file next to a `state.json` or
/// `model.json` holding its configuration.
pub fn load_model(path: &Path, dtype: DType) -> Result<Model, TrainError> {
    load_model_on(path, dtype, &Device::Cpu)
}

/// [`load_model`] onto `device`.
pub fn load_model_on(path: &Path, dtype: DType, device: &Device) -> Result<Model, TrainError> {
    let dir = resolve(path)?;
    let weights = weights_file(path, &dir);
    if weights == dir.join("model.safetensors") {
        verify(&dir)?;
    }
    let config: ModelConfig = if dir.join("state.json").is_file() {
        read_state(&dir)?.config.model
    } else {
        let p = dir.join("model.json");
        let text = std::fs::read_to_string(&p).map_err(|e| io(&p, e))?;
        serde_json::from_str(&text)
            .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", p.display())))?
    };
    let mut model = Model::new(config, dtype, device)?;
    model
        .load(&weights)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", weights.display())))?;
    Ok(model)
}

/// The weights a path names: the file itself, or `model.safetensors` in its checkpoint
/// directory `dir` (from [`resolve`]).
pub fn weights_file(path: &Path, dir: &Path) -> PathBuf {
    if path.is_file() {
        path.to_path_buf()
    } else {
        dir.join("model.safetensors")
    }
}

/// The checkpoint directory a path names: itself if it holds `state.json`, a run's `best/` or
/// newest checkpoint, or the folder of a weights file.
pub fn resolve(path: &Path) -> Result<PathBuf, TrainError> {
    if !path.exists() {
        return Err(TrainError::Checkpoint(format!(
            "{} does not exist",
            path.display()
        )));
    }
    Ok(if path.is_dir() {
        if path.join("state.json").is_file() {
            path.to_path_buf()
        } else if path.join("best").join("state.json").is_file() {
            path.join("best")
        } else if let Some((dir, _)) = latest(path)? {
            dir
        } else {
            return Err(TrainError::Checkpoint(format!(
                "{} holds no checkpoint (no state.json, best/ or checkpoints/)",
                path.display()
            )));
        }
    } else {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    })
}
