//! Tensor-frames models: TF-PointNet++, DGCNN and an attention model, each made exactly
//! O(d)-equivariant by local frames and tensorial messages, and each able to run as the paper's
//! controls (scalar messages, random frames, one random frame per shape = augmentation,
//! identity frames = the plain network) by configuration alone.
//!
//! - [`ModelConfig`]: serde configurations, one table of named presets ([`PRESETS`]) for the
//!   paper's rows, loaded with figment: preset <- TOML file <- `TF_MODEL_*` environment variables.
//! - [`Model`]: build, run on a [`Batch`], count parameters and the frame network's overhead,
//!   save/load safetensors whose keys mirror the module tree (`sa.0.0.weight`, `frames.phi.0.bias`).
//! - Computed input features ([`InputFeatures`], [`compute_features`]): a model may declare a
//!   feature the data pipeline measures on each *whole* cloud before drawing the model's subset,
//!   so training, evaluation and inference agree. `pointnet2-normals-pca` takes each point's
//!   classical PCA normal (oriented away from the centroid) and surface variation, rep
//!   `1x0n+1x1n`; its normal head predicts `a(f) * estimate + W f` with an invariant gate `a`
//!   (initialised to output the estimate exactly). The network then only has to learn what PCA
//!   cannot do: orient consistently from the whole shape, and correct edges and noise. The
//!   features are equivariant, so the model stays exactly equivariant (tested in f64).
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
mod device;
mod dgcnn;
mod fused;
mod init;
mod io;
mod model;
mod nbody;
mod pointnet2;
mod presets;

pub use attention::AttentionModel;
pub use config::{
    AttentionConfig, ConfigError, DgcnnConfig, FeaturePropagationConfig, HeadConfig, ModelConfig,
    PointNet2Config, SetAbstractionConfig,
};
pub use device::{DeviceChoice, UnknownDevice};
pub use dgcnn::Dgcnn;
pub use io::{compute_features, Batch, Prediction};
pub use model::Model;
pub use nbody::{fully_connected, NBodyConfig, NBodyGnn, NBodyInput};
pub use pointnet2::PointNet2;
pub use presets::{preset_names, Preset, PRESETS};
// The configuration vocabulary of the crates below, so a configuration can be written with
// this crate alone.
pub use tf_frames::{FrameChoice, FrameConfig};
pub use tf_mp::Messages;
pub use tf_normals::{InputFeatures, PcaOrientation};
