//! Neighbourhood geometry shared by the frame builders: relative vectors, distances, the
//! envelope, and per-node neighbour lists ordered by distance.

use std::sync::Arc;

use candle_core::{DType, Result, Tensor};
use rayon::prelude::*;
use tf_graphs::host_positions;

use crate::local_frames::split_edges;

/// Per-edge relative vectors `x_j - x_i` `(E, d)` and distances `(E, 1)` (with a tiny epsilon
/// so duplicate points give a zero unit vector and a finite gradient, not NaN). As candle ops:
/// the portable path of the fused `edge_rows` (learned frames) op, and its test reference.
pub(crate) fn relative(pos: &Tensor, edge_index: &Tensor) -> Result<(Tensor, Tensor)> {
    let (src, dst) = split_edges(edge_index)?;
    let rel = (pos.index_select(&src, 0)? - pos.index_select(&dst, 0)?)?;
    let dist = (rel.sqr()?.sum_keepdim(1)? + 1e-24)?.sqrt()?;
    Ok((rel, dist))
}

/// Smooth cutoff `(1 - u^2)^2` for `u = r / r_c < 1`, zero beyond: 1 at the centre, value and
/// slope vanish at the cutoff, so neighbours entering the radius change frames continuously.
/// As candle ops: the portable path of the fused `edge_rows` op, and its test reference.
pub(crate) fn envelope(dist: &Tensor, cutoff: f64) -> Result<Tensor> {
    let u2 = (dist / cutoff)?.sqr()?.clamp(0.0, 1.0)?;
    (u2.affine(-1.0, 1.0))?.sqr()
}

/// An `edge_index` on the host: senders and receivers, checked against the node count.
pub(crate) struct HostEdges {
    pub(crate) src: Vec<u32>,
    /// Shared with the edge network's kernel, which keeps it for its backward.
    pub(crate) dst: Arc<Vec<u32>>,
    /// The node count they were checked against.
    pub(crate) n: usize,
    /// Edge ids by receiver (a counting sort, edge order within each receiver): node `i`
    /// receives `by_receiver[start[i]..start[i + 1]]`, from the senders at the same places
    /// of `senders`. No list per node.
    start: Vec<usize>,
    by_receiver: Vec<u32>,
    senders: Vec<u32>,
}

impl HostEdges {
    pub(crate) fn new(edge_index: &Tensor, n: usize) -> Result<Self> {
        let (src, dst) = split_edges(edge_index)?;
        let (src, dst) = (src.to_vec1::<u32>()?, dst.to_vec1::<u32>()?);
        if let Some(e) = src
            .iter()
            .zip(&dst)
            .position(|(&j, &i)| j as usize >= n || i as usize >= n)
        {
            candle_core::bail!(
                "edge {e} ({} -> {}) refers to a node beyond {n}",
                src[e],
                dst[e]
            );
        }
        let mut start = vec![0usize; n + 1];
        for &i in &dst {
            start[i as usize + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut by_receiver = vec![0u32; dst.len()];
        let mut fill = start.clone();
        for (e, &i) in dst.iter().enumerate() {
            by_receiver[fill[i as usize]] = e as u32;
            fill[i as usize] += 1;
        }
        let senders = by_receiver.iter().map(|&e| src[e as usize]).collect();
        Ok(Self {
            src,
            dst: Arc::new(dst),
            n,
            start,
            by_receiver,
            senders,
        })
    }

    /// The edges node `i` receives, in edge order.
    fn received(&self, i: usize) -> &[u32] {
        &self.by_receiver[self.start[i]..self.start[i + 1]]
    }

    /// For every edge `j -> i`, the edge `i -> j` paired with it, or `u32::MAX`. Pairs are
    /// mutual (each edge has at most one partner, and it is the partner's partner): with
    /// repeated edges only the first of each direction pairs, and a self-loop has none. A
    /// kNN graph is mostly such pairs, and an edge network on the edge length alone gives both edges of a pair one value.
    pub(crate) fn reverse(&self) -> Vec<u32> {
        // The first edge `i -> j` for every edge `j -> i`: `j`'s senders compared 32 at a
        // time into a bit mask (vector compares, no branch per sender: an early exit
        // mispredicted about once per edge and took longer than the whole scan).
        let first: Vec<u32> = self
            .src
            .par_iter()
            .zip(self.dst.par_iter())
            .with_min_len(4096)
            .map(|(&j, &i)| {
                let a = self.start[j as usize];
                for (c, block) in self.senders[a..self.start[j as usize + 1]]
                    .chunks(32)
                    .enumerate()
                {
                    let mask = block
                        .iter()
                        .enumerate()
                        .fold(0u32, |m, (t, &s)| m | (u32::from(s == i) << t));
                    if mask != 0 {
                        return self.by_receiver[a + 32 * c + mask.trailing_zeros() as usize];
                    }
                }
                u32::MAX
            })
            .collect();
        // Mutual: `e` is also the first edge `j -> i` (not a repeat), and not a self-loop.
        first
            .par_iter()
            .enumerate()
            .with_min_len(4096)
            .map(|(e, &f)| {
                if f != u32::MAX && f as usize != e && first[f as usize] == e as u32 {
                    f
                } else {
                    u32::MAX
                }
            })
            .collect()
    }

    /// For every node, the edges it receives sorted by (distance, sender), at most `k` of
    /// them, padded with `u32::MAX`: `(N * k)` edge ids, from host positions `(N, d)`. Each
    /// node's `k` nearest are picked in parallel.
    pub(crate) fn nearest(&self, p: &[f64], d: usize, k: usize) -> Vec<u32> {
        let n = p.len() / d;
        let mut out = vec![u32::MAX; n * k];
        if k == 0 {
            return out;
        }
        out.par_chunks_mut(k)
            .enumerate()
            .for_each_init(Vec::new, |list, (i, row)| {
                list.clear();
                for &e in self.received(i) {
                    let j = self.src[e as usize] as usize;
                    let d2: f64 = (0..d).map(|a| (p[j * d + a] - p[i * d + a]).powi(2)).sum();
                    list.push((d2, j as u32, e));
                }
                // Distance, then sender, then edge id: a total order, so unstable sorting
                // gives what a stable sort by (distance, sender) gave.
                let cmp = |a: &(f64, u32, u32), b: &(f64, u32, u32)| {
                    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
                };
                if list.len() > k {
                    list.select_nth_unstable_by(k - 1, cmp);
                    list.truncate(k);
                }
                list.sort_unstable_by(cmp);
                for (slot, &(_, _, e)) in row.iter_mut().zip(list.iter()) {
                    *slot = e;
                }
            });
        out
    }

    /// `x_j - x_i` of the edges in `slots` (from [`nearest`](Self::nearest)) as `(N, k, d)`,
    /// zero for padding slots; differentiable in `pos`. Only the chosen edges are computed.
    pub(crate) fn slot_vectors(&self, pos: &Tensor, slots: &[u32], k: usize) -> Result<Tensor> {
        let (n, d) = (self.n, pos.dims2()?.1);
        // A padding slot takes node i for both ends: x_i - x_i is exactly zero.
        let (mut from, mut to) = (Vec::with_capacity(n * k), Vec::with_capacity(n * k));
        for (s, &e) in slots.iter().enumerate() {
            if e == u32::MAX {
                from.push((s / k) as u32);
                to.push((s / k) as u32);
            } else {
                from.push(self.src[e as usize]);
                to.push(self.dst[e as usize]);
            }
        }
        let dev = pos.device();
        let from = Tensor::from_vec(from, n * k, dev)?;
        let to = Tensor::from_vec(to, n * k, dev)?;
        (pos.index_select(&from, 0)? - pos.index_select(&to, 0)?)?.reshape((n, k, d))
    }
}

/// Checks shared by builders: positions `(N, d)` finite, `d >= 2`; returns them on the host
/// (f64) with `n` and `d`.
pub(crate) fn check_positions(pos: &Tensor) -> Result<(Vec<f64>, usize, usize)> {
    let (p, n, d) = host_positions(pos)?;
    if d < 2 {
        candle_core::bail!(
            "frames need d >= 2, got positions of shape {:?}",
            pos.dims()
        );
    }
    if !matches!(pos.dtype(), DType::F32 | DType::F64) {
        candle_core::bail!("positions must be f32 or f64, got {:?}", pos.dtype());
    }
    Ok((p, n, d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Reverse edges pair up mutually, on unsorted edges with a repeated edge (only the first
    /// of each direction pairs), a one-way edge and a self-loop (no partner).
    #[test]
    fn reverse_edges_pair_mutually() {
        // 0: 1->0, 1: 0->1, 2: 2->1, 3: 1->2, 4: 1->2 (repeat), 5: 3->0, 6: 2->2, 7: 0->3
        let src = [1u32, 0, 2, 1, 1, 3, 2, 0];
        let dst = [0u32, 1, 1, 2, 2, 0, 2, 3];
        let ei = Tensor::new(vec![src.to_vec(), dst.to_vec()], &Device::Cpu).unwrap();
        let edges = HostEdges::new(&ei, 4).unwrap();
        let none = u32::MAX;
        assert_eq!(edges.reverse(), vec![1, 0, 3, 2, none, 7, none, 5]);
        // A one-way edge.
        let ei = Tensor::new(vec![vec![0u32, 1], vec![1u32, 2]], &Device::Cpu).unwrap();
        assert_eq!(HostEdges::new(&ei, 3).unwrap().reverse(), vec![none, none]);
    }
}
