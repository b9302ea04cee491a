//! Tensor-frames models: TF-PointNet++, DGCNN and an attention model, each made exactly
//! O(d)-equivariant by local frames and tensorial messages, and each able to run as the paper's
//! controls (scalar messages, random frames, one random frame per shape = augmentation,
//! identity frames = the plain network) by configuration alone.
//!
//! - [`ModelConfig`]: serde configurations, named presets ([`PRESETS`]) for the paper's rows,
//!   loaded with figment: preset <- TOML file <- `TF_MODEL_*` environment variables.
//! - [`Model`]: build, run on a [`Batch`], count parameters and the frame network's overhead,
//!   save/load safetensors whose keys mirror the module tree (`sa.0.0.weight`, `frames.phi.0.bias`).
//!
//! # Example
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use tf_models::{Batch, Model, ModelConfig};
//!
//! # fn main() -> candle_core::Result<()> {
//! let cfg = ModelConfig::preset("pointnet2-normals", 3).expect("known preset");
//! let model = Model::new(cfg, DType::F32, &Device::Cpu)?;
//! let pos = Tensor::rand(-1f32, 1.0, (256, 3), &Device::Cpu)?;
//! let out = model.forward(&Batch { pos: &pos, batch: None, features: None })?;
//! assert_eq!(out.values.dims(), &[256, 3]); // one normal per point, in global coordinates
//! assert!(model.frame_overhead() < 0.1);
//! # Ok(())
//! # }
//! ```

mod attention;
mod blocks;
mod config;
mod dgcnn;
mod model;
mod pointnet2;

pub use attention::AttentionModel;
pub use config::{
    AttentionConfig, ConfigError, DgcnnConfig, FeaturePropagationConfig, FrameChoice, FrameConfig,
    HeadConfig, MessageChoice, ModelConfig, PointNet2Config, SetAbstractionConfig, PRESETS,
};
pub use dgcnn::Dgcnn;
pub use model::{Batch, Model, Prediction};
pub use pointnet2::PointNet2;
