//! The interface shared by tensor-frames layers: local features of one rep in, local features of
//! another rep out, given a [`GraphContext`].

use candle_core::{Result, Tensor};
use tf_group::TensorReps;

use crate::context::GraphContext;

/// A message passing layer acting on local (invariant) features.
///
/// # Shapes
/// `x (N, in_reps.dim(d))` local -> `(N, out_reps.dim(d))` local.
pub trait Layer: std::fmt::Debug {
    /// The rep of the input features.
    fn in_reps(&self) -> &TensorReps;
    /// The rep of the output features.
    fn out_reps(&self) -> &TensorReps;
    /// One layer of message passing.
    fn forward(&self, ctx: &GraphContext, x: &Tensor) -> Result<Tensor>;
}
