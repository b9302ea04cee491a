//! The model type users hold: any configured model behind one dispatcher, its parameter
//! counts, and safetensors persistence.

use std::path::Path;

use candle_core::{bail, DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use tf_frames::FrameChoice;

use crate::attention::AttentionModel;
use crate::config::{HeadConfig, ModelConfig, PointNet2Config};
use crate::dgcnn::Dgcnn;
use crate::init::SeededInit;
use crate::io::{Batch, Prediction};
use crate::pointnet2::PointNet2;

/// The number of leading invariant scalars of a rep (its first term, if `Kx0n`) and the
/// terms after them.
fn leading_scalars(r: &tf_group::TensorReps) -> (usize, &[tf_group::RepTerm]) {
    match r.terms() {
        [t, rest @ ..] if t.order == 0 && t.parity == tf_group::Parity::Normal => (t.mul, rest),
        all => (0, all),
    }
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
    /// Builds a model with freshly initialised weights of the given dtype (seed 0).
    pub fn new(config: ModelConfig, dtype: DType, device: &Device) -> Result<Self> {
        Self::new_seeded(config, dtype, device, 0)
    }

    /// Builds a model whose initial weights are a pure function of `seed` and the weight names
    /// (candle's own initialisers draw from an RNG that cannot be seeded).
    pub fn new_seeded(
        config: ModelConfig,
        dtype: DType,
        device: &Device,
        seed: u64,
    ) -> Result<Self> {
        config
            .validate()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let varmap = VarMap::new();
        let backend = SeededInit {
            map: varmap.clone(),
            seed,
        };
        let vb = VarBuilder::from_backend(Box::new(backend), dtype, device.clone());
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

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.varmap
            .all_vars()
            .first()
            .map_or(Device::Cpu, |v| v.device().clone())
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
        // Read everything first so a bad file leaves the model untouched; convert the dtype so
        // f32-trained weights load into an f64 model (for exact equivariance checks).
        let saved = candle_core::safetensors::load(path, &self.device())?;
        self.set_weights(saved, path)
    }

    /// Loads weights from the bytes of a safetensors file (`name` for messages), e.g. weights
    /// compiled into a binary; as [`load`](Self::load) otherwise.
    pub fn load_bytes(&mut self, bytes: &[u8], name: &str) -> Result<()> {
        let saved = candle_core::safetensors::load_buffer(bytes, &self.device())?;
        self.set_weights(saved, Path::new(name))
    }

    /// Sets every weight from `saved` (read from `path`), or none if a name or shape is off.
    fn set_weights(
        &mut self,
        saved: std::collections::HashMap<String, Tensor>,
        path: &Path,
    ) -> Result<()> {
        crate::init::set_vars(&self.varmap, &saved, path)
    }

    /// Loads the weights of a model that differs from this one only in having fewer invariant
    /// input scalars (`from`: its configuration), e.g. a PCA-features model before
    /// `confidence` was added. Every weight loads as it is, except the first layers that read
    /// the input features, whose new scalar columns start at zero: the loaded model computes
    /// what the old one did (to rounding: the wider products sum in another order; 1e-12 in
    /// f64, tested), and fine-tuning can learn to use the new inputs.
    pub fn load_widening_inputs(&mut self, path: &Path, from: &ModelConfig) -> Result<()> {
        let (ModelConfig::Pointnet2(old), ModelConfig::Pointnet2(new)) = (from, &self.config)
        else {
            bail!("widening the inputs of a checkpoint needs TF-PointNet++ models");
        };
        let same_otherwise = PointNet2Config {
            input: new.input,
            ..old.clone()
        };
        if same_otherwise != *new {
            bail!("the checkpoint's model differs from this one in more than its input features");
        }
        let d = new.d;
        let (a, b) = (old.input.reps(), new.input.reps());
        let (sa, rest_a) = leading_scalars(&a);
        let (sb, rest_b) = leading_scalars(&b);
        if sb <= sa || rest_a != rest_b {
            bail!(
                "the input features {} -> {} do not only add scalars",
                old.input.reps(),
                new.input.reps()
            );
        }
        let added = sb - sa;
        // The layers that read the features: the first conv (offset 0), and for dense heads
        // the last feature propagation, whose input ends with the level-0 skip features.
        let mut readers = vec![if new.sa.is_empty() {
            "global.0.weight".to_string()
        } else {
            "sa.0.0.weight".to_string()
        }];
        if !matches!(new.head, HeadConfig::Classification { .. }) && !new.fp.is_empty() {
            readers.push(format!("fp.{}.0.weight", new.fp.len() - 1));
        }
        if !path.exists() {
            bail!("weights file {} does not exist", path.display());
        }
        let mut saved = candle_core::safetensors::load(path, &self.device())?;
        for name in &readers {
            let Some(w) = saved.get(name) else {
                bail!("{}: no weight named {name}", path.display());
            };
            let (h, cols) = w.dims2()?;
            // Where the feature block starts in this layer's input: 0 for the conv, after the
            // coarse features for the skip connection.
            let start = if name.starts_with("fp.") {
                cols.checked_sub(a.dim(d))
                    .ok_or_else(|| candle_core::Error::Msg(format!("{name}: too few columns")))?
            } else {
                0
            };
            let at = start + sa;
            let zeros = Tensor::zeros((h, added), w.dtype(), w.device())?;
            let widened = Tensor::cat(
                &[&w.narrow(1, 0, at)?, &zeros, &w.narrow(1, at, cols - at)?],
                1,
            )?;
            saved.insert(name.clone(), widened);
        }
        self.set_weights(saved, path)
    }

    /// Restarts the random stream of the control frame builders (random, random-global); a
    /// no-op for the others. Training reseeds per epoch so that resumed runs are exact.
    pub fn reseed(&self, seed: u64) -> Result<()> {
        match &self.inner {
            Inner::PointNet2(m) => m.frames.reseed(seed),
            Inner::Dgcnn(m) => m.frames.reseed(seed),
            Inner::Attention(m) => m.frames.reseed(seed),
        }
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
