//! The model type users hold: any configured model, its inputs and outputs, parameter counts,
//! and safetensors persistence.

use std::path::Path;

use candle_core::{bail, DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};

use crate::attention::AttentionModel;
use crate::config::{FrameChoice, HeadConfig, ModelConfig};
use crate::dgcnn::Dgcnn;
use crate::pointnet2::PointNet2;

/// One batch of point clouds: the graphs stacked, PyG style.
///
/// # Shapes
/// `pos (N, d)`; `batch (N,)` sorted graph ids (`None`: one graph); `features (N, in_dim)` global.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// Positions.
    pub pos: &'a Tensor,
    /// Graph id per point.
    pub batch: Option<&'a Tensor>,
    /// Global input features per point, if the model takes any.
    pub features: Option<&'a Tensor>,
}

impl Batch<'_> {
    /// The batch vector, or zeros for a single graph.
    pub fn batch_or_zeros(&self) -> Result<Tensor> {
        match self.batch {
            Some(b) => b.to_dtype(DType::U32),
            None => Tensor::zeros(self.pos.dims()[0], DType::U32, self.pos.device()),
        }
    }
}

/// What a model returns.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Normals `(N, d)` in global coordinates, or logits `(N, classes)` / `(G, classes)`.
    pub values: Tensor,
    /// Input points whose frames needed the degenerate-neighbourhood fallback.
    pub degenerate_frames: usize,
}

#[derive(Debug)]
enum Inner {
    PointNet2(Box<PointNet2>),
    Dgcnn(Dgcnn),
    Attention(AttentionModel),
}

/// A configured model with its weights.
pub struct Model {
    config: ModelConfig,
    varmap: VarMap,
    inner: Inner,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("config", &self.config)
            .field("params", &self.params())
            .field("inner", &self.inner)
            .finish()
    }
}

impl Model {
    /// Builds a model with freshly initialised weights of the given dtype.
    pub fn new(config: ModelConfig, dtype: DType, device: &Device) -> Result<Self> {
        config
            .validate()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, dtype, device);
        let inner = match &config {
            ModelConfig::Pointnet2(c) => Inner::PointNet2(Box::new(PointNet2::new(c.clone(), vb)?)),
            ModelConfig::Dgcnn(c) => Inner::Dgcnn(Dgcnn::new(c.clone(), vb)?),
            ModelConfig::Attention(c) => Inner::Attention(AttentionModel::new(c.clone(), vb)?),
        };
        Ok(Self {
            config,
            varmap,
            inner,
        })
    }

    /// Runs the model.
    pub fn forward(&self, batch: &Batch) -> Result<Prediction> {
        match &self.inner {
            Inner::PointNet2(m) => m.forward(batch),
            Inner::Dgcnn(m) => m.forward(batch),
            Inner::Attention(m) => m.forward(batch),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The weights (for optimisers, reseeding, inspection).
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// Trainable parameters.
    pub fn params(&self) -> usize {
        self.varmap.all_vars().iter().map(|v| v.elem_count()).sum()
    }

    /// Parameters of the frame network (the `frames.*` and `refine.*` weights).
    pub fn frame_params(&self) -> usize {
        let data = self.varmap.data().lock().map(|d| {
            d.iter()
                .filter(|(k, _)| k.starts_with("frames.") || k.starts_with("refine."))
                .map(|(_, v)| v.elem_count())
                .sum()
        });
        data.unwrap_or(0)
    }

    /// Frame network parameters relative to the rest of the model (the paper reports ~0.33% for
    /// normal regression).
    pub fn frame_overhead(&self) -> f64 {
        let f = self.frame_params() as f64;
        f / (self.params() as f64 - f).max(1.0)
    }

    /// Saves the weights as safetensors, atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("safetensors.tmp");
        self.varmap.save(&tmp)?;
        std::fs::rename(&tmp, path)
            .map_err(|e| candle_core::Error::Msg(format!("saving {}: {e}", path.display())))
    }

    /// Loads weights saved by [`save`](Self::save) into this model (shapes must match).
    pub fn load(&mut self, path: &Path) -> Result<()> {
        if !path.exists() {
            bail!("weights file {} does not exist", path.display());
        }
        self.varmap.load(path)
    }

    /// What each output row is: per point or per shape, and how it transforms.
    pub fn head(&self) -> HeadConfig {
        self.config.head()
    }

    /// True if the configured frames claim equivariance.
    pub fn is_equivariant(&self) -> bool {
        let kind = match &self.config {
            ModelConfig::Pointnet2(c) => c.frames.kind,
            ModelConfig::Dgcnn(c) => c.frames.kind,
            ModelConfig::Attention(c) => c.frames.kind,
        };
        matches!(
            kind,
            FrameChoice::Learned | FrameChoice::Pca | FrameChoice::Nearest
        )
    }
}
