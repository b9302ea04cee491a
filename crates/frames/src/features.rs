//! Input features a model can ask for, computed from a point cloud by the data pipeline.
//!
//! A model sees subsets of a shape (the training size), but some cues are best measured on the
//! whole cloud at its full density: the classical PCA normal is the prime example. Declaring the
//! feature in the model's configuration lets training, evaluation and inference all compute it
//! the same way, from the full cloud, before the subset is drawn. Every feature here is
//! O(d)-equivariant and translation invariant, with the rep [`InputFeatures::reps`] declares, so
//! a tensor-frames model stays exactly equivariant when it consumes them.

use candle_core::Result;
use serde::{Deserialize, Serialize};

use crate::normals::pca_fit;

/// Per-point features computed from the whole cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum InputFeatures {
    /// No computed features.
    #[default]
    None,
    /// The PCA fit of each point's `k` nearest neighbours: surface variation `λ_min / Σλ` (`0n`)
    /// and the normal oriented away from the centroid (`1n`), rep `1x0n+1x1n`.
    PcaNormal {
        /// Neighbours per fit (the point itself included).
        k: usize,
    },
}

impl InputFeatures {
    /// The rep of the features, as a rep string ("" for none).
    pub fn reps(&self) -> &'static str {
        match self {
            Self::None => "",
            Self::PcaNormal { .. } => "1x0n+1x1n",
        }
    }

    /// True when there is something to compute.
    pub fn is_some(&self) -> bool {
        !matches!(self, Self::None)
    }

    /// Column of the first `1n` vector within a feature row, if any (a normal head can use it
    /// as the estimate it refines).
    pub fn vector_offset(&self) -> Option<usize> {
        match self {
            Self::None => None,
            Self::PcaNormal { .. } => Some(1),
        }
    }

    /// Width of a feature row in dimension `d`.
    pub fn dim(&self, d: usize) -> usize {
        match self {
            Self::None => 0,
            Self::PcaNormal { .. } => 1 + d,
        }
    }

    /// The features of `points (n * d)`, row-major `(n, dim(d))`.
    pub fn compute(&self, points: &[f64], d: usize) -> Result<Vec<f64>> {
        match *self {
            Self::None => Ok(Vec::new()),
            Self::PcaNormal { k } => {
                let (normals, variation) = pca_fit(points, d, k)?;
                let mut out = Vec::with_capacity(variation.len() * (1 + d));
                for (v, nrm) in variation.iter().zip(normals.chunks(d)) {
                    out.push(*v);
                    out.extend_from_slice(nrm);
                }
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use tf_group::orthogonal::haar_orthogonal_host;

    #[test]
    fn pca_features_are_equivariant_and_translation_invariant() {
        // An ellipsoid, moved by a random reflection/rotation and offset.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let n = 500;
        // The unit sphere's lattice with axes scaled by 2, 1 and 0.5.
        let pts: Vec<f64> = tf_testing::strategies::PointCloud::sphere(n)
            .coords
            .chunks(3)
            .flat_map(|p| [2.0 * p[0], p[1], 0.5 * p[2]])
            .collect();
        let spec = InputFeatures::PcaNormal { k: 12 };
        let f = spec.compute(&pts, 3).unwrap();
        assert_eq!(f.len(), n * spec.dim(3));
        let q = loop {
            let q = haar_orthogonal_host(3, &mut rng);
            let det = q[0] * (q[4] * q[8] - q[5] * q[7]) - q[1] * (q[3] * q[8] - q[5] * q[6])
                + q[2] * (q[3] * q[7] - q[4] * q[6]);
            if det < 0.0 {
                break q; // a reflection: the harder case
            }
        };
        let t = [3.0, -1.0, 0.25];
        let mut moved = Vec::with_capacity(pts.len());
        for p in pts.chunks(3) {
            for r in 0..3 {
                moved.push((0..3).map(|c| q[r * 3 + c] * p[c]).sum::<f64>() + t[r]);
            }
        }
        let g = spec.compute(&moved, 3).unwrap();
        let mut err: f64 = 0.0;
        for (a, b) in f.chunks(4).zip(g.chunks(4)) {
            err = err.max((a[0] - b[0]).abs());
            for r in 0..3 {
                let qa: f64 = (0..3).map(|c| q[r * 3 + c] * a[1 + c]).sum();
                err = err.max((qa - b[1 + r]).abs());
            }
        }
        assert!(err < 1e-9, "equivariance error {err}");
        // Coincident points: finite features with a zero normal.
        let same = vec![1.0; 30];
        let h = spec.compute(&same, 3).unwrap();
        assert!(h.iter().all(|v| v.is_finite()));
        assert!(h.chunks(4).all(|r| r[1..].iter().all(|v| *v == 0.0)));
    }
}
