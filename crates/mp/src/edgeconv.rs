//! EdgeConv (DGCNN) made equivariant with tensor frames.
//!
//! `f_i' = max_{j in N(i)} MLP([f_i, rho(R_i R_j^T) f_j - f_i, R_i (x_j - x_i), |x_j - x_i|])`
//!
//! The difference `f_j - f_i` only means something once both live in the same frame: this is
//! where tensorial messages matter. With [`Messages::Scalar`] `f_j` enters untransported.
//!
//! # Shapes
//! `x (N, in_reps.dim(d))` local -> `(N, out_reps.dim(d))` local.

use candle_core::{Result, Tensor};
use candle_nn::{Linear, Module, VarBuilder};
use tf_group::{RepAction, TensorReps};

use crate::context::{Aggregation, GraphContext, Messages};
use crate::layer::Layer;

/// Configuration of [`EdgeConv`].
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeConvConfig {
    /// Dimension `d`.
    pub d: usize,
    /// Input rep.
    pub in_reps: TensorReps,
    /// Output rep.
    pub out_reps: TensorReps,
    /// Hidden width of the edge MLP.
    pub hidden: usize,
    /// Tensorial or scalar messages.
    pub messages: Messages,
}

/// EdgeConv with tensor frames; weights `mlp.0`, `mlp.1` under the `VarBuilder`.
#[derive(Debug, Clone)]
pub struct EdgeConv {
    cfg: EdgeConvConfig,
    rho: RepAction,
    lin1: Linear,
    lin2: Linear,
}

impl EdgeConv {
    /// Builds the layer.
    pub fn new(cfg: EdgeConvConfig, vb: VarBuilder) -> Result<Self> {
        let (i, o) = (cfg.in_reps.dim(cfg.d), cfg.out_reps.dim(cfg.d));
        let rho = RepAction::new(&cfg.in_reps, cfg.d)?;
        let lin1 = candle_nn::linear(2 * i + cfg.d + 1, cfg.hidden, vb.pp("mlp.0"))?;
        let lin2 = candle_nn::linear(cfg.hidden, o, vb.pp("mlp.1"))?;
        Ok(Self {
            cfg,
            rho,
            lin1,
            lin2,
        })
    }
}

impl Layer for EdgeConv {
    fn in_reps(&self) -> &TensorReps {
        &self.cfg.in_reps
    }

    fn out_reps(&self) -> &TensorReps {
        &self.cfg.out_reps
    }

    fn forward(&self, ctx: &GraphContext, x: &Tensor) -> Result<Tensor> {
        let xi = ctx.receiver(x)?;
        let xj = ctx.sender(x, &self.rho, self.cfg.messages)?;
        let input = Tensor::cat(&[&xi, &(xj - &xi)?, ctx.edge_vectors(), ctx.distances()], 1)?;
        let msgs = self.lin2.forward(&self.lin1.forward(&input)?.silu()?)?;
        ctx.aggregate(&msgs, Aggregation::Max)
    }
}
