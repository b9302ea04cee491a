//! Neighbourhood geometry shared by the frame builders: relative vectors, distances, the
//! envelope, and per-node neighbour lists ordered by distance.

use candle_core::{DType, Result, Tensor};
use tf_graphs::host_positions;

use crate::local_frames::split_edges;

/// Per-edge relative vectors `x_j - x_i` `(E, d)` and distances `(E, 1)` (with a tiny epsilon
/// so duplicate points give a zero unit vector and a finite gradient, not NaN).
pub(crate) fn relative(pos: &Tensor, edge_index: &Tensor) -> Result<(Tensor, Tensor)> {
    let (src, dst) = split_edges(edge_index)?;
    let rel = (pos.index_select(&src, 0)? - pos.index_select(&dst, 0)?)?;
    let dist = (rel.sqr()?.sum_keepdim(1)? + 1e-24)?.sqrt()?;
    Ok((rel, dist))
}

/// Smooth cutoff `(1 - u^2)^2` for `u = r / r_c < 1`, zero beyond: 1 at the centre, value and
/// slope vanish at the cutoff, so neighbours entering the radius change frames continuously.
pub(crate) fn envelope(dist: &Tensor, cutoff: f64) -> Result<Tensor> {
    let u2 = (dist / cutoff)?.sqr()?.clamp(0.0, 1.0)?;
    (u2.affine(-1.0, 1.0))?.sqr()
}

/// For every node, the edges it receives sorted by (distance, sender), at most `k` of them,
/// padded with `u32::MAX`. Returns `(N * k)` edge ids.
pub(crate) fn nearest_edges(pos: &Tensor, edge_index: &Tensor, k: usize) -> Result<Vec<u32>> {
    let (p, n, d) = host_positions(pos)?;
    let (src, dst) = split_edges(edge_index)?;
    let src = src.to_vec1::<u32>()?;
    let dst = dst.to_vec1::<u32>()?;
    let mut lists: Vec<Vec<(f64, u32, u32)>> = vec![Vec::new(); n];
    for (e, (&j, &i)) in src.iter().zip(&dst).enumerate() {
        let (j, i) = (j as usize, i as usize);
        if j >= n || i >= n {
            candle_core::bail!("edge {e} ({j} -> {i}) refers to a node beyond {n}");
        }
        let d2: f64 = (0..d).map(|a| (p[j * d + a] - p[i * d + a]).powi(2)).sum();
        lists[i].push((d2, j as u32, e as u32));
    }
    let mut out = vec![u32::MAX; n * k];
    for (i, mut list) in lists.into_iter().enumerate() {
        list.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (slot, &(_, _, e)) in list.iter().take(k).enumerate() {
            out[i * k + slot] = e;
        }
    }
    Ok(out)
}

/// Gathers per-edge vectors `(E, d)` into per-node candidate lists `(N, k, d)` following
/// `nearest_edges`; padding slots are zero vectors (which the orthonormaliser ignores).
pub(crate) fn gather_candidates(
    vectors: &Tensor,
    slots: &[u32],
    n: usize,
    k: usize,
) -> Result<Tensor> {
    let (e, d) = vectors.dims2()?;
    let dev = vectors.device();
    if e == 0 || k == 0 {
        return Tensor::zeros((n, k, d), vectors.dtype(), dev);
    }
    let idx: Vec<u32> = slots
        .iter()
        .map(|&s| if s == u32::MAX { 0 } else { s })
        .collect();
    let mask: Vec<f64> = slots
        .iter()
        .map(|&s| f64::from(u8::from(s != u32::MAX)))
        .collect();
    let idx = Tensor::from_vec(idx, n * k, dev)?;
    let mask = Tensor::from_vec(mask, (n * k, 1), dev)?.to_dtype(vectors.dtype())?;
    vectors
        .index_select(&idx, 0)?
        .broadcast_mul(&mask)?
        .reshape((n, k, d))
}

/// Checks shared by builders: positions `(N, d)` finite, `d >= 2`.
pub(crate) fn check_positions(pos: &Tensor) -> Result<(usize, usize)> {
    let (_, n, d) = host_positions(pos)?;
    if d < 2 {
        candle_core::bail!(
            "frames need d >= 2, got positions of shape {:?}",
            pos.dims()
        );
    }
    if !matches!(pos.dtype(), DType::F32 | DType::F64) {
        candle_core::bail!("positions must be f32 or f64, got {:?}", pos.dtype());
    }
    Ok((n, d))
}
