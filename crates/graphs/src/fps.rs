//! Farthest point sampling per graph of a batch.
//!
//! Greedy: start from one point, then repeatedly take the point farthest from all chosen ones
//! (ties: lowest index). `O(N M d)` per graph for `M` samples; deterministic given the start rule.

use candle_core::{bail, Result, Tensor};
use rayon::prelude::*;

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
    // Graphs are independent: sampled in parallel, concatenated in graph order.
    let per_graph: Vec<Vec<u32>> = segments(batch, n)?
        .into_par_iter()
        .enumerate()
        .map(|(g, seg)| {
            let m = seg.len();
            if m == 0 {
                return Vec::new();
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
            sample_graph(pts, d, first, samples)
                .into_iter()
                .map(|j| (seg.start + j) as u32)
                .collect()
        })
        .collect();
    let out: Vec<u32> = per_graph.concat();
    let len = out.len();
    Tensor::from_vec(out, len, pos.device())
}

/// Greedy farthest point sampling of one graph's points `pts` (row-major `(m, d)`) from
/// `first`: `samples` local indices in selection order. The coordinates go to one column per
/// axis and each step runs two passes over the points, the distance update and then the
/// maximum, which vectorise (one pass that tracked the running maximum was a dependent chain
/// per point, and read the coordinates with a stride of `d`). The distances are summed over
/// the axes in order, with separate products and sums, exactly as `(p - c) . (p - c)`, and
/// ties still go to the lowest index, so the samples are the same.
fn sample_graph(pts: &[f64], d: usize, first: usize, samples: usize) -> Vec<usize> {
    let m = pts.len() / d;
    let cols: Vec<Vec<f64>> = (0..d)
        .map(|a| pts.iter().skip(a).step_by(d).copied().collect())
        .collect();
    let mut best = vec![f64::INFINITY; m];
    let mut d2 = vec![0.0; m];
    let mut out = Vec::with_capacity(samples);
    let mut current = first;
    for _ in 0..samples {
        out.push(current);
        for (a, col) in cols.iter().enumerate() {
            let c = col[current];
            if a == 0 {
                d2.iter_mut()
                    .zip(col)
                    .for_each(|(o, &x)| *o = (x - c) * (x - c));
            } else {
                d2.iter_mut()
                    .zip(col)
                    .for_each(|(o, &x)| *o += (x - c) * (x - c));
            }
        }
        best.iter_mut().zip(&d2).for_each(|(b, &v)| *b = b.min(v));
        let far = best.iter().fold(f64::NEG_INFINITY, |f, &b| f.max(b));
        current = best.iter().position(|&b| b == far).unwrap_or(0);
    }
    out
}

/// SplitMix64: a tiny, well-mixed hash so seeded starts do not need an RNG dependency.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The one-pass loop `sample_graph` replaced: the running maximum tracked per point.
    fn reference(pts: &[f64], d: usize, first: usize, samples: usize) -> Vec<usize> {
        let m = pts.len() / d;
        let mut best = vec![f64::INFINITY; m];
        let (mut out, mut current) = (Vec::new(), first);
        for _ in 0..samples {
            out.push(current);
            let c = &pts[current * d..(current + 1) * d];
            let (mut arg, mut far) = (0, f64::NEG_INFINITY);
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
        out
    }

    /// Same samples as the reference, on clouds with duplicate points and on a lattice
    /// (many exactly equal distances, so the lowest-index tie rule decides).
    #[test]
    fn sample_graph_matches_the_one_pass_loop() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for d in 1..=5 {
            for m in [1usize, 2, 7, 64, 300] {
                let mut pts: Vec<f64> = (0..m * d).map(|_| rng.random_range(-1.0..1.0)).collect();
                if m > 2 {
                    let dup = pts[..d].to_vec();
                    pts[d..2 * d].copy_from_slice(&dup);
                }
                let lattice: Vec<f64> = (0..m * d).map(|i| ((i * 7) % 5) as f64).collect();
                for cloud in [&pts, &lattice] {
                    for samples in [1, m.div_ceil(3), m] {
                        let first = rng.random_range(0..m);
                        assert_eq!(
                            sample_graph(cloud, d, first, samples),
                            reference(cloud, d, first, samples),
                            "d = {d}, m = {m}, samples = {samples}"
                        );
                    }
                }
            }
        }
    }
}
