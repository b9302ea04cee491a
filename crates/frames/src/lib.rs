//! Local coordinate frames for tensor frames.
//!
//! A frame `R_i` in O(d) per node (rows = local axes), predicted equivariantly from the node's
//! neighbourhood: `R_i(Qx + t) = R_i(x) Q^T`. Features expressed in it, `f_i = rho(R_i) F_i`, are
//! invariant, which is what lets any network act on them.
//!
//! - [`LocalFrames`]: the `(N, d, d)` frames with determinants, inverse, `index_select`, edge
//!   transitions `R_i R_j^T`, local edge vectors `R_i (x_j - x_i)`, and to/from local features.
//! - Builders ([`FrameBuilder`]): [`LearnedFrames`] (the paper's), [`PcaFrames`],
//!   [`NearestFrames`], and the controls [`IdentityFrames`], [`RandomFrames`],
//!   [`RandomGlobalFrames`] (= data augmentation).
//! - [`FrameRefinement`]: `R_i <- V_i R_i` from invariant features.
//! - [`FrameConfig`]: the serde choice of builder ([`FrameChoice`]) and its settings, and the one
//!   factory ([`FrameConfig::builder`]) that models and diagnostics use.
//! - Degenerate neighbourhoods get a deterministic, orthogonal, finite fallback and are counted
//!   ([`LocalFrames::degenerate`]); see [`orthonormalize`](mod@orthonormalize).
//!
//! # Example
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use tf_frames::{FrameBuilder, FrameInput, PcaFrames};
//! use tf_graphs::knn_graph;
//! use tf_group::{RepAction, TensorReps};
//!
//! # fn main() -> candle_core::Result<()> {
//! let pos = Tensor::randn(0f64, 1.0, (50, 3), &Device::Cpu)?;
//! let edges = knn_graph(&pos, None, 8, false)?;
//! let frames = PcaFrames::default().build(&FrameInput { pos: &pos, edge_index: &edges, batch: None, scalars: None })?;
//! // A global vector field in local coordinates, and back.
//! let rho = RepAction::new(&TensorReps::vectors(1), 3)?;
//! let local = frames.to_local(&rho, &pos)?;
//! let back = frames.to_global(&rho, &local)?;
//! assert!((back - &pos)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()? < 1e-12);
//! # Ok(())
//! # }
//! ```

mod builder;
mod choice;
mod controls;
mod geometry;
mod host_grad;
mod learned;
mod local_frames;
mod nearest;
pub mod orthonormalize;
mod pca;
mod refine;

pub use builder::{FrameBuilder, FrameInput};
pub use choice::{FrameChoice, FrameConfig, UnknownFrames};
pub use controls::{IdentityFrames, RandomFrames, RandomGlobalFrames};
pub use learned::{LearnedFrames, LearnedFramesConfig};
pub use local_frames::{split_edges, LocalFrames};
pub use nearest::NearestFrames;
pub use orthonormalize::{Handedness, Orthonormalize};
pub use pca::PcaFrames;
pub use refine::FrameRefinement;
