//! Per-node orthogonal frames `R_i` (rows = local axes) and what they do to features and edges.
//!
//! # Shapes
//! - frames `(N, d, d)`, `det` `(N,)`
//! - `edge_index` `(2, E)` u32, row 0 the sender `j`, row 1 the receiver `i`
//! - transitions `R_i R_j^T`: `(E, d, d)`

use candle_core::{bail, Result, Tensor};
use tf_group::orthogonal::det_sign;
use tf_group::small_matmul::rotate_last_axis;
use tf_group::RepAction;

/// Local frames of `N` nodes in dimension `d`, with their determinants and how many nodes fell
/// back to the degenerate-neighbourhood rule.
#[derive(Debug, Clone)]
pub struct LocalFrames {
    matrices: Tensor,
    det: Tensor,
    degenerate: usize,
}

impl LocalFrames {
    /// Wraps orthogonal matrices `(N, d, d)` (rows = axes). The determinants are computed here.
    pub fn new(matrices: Tensor, degenerate: usize) -> Result<Self> {
        let (_, d, d2) = matrices.dims3()?;
        if d != d2 || d < 2 {
            bail!(
                "frames must be (N, d, d) with d >= 2, got {:?}",
                matrices.dims()
            );
        }
        let det = det_sign(&matrices)?;
        Ok(Self {
            matrices,
            det,
            degenerate,
        })
    }

    /// The matrices `(N, d, d)`.
    pub fn matrices(&self) -> &Tensor {
        &self.matrices
    }

    /// `det R_i` as `(N,)`, exactly +-1.
    pub fn det(&self) -> &Tensor {
        &self.det
    }

    /// Number of nodes whose frame used the degenerate fallback.
    pub fn degenerate(&self) -> usize {
        self.degenerate
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.matrices.dims()[0]
    }

    /// True if there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Dimension `d`.
    pub fn d(&self) -> usize {
        self.matrices.dims()[1]
    }

    /// `R_i^T = R_i^-1` as `(N, d, d)` (contiguous).
    pub fn inverse(&self) -> Result<Tensor> {
        self.matrices.transpose(1, 2)?.contiguous()
    }

    /// The frames of the nodes in `index` (e.g. sampled centres inheriting their frames).
    /// The degenerate count is that of the selected nodes' parents, conservatively kept.
    pub fn index_select(&self, index: &Tensor) -> Result<Self> {
        Ok(Self {
            matrices: self.matrices.index_select(index, 0)?,
            det: self.det.index_select(index, 0)?,
            degenerate: self.degenerate,
        })
    }

    /// Replaces the matrices with `V_i R_i` for invariant rotations `v (N, d, d)` (refinement).
    pub fn left_multiply(&self, v: &Tensor) -> Result<Self> {
        // (V R)[a, b] = sum_c V[a, c] R[c, b] = rotate_last_axis(V, R^T)
        let vr = rotate_last_axis(v, &self.inverse()?)?;
        Self::new(vr, self.degenerate)
    }

    /// Frame-to-frame transitions `U_ij = R_i R_j^T` for every edge, `(E, d, d)`; invariant under
    /// global transformations.
    pub fn transitions(&self, edge_index: &Tensor) -> Result<Tensor> {
        let (src, dst) = split_edges(edge_index)?;
        let ri = self.matrices.index_select(&dst, 0)?;
        let rj = self.matrices.index_select(&src, 0)?;
        // (R_i R_j^T)[a, b] = sum_c R_i[a, c] R_j[b, c]
        rotate_last_axis(&ri, &rj)
    }

    /// `R_i (x_j - x_i)` for every edge, `(E, d)`: the edge vector in the receiver's frame.
    pub fn local_edge_vectors(&self, pos: &Tensor, edge_index: &Tensor) -> Result<Tensor> {
        let (src, dst) = split_edges(edge_index)?;
        let rel = (pos.index_select(&src, 0)? - pos.index_select(&dst, 0)?)?;
        let ri = self.matrices.index_select(&dst, 0)?;
        rotate_last_axis(&ri, &rel.unsqueeze(1)?)?.squeeze(2)
    }

    /// Global features `F_i` -> local `f_i = rho(R_i) F_i`.
    pub fn to_local(&self, rho: &RepAction, global: &Tensor) -> Result<Tensor> {
        rho.apply(global, &self.matrices)
    }

    /// Local features `f_i` -> global `F_i = rho(R_i^T) f_i`.
    pub fn to_global(&self, rho: &RepAction, local: &Tensor) -> Result<Tensor> {
        rho.apply(local, &self.inverse()?)
    }
}

/// `(senders, receivers)` rows of an `edge_index (2, E)`, as contiguous u32 vectors.
pub fn split_edges(edge_index: &Tensor) -> Result<(Tensor, Tensor)> {
    let (two, _) = edge_index.dims2()?;
    if two != 2 {
        bail!("edge_index must be (2, E), got {:?}", edge_index.dims());
    }
    let e = edge_index.to_dtype(candle_core::DType::U32)?;
    Ok((e.get(0)?.contiguous()?, e.get(1)?.contiguous()?))
}
