//! The vocabulary every model shares: a batch of point clouds in, a prediction out, and the
//! input features a model may ask the data pipeline to compute from each whole cloud.

use candle_core::{DType, Result, Tensor};
use tf_normals::InputFeatures;

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
