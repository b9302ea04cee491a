//! Training for tensor-frames models: one thin loop that every experiment shares.
//!
//! - [`RunConfig`]: model + optimisation + data, merged by figment from defaults <- TOML <-
//!   `TF_{MODEL,TRAIN,DATA}__*` environment variables <- command-line overrides.
//! - [`train`]: AdamW ([`AdamW`]) with warm-up + cosine [`Schedule`] and gradient clipping;
//!   per-epoch validation; `metrics.jsonl`; atomic checkpoints holding weights, optimizer
//!   moments, step, epoch and seed ([`checkpoint`]), keep-last-N and best. Calling [`train`]
//!   on a directory with checkpoints resumes it; a finished run returns at once. A fixed seed
//!   gives identical metrics on every run, interrupted or not.
//! - [`evaluate`]: metrics of a model on a test set, canonical or under random O(d) elements.
//!
//! ```
//! use std::sync::Arc;
//! use tf_datasets::{InMemory, Split, Synthetic, SyntheticSplit};
//! use tf_train::{evaluate, train, EvalConfig, Run, RunConfig, Session};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let data = Synthetic { shapes_per_class: 1, points: 64, noise: 0.0, warp: 0.0, seed: 0 };
//! let shapes = Arc::new(InMemory::collect(&SyntheticSplit(data, Split::Train))?);
//! let mut config = RunConfig::preset("dgcnn-normals", 3)?;
//! config.train.epochs = 1;
//! config.train.points = 64;
//! config.train.progress = false;
//! let dir = tempfile::tempdir()?;
//! let run = Run { dir: dir.path().into(), config, train: shapes.clone(), val: None };
//! let outcome = train(&run, Session::default())?;
//! let metrics = evaluate(&outcome.model, shapes, &EvalConfig::from_run(&run.config, true))?;
//! assert!(metrics["cos"].abs() <= 1.0);
//! # Ok(())
//! # }
//! ```

pub mod checkpoint;
mod config;
mod data;
mod error;
mod lock;
mod optim;
pub mod plot;
pub mod task;
mod trainer;

pub use checkpoint::{load_model, load_model_on};
pub use config::{AugmentChoice, DataConfig, RunConfig, TrainConfig};
pub use data::{is_validation, open_data, Splits};
pub use error::TrainError;
pub use lock::{RunLock, LOCK_FILE};
pub use optim::{AdamW, Schedule};
pub use trainer::{
    draw_curves, evaluate, primary_name, train, transform_batch, write_atomic, write_atomic_bytes,
    EpochRecord, EvalConfig, Outcome, Run, Session,
};
