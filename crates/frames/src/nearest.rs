//! Nearest-neighbour Gram-Schmidt frames: the neighbour vectors `x_j - x_i` in order of distance
//! (ties by index), orthonormalised greedily. O(d)-equivariant and differentiable; nodes with
//! fewer than `d` independent neighbour vectors are completed with the global axes and counted.

use candle_core::Result;

use crate::builder::{FrameBuilder, FrameInput};
use crate::geometry::{check_positions, HostEdges};
use crate::local_frames::LocalFrames;
use crate::orthonormalize::{orthonormalize, Orthonormalize};

/// Gram-Schmidt of the nearest neighbour vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NearestFrames {
    /// How many nearest neighbours are offered as candidates per `d` (default 3: `3d`).
    pub candidates_per_dim: usize,
}

impl Default for NearestFrames {
    fn default() -> Self {
        Self {
            candidates_per_dim: 3,
        }
    }
}

impl FrameBuilder for NearestFrames {
    fn build(&self, input: &FrameInput) -> Result<LocalFrames> {
        let (p, n, d) = check_positions(input.pos)?;
        let k = self.candidates_per_dim.max(1) * d;
        let edges = HostEdges::new(input.edge_index, n)?;
        let cands = edges.slot_vectors(input.pos, &edges.nearest(&p, d, k), k)?;
        let (frames, degenerate) = orthonormalize(&cands, &Orthonormalize::new(0))?;
        LocalFrames::new(frames, degenerate.iter().filter(|&&x| x).count())
    }

    fn is_equivariant(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "nearest"
    }
}
