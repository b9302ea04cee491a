//! The one PCA solver of the workspace: a scatter matrix `S = sum_v v v^T` of neighbourhood
//! offsets and its symmetric eigen-decomposition.
//!
//! PCA normals centre the offsets at the neighbourhood's mean and take the axis of least
//! variance; PCA frames take offsets from the node itself and keep every axis. Both accumulate
//! the same matrix here, in the order the offsets are added, so a fit is reproducible bit for
//! bit. Under `x -> Qx + t` offsets map to `Q v`, `S -> Q S Q^T`, and each eigenvector maps to
//! `Q e` up to sign: the callers fix the sign with an equivariant rule of their own.

use nalgebra::{DMatrix, DVectorView, SymmetricEigen};

/// A `d x d` scatter matrix being accumulated.
#[derive(Debug, Clone)]
pub struct Scatter {
    m: DMatrix<f64>,
}

/// Eigenvalues and unit eigenvectors of a scatter matrix, in the solver's order (not sorted).
#[derive(Debug, Clone)]
pub struct PrincipalAxes {
    eig: SymmetricEigen<f64, nalgebra::Dyn>,
}

impl Scatter {
    /// An empty scatter matrix in dimension `d`.
    pub fn new(d: usize) -> Self {
        Self {
            m: DMatrix::zeros(d, d),
        }
    }

    /// Adds `v v^T`; `v` has `d` components.
    pub fn add(&mut self, v: &[f64]) {
        let d = self.m.nrows();
        for a in 0..d {
            for b in 0..d {
                self.m[(a, b)] += v[a] * v[b];
            }
        }
    }

    /// The trace: the summed squared length of the offsets.
    pub fn trace(&self) -> f64 {
        self.m.trace()
    }

    /// The eigen-decomposition (symmetric QR iterations, nalgebra).
    pub fn axes(self) -> PrincipalAxes {
        PrincipalAxes {
            eig: SymmetricEigen::new(self.m),
        }
    }
}

impl PrincipalAxes {
    /// The eigenvalues, one per axis.
    pub fn values(&self) -> &[f64] {
        self.eig.eigenvalues.as_slice()
    }

    /// The unit eigenvector of eigenvalue `values()[a]`.
    pub fn axis(&self, a: usize) -> DVectorView<'_, f64> {
        self.eig.eigenvectors.column(a)
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
