//! Radius and k-nearest-neighbour graphs within each graph of a batch.
//!
//! Edges follow the library convention: `edge_index[0] = j` (sender, the neighbour),
//! `edge_index[1] = i` (receiver, the centre). Edges are ordered by receiver, then by distance,
//! then by sender index, so the output is deterministic and a neighbour cap keeps the *nearest*
//! neighbours (never an arbitrary region of the cloud).
//!
//! Complexity: a cell grid per graph ([`crate::grid`]), `O(N log N)` to build and
//! `O(3^(d-1) log N + m log m)` per query with `m` candidates, instead of `O(N^2)` all pairs.
//! kNN grows the query radius geometrically from a density estimate until `k` neighbours are
//! inside it, which keeps the result exact.

use candle_core::{bail, Device, Result, Tensor};
use rayon::prelude::*;

use crate::grid::{extent, CellGrid};
use crate::points::{host_positions, segments};

/// Options of [`radius_graph`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RadiusGraph {
    /// Inclusive cutoff radius `r > 0`.
    pub radius: f64,
    /// At most this many neighbours per receiver (the nearest ones).
    pub max_neighbors: usize,
    /// Include `i -> i` edges.
    pub self_loops: bool,
}

/// Sorted, capped neighbour lists for every node of one graph, as `(sender, receiver)` pairs in
/// global numbering.
/// The `cap` nearest of `list` (distance, then index: deterministic), sorted. Called inside the
/// parallel per-query maps, so that only `cap` candidates per query are kept: on a surface the
/// density-based first radius finds hundreds of candidates, too many to hold for every query.
fn nearest(mut list: Vec<(f64, u32)>, cap: usize) -> Vec<(f64, u32)> {
    let cmp = |a: &(f64, u32), b: &(f64, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    if list.len() > cap {
        if cap > 0 {
            list.select_nth_unstable_by(cap - 1, cmp);
        }
        list.truncate(cap);
        list.shrink_to_fit();
    }
    list.sort_by(cmp);
    list
}

/// The `row.len()` nearest of `list` (at least that many), nearest first, ties by index, as
/// [`nearest`] orders them, written to `row`.
fn nearest_into(list: &mut [(f64, u32)], row: &mut [u32]) {
    let cap = row.len();
    let cmp = |a: &(f64, u32), b: &(f64, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    if list.len() > cap && cap > 0 {
        list.select_nth_unstable_by(cap - 1, cmp);
    }
    let best = &mut list[..cap];
    best.sort_unstable_by(cmp);
    for (o, &(_, j)) in row.iter_mut().zip(best.iter()) {
        *o = j;
    }
}

/// Starting radius (and grid) of a kNN search: the radius that holds ~`want` points at uniform
/// density over the bounding box. In 3D, point clouds usually sample surfaces, where that
/// volume estimate holds hundreds of candidates per query at 100k points; a sample of 32 points
/// tests the surface estimate instead and keeps it when it finds enough neighbours. The search
/// widens the radius when it finds too few, so this sets the cost, never the result.
fn knn_radius(pts: &[f64], d: usize, m: usize, want: usize, extent: f64) -> (f64, CellGrid<'_>) {
    if extent <= 0.0 {
        return (1.0, CellGrid::new(pts, d, 1.0)); // all points coincide: every distance is 0
    }
    let fraction = (want + 1) as f64 / m as f64;
    let volume = extent * fraction.powf(1.0 / d as f64);
    let grid = CellGrid::new(pts, d, volume);
    if d != 3 || m < 1024 {
        return (volume, grid);
    }
    // 1.5x: about twice the points of the estimate, so most queries succeed at once.
    let surface = 1.5 * extent * fraction.sqrt();
    let samples = 32;
    let found: usize = (0..samples)
        .map(|s| {
            let i = s * m / samples;
            let mut c = 0;
            grid.within(&pts[i * d..(i + 1) * d], surface, |_, _| c += 1);
            c
        })
        .sum();
    if found >= samples * (want + 1) {
        (surface, CellGrid::new(pts, d, surface))
    } else {
        (volume, grid)
    }
}

fn collect(
    lists: Vec<Vec<(f64, u32)>>,
    offset: usize,
    cap: usize,
    src: &mut Vec<u32>,
    dst: &mut Vec<u32>,
) {
    for (i, mut list) in lists.into_iter().enumerate() {
        list.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for &(_, j) in list.iter().take(cap) {
            src.push(j + offset as u32);
            dst.push((i + offset) as u32);
        }
    }
}

fn edge_tensor(src: Vec<u32>, dst: Vec<u32>, device: &Device) -> Result<Tensor> {
    let e = src.len();
    let mut flat = src;
    flat.extend(dst);
    Tensor::from_vec(flat, (2, e), device)
}

/// All pairs within `radius` inside each graph of the batch, capped at the `max_neighbors`
/// nearest per receiver. Returns `edge_index` `(2, E)` as u32.
pub fn radius_graph(pos: &Tensor, batch: Option<&Tensor>, opts: RadiusGraph) -> Result<Tensor> {
    if !(opts.radius.is_finite() && opts.radius > 0.0) {
        bail!("radius must be finite and positive, got {}", opts.radius);
    }
    let (flat, n, d) = host_positions(pos)?;
    let (mut src, mut dst) = (Vec::new(), Vec::new());
    for seg in segments(batch, n)? {
        let pts = &flat[seg.start * d..seg.end * d];
        let grid = CellGrid::new(pts, d, opts.radius);
        let lists: Vec<Vec<(f64, u32)>> = (0..seg.len())
            .into_par_iter()
            .map(|i| {
                let mut list = Vec::new();
                grid.within(&pts[i * d..(i + 1) * d], opts.radius, |j, d2| {
                    if j as usize != i || opts.self_loops {
                        list.push((d2, j));
                    }
                });
                nearest(list, opts.max_neighbors)
            })
            .collect();
        collect(lists, seg.start, opts.max_neighbors, &mut src, &mut dst);
    }
    edge_tensor(src, dst, pos.device())
}

/// The `k` nearest neighbours of every node within its graph (fewer if the graph is smaller),
/// excluding the node itself unless `self_loops`. Returns `edge_index` `(2, E)` as u32.
pub fn knn_graph(
    pos: &Tensor,
    batch: Option<&Tensor>,
    k: usize,
    self_loops: bool,
) -> Result<Tensor> {
    let (flat, n, d) = host_positions(pos)?;
    let (mut src, mut dst) = (Vec::new(), Vec::new());
    for seg in segments(batch, n)? {
        let pts = &flat[seg.start * d..seg.end * d];
        let (table, want) = knn_table(pts, d, k, self_loops);
        if want == 0 {
            continue;
        }
        src.reserve(table.len());
        dst.reserve(table.len());
        for (i, row) in table.chunks_exact(want).enumerate() {
            src.extend(row.iter().map(|j| j + seg.start as u32));
            dst.extend(std::iter::repeat_n((i + seg.start) as u32, want));
        }
    }
    edge_tensor(src, dst, pos.device())
}

/// The `k` nearest neighbours of each of the points `pts` (row-major `(m, d)`, one graph) as
/// one flat table `(m, want)` of indices, nearest first (ties by index), with `want = min(k,
/// m - 1)` (`m` with `self_loops`, which counts each point as its own neighbour): what
/// [`knn_graph`] returns, without the edge list, for callers that walk neighbourhoods on the
/// host (a million points with k = 32 is 128 MB here against 256 MB of edges and their copies).
pub fn knn_table(pts: &[f64], d: usize, k: usize, self_loops: bool) -> (Vec<u32>, usize) {
    let m = pts.len() / d.max(1);
    let want = k.min(if self_loops { m } else { m.saturating_sub(1) });
    if want == 0 {
        return (Vec::new(), 0);
    }
    let extent = extent(pts, d);
    let (r0, grid) = knn_radius(pts, d, m, want, extent);
    // Every query finds exactly `want` neighbours, so the result is one flat (m, want)
    // table; each thread reuses one candidate buffer (a fresh one per query was most of
    // the allocator's and the page clearing's work).
    let mut table = vec![0u32; m * want];
    table
        .par_chunks_mut(want)
        .enumerate()
        .for_each_init(Vec::new, |list, (i, row)| {
            let q = &pts[i * d..(i + 1) * d];
            let mut r = r0;
            loop {
                list.clear();
                grid.within(q, r, |j, d2| {
                    if j as usize != i || self_loops {
                        list.push((d2, j));
                    }
                });
                // Every point closer than the k-th found one is inside r: exact.
                if list.len() >= want || r.is_infinite() {
                    nearest_into(list, row);
                    return;
                }
                // Past the bounding box (its diagonal can exceed 2 * extent in high d),
                // one full scan ends the search.
                r = if r > 2.0 * extent + r0 {
                    f64::INFINITY
                } else {
                    2.0 * r
                };
            }
        });
    (table, want)
}

/// Bipartite radius neighbourhoods: for every query point `i` (receiver), the source points `j`
/// (senders) of the same graph within `radius`, nearest first, capped. `edge_index` row 0 indexes
/// `src_pos`, row 1 indexes `query_pos`. `self_loops` is ignored (the sets differ).
pub fn radius_neighbors(
    src_pos: &Tensor,
    src_batch: Option<&Tensor>,
    query_pos: &Tensor,
    query_batch: Option<&Tensor>,
    radius: f64,
    max_neighbors: usize,
) -> Result<Tensor> {
    if !(radius.is_finite() && radius > 0.0) {
        bail!("radius must be finite and positive, got {radius}");
    }
    bipartite(
        src_pos,
        src_batch,
        query_pos,
        query_batch,
        move |grid, q, _| {
            let mut list = Vec::new();
            grid.within(q, radius, |j, d2| list.push((d2, j)));
            list
        },
        radius,
        max_neighbors,
    )
}

/// Bipartite kNN: for every query point, the `k` nearest source points of the same graph.
pub fn knn_neighbors(
    src_pos: &Tensor,
    src_batch: Option<&Tensor>,
    query_pos: &Tensor,
    query_batch: Option<&Tensor>,
    k: usize,
) -> Result<Tensor> {
    bipartite(
        src_pos,
        src_batch,
        query_pos,
        query_batch,
        move |grid, q, extent| {
            let mut r = grid.cell();
            loop {
                let mut list = Vec::new();
                grid.within(q, r, |j, d2| list.push((d2, j)));
                if list.len() >= k.min(grid.len()) || r.is_infinite() {
                    return list;
                }
                // Far outside the sources (or very clustered data): one full scan ends the search.
                r = if r > 4.0 * extent + grid.cell() {
                    f64::INFINITY
                } else {
                    2.0 * r
                };
            }
        },
        f64::NAN,
        k,
    )
}

/// Shared driver of the bipartite queries: per graph, a grid over the sources, then `query` per
/// query point; `cell` NaN means "pick a cell from the density" (kNN).
fn bipartite<F>(
    src_pos: &Tensor,
    src_batch: Option<&Tensor>,
    query_pos: &Tensor,
    query_batch: Option<&Tensor>,
    query: F,
    cell: f64,
    cap: usize,
) -> Result<Tensor>
where
    F: Fn(&CellGrid, &[f64], f64) -> Vec<(f64, u32)> + Sync,
{
    let (sp, ns, d) = host_positions(src_pos)?;
    let (qp, nq, dq) = host_positions(query_pos)?;
    if d != dq {
        bail!("source points have d = {d} but query points d = {dq}");
    }
    let ssegs = segments(src_batch, ns)?;
    let qsegs = segments(query_batch, nq)?;
    let (mut src, mut dst) = (Vec::new(), Vec::new());
    for (g, qs) in qsegs.iter().enumerate() {
        let Some(ss) = ssegs.get(g) else { continue };
        if ss.is_empty() || qs.is_empty() {
            continue;
        }
        let pts = &sp[ss.start * d..ss.end * d];
        let m = ss.len();
        let extent = extent(pts, d);
        // kNN (no radius given): the grid of the kNN graph's first radius, which tries the
        // surface estimate before the volume one (a search widens it as needed).
        let grid = if cell.is_nan() {
            knn_radius(pts, d, m, cap, extent).1
        } else {
            CellGrid::new(pts, d, cell)
        };
        let lists: Vec<Vec<(f64, u32)>> = (qs.start..qs.end)
            .into_par_iter()
            .map(|i| nearest(query(&grid, &qp[i * d..(i + 1) * d], extent), cap))
            .collect();
        for (off, mut list) in lists.into_iter().enumerate() {
            list.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for &(_, j) in list.iter().take(cap) {
                src.push(j + ss.start as u32);
                dst.push((qs.start + off) as u32);
            }
        }
    }
    edge_tensor(src, dst, query_pos.device())
}
