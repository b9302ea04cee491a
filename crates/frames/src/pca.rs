//! Classical PCA frames: eigenvectors of the neighbourhood covariance, largest variance first,
//! each axis signed by the sum of its dot products with the neighbour vectors.
//!
//! `C_i = sum_j (x_j - x_i)(x_j - x_i)^T` over the given graph. Under `x -> Qx + t`,
//! `C_i -> Q C_i Q^T`, eigenvectors map to `Q e` up to sign, and the sign rule fixes the sign
//! equivariantly, so the frame is O(d)-equivariant. An axis is kept only if its eigenvalue is
//! separated from the others and its sign sum is clearly non-zero; otherwise the nearest
//! neighbour vectors and then the global axes complete the frame (counted as degenerate).
//! The eigen-decomposition is the PCA solver of `tf-normals` ([`tf_normals::Scatter`]) on the
//! host: PCA frames carry no gradient.

use candle_core::{Result, Tensor};
use tf_normals::Scatter;

use crate::builder::{FrameBuilder, FrameInput};
use crate::geometry::{check_positions, HostEdges};
use crate::local_frames::LocalFrames;
use crate::orthonormalize::{orthonormalize, Orthonormalize};

/// PCA frames with the equivariant sign rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PcaFrames {
    /// Relative eigenvalue gap below which two axes count as ambiguous.
    pub gap_tol: f64,
    /// Relative size of the sign sum below which an axis' sign counts as ambiguous.
    pub sign_tol: f64,
}

impl Default for PcaFrames {
    fn default() -> Self {
        Self {
            gap_tol: 1e-6,
            sign_tol: 1e-6,
        }
    }
}

impl FrameBuilder for PcaFrames {
    fn build(&self, input: &FrameInput) -> Result<LocalFrames> {
        let (p, n, d) = check_positions(input.pos)?;
        let edges = HostEdges::new(input.edge_index, n)?;
        let mut nbrs: Vec<Vec<Vec<f64>>> = vec![Vec::new(); n];
        for (&j, &i) in edges.src.iter().zip(edges.dst.iter()) {
            let (j, i) = (j as usize, i as usize);
            nbrs[i].push((0..d).map(|a| p[j * d + a] - p[i * d + a]).collect());
        }
        let mut axes = vec![0.0; n * d * d];
        for (i, list) in nbrs.iter().enumerate() {
            let mut c = Scatter::new(d);
            for v in list {
                c.add(v);
            }
            let eig = c.axes();
            let values = eig.values();
            let mut order: Vec<usize> = (0..d).collect();
            order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
            let scale = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let abs_sum: f64 = list
                .iter()
                .map(|v| v.iter().map(|x| x * x).sum::<f64>().sqrt())
                .sum();
            for (slot, &a) in order.iter().enumerate() {
                let lam = values[a];
                let separated = (0..d)
                    .filter(|&b| b != a)
                    .all(|b| (lam - values[b]).abs() > self.gap_tol * scale);
                let e = eig.axis(a);
                let s: f64 = list
                    .iter()
                    .map(|v| (0..d).map(|k| v[k] * e[k]).sum::<f64>())
                    .sum();
                if scale > 0.0 && separated && s.abs() > self.sign_tol * abs_sum {
                    for k in 0..d {
                        axes[(i * d + slot) * d + k] = s.signum() * e[k];
                    }
                } // else: a zero candidate, skipped by the orthonormaliser
            }
        }
        let pca =
            Tensor::from_vec(axes, (n, d, d), input.pos.device())?.to_dtype(input.pos.dtype())?;
        let k = 2 * d;
        let fallback = edges.slot_vectors(&input.pos.detach(), &edges.nearest(&p, d, k), k)?;
        let (frames, degenerate) =
            orthonormalize(&Tensor::cat(&[pca, fallback], 1)?, &Orthonormalize::new(d))?;
        LocalFrames::new(frames, degenerate.iter().filter(|&&x| x).count())
    }

    fn is_equivariant(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "pca"
    }
}
