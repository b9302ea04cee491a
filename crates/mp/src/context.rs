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

use candle_core::{bail, Result, Tensor};
use tf_frames::{split_edges, LocalFrames};
use tf_graphs::{scatter_max, scatter_mean, scatter_softmax, scatter_sum};
use tf_group::RepAction;

/// Whether messages carry tensors (the paper's method) or treat local features as scalars (the
/// paper's ablation: no transport between frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
    transitions: Tensor,
    edge_vectors: Tensor,
    distances: Tensor,
}

impl GraphContext {
    /// Precomputes `R_i R_j^T`, `R_i (x_j - x_i)` and `|x_j - x_i|` for every edge.
    pub fn new(pos: &Tensor, edge_index: &Tensor, frames: LocalFrames) -> Result<Self> {
        let (n_nodes, d) = pos.dims2()?;
        if frames.len() != n_nodes || frames.d() != d {
            bail!(
                "frames {:?} do not match positions {:?}",
                frames.matrices().dims(),
                pos.dims()
            );
        }
        let (src, dst) = split_edges(edge_index)?;
        let check = |t: &Tensor| -> Result<()> {
            if let Some(&bad) = t.to_vec1::<u32>()?.iter().find(|&&v| v as usize >= n_nodes) {
                bail!("edge_index refers to node {bad} but there are {n_nodes} nodes");
            }
            Ok(())
        };
        check(&src)?;
        check(&dst)?;
        let transitions = frames.transitions(edge_index)?;
        let edge_vectors = frames.local_edge_vectors(pos, edge_index)?;
        // epsilon: duplicate points give distance ~0 with a finite gradient
        let distances = (edge_vectors.sqr()?.sum_keepdim(1)? + 1e-24)?.sqrt()?;
        Ok(Self {
            frames,
            src,
            dst,
            n_nodes,
            transitions,
            edge_vectors,
            distances,
        })
    }

    /// The frames.
    pub fn frames(&self) -> &LocalFrames {
        &self.frames
    }

    /// Number of nodes.
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
            Messages::Tensorial => rho.apply(&xj, &self.transitions),
            Messages::Scalar => Ok(xj),
        }
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
