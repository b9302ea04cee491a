//! Frame refinement: `R_i <- V_i R_i`, `f_i <- rho(V_i) f_i`, with `V_i` in O(d) predicted by an
//! MLP from the node's local (hence invariant) features. `V_i` is invariant, so the refined frame
//! stays equivariant and the re-expressed features stay invariant.
//!
//! The MLP predicts `d` vectors `I + M_i`; Gram-Schmidt turns them into `V_i`. The last layer
//! starts at zero, so refinement starts as the identity and learns a correction.
//!
//! # Shapes
//! `features (N, rep_dim)` local, frames `(N, d, d)` -> the same shapes.

use candle_core::{Result, Tensor};
use candle_nn::{Init, Linear, Module, VarBuilder};
use tf_group::RepAction;

use crate::local_frames::LocalFrames;
use crate::orthonormalize::{orthonormalize, Orthonormalize};

/// The refinement layer; weights under `vb` as `mlp.0`, `mlp.1`.
#[derive(Debug, Clone)]
pub struct FrameRefinement {
    d: usize,
    lin1: Linear,
    lin2: Linear,
}

impl FrameRefinement {
    /// `rep_dim` inputs (the local features), `hidden` units, dimension `d`.
    pub fn new(rep_dim: usize, hidden: usize, d: usize, vb: VarBuilder) -> Result<Self> {
        let lin1 = candle_nn::linear(rep_dim, hidden, vb.pp("mlp.0"))?;
        let w = vb
            .pp("mlp.1")
            .get_with_hints((d * d, hidden), "weight", Init::Const(0.0))?;
        let b = vb
            .pp("mlp.1")
            .get_with_hints(d * d, "bias", Init::Const(0.0))?;
        Ok(Self {
            d,
            lin1,
            lin2: Linear::new(w, Some(b)),
        })
    }

    /// Refines `frames` and re-expresses `features` (of rep `rho`) in the refined frames.
    pub fn forward(
        &self,
        frames: &LocalFrames,
        features: &Tensor,
        rho: &RepAction,
    ) -> Result<(LocalFrames, Tensor)> {
        let n = frames.len();
        let d = self.d;
        let m = self
            .lin2
            .forward(&self.lin1.forward(features)?.silu()?)?
            .reshape((n, d, d))?;
        let eye = Tensor::eye(d, m.dtype(), m.device())?.unsqueeze(0)?;
        let (v, _) = orthonormalize(&m.broadcast_add(&eye)?, &Orthonormalize::new(d))?;
        Ok((frames.left_multiply(&v)?, rho.apply(features, &v)?))
    }
}
