//! The one PCA solver of the workspace: a scatter matrix `S = sum_v v v^T` of neighbourhood
//! offsets and its symmetric eigen-decomposition.
//!
//! PCA normals centre the offsets at the neighbourhood's mean and take the axis of least
//! variance; PCA frames take offsets from the node itself and keep every axis. Both accumulate
//! the same matrix here, in the order the offsets are added, so a fit is reproducible bit for
//! bit. Under `x -> Qx + t` offsets map to `Q v`, `S -> Q S Q^T`, and each eigenvector maps to
//! `Q e` up to sign: the callers fix the sign with an equivariant rule of their own.

use nalgebra::{DMatrix, Matrix3, SymmetricEigen, U3};

/// A `d x d` scatter matrix being accumulated.
#[derive(Debug, Clone)]
pub struct Scatter {
    m: Store,
}

/// Point clouds are 3D and PCA runs once per point and scale (millions of fits on a dense
/// cloud), so `d = 3` keeps the matrix on the stack: the same solver without heap
/// allocations. Both arms run nalgebra's generic algorithm, so a fit does not depend on the arm
/// (checked by a test).
#[derive(Debug, Clone)]
enum Store {
    Three(Matrix3<f64>),
    Any(DMatrix<f64>),
}

/// Eigenvalues and unit eigenvectors of a scatter matrix, in the solver's order (not sorted).
#[derive(Debug, Clone)]
pub struct PrincipalAxes {
    eig: Eig,
}

#[derive(Debug, Clone)]
enum Eig {
    Three(SymmetricEigen<f64, U3>),
    Any(SymmetricEigen<f64, nalgebra::Dyn>),
}

impl Scatter {
    /// An empty scatter matrix in dimension `d`.
    pub fn new(d: usize) -> Self {
        Self {
            m: if d == 3 {
                Store::Three(Matrix3::zeros())
            } else {
                Store::Any(DMatrix::zeros(d, d))
            },
        }
    }

    /// Adds `v v^T`; `v` has `d` components.
    pub fn add(&mut self, v: &[f64]) {
        match &mut self.m {
            Store::Three(m) => {
                for a in 0..3 {
                    for b in 0..3 {
                        m[(a, b)] += v[a] * v[b];
                    }
                }
            }
            Store::Any(m) => {
                let d = m.nrows();
                for a in 0..d {
                    for b in 0..d {
                        m[(a, b)] += v[a] * v[b];
                    }
                }
            }
        }
    }

    /// The trace: the summed squared length of the offsets.
    pub fn trace(&self) -> f64 {
        match &self.m {
            Store::Three(m) => m.trace(),
            Store::Any(m) => m.trace(),
        }
    }

    /// The eigen-decomposition (symmetric QR iterations, nalgebra).
    pub fn axes(self) -> PrincipalAxes {
        PrincipalAxes {
            eig: match self.m {
                Store::Three(m) => Eig::Three(SymmetricEigen::new(m)),
                Store::Any(m) => Eig::Any(SymmetricEigen::new(m)),
            },
        }
    }
}

impl PrincipalAxes {
    /// The eigenvalues, one per axis.
    pub fn values(&self) -> &[f64] {
        match &self.eig {
            Eig::Three(e) => e.eigenvalues.as_slice(),
            Eig::Any(e) => e.eigenvalues.as_slice(),
        }
    }

    /// The unit eigenvector of eigenvalue `values()[a]` (`d` components).
    pub fn axis(&self, a: usize) -> &[f64] {
        // Column-major storage: column `a` is one contiguous run.
        let (all, d) = match &self.eig {
            Eig::Three(e) => (e.eigenvectors.as_slice(), 3),
            Eig::Any(e) => (e.eigenvectors.as_slice(), e.eigenvectors.nrows()),
        };
        &all[a * d..(a + 1) * d]
    }

    /// The index of the smallest eigenvalue (the first of equals).
    pub fn smallest(&self) -> usize {
        self.values()
            .iter()
            .enumerate()
            .fold(
                (0, f64::INFINITY),
                |acc, (i, &v)| if v < acc.1 { (i, v) } else { acc },
            )
            .0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stack-allocated 3D arm gives bit for bit the fits of the general one.
    #[test]
    fn the_3d_path_matches_the_general_solver_exactly() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for case in 0..200 {
            let (mut fast, mut general) = (
                Scatter::new(3),
                Scatter {
                    m: Store::Any(DMatrix::zeros(3, 3)),
                },
            );
            // Flat, elongated and round neighbourhoods, and repeated offsets.
            let flat = [1.0, 0.3, if case % 3 == 0 { 1e-3 } else { 0.7 }];
            for _ in 0..(4 + case % 30) {
                let v: Vec<f64> = flat
                    .iter()
                    .map(|s| s * rng.random_range(-1.0..1.0))
                    .collect();
                fast.add(&v);
                general.add(&v);
            }
            assert!(matches!(fast.m, Store::Three(_)));
            assert_eq!(fast.trace(), general.trace());
            let (a, b) = (fast.axes(), general.axes());
            assert_eq!(a.values(), b.values(), "case {case}");
            for k in 0..3 {
                assert_eq!(a.axis(k), b.axis(k), "case {case}");
            }
            assert_eq!(a.smallest(), b.smallest());
        }
    }

    #[test]
    fn a_line_of_offsets_has_one_axis_of_variance() {
        let mut s = Scatter::new(3);
        for t in [-2.0, -1.0, 1.0, 2.0] {
            s.add(&[t, 2.0 * t, 0.0]);
        }
        assert!((s.trace() - 50.0).abs() < 1e-12);
        let axes = s.axes();
        let big = (0..3)
            .max_by(|&a, &b| axes.values()[a].total_cmp(&axes.values()[b]))
            .unwrap_or(0);
        let e = axes.axis(big);
        let along = (e[0] + 2.0 * e[1]).abs() / 5f64.sqrt();
        assert!((along - 1.0).abs() < 1e-12, "{e:?}");
        assert!(axes.values()[axes.smallest()].abs() < 1e-12);
    }
}
