//! Entering and leaving the local frames.
//!
//! - [`Embed`]: global input features `F_i` (any rep) -> local `f_i = rho(R_i) F_i`, then a linear
//!   map to the network's hidden rep (allowed: local features are invariant).
//! - [`Readout`]: local hidden features -> linear map to the output rep, in local coordinates ->
//!   global `rho_out(R_i^T) o_i`. Normals are a `1n` output, classes a `Nx0n` output.
//!
//! # Shapes
//! `Embed`: `(N, in_reps.dim(d))` global -> `(N, hidden.dim(d))` local.
//! `Readout`: `(N, hidden.dim(d))` local -> `(N, out_reps.dim(d))` global.

use candle_core::{Result, Tensor};
use candle_nn::{Linear, Module, VarBuilder};
use tf_group::{RepAction, TensorReps};

use crate::context::GraphContext;

/// Global input features into the local frames, then to the hidden width.
#[derive(Debug, Clone)]
pub struct Embed {
    rho_in: RepAction,
    lin: Linear,
}

impl Embed {
    /// `in_reps` (global input) -> `hidden` (local) in dimension `d`.
    pub fn new(
        d: usize,
        in_reps: &TensorReps,
        hidden: &TensorReps,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            rho_in: RepAction::new(in_reps, d)?,
            lin: candle_nn::linear(in_reps.dim(d), hidden.dim(d), vb)?,
        })
    }

    /// `(N, in_dim)` global -> `(N, hidden_dim)` local.
    pub fn forward(&self, ctx: &GraphContext, global: &Tensor) -> Result<Tensor> {
        self.lin.forward(&ctx.node_to_local(global, &self.rho_in)?)
    }
}

/// Local hidden features to global outputs of a declared rep.
#[derive(Debug, Clone)]
pub struct Readout {
    rho_out: RepAction,
    lin: Linear,
}

impl Readout {
    /// `hidden` (local) -> `out_reps` (global) in dimension `d`.
    pub fn new(
        d: usize,
        hidden: &TensorReps,
        out_reps: &TensorReps,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            rho_out: RepAction::new(out_reps, d)?,
            lin: candle_nn::linear(hidden.dim(d), out_reps.dim(d), vb)?,
        })
    }

    /// `(N, hidden_dim)` local -> `(N, out_dim)` global.
    pub fn forward(&self, ctx: &GraphContext, local: &Tensor) -> Result<Tensor> {
        ctx.node_to_global(&self.lin.forward(local)?, &self.rho_out)
    }
}
