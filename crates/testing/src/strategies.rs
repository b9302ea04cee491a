//! Proptest strategies with small bounded domains: never arbitrary floats, so no NaN or huge
//! magnitudes sneak in; multi-part cases are `Debug` structs so shrunk failures read well.

use candle_core::{DType, Device, Result, Tensor};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Uniform};
use tf_group::{Parity, RepTerm, TensorReps};

/// Dimensions exercised by default: `d` in `2..=6`.
pub fn dim() -> impl Strategy<Value = usize> {
    2usize..=6
}

/// A seed for deterministic draws derived inside a case (group elements, weights).
pub fn seed() -> impl Strategy<Value = u64> {
    any::<u64>()
}

/// Reps with `1..=max_terms` terms, multiplicities `1..=max_mul`, orders `0..=max_order`, both
/// parities.
pub fn reps(
    max_order: usize,
    max_terms: usize,
    max_mul: usize,
) -> impl Strategy<Value = TensorReps> {
    let term =
        (1..=max_mul, 0..=max_order, any::<bool>()).prop_map(|(mul, order, pseudo)| RepTerm {
            mul,
            order,
            parity: if pseudo {
                Parity::Pseudo
            } else {
                Parity::Normal
            },
        });
    prop::collection::vec(term, 1..=max_terms).prop_map(TensorReps::from_terms)
}

/// A point cloud of `n_points` points in `[-1, 1]^d`, row-major, f64.
#[derive(Debug, Clone, PartialEq)]
pub struct PointCloud {
    /// Dimension.
    pub d: usize,
    /// Row-major `(n, d)` coordinates.
    pub coords: Vec<f64>,
}

impl PointCloud {
    /// Number of points.
    pub fn len(&self) -> usize {
        self.coords.len() / self.d
    }

    /// True if there are no points.
    pub fn is_empty(&self) -> bool {
        self.coords.is_empty()
    }

    /// The points as an `(n, d)` tensor.
    pub fn tensor(&self, dtype: DType, device: &Device) -> Result<Tensor> {
        Tensor::from_slice(&self.coords, (self.len(), self.d), device)?.to_dtype(dtype)
    }

    /// `n` points on the unit sphere in 3D (a Fibonacci lattice: near-uniform, deterministic);
    /// every point is also its own exact outward normal.
    pub fn sphere(n: usize) -> Self {
        let mut coords = Vec::with_capacity(3 * n);
        for i in 0..n {
            let z = 1.0 - 2.0 * (i as f64 + 0.5) / n as f64;
            let r = (1.0 - z * z).sqrt();
            let phi = i as f64 * 2.399_963_229_728_653; // the golden angle
            coords.extend([r * phi.cos(), r * phi.sin(), z]);
        }
        Self { d: 3, coords }
    }

    /// `n` uniform points in `[-1, 1]^d` from a seed.
    pub fn uniform(d: usize, n: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let uni = Uniform::new_inclusive(-1.0, 1.0).expect("valid range");
        Self {
            d,
            coords: (0..n * d).map(|_| uni.sample(&mut rng)).collect(),
        }
    }
}

/// Point clouds in dimension `d` with a point count in `n`.
pub fn point_cloud(
    d: usize,
    n: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = PointCloud> {
    (n, seed()).prop_map(move |(n, s)| PointCloud::uniform(d, n, s))
}

/// A directed graph as an edge list `(sender, receiver)` over `n_nodes` nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// Number of nodes.
    pub n_nodes: usize,
    /// Senders (row 0 of `edge_index`).
    pub src: Vec<u32>,
    /// Receivers (row 1 of `edge_index`).
    pub dst: Vec<u32>,
}

impl Graph {
    /// `edge_index` as a `(2, E)` u32 tensor, row 0 the sender.
    pub fn edge_index(&self, device: &Device) -> Result<Tensor> {
        let mut flat = self.src.clone();
        flat.extend_from_slice(&self.dst);
        Tensor::from_vec(flat, (2, self.src.len()), device)
    }

    /// Number of edges.
    pub fn n_edges(&self) -> usize {
        self.src.len()
    }
}

/// Random directed graphs on `n_nodes` nodes with `0..=max_edges` edges (self-loops and repeated
/// edges allowed: layers must cope with both).
pub fn graph(n_nodes: usize, max_edges: usize) -> impl Strategy<Value = Graph> {
    let node = 0..n_nodes as u32;
    prop::collection::vec((node.clone(), node), 0..=max_edges).prop_map(move |edges| Graph {
        n_nodes,
        src: edges.iter().map(|e| e.0).collect(),
        dst: edges.iter().map(|e| e.1).collect(),
    })
}

/// A feature matrix `(n, rep_dim)` with entries in `[-1, 1]` from a seed.
pub fn features(
    n: usize,
    width: usize,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let uni = Uniform::new_inclusive(-1.0, 1.0).expect("valid range");
    let data: Vec<f64> = (0..n * width).map(|_| uni.sample(&mut rng)).collect();
    Tensor::from_vec(data, (n, width), device)?.to_dtype(dtype)
}
