//! From candidate vectors to an orthonormal frame, with a deterministic fallback.
//!
//! # Shapes
//! - `candidates`: `(N, K, d)`: per node, equivariant candidate axes in order of preference
//! - output: frames `(N, d, d)` (rows = axes) and which nodes were degenerate
//!
//! Every builder funnels through here. Per node, a greedy pass on the host picks the first
//! candidates that are not (nearly) in the span of those already picked: a candidate is accepted
//! when its residual after projection keeps at least `rel_tol` of its norm. These tests use
//! norms and inner products only, so the choice is invariant and the frame stays equivariant.
//! If fewer than `d` candidates survive (collinear or coplanar neighbourhoods, duplicate points,
//! parallel learned vectors, too few neighbours), the frame is completed with the global axes
//! `e_1..e_d`, each time the one with the largest residual: deterministic, orthogonal and
//! finite, but not equivariant in the missing directions (none can be: the neighbourhood is
//! symmetric under rotations about them). Such nodes are reported as degenerate.
//!
//! The Gram-Schmidt itself runs in candle on the chosen candidates, so gradients flow to them;
//! accepted residuals are bounded below by `rel_tol` times the candidate norm, so they stay finite.

use candle_core::{DType, Result, Tensor};
use tf_group::orthogonal::det_host;

/// Whether frames may be reflections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Handedness {
    /// Gram-Schmidt of `d` vectors: O(d)-equivariant, including reflections (the default).
    #[default]
    Orthogonal,
    /// The last axis is flipped to make `det R = +1`: SO(d)-equivariant only.
    Special,
}

/// Tuning of [`orthonormalize`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Orthonormalize {
    /// A candidate is accepted when its residual keeps this fraction of its norm.
    pub rel_tol: f64,
    /// Candidates shorter than this (absolute) are ignored (zero vectors, duplicate points).
    pub abs_tol: f64,
    /// A node is degenerate when any of its first `primary` candidates is rejected or the global
    /// axes are needed. Learned and PCA frames use `d`; neighbour Gram-Schmidt uses 0.
    pub primary: usize,
    /// O(d) or SO(d).
    pub handedness: Handedness,
}

impl Orthonormalize {
    /// Defaults for `primary` intended axes.
    pub fn new(primary: usize) -> Self {
        Self {
            rel_tol: 1e-3,
            abs_tol: 1e-9,
            primary,
            handedness: Handedness::Orthogonal,
        }
    }
}

/// Greedy host-side choice of `d` rows per node among the `K` candidates followed by the `d`
/// global axes (indices `K..K+d`). Returns the chosen indices `(N * d)` and degenerate flags.
fn choose(
    cands: &[f64],
    n: usize,
    k: usize,
    d: usize,
    opts: &Orthonormalize,
) -> (Vec<u32>, Vec<bool>) {
    let mut chosen = Vec::with_capacity(n * d);
    let mut degenerate = Vec::with_capacity(n);
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(d);
    let residual = |v: &[f64], basis: &[Vec<f64>]| -> Vec<f64> {
        let mut r = v.to_vec();
        // two passes: orthogonality at machine precision even for nearly dependent sets
        for _ in 0..2 {
            for b in basis {
                let dot: f64 = r.iter().zip(b).map(|(x, y)| x * y).sum();
                r.iter_mut().zip(b).for_each(|(x, y)| *x -= dot * y);
            }
        }
        r
    };
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    for node in 0..n {
        basis.clear();
        let mut degen = false;
        for c in 0..k {
            if basis.len() == d {
                break;
            }
            let v = &cands[(node * k + c) * d..(node * k + c + 1) * d];
            let nv = norm(v);
            let r = residual(v, &basis);
            let nr = norm(&r);
            if nv.is_finite() && nv > opts.abs_tol && nr > opts.rel_tol * nv {
                basis.push(r.iter().map(|x| x / nr).collect());
                chosen.push(c as u32);
            } else if c < opts.primary {
                degen = true;
            }
        }
        while basis.len() < d {
            degen = true;
            let (best, r) = (0..d)
                .map(|a| {
                    let mut e = vec![0.0; d];
                    e[a] = 1.0;
                    (a, residual(&e, &basis))
                })
                .max_by(|x, y| norm(&x.1).total_cmp(&norm(&y.1)).then(y.0.cmp(&x.0)))
                .expect("d >= 1");
            let nr = norm(&r);
            basis.push(r.iter().map(|x| x / nr).collect());
            chosen.push((k + best) as u32);
        }
        degenerate.push(degen);
    }
    (chosen, degenerate)
}

/// Orthonormal frames from candidates `(N, K, d)`: returns `(frames (N, d, d), degenerate)`.
pub fn orthonormalize(candidates: &Tensor, opts: &Orthonormalize) -> Result<(Tensor, Vec<bool>)> {
    let (n, k, d) = candidates.dims3()?;
    let dev = candidates.device();
    let dtype = candidates.dtype();
    if n == 0 {
        return Ok((Tensor::zeros((0, d, d), dtype, dev)?, Vec::new()));
    }
    let host = candidates
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    let (chosen, degenerate) = choose(&host, n, k, d, opts);
    // Append the global axes as candidates K..K+d, then gather the chosen rows.
    let axes = Tensor::eye(d, dtype, dev)?
        .unsqueeze(0)?
        .broadcast_as((n, d, d))?;
    let all = Tensor::cat(&[candidates, &axes], 1)?.contiguous()?;
    let idx = Tensor::from_vec(chosen, (n, d, 1), dev)?
        .broadcast_as((n, d, d))?
        .contiguous()?;
    let sel = all.gather(&idx, 1)?;
    // Differentiable Gram-Schmidt on the chosen rows, twice-projected like the host pass.
    let mut rows: Vec<Tensor> = Vec::with_capacity(d);
    for a in 0..d {
        let mut v = sel.narrow(1, a, 1)?.squeeze(1)?;
        for _ in 0..2 {
            for b in &rows {
                let dot = (&v * b)?.sum_keepdim(1)?;
                v = (v - b.broadcast_mul(&dot)?)?;
            }
        }
        // The epsilon only guards against a NaN gradient; accepted residuals are far above it.
        let len = (v.sqr()?.sum_keepdim(1)? + 1e-300)?.sqrt()?;
        rows.push(v.broadcast_div(&len)?);
    }
    let mut frames = Tensor::stack(&rows, 1)?;
    if opts.handedness == Handedness::Special {
        let flat = frames
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        let mut scale = vec![1.0; n * d];
        for (node, m) in flat.chunks_exact(d * d).enumerate() {
            scale[node * d + d - 1] = det_host(m, d).signum();
        }
        let scale = Tensor::from_vec(scale, (n, d, 1), dev)?.to_dtype(dtype)?;
        frames = frames.broadcast_mul(&scale)?;
    }
    Ok((frames, degenerate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use tf_group::orthogonal::orthogonality_error;

    #[test]
    fn independent_candidates_give_their_gram_schmidt() {
        let c = Tensor::new(&[[[2.0f64, 0.0], [1.0, 1.0]]], &Device::Cpu).unwrap();
        let (f, deg) = orthonormalize(&c, &Orthonormalize::new(2)).unwrap();
        assert_eq!(deg, vec![false]);
        let f = f.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        assert!((f[0] - 1.0).abs() < 1e-15 && f[1].abs() < 1e-15);
        assert!(f[2].abs() < 1e-15 && (f[3] - 1.0).abs() < 1e-15);
    }

    #[test]
    fn degenerate_candidates_fall_back_and_are_counted() {
        // parallel, zero, and NaN-free tiny vectors in 3D
        let c = Tensor::new(
            &[
                [[1.0f64, 1.0, 0.0], [2.0, 2.0, 0.0], [0.0, 0.0, 0.0]],
                [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
            ],
            &Device::Cpu,
        )
        .unwrap();
        let (f, deg) = orthonormalize(&c, &Orthonormalize::new(3)).unwrap();
        assert_eq!(deg, vec![true, true]);
        assert!(orthogonality_error(&f).unwrap() < 1e-12);
        // the first axis keeps the only available direction
        let f0 = f.get(0).unwrap().get(0).unwrap().to_vec1::<f64>().unwrap();
        assert!((f0[0] - f0[1]).abs() < 1e-15 && f0[2] == 0.0);
        // all-zero candidates give the identity
        let f1 = f
            .get(1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        assert_eq!(f1, vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn special_handedness_has_det_one() {
        let c = Tensor::new(&[[[0.0f64, 1.0], [1.0, 0.0]]], &Device::Cpu).unwrap();
        let mut o = Orthonormalize::new(2);
        let (f, _) = orthonormalize(&c, &o).unwrap();
        let m = f.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        assert!((det_host(&m, 2) + 1.0).abs() < 1e-12);
        o.handedness = Handedness::Special;
        let (f, _) = orthonormalize(&c, &o).unwrap();
        let m = f.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        assert!((det_host(&m, 2) - 1.0).abs() < 1e-12);
    }
}
