//! The message passing substrate: batched point-cloud graphs and segment reductions.
//!
//! Batches follow PyG: the graphs form one disjoint graph and a sorted `batch` vector `(N,)`
//! holds each node's graph id. Generic in the dimension `d` (a runtime value).
//!
//! - [`radius_graph`], [`knn_graph`]: neighbourhoods within each graph, nearest-first capped,
//!   deterministic, on a cell grid (not all pairs). `edge_index` is `(2, E)` u32 with row 0 the
//!   sender `j` and row 1 the receiver `i`.
//! - [`radius_neighbors`], [`knn_neighbors`]: the bipartite versions (query points against
//!   source points, e.g. sampled centres against all points), same conventions.
//! - [`farthest_point_sampling`]: per-graph FPS with a deterministic start rule.
//! - [`scatter_sum`], [`scatter_mean`], [`scatter_max`], [`scatter_softmax`]: differentiable,
//!   deterministic reductions of `(E, C)` messages onto `n` nodes; empty segments give zeros.
//! - [`host_positions`], [`segments`]: shared input validation (NaN/inf coordinates, unsorted
//!   batch vectors are errors naming the row).
//!
//! # Example
//! ```
//! use candle_core::{Device, Tensor};
//! use tf_graphs::{radius_graph, scatter_mean, RadiusGraph};
//!
//! # fn main() -> candle_core::Result<()> {
//! let pos = Tensor::new(&[[0.0f32, 0.0], [0.5, 0.0], [3.0, 0.0]], &Device::Cpu)?;
//! let edges = radius_graph(&pos, None, RadiusGraph { radius: 1.0, max_neighbors: 8, self_loops: false })?;
//! assert_eq!(edges.to_vec2::<u32>()?, vec![vec![1, 0], vec![0, 1]]); // senders; receivers
//! // average the senders' x coordinate at each receiver
//! let x = pos.narrow(1, 0, 1)?.contiguous()?.index_select(&edges.get(0)?, 0)?;
//! let mean = scatter_mean(&x, &edges.get(1)?, 3)?;
//! assert_eq!(mean.flatten_all()?.to_vec1::<f32>()?, vec![0.5, 0.0, 0.0]);
//! # Ok(())
//! # }
//! ```

mod fps;
mod grid;
mod neighbors;
mod points;
mod scatter;

pub use fps::{farthest_point_sampling, FpsStart};
pub use neighbors::{
    knn_graph, knn_neighbors, knn_table, radius_graph, radius_neighbors, RadiusGraph,
};
pub use points::{host_positions, segments};
pub use scatter::{scatter_max, scatter_mean, scatter_softmax, scatter_sum};
