//! Farthest point sampling per graph of a batch.
//!
//! Greedy: start from one point, then repeatedly take the point farthest from all chosen ones
//! (ties: lowest index). `O(N M d)` per graph for `M` samples; deterministic given the start rule.

use candle_core::{bail, Result, Tensor};

use crate::points::{host_positions, segments};

/// Where each graph's sampling starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FpsStart {
    /// The first point of each graph (PyG's `random_start=False`).
    First,
    /// A point chosen by a seeded hash of the graph index (reproducible, not biased to index 0).
    Seeded(u64),
    /// The point farthest from the graph's centroid (ties: lowest index). Depends on geometry
    /// only, so the samples are invariant under rotations, reflections, translations *and*
    /// permutations of the points: the start rule for equivariant models.
    FarthestFromCentroid,
}

/// Samples `ceil(ratio * n_g)` points of every graph (at least one point of a non-empty graph).
/// Returns the global indices of the samples `(M,)` as u32, graph by graph, in selection order.
pub fn farthest_point_sampling(
    pos: &Tensor,
    batch: Option<&Tensor>,
    ratio: f64,
    start: FpsStart,
) -> Result<Tensor> {
    if !(ratio > 0.0 && ratio <= 1.0) {
        bail!("fps ratio must be in (0, 1], got {ratio}");
    }
    let (flat, n, d) = host_positions(pos)?;
    let mut out: Vec<u32> = Vec::new();
    for (g, seg) in segments(batch, n)?.into_iter().enumerate() {
        let m = seg.len();
        if m == 0 {
            continue;
        }
        let samples = ((ratio * m as f64).ceil() as usize).clamp(1, m);
        let pts = &flat[seg.start * d..seg.end * d];
        let first = match start {
            FpsStart::First => 0,
            FpsStart::Seeded(seed) => (splitmix(seed ^ g as u64) % m as u64) as usize,
            FpsStart::FarthestFromCentroid => {
                let mut c = vec![0.0; d];
                for p in pts.chunks_exact(d) {
                    c.iter_mut().zip(p).for_each(|(a, b)| *a += b / m as f64);
                }
                let dist =
                    |j: usize| -> f64 { (0..d).map(|a| (pts[j * d + a] - c[a]).powi(2)).sum() };
                (0..m).fold(0, |best, j| if dist(j) > dist(best) { j } else { best })
            }
        };
        let mut best = vec![f64::INFINITY; m];
        let mut current = first;
        for _ in 0..samples {
            out.push((seg.start + current) as u32);
            let c = &pts[current * d..(current + 1) * d];
            let mut arg = 0;
            let mut far = f64::NEG_INFINITY;
            for (j, b) in best.iter_mut().enumerate() {
                let p = &pts[j * d..(j + 1) * d];
                let d2: f64 = p.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum();
                if d2 < *b {
                    *b = d2;
                }
                if *b > far {
                    far = *b;
                    arg = j;
                }
            }
            current = arg;
        }
    }
    let len = out.len();
    Tensor::from_vec(out, len, pos.device())
}

/// SplitMix64: a tiny, well-mixed hash so seeded starts do not need an RNG dependency.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
