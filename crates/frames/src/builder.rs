//! The frame builder interface: positions, a neighbourhood graph and invariant node features in,
//! one orthogonal frame per node out.

use candle_core::{Result, Tensor};

use crate::local_frames::LocalFrames;

/// Inputs of a [`FrameBuilder`].
///
/// # Shapes
/// - `pos`: `(N, d)`; `edge_index`: `(2, E)` u32, row 0 the sender; `batch`: `(N,)` sorted graph
///   ids or `None` for one graph; `scalars`: `(N, S)` invariant node features or `None`.
#[derive(Debug, Clone, Copy)]
pub struct FrameInput<'a> {
    /// Node positions.
    pub pos: &'a Tensor,
    /// The neighbourhood graph the frames are predicted from.
    pub edge_index: &'a Tensor,
    /// Graph id of every node (needed by per-graph controls).
    pub batch: Option<&'a Tensor>,
    /// Invariant node features (learned frames may use them).
    pub scalars: Option<&'a Tensor>,
}

/// Anything that predicts local frames. Equivariant builders satisfy
/// `R(Qx + t) = R(x) Q^T` for every `Q` in O(d) (or SO(d) where documented).
pub trait FrameBuilder: std::fmt::Debug + Send + Sync {
    /// Builds the frames.
    fn build(&self, input: &FrameInput) -> Result<LocalFrames>;

    /// Whether the builder reads [`FrameInput::edge_index`]. The controls that ignore the
    /// neighbourhood return false, so that models can skip building a graph nobody reads
    /// (plain PointNet++ would otherwise pay for TF-PointNet++'s kNN search).
    fn needs_graph(&self) -> bool {
        true
    }

    /// Whether the builder claims O(d)-equivariance (false for the controls).
    fn is_equivariant(&self) -> bool;

    /// A short name for reports.
    fn name(&self) -> &'static str;

    /// Restarts the builder's random stream, if it has one (the random controls). Training
    /// calls this at every epoch start so a resumed run draws the same frames as an
    /// uninterrupted one.
    fn reseed(&self, _seed: u64) -> Result<()> {
        Ok(())
    }
}
