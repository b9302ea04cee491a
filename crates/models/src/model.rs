//! The model type users hold: any configured model, its inputs and outputs, parameter counts,
//! and safetensors persistence.

use std::path::Path;

use candle_core::{bail, DType, Device, Result, Tensor};
use candle_nn::{Init, VarBuilder, VarMap};

use crate::attention::AttentionModel;
use crate::config::{FrameChoice, HeadConfig, InputFeatures, ModelConfig, PointNet2Config};
use crate::dgcnn::Dgcnn;
use crate::pointnet2::PointNet2;

/// The number of leading invariant scalars of a rep (its first term, if `Kx0n`) and the
/// terms after them.
fn leading_scalars(r: &tf_group::TensorReps) -> (usize, &[tf_group::RepTerm]) {
    match r.terms() {
        [t, rest @ ..] if t.order == 0 && t.parity == tf_group::Parity::Normal => (t.mul, rest),
        all => (0, all),
    }
}

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

/// The features `spec` of every cloud of a batch, computed per graph from its points, as
/// `Batch::features` takes them (`None` for no features). The features are computed in f64
/// and returned in the positions' dtype.
pub fn compute_features(
    spec: InputFeatures,
    pos: &Tensor,
    batch: Option<&Tensor>,
) -> Result<Option<Tensor>> {
    if !spec.is_some() {
        return Ok(None);
    }
    let (n, d) = pos.dims2()?;
    let host = pos.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let mut out = vec![0.0; n * spec.dim(d)];
    let w = spec.dim(d);
    for seg in tf_graphs::segments(batch, n)? {
        if seg.is_empty() {
            continue;
        }
        let f = spec.compute(&host[seg.start * d..seg.end * d], d)?;
        out[seg.start * w..seg.end * w].copy_from_slice(&f);
    }
    Tensor::from_vec(out, (n, w), pos.device())?
        .to_dtype(pos.dtype())
        .map(Some)
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
        let saved = candle_core::safetensors::load(path, &Device::Cpu)?;
        self.set_weights(saved, path)
    }

    /// Sets every weight from `saved` (read from `path`), or none if a name or shape is off.
    fn set_weights(
        &mut self,
        saved: std::collections::HashMap<String, Tensor>,
        path: &Path,
    ) -> Result<()> {
        let data = self
            .varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("VarMap poisoned".into()))?;
        let mut updates = Vec::with_capacity(data.len());
        for (name, var) in data.iter() {
            let Some(t) = saved.get(name) else {
                bail!("{}: no weight named {name}", path.display());
            };
            if t.dims() != var.dims() {
                bail!(
                    "{}: {name} has shape {:?}, the model expects {:?}",
                    path.display(),
                    t.dims(),
                    var.dims()
                );
            }
            updates.push((var, t.to_dtype(var.dtype())?.to_device(var.device())?));
        }
        for (var, t) in updates {
            var.set(&t)?;
        }
        Ok(())
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
        let parse = |f: InputFeatures| {
            tf_group::TensorReps::parse(&f.reps())
                .map_err(|e| candle_core::Error::Msg(format!("input features: {e}")))
        };
        let (a, b) = (parse(old.input)?, parse(new.input)?);
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
        let mut saved = candle_core::safetensors::load(path, &Device::Cpu)?;
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

/// A `VarMap` backend that initialises each new variable from a ChaCha stream keyed by the
/// model seed and the variable's name, following candle's `Init` hints exactly.
struct SeededInit {
    map: VarMap,
    seed: u64,
}

impl SeededInit {
    fn draw(&self, shape: &candle_core::Shape, name: &str, init: Init) -> Vec<f64> {
        use rand::{Rng, SeedableRng};
        use rand_distr::{Distribution, StandardNormal};
        // FNV-1a of the name: stable across runs and platforms.
        let key = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed ^ key);
        let n = shape.elem_count();
        let normal = |rng: &mut rand_chacha::ChaCha8Rng, mean: f64, std: f64| -> Vec<f64> {
            (0..n)
                .map(|_| {
                    let e: f64 = StandardNormal.sample(rng);
                    mean + std * e
                })
                .collect()
        };
        let uniform = |rng: &mut rand_chacha::ChaCha8Rng, lo: f64, up: f64| -> Vec<f64> {
            (0..n)
                .map(|_| lo + (up - lo) * rng.random::<f64>())
                .collect()
        };
        match init {
            Init::Const(c) => vec![c; n],
            Init::Randn { mean, stdev } => normal(&mut rng, mean, stdev),
            Init::Uniform { lo, up } => uniform(&mut rng, lo, up),
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
                match dist {
                    candle_nn::init::NormalOrUniform::Uniform => {
                        let b = 3f64.sqrt() * std;
                        uniform(&mut rng, -b, b)
                    }
                    candle_nn::init::NormalOrUniform::Normal => normal(&mut rng, 0.0, std),
                }
            }
        }
    }
}

impl candle_nn::var_builder::SimpleBackend for SeededInit {
    fn get(
        &self,
        s: candle_core::Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        let mut data = self
            .map
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("VarMap poisoned".into()))?;
        if let Some(var) = data.get(name) {
            if var.shape() != &s {
                bail!("shape mismatch on {name}: {s:?} <> {:?}", var.shape());
            }
            return Ok(var.as_tensor().clone());
        }
        let values = self.draw(&s, name, h);
        let t = Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?;
        let var = candle_core::Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        bail!("{name}: a model's weights are created with their shapes, not looked up")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map
            .data()
            .lock()
            .map(|d| d.contains_key(name))
            .unwrap_or(false)
    }
}
