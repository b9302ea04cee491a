//! Classical PCA normal estimation, the non-learned reference of the normal experiments.
//!
//! Per point: the covariance of its `k` nearest neighbours (itself included), centred at their
//! mean; the normal is the eigenvector of the smallest eigenvalue. PCA cannot tell inside from
//! outside, so an orientation heuristic is applied: the normal points away from the cloud's
//! centroid (right on convex shapes, wrong in concavities). Mean |cos| is therefore the fair
//! comparison with PCA; oriented cos measures the heuristic too.

use candle_core::{bail, Result};
use tf_graphs::knn_table;

use crate::scatter::Scatter;

/// PCA normals of one cloud `points (n * d)`, oriented away from the centroid.
pub fn pca_normals(points: &[f64], d: usize, k: usize) -> Result<Vec<f64>> {
    Ok(pca_fit(points, d, k)?.0)
}

/// PCA normals (oriented away from the centroid) and surface variation `λ_min / Σλ` per point:
/// `(n * d, n)`. The variation is 0 on a plane and `1 / d` for an isotropic neighbourhood; a
/// neighbourhood of coincident points gets a zero normal (the only choice that commutes with
/// every rotation) and variation `1 / d`.
pub fn pca_fit(points: &[f64], d: usize, k: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let fit = pca_fit_scales(points, d, &[k], false)?.remove(0);
    Ok((fit.normals, fit.variation))
}

/// One neighbourhood size's PCA fit of every point of a cloud.
pub(crate) struct ScaleFit {
    /// Normals, `n * d`, oriented away from the cloud's centroid.
    pub normals: Vec<f64>,
    /// Surface variation `λ_min / Σλ`, `n`.
    pub variation: Vec<f64>,
    /// Each point's offset from its neighbourhood's mean, in units of the neighbourhood's RMS
    /// spread, `n * d` (zero for a degenerate neighbourhood); empty unless asked for.
    pub offset: Vec<f64>,
}

/// [`pca_fit`] at several neighbour counts from one neighbour search: the `k` nearest are a
/// prefix of the `max(ks)` nearest (neighbours come nearest first, ties broken by index), so
/// each fit equals `pca_fit(points, d, k)`. `offsets`: also fill [`ScaleFit::offset`].
pub(crate) fn pca_fit_scales(
    points: &[f64],
    d: usize,
    ks: &[usize],
    offsets: bool,
) -> Result<Vec<ScaleFit>> {
    let n = points.len() / d.max(1);
    if n < LOCALITY_MIN || d == 0 || points.len() % d != 0 || d > 63 {
        return fit_scales(points, d, ks, offsets);
    }
    // Large clouds: fit in a space-filling-curve order, so that a neighbourhood's points sit
    // near each other in memory (in file order they are scattered, and past a few million
    // points every neighbour read is a cache miss), then put the results back in input order.
    let order = morton_order(points, d);
    let sorted: Vec<f64> = order
        .iter()
        .flat_map(|&i| points[i as usize * d..(i as usize + 1) * d].iter().copied())
        .collect();
    let fits = fit_scales(&sorted, d, ks, offsets)?;
    Ok(fits
        .into_iter()
        .map(|f| {
            let mut out = ScaleFit {
                normals: vec![0.0; n * d],
                variation: vec![0.0; n],
                offset: vec![0.0; f.offset.len()],
            };
            for (p, &i) in order.iter().enumerate() {
                let (i, r) = (i as usize, p * d..(p + 1) * d);
                out.normals[i * d..(i + 1) * d].copy_from_slice(&f.normals[r.clone()]);
                out.variation[i] = f.variation[p];
                if !f.offset.is_empty() {
                    out.offset[i * d..(i + 1) * d].copy_from_slice(&f.offset[r]);
                }
            }
            out
        })
        .collect())
}

/// Clouds from this size on are fitted in [`morton_order`] (smaller ones fit in cache as they
/// come, and keep their results bit for bit).
const LOCALITY_MIN: usize = 200_000;

/// A permutation of the points along a Z-order (Morton) curve of their bounding box, `63 / d`
/// bits per axis: points near each other in space mostly come near each other in the order.
fn morton_order(points: &[f64], d: usize) -> Vec<u32> {
    use rayon::prelude::*;
    let bits = (63 / d).min(21);
    let (mut lo, mut hi) = (vec![f64::INFINITY; d], vec![f64::NEG_INFINITY; d]);
    for p in points.chunks_exact(d) {
        for a in 0..d {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    let cells = ((1u64 << bits) - 1) as f64;
    let mut keyed: Vec<(u64, u32)> = points
        .par_chunks_exact(d)
        .enumerate()
        .map(|(i, p)| {
            let mut key = 0u64;
            let q: Vec<u64> = (0..d)
                .map(|a| {
                    let span = (hi[a] - lo[a]).max(1e-300);
                    (((p[a] - lo[a]) / span) * cells) as u64
                })
                .collect();
            for b in (0..bits).rev() {
                for qa in &q {
                    key = (key << 1) | ((qa >> b) & 1);
                }
            }
            (key, i as u32)
        })
        .collect();
    keyed.par_sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// [`pca_fit_scales`] in the points' own order.
fn fit_scales(points: &[f64], d: usize, ks: &[usize], offsets: bool) -> Result<Vec<ScaleFit>> {
    use rayon::prelude::*;
    let k = ks.iter().copied().max().unwrap_or(0);
    if d == 0 || points.len() % d != 0 {
        bail!("points must be n x d with d >= 1");
    }
    let n = points.len() / d;
    if n < d || k < d - 1 {
        bail!(
            "PCA normals need at least d = {d} points and k >= d - 1 neighbours (n = {n}, k = {k})"
        );
    }
    if points.iter().any(|v| !v.is_finite()) {
        bail!("PCA normals: non-finite coordinates");
    }
    if ks.iter().any(|&kk| kk < d - 1) {
        bail!(
            "PCA normals need k >= d - 1 = {} neighbours, got {ks:?}",
            d - 1
        );
    }
    // One flat table of the `k` nearest per point, nearest first: no per-point lists, which
    // at millions of points cost more in allocation and page clearing than the search.
    let (table, want) = knn_table(points, d, k, false);
    let mut centroid = vec![0.0; d];
    for p in points.chunks(d) {
        centroid
            .iter_mut()
            .zip(p)
            .for_each(|(c, x)| *c += x / n as f64);
    }
    // Scale of the cloud: neighbourhoods whose spread is below round-off of it are degenerate.
    let scale = points
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-300);
    let fit = Fit {
        points,
        d,
        centroid: &centroid,
        scale,
    };
    Ok(ks
        .iter()
        .map(|&kk| {
            let mut out = ScaleFit {
                normals: vec![0.0; n * d],
                variation: vec![0.0; n],
                offset: vec![0.0; if offsets { n * d } else { 0 }],
            };
            let take = kk.min(want);
            let rows = out
                .normals
                .par_chunks_mut(d)
                .zip(out.variation.par_iter_mut())
                .enumerate();
            // The point itself first, then its neighbours nearest first.
            let neighbourhood = |nb: &mut Vec<usize>, i: usize| {
                nb.clear();
                nb.push(i);
                if want > 0 {
                    nb.extend(table[i * want..i * want + take].iter().map(|&j| j as usize));
                }
            };
            if offsets {
                rows.zip(out.offset.par_chunks_mut(d)).for_each_init(
                    Vec::new,
                    |nb, ((i, (normal, variation)), offset)| {
                        neighbourhood(nb, i);
                        *variation = fit.one(i, nb, normal, Some(offset));
                    },
                );
            } else {
                rows.for_each_init(Vec::new, |nb, (i, (normal, variation))| {
                    neighbourhood(nb, i);
                    *variation = fit.one(i, nb, normal, None);
                });
            }
            out
        })
        .collect())
}

/// What every neighbourhood fit of one cloud shares.
struct Fit<'a> {
    points: &'a [f64],
    d: usize,
    centroid: &'a [f64],
    scale: f64,
}

impl Fit<'_> {
    /// The normal (oriented away from the centroid, written to `normal`), offset (see
    /// [`ScaleFit`]; written to `offset` if given) and variation (returned) of point `i` from
    /// the neighbourhood `nb` (indices, the point included).
    fn one(&self, i: usize, nb: &[usize], normal: &mut [f64], offset: Option<&mut [f64]>) -> f64 {
        let (points, d) = (self.points, self.d);
        // Two d-vectors of scratch per fit, on the stack for point clouds (millions of fits).
        let mut stack = [0.0f64; 16];
        let mut heap = Vec::new();
        let scratch: &mut [f64] = if d <= 8 {
            &mut stack[..2 * d]
        } else {
            heap.resize(2 * d, 0.0);
            &mut heap
        };
        let (mean, v) = scratch.split_at_mut(d);
        for &j in nb {
            for a in 0..d {
                mean[a] += points[j * d + a] / nb.len() as f64;
            }
        }
        let mut c = Scatter::new(d);
        for &j in nb {
            for a in 0..d {
                v[a] = points[j * d + a] - mean[a];
            }
            c.add(v);
        }
        let trace = c.trace();
        if trace <= (1e-12 * self.scale).powi(2) * nb.len() as f64 {
            normal.fill(0.0);
            if let Some(o) = offset {
                o.fill(0.0);
            }
            return 1.0 / d as f64;
        }
        let axes = c.axes();
        let min = axes.smallest();
        let lambda = axes.values()[min];
        let v = axes.axis(min);
        let outward: f64 = (0..d)
            .map(|a| v[a] * (points[i * d + a] - self.centroid[a]))
            .sum();
        let sign = if outward < 0.0 { -1.0 } else { 1.0 };
        for a in 0..d {
            normal[a] = sign * v[a];
        }
        if let Some(o) = offset {
            let rms = (trace / nb.len() as f64).sqrt();
            for a in 0..d {
                o[a] = (points[i * d + a] - mean[a]) / rms;
            }
        }
        (lambda.max(0.0) / trace).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Large clouds are fitted in Morton order and put back: the same fits as in input order.
    #[test]
    fn morton_order_gives_the_same_fits() {
        let n = LOCALITY_MIN + 1000;
        let pts = tf_testing::strategies::PointCloud::sphere(n).coords;
        let sorted = pca_fit_scales(&pts, 3, &[8, 16], true).unwrap();
        let plain = fit_scales(&pts, 3, &[8, 16], true).unwrap();
        let order = morton_order(&pts, 3);
        let mut seen = vec![false; n];
        order.iter().for_each(|&i| seen[i as usize] = true);
        assert!(seen.iter().all(|&s| s), "a permutation");
        for (a, b) in sorted.iter().zip(&plain) {
            let worst = |x: &[f64], y: &[f64]| {
                x.iter()
                    .zip(y)
                    .map(|(p, q)| (p - q).abs())
                    .fold(0.0f64, f64::max)
            };
            assert!(worst(&a.normals, &b.normals) < 1e-9);
            assert!(worst(&a.variation, &b.variation) < 1e-9);
            assert!(worst(&a.offset, &b.offset) < 1e-9);
        }
    }

    #[test]
    fn sphere_normals_are_radial_and_outward() {
        // A Fibonacci sphere: PCA normals match the exact ones closely.
        let n = 400;
        let pts = tf_testing::strategies::PointCloud::sphere(n).coords;
        let nrm = pca_normals(&pts, 3, 12).unwrap();
        let mean_cos: f64 = pts
            .chunks(3)
            .zip(nrm.chunks(3))
            .map(|(p, m)| p.iter().zip(m).map(|(a, b)| a * b).sum::<f64>())
            .sum::<f64>()
            / n as f64;
        assert!(mean_cos > 0.99, "{mean_cos}");
        assert!(pca_normals(&pts[..3], 3, 12).is_err());
        let mut bad = pts.clone();
        bad[5] = f64::NAN;
        assert!(pca_normals(&bad, 3, 12).is_err());
    }
}
