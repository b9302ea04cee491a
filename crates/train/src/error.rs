//! What can go wrong in training, evaluation and run files.

/// What can go wrong while training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Invalid or inconsistent configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// Reading or writing a run file or folder.
    #[error("{}", path.display())]
    Io {
        /// The file or folder.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A run file's JSON could not be written or read.
    #[error("run file JSON")]
    Json(#[from] serde_json::Error),
    /// A figure could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
    /// No training history where one was expected.
    #[error("{}: no metrics.jsonl records", .0.display())]
    NoHistory(std::path::PathBuf),
    /// Another process is training into the same run folder.
    #[error(
        "{} is in use by another training (process {pid}); wait for it, or use another --out",
        dir.display()
    )]
    Locked {
        /// The run folder.
        dir: std::path::PathBuf,
        /// The process holding it.
        pid: u32,
    },
    /// The model configuration is invalid.
    #[error(transparent)]
    Model(#[from] tf_models::ConfigError),
    /// An unreadable or mismatched checkpoint.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The loss became NaN or infinite.
    #[error("training diverged (non-finite loss) in epoch {epoch} at step {step}")]
    Diverged {
        /// Epoch (1-based).
        epoch: usize,
        /// Optimizer step.
        step: usize,
    },
    /// Data loading.
    #[error(transparent)]
    Data(#[from] tf_datasets::DataError),
    /// Tensor operations.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
