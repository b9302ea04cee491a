//! Classical PCA normal estimation, the non-learned reference of the normal experiments.
//!
//! Per point: the covariance of its `k` nearest neighbours (itself included), centred at their
//! mean; the normal is the eigenvector of the smallest eigenvalue. PCA cannot tell inside from
//! outside, so an orientation heuristic is applied: the normal points away from the cloud's
//! centroid (right on convex shapes, wrong in concavities). Mean |cos| is therefore the fair
//! comparison with PCA; oriented cos measures the heuristic too.

use candle_core::{bail, DType, Device, Result, Tensor};
use tf_graphs::knn_graph;

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
    let pos = Tensor::from_slice(points, (n, d), &Device::Cpu)?;
    let edges = knn_graph(&pos, None, k, false)?.to_dtype(DType::U32)?;
    let src = edges.get(0)?.to_vec1::<u32>()?;
    let dst = edges.get(1)?.to_vec1::<u32>()?;
    if ks.iter().any(|&kk| kk < d - 1) {
        bail!(
            "PCA normals need k >= d - 1 = {} neighbours, got {ks:?}",
            d - 1
        );
    }
    // The point itself first, then its neighbours nearest first.
    let mut neigh: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    for (s, t) in src.iter().zip(&dst) {
        neigh[*t as usize].push(*s as usize);
    }
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
        offsets,
    };
    Ok(ks
        .iter()
        .map(|&kk| {
            let fits: Vec<(Vec<f64>, f64, Vec<f64>)> = neigh
                .par_iter()
                .enumerate()
                .map(|(i, nb)| fit.one(i, &nb[..nb.len().min(kk + 1)]))
                .collect();
            let mut out = ScaleFit {
                normals: Vec::with_capacity(n * d),
                variation: Vec::with_capacity(n),
                offset: Vec::with_capacity(if offsets { n * d } else { 0 }),
            };
            for (nrm, var, off) in fits {
                out.normals.extend(nrm);
                out.variation.push(var);
                out.offset.extend(off);
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
    /// Whether to compute the offsets (an allocation per point and scale otherwise wasted).
    offsets: bool,
}

impl Fit<'_> {
    /// The normal (oriented away from the centroid), variation and offset (see [`ScaleFit`];
    /// empty unless `offsets`) of point `i` from the neighbourhood `nb` (indices, the point
    /// included).
    fn one(&self, i: usize, nb: &[usize]) -> (Vec<f64>, f64, Vec<f64>) {
        let (points, d) = (self.points, self.d);
        let mut mean = vec![0.0; d];
        for &j in nb {
            for a in 0..d {
                mean[a] += points[j * d + a] / nb.len() as f64;
            }
        }
        let mut c = Scatter::new(d);
        let mut v = vec![0.0; d];
        for &j in nb {
            for a in 0..d {
                v[a] = points[j * d + a] - mean[a];
            }
            c.add(&v);
        }
        let trace = c.trace();
        if trace <= (1e-12 * self.scale).powi(2) * nb.len() as f64 {
            let offset = if self.offsets {
                vec![0.0; d]
            } else {
                Vec::new()
            };
            return (vec![0.0; d], 1.0 / d as f64, offset);
        }
        let axes = c.axes();
        let min = axes.smallest();
        let lambda = axes.values()[min];
        let v = axes.axis(min);
        let outward: f64 = (0..d)
            .map(|a| v[a] * (points[i * d + a] - self.centroid[a]))
            .sum();
        let sign = if outward < 0.0 { -1.0 } else { 1.0 };
        let normal = (0..d).map(|a| sign * v[a]).collect();
        let offset = if self.offsets {
            let rms = (trace / nb.len() as f64).sqrt();
            (0..d)
                .map(|a| (points[i * d + a] - mean[a]) / rms)
                .collect()
        } else {
            Vec::new()
        };
        (normal, (lambda.max(0.0) / trace).min(1.0), offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
