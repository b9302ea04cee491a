//! One training process per run folder: a lock file holding the owner's process id.
//!
//! Two trainings into one folder would overwrite each other's checkpoints and interleave their
//! metrics while both reported success. The lock is created atomically (`create_new`), so of two
//! processes starting at once exactly one gets it; the other fails at once and says which
//! process holds the folder. A lock whose process no longer runs (a killed run) is stale and is
//! taken over, so a resumed run never needs a manual clean-up.

use std::path::{Path, PathBuf};

use crate::error::TrainError;

/// File name of the lock inside a run folder.
pub const LOCK_FILE: &str = "train.lock";

/// A held run-folder lock; the file is removed when this is dropped.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock of run folder `dir` (which must exist) for this process.
    pub fn acquire(dir: &Path) -> Result<Self, TrainError> {
        let path = dir.join(LOCK_FILE);
        // The lock appears with its content in one step (a hard link to a finished file), so
        // another process never reads a half-written owner and takes it for a stale lock.
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mine = dir.join(format!(".{LOCK_FILE}.{}-{n}", std::process::id()));
        std::fs::write(&mine, format!("{}\n", std::process::id())).map_err(|e| io(&mine, e))?;
        let result = Self::link(dir, &mine, &path);
        let _ = std::fs::remove_file(&mine);
        result
    }

    fn link(dir: &Path, mine: &Path, path: &Path) -> Result<Self, TrainError> {
        // Two tries: the second after removing a stale lock.
        for _ in 0..2 {
            match std::fs::hard_link(mine, path) {
                Ok(()) => {
                    return Ok(Self {
                        path: path.to_path_buf(),
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(path).unwrap_or_default();
                    match text.trim().parse::<u32>() {
                        Ok(pid) if alive(pid) => {
                            return Err(TrainError::Locked {
                                dir: dir.to_path_buf(),
                                pid,
                            })
                        }
                        _ => {
                            tracing::warn!(lock = %path.display(), owner = text.trim(), "removing a stale lock (its process is gone)");
                            std::fs::remove_file(path).map_err(|e| io(path, e))?;
                        }
                    }
                }
                Err(e) => return Err(io(path, e)),
            }
        }
        Err(TrainError::Locked {
            dir: dir.to_path_buf(),
            pid: 0,
        })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn io(path: &Path, source: std::io::Error) -> TrainError {
    TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether process `pid` runs. Where `/proc` is missing every owner counts as alive, so a
/// lock is never taken from a running process.
fn alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}
