//! A GCN-style convolution made equivariant with tensor frames.
//!
//! `f_i' = W_s f_i + sum_{j in N(i)} (deg_i deg_j)^(-1/2) W_n rho(R_i R_j^T) f_j + b`
//!
//! with `deg` the in-degree plus one. Every term lives in the receiver's frame, so the linear
//! maps `W_s`, `W_n` may mix all components of the local features freely: in local coordinates
//! the features are invariant. With [`Messages::Scalar`] the transport is skipped.
//!
//! # Shapes
//! `x (N, in_reps.dim(d))` local -> `(N, out_reps.dim(d))` local.

use candle_core::{Result, Tensor};
use candle_nn::{Linear, Module, VarBuilder};
use tf_group::{RepAction, TensorReps};

use crate::context::{Aggregation, GraphContext, Messages};
use crate::layer::Layer;

/// Configuration of [`GcnConv`].
#[derive(Debug, Clone, PartialEq)]
pub struct GcnConfig {
    /// Dimension `d`.
    pub d: usize,
    /// Input rep.
    pub in_reps: TensorReps,
    /// Output rep.
    pub out_reps: TensorReps,
    /// Tensorial or scalar messages.
    pub messages: Messages,
}

/// GCN-style tensor-frames convolution; weights `self` and `neighbor` under the `VarBuilder`.
#[derive(Debug, Clone)]
pub struct GcnConv {
    cfg: GcnConfig,
    rho: RepAction,
    lin_self: Linear,
    lin_nb: Linear,
}

impl GcnConv {
    /// Builds the layer.
    pub fn new(cfg: GcnConfig, vb: VarBuilder) -> Result<Self> {
        let (i, o) = (cfg.in_reps.dim(cfg.d), cfg.out_reps.dim(cfg.d));
        let rho = RepAction::new(&cfg.in_reps, cfg.d)?;
        let lin_self = candle_nn::linear(i, o, vb.pp("self"))?;
        let lin_nb = candle_nn::linear_no_bias(i, o, vb.pp("neighbor"))?;
        Ok(Self {
            cfg,
            rho,
            lin_self,
            lin_nb,
        })
    }
}

impl Layer for GcnConv {
    fn in_reps(&self) -> &TensorReps {
        &self.cfg.in_reps
    }

    fn out_reps(&self) -> &TensorReps {
        &self.cfg.out_reps
    }

    fn forward(&self, ctx: &GraphContext, x: &Tensor) -> Result<Tensor> {
        let n = ctx.n_nodes();
        // deg_i = 1 + incoming edges; symmetric normalisation as in Kipf & Welling.
        let ones = Tensor::ones((ctx.n_edges(), 1), x.dtype(), x.device())?;
        let deg = (ctx.aggregate(&ones, Aggregation::Sum)? + 1.0)?; // (N, 1)
        let inv_sqrt = deg.sqrt()?.recip()?;
        let norm = (inv_sqrt.index_select(ctx.receivers(), 0)?
            * inv_sqrt.index_select(ctx.senders(), 0)?)?;
        let xj = ctx.sender(x, &self.rho, self.cfg.messages)?;
        let msgs = self.lin_nb.forward(&xj)?.broadcast_mul(&norm)?;
        let agg = ctx.aggregate(&msgs, Aggregation::Sum)?;
        debug_assert_eq!(agg.dims()[0], n);
        self.lin_self.forward(x)? + agg
    }
}
