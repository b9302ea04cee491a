//! Training configuration: serde structs merged by figment from defaults <- TOML file <-
//! `TF_`-prefixed environment variables <- command-line overrides, then validated.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use tf_datasets::Augment;
use tf_models::{DeviceChoice, ModelConfig};

use crate::error::TrainError;

/// Random transformation of every training shape (the model's own frames are separate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AugmentChoice {
    /// Canonical poses, as the datasets store them.
    None,
    /// Random rotations.
    Rotate,
    /// Random rotations and reflections.
    RotateReflect,
}

impl From<AugmentChoice> for Augment {
    fn from(a: AugmentChoice) -> Self {
        match a {
            AugmentChoice::None => Augment::None,
            AugmentChoice::Rotate => Augment::Rotate,
            AugmentChoice::RotateReflect => Augment::RotateReflect,
        }
    }
}

/// Optimisation and bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Shapes per step.
    pub batch_size: usize,
    /// Points sampled per shape.
    pub points: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Learning rate at the end of the cosine schedule, as a fraction of `lr`.
    pub final_lr_fraction: f64,
    /// Linear warm-up steps.
    pub warmup_steps: usize,
    /// Decoupled weight decay (AdamW).
    pub weight_decay: f64,
    /// Gradient clipping by global norm (0 disables it).
    pub clip_norm: f64,
    /// Augmentation of the training shapes.
    pub augment: AugmentChoice,
    /// Gaussian position noise added to training points, relative to the unit ball.
    pub noise: f64,
    /// Draw each training shape's noise level uniformly from `[0, noise]`, so one model learns
    /// clean and noisy inputs alike.
    #[serde(default)]
    pub noise_uniform: bool,
    /// Normal regression: weight of the unoriented term `1 - |cos|` added to the training loss
    /// `1 - cos`. The oriented loss alone gives no signal for the direction where the
    /// orientation is uncertain (both signs are equally likely, so every direction has expected
    /// cos 0); this term keeps the line right there.
    #[serde(default)]
    pub unoriented_weight: f64,
    /// Seed of weights, batch order, subsets, augmentation and control frames.
    pub seed: u64,
    /// Checkpoints kept besides the best one.
    pub keep_last: usize,
    /// Show a progress bar (only on a terminal).
    pub progress: bool,
    /// Start from the weights of this checkpoint (a run, checkpoint directory or weights file
    /// of the same model configuration) instead of a seeded initialisation: fine-tuning. Only a
    /// fresh run reads it; a resumed run continues from its own checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<std::path::PathBuf>,
    /// Early stopping: end the run once this many epochs have passed without a new best
    /// validation value (0: train all `epochs`, which is then a cap). The learning-rate
    /// schedule still spans `epochs`, so a run that stops early stops at a higher rate.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub patience: usize,
    /// Where the model trains: `cpu` (default), `cuda[:N]` or `metal[:N]`. Batches are
    /// assembled on the host and moved once per step.
    #[serde(default, skip_serializing_if = "DeviceChoice::is_cpu")]
    pub device: DeviceChoice,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch_size: 8,
            points: 512,
            lr: 3e-3,
            final_lr_fraction: 0.05,
            warmup_steps: 20,
            weight_decay: 1e-4,
            clip_norm: 5.0,
            augment: AugmentChoice::None,
            noise: 0.0,
            noise_uniform: false,
            unoriented_weight: 0.0,
            seed: 0,
            keep_last: 2,
            progress: true,
            init: None,
            patience: 0,
            device: DeviceChoice::Cpu,
        }
    }
}

impl TrainConfig {
    /// Range checks.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Config(m.into()));
        if self.epochs == 0 || self.batch_size == 0 || self.points == 0 {
            return bad("epochs, batch_size and points must be positive");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr must be positive and finite");
        }
        if !(0.0..=1.0).contains(&self.final_lr_fraction) {
            return bad("final_lr_fraction must lie in [0, 1]");
        }
        if !(self.weight_decay >= 0.0
            && self.clip_norm >= 0.0
            && self.noise >= 0.0
            && self.unoriented_weight >= 0.0)
        {
            return bad(
                "weight_decay, clip_norm, noise and unoriented_weight must be non-negative",
            );
        }
        Ok(())
    }
}

/// Where shapes come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DataConfig {
    /// The embedded 3D synthetic set (10 classes, exact normals, parts).
    Synthetic {
        /// Training shapes per class.
        train_per_class: usize,
        /// Test shapes per class (a validation split of the same size is drawn too).
        test_per_class: usize,
        /// Points generated per shape.
        points: usize,
        /// Dataset seed.
        seed: u64,
        /// Strength of the random smooth deformation of every shape, in `[0, 0.95]` (see
        /// `tf_datasets::Warp`); left out of saved configs when 0.
        #[serde(default, skip_serializing_if = "is_unwarped")]
        warp: f64,
    },
    /// Superellipsoid hypersurfaces in any dimension (see `tf_datasets::SyntheticNd`).
    SyntheticNd {
        /// Dimension.
        d: usize,
        /// Training shapes per class.
        train_per_class: usize,
        /// Test shapes per class.
        test_per_class: usize,
        /// Points per shape.
        points: usize,
        /// Dataset seed.
        seed: u64,
    },
    /// A ModelNet40-normal layout (also what `tensor-frames data convert` writes).
    Modelnet {
        /// The dataset root.
        path: PathBuf,
    },
    /// Several sources concatenated split by split (e.g. real shapes plus synthetic ones).
    Many {
        /// The sources.
        sources: Vec<DataConfig>,
    },
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig::Synthetic {
            train_per_class: 20,
            test_per_class: 10,
            points: 512,
            seed: 0,
            warp: 0.0,
        }
    }
}

fn is_unwarped(x: &f64) -> bool {
    *x == 0.0
}

/// Everything one training run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The model.
    pub model: ModelConfig,
    /// Optimisation.
    pub train: TrainConfig,
    /// Data.
    pub data: DataConfig,
}

impl RunConfig {
    /// A model preset with default training and data settings.
    pub fn preset(preset: &str, d: usize) -> Result<Self, TrainError> {
        Ok(Self {
            model: ModelConfig::preset(preset, d)?,
            train: TrainConfig::default(),
            data: DataConfig::default(),
        })
    }

    /// `base` <- TOML `file` <- `TF_{MODEL,TRAIN,DATA}__*` environment variables (nested keys
    /// separated by `__`, e.g. `TF_TRAIN__EPOCHS=5`) <- `overrides` (command-line flags, as a
    /// partial document such as `{"train": {"lr": 0.001}}`), then validated.
    pub fn load(
        base: RunConfig,
        file: Option<&Path>,
        overrides: serde_json::Value,
    ) -> Result<Self, TrainError> {
        let mut layers = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(TrainError::Config(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            layers = layers.merge(Toml::file(path));
        }
        // Only the three sections: other TF_* variables (e.g. the bench knobs) are not ours.
        let env = Env::prefixed("TF_")
            .filter(|k| {
                let k = k.as_str().to_ascii_lowercase();
                k.starts_with("model__") || k.starts_with("train__") || k.starts_with("data__")
            })
            .split("__");
        let layers = layers.merge(env).merge(Serialized::defaults(overrides));
        let err = |e: figment::Error| TrainError::Config(e.to_string());
        let mut base =
            serde_json::to_value(&base).map_err(|e| TrainError::Config(e.to_string()))?;
        // Tagged enums do not merge field by field across variants: a layer that names another
        // kind of data (or model) replaces the section instead of mixing in the default's fields.
        for (section, tag) in [("data", "kind"), ("model", "model")] {
            let key = format!("{section}.{tag}");
            if layers.contains(&key) {
                let named: String = layers.extract_inner(&key).map_err(err)?;
                if base[section][tag] != serde_json::Value::String(named.clone()) {
                    base[section] = serde_json::json!({ tag: named });
                }
            }
        }
        let cfg: RunConfig = Figment::from(Serialized::defaults(base))
            .merge(layers)
            .extract()
            .map_err(err)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Range checks of all sections, and consistency between them.
    pub fn validate(&self) -> Result<(), TrainError> {
        self.model.validate()?;
        self.train.validate()?;
        check_data(&self.data, self.model.d())
    }
}

fn check_data(data: &DataConfig, model_d: usize) -> Result<(), TrainError> {
    let bad = |m: String| Err(TrainError::Config(m));
    match data {
        DataConfig::Synthetic {
            train_per_class,
            points,
            ..
        } if *train_per_class == 0 || *points == 0 => {
            bad("synthetic data needs train_per_class > 0 and points > 0".into())
        }
        DataConfig::Synthetic { warp, .. } if !(0.0..=0.95).contains(warp) => {
            bad(format!("synthetic warp must be in [0, 0.95], got {warp}"))
        }
        DataConfig::SyntheticNd { d, .. } if *d != model_d => {
            bad(format!("data dimension {d} != model dimension {model_d}"))
        }
        DataConfig::Synthetic { .. } | DataConfig::Modelnet { .. } if model_d != 3 => {
            bad(format!("this data is 3D but the model has d = {model_d}"))
        }
        DataConfig::Many { sources } => sources.iter().try_for_each(|s| check_data(s, model_d)),
        _ => Ok(()),
    }
}
