//! Softmax attention over neighbours with tensorial keys and values (LoCaFormer-style).
//!
//! `q_i = W_q f_i`, `k_ij = W_k z_ij`, `v_ij = W_v z_ij` with
//! `z_ij = [rho(R_i R_j^T) f_j, R_i (x_j - x_i), |x_j - x_i|]`;
//! `f_i' = f_i + W_o concat_h sum_j softmax_j(q_i^h . k_ij^h / sqrt(c)) v_ij^h`.
//! All inputs are invariant, so the attention is any attention; the residual needs the output
//! rep to equal the input rep.
//!
//! # Shapes
//! `x (N, reps.dim(d))` local -> the same.

use candle_core::{bail, Result, Tensor};
use candle_nn::{Linear, Module, VarBuilder};
use tf_group::{RepAction, TensorReps};

use crate::context::{Aggregation, GraphContext, Messages};
use crate::layer::Layer;

/// Configuration of [`AttentionConv`].
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionConvConfig {
    /// Dimension `d`.
    pub d: usize,
    /// Input and output rep.
    pub reps: TensorReps,
    /// Attention heads.
    pub heads: usize,
    /// Channels per head for queries, keys and values.
    pub head_dim: usize,
    /// Tensorial or scalar messages.
    pub messages: Messages,
}

/// Neighbourhood attention with tensor frames; weights `q`, `k`, `v`, `o` under the `VarBuilder`.
#[derive(Debug, Clone)]
pub struct AttentionConv {
    cfg: AttentionConvConfig,
    rho: RepAction,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
}

impl AttentionConv {
    /// Builds the layer.
    pub fn new(cfg: AttentionConvConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.heads == 0 || cfg.head_dim == 0 {
            bail!("attention needs heads > 0 and head_dim > 0");
        }
        let dim = cfg.reps.dim(cfg.d);
        let z = dim + cfg.d + 1;
        let hc = cfg.heads * cfg.head_dim;
        Ok(Self {
            rho: RepAction::new(&cfg.reps, cfg.d)?,
            q: candle_nn::linear(dim, hc, vb.pp("q"))?,
            k: candle_nn::linear(z, hc, vb.pp("k"))?,
            v: candle_nn::linear(z, hc, vb.pp("v"))?,
            o: candle_nn::linear(hc, dim, vb.pp("o"))?,
            cfg,
        })
    }
}

impl Layer for AttentionConv {
    fn in_reps(&self) -> &TensorReps {
        &self.cfg.reps
    }

    fn out_reps(&self) -> &TensorReps {
        &self.cfg.reps
    }

    fn forward(&self, ctx: &GraphContext, x: &Tensor) -> Result<Tensor> {
        let (h, c) = (self.cfg.heads, self.cfg.head_dim);
        let e = ctx.n_edges();
        let xj = ctx.sender(x, &self.rho, self.cfg.messages)?;
        let z = Tensor::cat(&[&xj, ctx.edge_vectors(), ctx.distances()], 1)?;
        let q = ctx.receiver(&self.q.forward(x)?)?.reshape((e, h, c))?;
        let k = self.k.forward(&z)?.reshape((e, h, c))?;
        let scores = ((q * k)?.sum(2)? / (c as f64).sqrt())?; // (E, H)
        let alpha = ctx.softmax(&scores)?;
        let v = self.v.forward(&z)?.reshape((e, h, c))?;
        let weighted = v.broadcast_mul(&alpha.unsqueeze(2)?)?.reshape((e, h * c))?;
        let agg = ctx.aggregate(&weighted, Aggregation::Sum)?;
        x + self.o.forward(&agg)?
    }
}
