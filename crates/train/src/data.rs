//! Resolving a [`DataConfig`] into in-memory train / validation / test sets.

use std::sync::Arc;

use tf_datasets::{
    InMemory, ModelNetNormal, ModelNetSplit, ShapeSource, Split, Synthetic, SyntheticNd,
    SyntheticNdSplit, SyntheticSplit,
};

use crate::config::DataConfig;
use crate::error::TrainError;

/// The three sets of a run, loaded once.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training shapes.
    pub train: Arc<InMemory>,
    /// Validation shapes (model selection, curves).
    pub val: Arc<InMemory>,
    /// Held-out test shapes (reported numbers).
    pub test: Arc<InMemory>,
}

/// Whether the `index`-th training shape of a ModelNet layout is held out for validation (every
/// tenth, split by shape): one rule for the trainer and for evaluation on the same shapes.
pub fn is_validation(index: usize) -> bool {
    index % 10 == 9
}

/// Loads the sets described by `cfg`.
///
/// Synthetic sets draw validation shapes from a second seed; a ModelNet layout, which has only
/// train and test, gives every tenth training shape to validation (split by shape).
pub fn open_data(cfg: &DataConfig) -> Result<Splits, TrainError> {
    let mem = |s: &dyn ShapeSource| -> Result<Arc<InMemory>, TrainError> {
        Ok(Arc::new(InMemory::collect(s)?))
    };
    Ok(match cfg {
        DataConfig::Synthetic {
            train_per_class,
            test_per_class,
            points,
            seed,
            warp,
        } => {
            let make = |n: usize, seed: u64| Synthetic {
                shapes_per_class: n,
                points: *points,
                noise: 0.0,
                warp: *warp,
                seed,
            };
            Splits {
                train: mem(&SyntheticSplit(make(*train_per_class, *seed), Split::Train))?,
                val: mem(&SyntheticSplit(
                    make(*test_per_class, seed ^ 0x0076_616c),
                    Split::Test,
                ))?,
                test: mem(&SyntheticSplit(make(*test_per_class, *seed), Split::Test))?,
            }
        }
        DataConfig::SyntheticNd {
            d,
            train_per_class,
            test_per_class,
            points,
            seed,
        } => {
            let make = |n: usize, seed: u64| SyntheticNd {
                d: *d,
                shapes_per_class: n,
                points: *points,
                seed,
            };
            Splits {
                train: mem(&SyntheticNdSplit(
                    make(*train_per_class, *seed),
                    Split::Train,
                ))?,
                val: mem(&SyntheticNdSplit(
                    make(*test_per_class, seed ^ 0x0076_616c),
                    Split::Test,
                ))?,
                test: mem(&SyntheticNdSplit(make(*test_per_class, *seed), Split::Test))?,
            }
        }
        DataConfig::Modelnet { path } => {
            let set = ModelNetNormal::open(path)?;
            let all = InMemory::collect(&ModelNetSplit(set.clone(), Split::Train))?;
            let (mut train, mut val) = (Vec::new(), Vec::new());
            for (i, s) in all.0.into_iter().enumerate() {
                if is_validation(i) {
                    val.push(s);
                } else {
                    train.push(s);
                }
            }
            if train.is_empty() || val.is_empty() {
                return Err(TrainError::Config(format!(
                    "{}: need at least 10 training shapes to hold out a validation set",
                    path.display()
                )));
            }
            Splits {
                train: Arc::new(InMemory(train)),
                val: Arc::new(InMemory(val)),
                test: mem(&ModelNetSplit(set, Split::Test))?,
            }
        }
        DataConfig::Many { sources } => {
            if sources.is_empty() {
                return Err(TrainError::Config("data.sources is empty".into()));
            }
            let parts = sources
                .iter()
                .map(open_data)
                .collect::<Result<Vec<_>, _>>()?;
            let cat = |f: &dyn Fn(&Splits) -> &Arc<InMemory>| {
                Arc::new(InMemory(
                    parts.iter().flat_map(|p| f(p).0.iter().cloned()).collect(),
                ))
            };
            Splits {
                train: cat(&|p| &p.train),
                val: cat(&|p| &p.val),
                test: cat(&|p| &p.test),
            }
        }
    })
}
