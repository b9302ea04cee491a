//! Errors of the dataset crate: every one names the file, and the line where there is one.

use std::path::PathBuf;

/// What went wrong while reading a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file or folder could not be read.
    // The OS error is part of the message and deliberately not a `source`: a chain printer
    // (`{:#}`) would print it twice.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// A line could not be used.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The folder does not have the expected layout, or the file as a whole is unusable.
    #[error("{path}: {message}")]
    Layout {
        /// The file or folder.
        path: PathBuf,
        /// What is missing or wrong.
        message: String,
    },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            error: source,
        }
    }

    pub(crate) fn parse(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        DataError::Parse {
            path: path.into(),
            line,
            message: message.into(),
        }
    }

    pub(crate) fn layout(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DataError::Layout {
            path: path.into(),
            message: message.into(),
        }
    }
}
