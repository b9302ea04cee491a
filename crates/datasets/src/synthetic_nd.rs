//! Closed hypersurfaces in any dimension d >= 2 with exact normals: the data of the normal
//! regression experiments beyond 3D (curves in the plane for d = 2, 3-manifolds in R^4, ...).
//!
//! Three classes of superellipsoids `sum_i |x_i / a_i|^p = 1` with random axes `a_i`:
//!
//! | class | shape |
//! |---|---|
//! | 0 ellipsoid | p = 2 |
//! | 1 rounded box | p in [3, 6] |
//! | 2 peanut | union of two overlapping ellipsoids along the first axis |
//!
//! Part labels: 0 where the last coordinate is negative, 1 otherwise. A point is drawn by
//! projecting a Gaussian direction radially onto the surface, so the density is not
//! area-uniform (denser where the surface is near the centre); normals are the exact
//! normalised gradients, and in the union points inside the other piece are rejected.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::shape::Shape;
use crate::synthetic::Split;

/// Number of classes of [`SyntheticNd`].
pub const SYNTHETIC_ND_CLASSES: usize = 3;

/// The generator: `shapes_per_class` shapes per class and split, `points` points each.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticNd {
    /// Dimension (at least 2).
    pub d: usize,
    /// Shapes of each class in each split.
    pub shapes_per_class: usize,
    /// Points per shape.
    pub points: usize,
    /// Dataset seed.
    pub seed: u64,
}

#[derive(Debug, Clone)]
struct Blob {
    center: Vec<f64>,
    axes: Vec<f64>,
    p: f64,
}

impl Blob {
    fn level(&self, x: &[f64]) -> f64 {
        x.iter()
            .zip(&self.center)
            .zip(&self.axes)
            .map(|((x, c), a)| ((x - c) / a).abs().powf(self.p))
            .sum()
    }

    /// A surface point along a random direction, with its unit outward normal.
    fn sample(&self, rng: &mut ChaCha8Rng) -> (Vec<f64>, Vec<f64>) {
        let d = self.axes.len();
        let y: Vec<f64> = loop {
            let g: Vec<f64> = (0..d).map(|_| StandardNormal.sample(rng)).collect();
            let s: f64 = g.iter().map(|v: &f64| v.abs().powf(self.p)).sum();
            if s > 1e-12 {
                let s = s.powf(1.0 / self.p);
                break g.iter().map(|v| v / s).collect();
            }
        };
        let x: Vec<f64> = (0..d)
            .map(|i| self.center[i] + self.axes[i] * y[i])
            .collect();
        let mut n: Vec<f64> = (0..d)
            .map(|i| y[i].signum() * y[i].abs().powf(self.p - 1.0) / self.axes[i])
            .collect();
        let norm = n.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-300);
        n.iter_mut().for_each(|v| *v /= norm);
        (x, n)
    }
}

impl SyntheticNd {
    /// Number of shapes in a split.
    pub fn len(&self) -> usize {
        self.shapes_per_class * SYNTHETIC_ND_CLASSES
    }

    /// True if the split is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shape `index` of a split (class `index % 3`), normalised into the unit ball.
    pub fn shape(&self, split: Split, index: usize) -> Shape {
        let d = self.d.max(2);
        let label = (index % SYNTHETIC_ND_CLASSES) as u32;
        let salt = match split {
            Split::Train => 0x6e64_7472_0000_0000u64,
            Split::Test => 0x6e64_7465_0000_0000u64,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.seed ^ salt ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ d as u64,
        );
        let axes = |rng: &mut ChaCha8Rng, lo: f64| -> Vec<f64> {
            (0..d).map(|_| rng.random_range(lo..1.0)).collect()
        };
        let blobs = match label {
            0 => vec![Blob {
                center: vec![0.0; d],
                axes: axes(&mut rng, 0.4),
                p: 2.0,
            }],
            1 => {
                let p = rng.random_range(3.0..6.0);
                vec![Blob {
                    center: vec![0.0; d],
                    axes: axes(&mut rng, 0.4),
                    p,
                }]
            }
            _ => {
                let off = rng.random_range(0.35..0.55);
                (0..2)
                    .map(|k| {
                        let mut center = vec![0.0; d];
                        center[0] = if k == 0 { -off } else { off };
                        let mut a = axes(&mut rng, 0.35);
                        a.iter_mut().for_each(|v| *v *= 0.7);
                        // Each blob reaches past the origin, so the two overlap.
                        a[0] = a[0].max(off + 0.05);
                        Blob {
                            center,
                            axes: a,
                            p: 2.0,
                        }
                    })
                    .collect()
            }
        };
        let mut points = Vec::with_capacity(self.points * d);
        let mut normals = Vec::with_capacity(self.points * d);
        let mut parts = Vec::with_capacity(self.points);
        while parts.len() < self.points {
            let b = rng.random_range(0..blobs.len());
            let (x, n) = blobs[b].sample(&mut rng);
            // Union: a point inside another piece is not on the surface.
            if blobs
                .iter()
                .enumerate()
                .any(|(o, other)| o != b && other.level(&x) < 1.0)
            {
                continue;
            }
            parts.push(u32::from(x[d - 1] >= 0.0));
            points.extend(x);
            normals.extend(n);
        }
        let mut shape = Shape {
            d,
            points,
            normals,
            label,
            parts: Some(parts),
        };
        shape.normalize();
        shape
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_lie_on_the_surface_with_unit_normals_in_every_dimension() {
        for d in [2, 3, 4, 6] {
            let g = SyntheticNd {
                d,
                shapes_per_class: 2,
                points: 200,
                seed: 3,
            };
            for i in 0..g.len() {
                let s = g.shape(Split::Train, i);
                assert_eq!(s.len(), 200);
                assert_eq!(s.d, d);
                for n in s.normals.chunks(d) {
                    let len: f64 = n.iter().map(|v| v * v).sum::<f64>().sqrt();
                    assert!((len - 1.0).abs() < 1e-9, "normal length {len}");
                }
                let r = s
                    .points
                    .chunks(d)
                    .map(|p| p.iter().map(|v| v * v).sum::<f64>().sqrt())
                    .fold(0.0, f64::max);
                assert!(r <= 1.0 + 1e-9 && r > 0.5, "radius {r}");
                // Outward: the normal points away from the centroid on average.
                let dots: f64 = s
                    .points
                    .chunks(d)
                    .zip(s.normals.chunks(d))
                    .map(|(p, n)| p.iter().zip(n).map(|(a, b)| a * b).sum::<f64>())
                    .sum();
                assert!(dots > 0.0);
            }
            assert_ne!(
                g.shape(Split::Train, 0).points,
                g.shape(Split::Test, 0).points
            );
            assert_eq!(
                g.shape(Split::Test, 1).points,
                g.shape(Split::Test, 1).points
            );
        }
    }

    #[test]
    fn ellipse_normals_match_the_gradient_numerically() {
        let b = Blob {
            center: vec![0.1, -0.2],
            axes: vec![0.9, 0.5],
            p: 2.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..20 {
            let (x, n) = b.sample(&mut rng);
            assert!((b.level(&x) - 1.0).abs() < 1e-9);
            // A step along the normal leaves the surface outward; tangent steps stay on it to
            // second order.
            let out: Vec<f64> = x.iter().zip(&n).map(|(a, b)| a + 1e-4 * b).collect();
            assert!(b.level(&out) > 1.0);
            let t = [-n[1], n[0]];
            let along: Vec<f64> = x.iter().zip(&t).map(|(a, b)| a + 1e-4 * b).collect();
            assert!((b.level(&along) - 1.0).abs() < 1e-6);
        }
    }
}
