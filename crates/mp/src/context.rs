//! What every tensor-frames layer receives: the graph, the frames, and the declared inputs
//! already expressed in the receiver's frame.
//!
//! A layer declares each input by the method it calls:
//! - **local** node features (in their own node's frame): [`GraphContext::sender`] transports
//!   them along each edge with `rho(R_i R_j^T)` (or not at all with scalar messages);
//!   [`GraphContext::receiver`] reads the receiver's own features, already in its frame;
//! - **global** node or edge features (global coordinates): [`GraphContext::node_to_local`],
//!   [`GraphContext::edge_to_local`] apply `rho(R_i)`;
//! - **invariant** inputs (distances, labels) need nothing.
//!
//! The local edge vector `R_i (x_j - x_i)` and the distance come ready. Everything handed to the
//! layer is invariant, so the rest of the layer may be any candle code.
//!
//! # Shapes
//! `pos (N, d)`, `edge_index (2, E)` (row 0 sender `j`, row 1 receiver `i`), frames
//! `(N, d, d)`; per-edge outputs are `(E, C)`, per-node `(N, C)`.

use std::sync::{Arc, OnceLock};

use candle_core::{bail, Result, Tensor};
use tf_frames::{split_edges, LocalFrames};
use tf_graphs::{scatter_max, scatter_mean, scatter_softmax, scatter_sum};
use tf_group::small_matmul::rotate_last_axis;
use tf_group::RepAction;

/// Whether messages carry tensors (the paper's method) or treat local features as scalars (the
/// paper's ablation: no transport between frames).
/// In configurations: `"tensorial"` or `"scalar"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Messages {
    /// Sender features are transported into the receiver's frame with `rho(R_i R_j^T)`.
    #[default]
    Tensorial,
    /// Sender features are used as they are in the sender's own frame.
    Scalar,
}

/// How messages are combined at the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// Sum.
    Sum,
    /// Mean (zero for nodes without messages).
    Mean,
    /// Channel-wise maximum (zero for nodes without messages).
    Max,
}

/// The graph, frames and per-edge geometry of one forward pass; build once, share between the
/// layers of a network that use the same graph.
#[derive(Debug, Clone)]
pub struct GraphContext {
    frames: LocalFrames,
    src: Tensor,
    dst: Tensor,
    n_nodes: usize,
    /// Receiver frames per edge, and the senders' frames (per node), kept to form
    /// `R_i R_j^T` on first use: scalar messages never pay for the transitions.
    ri: Tensor,
    src_frames: Tensor,
    transitions: Arc<OnceLock<Tensor>>,
    edge_vectors: Tensor,
    distances: Tensor,
}

impl GraphContext {
    /// Precomputes `R_i R_j^T`, `R_i (x_j - x_i)` and `|x_j - x_i|` for every edge of a graph on
    /// one point set.
    pub fn new(pos: &Tensor, edge_index: &Tensor, frames: LocalFrames) -> Result<Self> {
        Self::bipartite(pos, &frames.clone(), pos, frames, edge_index)
    }

    /// The same for a bipartite graph: senders `j` index `src_pos`/`src_frames`, receivers `i`
    /// index `dst_pos`/`dst_frames` (e.g. all points -> sampled centres, coarse -> fine points).
    /// Per-node methods ([`node_to_local`](Self::node_to_local), aggregation) refer to the
    /// receivers.
    pub fn bipartite(
        src_pos: &Tensor,
        src_frames: &LocalFrames,
        dst_pos: &Tensor,
        dst_frames: LocalFrames,
        edge_index: &Tensor,
    ) -> Result<Self> {
        let (n_src, d) = src_pos.dims2()?;
        let (n_nodes, d2) = dst_pos.dims2()?;
        for (name, fr, n) in [
            ("sender", src_frames, n_src),
            ("receiver", &dst_frames, n_nodes),
        ] {
            if fr.len() != n || fr.d() != d || d2 != d {
                bail!(
                    "{name} frames {:?} do not match positions ({n}, {d})",
                    fr.matrices().dims()
                );
            }
        }
        let (src, dst) = split_edges(edge_index)?;
        let check = |t: &Tensor, n: usize| -> Result<()> {
            if let Some(&bad) = t.to_vec1::<u32>()?.iter().find(|&&v| v as usize >= n) {
                bail!("edge_index refers to node {bad} but there are {n} nodes");
            }
            Ok(())
        };
        check(&src, n_src)?;
        check(&dst, n_nodes)?;
        let ri = dst_frames.matrices().index_select(&dst, 0)?;
        let rel = (src_pos.index_select(&src, 0)? - dst_pos.index_select(&dst, 0)?)?;
        let edge_vectors = rotate_last_axis(&ri, &rel.unsqueeze(1)?)?.squeeze(2)?;
        // epsilon: duplicate points give distance ~0 with a finite gradient
        let distances = (edge_vectors.sqr()?.sum_keepdim(1)? + 1e-24)?.sqrt()?;
        Ok(Self {
            frames: dst_frames,
            src,
            dst,
            n_nodes,
            ri,
            src_frames: src_frames.matrices().clone(),
            transitions: Arc::new(OnceLock::new()),
            edge_vectors,
            distances,
        })
    }

    /// The receivers' frames.
    pub fn frames(&self) -> &LocalFrames {
        &self.frames
    }

    /// Number of receiving nodes.
    pub fn n_nodes(&self) -> usize {
        self.n_nodes
    }

    /// Number of edges.
    pub fn n_edges(&self) -> usize {
        self.src.dims()[0]
    }

    /// Receivers `(E,)` u32.
    pub fn receivers(&self) -> &Tensor {
        &self.dst
    }

    /// Senders `(E,)` u32.
    pub fn senders(&self) -> &Tensor {
        &self.src
    }

    /// `R_i (x_j - x_i)`, `(E, d)`: invariant.
    pub fn edge_vectors(&self) -> &Tensor {
        &self.edge_vectors
    }

    /// `|x_j - x_i|`, `(E, 1)`: invariant.
    pub fn distances(&self) -> &Tensor {
        &self.distances
    }

    /// Local sender features for every edge, in the receiver's frame: `rho(R_i R_j^T) f_j`
    /// (tensorial) or `f_j` (scalar). `(E, rep_dim)`.
    pub fn sender(&self, local: &Tensor, rho: &RepAction, messages: Messages) -> Result<Tensor> {
        let xj = local.index_select(&self.src, 0)?;
        match messages {
            Messages::Tensorial => rho.apply(&xj, &self.transitions()?),
            Messages::Scalar => Ok(xj),
        }
    }

    /// `R_i R_j^T` for every edge, `(E, d, d)`: invariant. Computed once, on first use.
    pub fn transitions(&self) -> Result<Tensor> {
        if let Some(t) = self.transitions.get() {
            return Ok(t.clone());
        }
        // (R_i R_j^T)[a, b] = sum_c R_i[a, c] R_j[b, c]
        let rj = self.src_frames.index_select(&self.src, 0)?;
        let t = rotate_last_axis(&self.ri, &rj)?;
        Ok(self.transitions.get_or_init(|| t).clone())
    }

    /// The receiver's own local features for every edge, `(E, rep_dim)`.
    pub fn receiver(&self, local: &Tensor) -> Result<Tensor> {
        local.index_select(&self.dst, 0)
    }

    /// Global node features into their node's frame: `rho(R_i) F_i`, `(N, rep_dim)`.
    pub fn node_to_local(&self, global: &Tensor, rho: &RepAction) -> Result<Tensor> {
        self.frames.to_local(rho, global)
    }

    /// Global edge features into the receiver's frame: `rho(R_i) e_ji`, `(E, rep_dim)`.
    pub fn edge_to_local(&self, global: &Tensor, rho: &RepAction) -> Result<Tensor> {
        let ri = self.frames.matrices().index_select(&self.dst, 0)?;
        rho.apply(global, &ri)
    }

    /// Local node features back to global coordinates: `rho(R_i^T) f_i`.
    pub fn node_to_global(&self, local: &Tensor, rho: &RepAction) -> Result<Tensor> {
        self.frames.to_global(rho, local)
    }

    /// Combines per-edge messages `(E, C)` at their receivers: `(N, C)`.
    pub fn aggregate(&self, messages: &Tensor, how: Aggregation) -> Result<Tensor> {
        match how {
            Aggregation::Sum => scatter_sum(messages, &self.dst, self.n_nodes),
            Aggregation::Mean => scatter_mean(messages, &self.dst, self.n_nodes),
            Aggregation::Max => scatter_max(messages, &self.dst, self.n_nodes),
        }
    }

    /// Softmax of per-edge scores `(E, C)` over each receiver's incoming edges (attention).
    pub fn softmax(&self, scores: &Tensor) -> Result<Tensor> {
        scatter_softmax(scores, &self.dst, self.n_nodes)
    }
}
