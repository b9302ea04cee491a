//! Tensor-frames message passing: make any message passing layer exactly O(d)-equivariant.
//!
//! A layer `f_i' = psi(f_i, AGG_j phi(f_i, f_j, e_ji, x_j - x_i))` becomes equivariant when phi
//! and psi receive, instead of the raw inputs, `f_i`, `rho(R_i R_j^T) f_j`, `rho_e(R_i) e_ji` and
//! `R_i (x_j - x_i)` (docs/method.md, section 4). Everything they see is then invariant, so they may be
//! any network. [`GraphContext`] hands a layer exactly these inputs, declared by the method it
//! calls (local, global or invariant); the rest is plain candle code.
//!
//! Worked examples: [`GcnConv`], [`EdgeConv`] and [`AttentionConv`], each with a scalar-message switch
//! ([`Messages::Scalar`], the paper's ablation). [`Embed`] and [`Readout`] move features into and
//! out of the local frames; [`LayerNet`] assembles frames, embedding, a layer and a readout into a
//! global-in, global-out network.
//!
//! # Example: a plain layer made equivariant
//! ```
//! use candle_core::{DType, Device, Module, Result, Tensor};
//! use candle_nn::{linear, Linear, VarBuilder, VarMap};
//! use tf_frames::{FrameBuilder, FrameInput, LearnedFrames, LearnedFramesConfig};
//! use tf_graphs::knn_graph;
//! use tf_group::{RepAction, TensorReps};
//! use tf_mp::{Aggregation, GraphContext, Messages};
//!
//! /// "Mean of transformed neighbours": any plain layer, written against GraphContext.
//! struct MeanConv { rho: RepAction, lin: Linear }
//! impl MeanConv {
//!     fn forward(&self, ctx: &GraphContext, x: &Tensor) -> Result<Tensor> {
//!         let xj = ctx.sender(x, &self.rho, Messages::Tensorial)?;     // local input: transported
//!         let m = self.lin.forward(&Tensor::cat(&[xj, ctx.edge_vectors().clone()], 1)?)?;
//!         ctx.aggregate(&m, Aggregation::Mean)
//!     }
//! }
//!
//! # fn main() -> Result<()> {
//! let (d, dev) = (3, Device::Cpu);
//! let reps = TensorReps::parse("4x0n+2x1n").expect("valid reps");
//! let vm = VarMap::new();
//! let vb = VarBuilder::from_varmap(&vm, DType::F64, &dev);
//! let frames = LearnedFrames::new(LearnedFramesConfig::new(d, 1.0), vb.pp("frames"))?;
//! let layer = MeanConv { rho: RepAction::new(&reps, d)?, lin: linear(reps.dim(d) + d, reps.dim(d), vb.pp("conv"))? };
//!
//! let pos = Tensor::randn(0f64, 1.0, (32, d), &dev)?;
//! let edges = knn_graph(&pos, None, 8, false)?;
//! let fr = frames.build(&FrameInput { pos: &pos, edge_index: &edges, batch: None, scalars: None })?;
//! let ctx = GraphContext::new(&pos, &edges, fr)?;
//! let global_in = Tensor::randn(0f64, 1.0, (32, reps.dim(d)), &dev)?;
//! let rho = RepAction::new(&reps, d)?;
//! let local_out = layer.forward(&ctx, &ctx.node_to_local(&global_in, &rho)?)?;
//! let global_out = ctx.node_to_global(&local_out, &rho)?; // O(3)-equivariant in global_in and pos
//! assert_eq!(global_out.dims(), &[32, reps.dim(d)]);
//! # Ok(())
//! # }
//! ```

mod attention;
mod context;
mod edgeconv;
mod gcn;
mod io;
mod layer;
mod zoo;

pub use attention::{AttentionConv, AttentionConvConfig};
pub use context::{Aggregation, GraphContext, Messages};
pub use edgeconv::{EdgeConv, EdgeConvConfig};
pub use gcn::{GcnConfig, GcnConv};
pub use io::{Embed, Readout};
pub use layer::Layer;
pub use zoo::{builtin_layer, LayerNet, LAYER_NAMES};
