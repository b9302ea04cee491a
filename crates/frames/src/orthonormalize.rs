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
//! The Gram-Schmidt itself is one differentiable CPU op on the chosen candidates (a hand-written
//! backward, tested against the candle-ops composition it replaced), so gradients flow to them;
//! accepted residuals are bounded below by `rel_tol` times the candidate norm, so they stay
//! finite. The host pass runs over the nodes in parallel.

use std::sync::Arc;

use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, WithDType};
use nalgebra::RealField;
use rayon::prelude::*;
use tf_group::orthogonal::det_host;
use tf_group::small_matmul::slice;

use crate::host_grad::{host_grad, HostGrad};

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
    /// The first `pivot` candidates are taken best first, not in order: each step picks the
    /// one whose residual keeps the largest fraction of its norm (an invariant choice), while
    /// that fraction is at least `rel_tol`; the rest follow in order. 0: all in order.
    pub pivot: usize,
}

impl Orthonormalize {
    /// Defaults for `primary` intended axes.
    pub fn new(primary: usize) -> Self {
        Self {
            rel_tol: 1e-3,
            abs_tol: 1e-9,
            primary,
            handedness: Handedness::Orthogonal,
            pivot: 0,
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
    let mut chosen = vec![0u32; n * d];
    let mut degenerate = vec![false; n];
    // Nodes are independent: in parallel, each thread with its own basis buffer.
    chosen
        .par_chunks_mut(d)
        .zip(degenerate.par_iter_mut())
        .enumerate()
        .with_min_len(256)
        .for_each_init(
            || Vec::with_capacity(d),
            |basis, (node, (row, degen))| {
                *degen = choose_node(
                    &cands[node * k * d..(node + 1) * k * d],
                    d,
                    opts,
                    basis,
                    row,
                );
            },
        );
    (chosen, degenerate)
}

/// [`choose`] for one node's `K` candidates `(K * d)`: writes its `d` indices to `row` and
/// returns whether it was degenerate.
fn choose_node(
    cands: &[f64],
    d: usize,
    opts: &Orthonormalize,
    basis: &mut Vec<Vec<f64>>,
    row: &mut [u32],
) -> bool {
    let k = cands.len() / d;
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
    basis.clear();
    let mut degen = false;
    let pivot = opts.pivot.min(k);
    if pivot > 0 {
        let mut used = vec![false; pivot];
        while basis.len() < d {
            let best = (0..pivot)
                .filter(|&c| !used[c])
                .filter_map(|c| {
                    let v = &cands[c * d..(c + 1) * d];
                    let nv = norm(v);
                    if !(nv.is_finite() && nv > opts.abs_tol) {
                        return None;
                    }
                    let r = residual(v, basis);
                    let nr = norm(&r);
                    Some((nr / nv, c, r, nr))
                })
                .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
            match best {
                Some((ratio, c, r, nr)) if ratio > opts.rel_tol => {
                    used[c] = true;
                    basis.push(r.iter().map(|x| x / nr).collect());
                    row[basis.len() - 1] = c as u32;
                }
                _ => break,
            }
        }
        degen = used.iter().take(opts.primary).any(|u| !u);
    }
    for c in pivot..k {
        if basis.len() == d {
            break;
        }
        let v = &cands[c * d..(c + 1) * d];
        let nv = norm(v);
        let r = residual(v, basis);
        let nr = norm(&r);
        if nv.is_finite() && nv > opts.abs_tol && nr > opts.rel_tol * nv {
            basis.push(r.iter().map(|x| x / nr).collect());
            row[basis.len() - 1] = c as u32;
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
                (a, residual(&e, basis))
            })
            .max_by(|x, y| norm(&x.1).total_cmp(&norm(&y.1)).then(y.0.cmp(&x.0)))
            .expect("d >= 1");
        let nr = norm(&r);
        basis.push(r.iter().map(|x| x / nr).collect());
        row[basis.len() - 1] = (k + best) as u32;
    }
    degen
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
    let mut frames = if tf_group::portable::use_kernels(candidates) {
        candidates.contiguous()?.apply_op1(GramSchmidt {
            chosen: Arc::new(chosen),
            k,
            d,
        })?
    } else {
        gram_schmidt_portable(candidates, &chosen)?
    };
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

/// The portable path of the Gram-Schmidt op: the same twice-projected Gram-Schmidt of the
/// chosen candidates as candle ops (the choice itself is made on the host, as on the CPU).
fn gram_schmidt_portable(candidates: &Tensor, chosen: &[u32]) -> Result<Tensor> {
    let (n, _, d) = candidates.dims3()?;
    let dev = candidates.device();
    let axes = Tensor::eye(d, candidates.dtype(), dev)?
        .unsqueeze(0)?
        .broadcast_as((n, d, d))?;
    let all = Tensor::cat(&[candidates, &axes], 1)?.contiguous()?;
    let idx = Tensor::from_slice(chosen, (n, d, 1), dev)?
        .broadcast_as((n, d, d))?
        .contiguous()?;
    let sel = all.gather(&idx, 1)?;
    let mut rows: Vec<Tensor> = Vec::with_capacity(d);
    for a in 0..d {
        let mut v = sel.narrow(1, a, 1)?.squeeze(1)?;
        for _ in 0..2 {
            for b in &rows {
                let dot = (&v * b)?.sum_keepdim(1)?;
                v = (v - b.broadcast_mul(&dot)?)?;
            }
        }
        let len = (v.sqr()?.sum_keepdim(1)? + NORM_EPS)?.sqrt()?;
        rows.push(v.broadcast_div(&len)?);
    }
    Tensor::stack(&rows, 1)
}

/// Gram-Schmidt of each node's chosen candidates (index `>= K`: a global axis), twice-projected
/// like the host pass, as one CPU op with a hand-written backward: `(N, K, d)` -> frames
/// `(N, d, d)`. As candle ops this was some forty elementwise kernels over `(N, d)` tensors
/// and their backward; per node it is a few dozen flops.
#[derive(Clone)]
struct GramSchmidt {
    chosen: Arc<Vec<u32>>,
    k: usize,
    d: usize,
}

/// Under the square root of a norm: only guards against a NaN gradient (accepted residuals are
/// far above it; in f32 it rounds to zero, as it did in the candle composition).
const NORM_EPS: f64 = 1e-300;

impl GramSchmidt {
    /// Node `node`'s frame into `out (d * d)`, with `v (d)` as scratch; each row's norm goes
    /// to `norms (d)` and, with `tape`, every vector before each projection (for the backward).
    #[inline]
    fn node<F: RealField + Copy + WithDType>(
        &self,
        c: &[F],
        node: usize,
        out: &mut [F],
        mut tape: Option<&mut Vec<F>>,
        v: &mut [F],
        norms: &mut [F],
    ) {
        let k = self.k;
        let d = self.d;
        for (a, norm) in norms.iter_mut().enumerate().take(d) {
            let pick = self.chosen[node * d + a] as usize;
            if pick < k {
                v.copy_from_slice(&c[pick * d..(pick + 1) * d]);
            } else {
                v.iter_mut().for_each(|x| *x = F::zero());
                v[pick - k] = F::one();
            }
            let (done, rest) = out.split_at_mut(a * d);
            for _ in 0..2 {
                for b in done.chunks_exact(d) {
                    if let Some(t) = tape.as_deref_mut() {
                        t.extend_from_slice(v);
                    }
                    let dot = v.iter().zip(b).fold(F::zero(), |s, (x, y)| s + *x * *y);
                    v.iter_mut().zip(b).for_each(|(x, y)| *x -= *y * dot);
                }
            }
            let len = (v.iter().fold(F::zero(), |s, x| s + *x * *x)
                + <F as WithDType>::from_f64(NORM_EPS))
            .sqrt();
            *norm = len;
            rest[..d]
                .iter_mut()
                .zip(v.iter())
                .for_each(|(o, x)| *o = *x / len);
        }
    }

    fn forward<F: RealField + Copy + WithDType>(&self, c: &[F], n: usize) -> Vec<F> {
        let (k, d) = (self.k, self.d);
        let mut out = vec![F::zero(); n * d * d];
        out.par_chunks_mut(d * d)
            .enumerate()
            .with_min_len(256)
            .for_each_init(
                || (vec![F::zero(); d], vec![F::zero(); d]),
                |(v, norms), (node, o)| {
                    let cn = &c[node * k * d..(node + 1) * k * d];
                    self.node(cn, node, o, None, v, norms)
                },
            );
        out
    }

    /// Gradient of the candidates from that of the frames: per node, the forward again with
    /// its tape, then the steps in reverse. For `e = u / |u|`: `g_u = (g_e - (g_e . e) e) / |u|`;
    /// for `v' = v - (v . b) b`: `g_v = g_v' - (g_v' . b) b` and
    /// `g_b -= (v . b) g_v' + (g_v' . b) v`.
    fn backward<F: RealField + Copy + WithDType>(&self, c: &[F], g: &[F], n: usize) -> Vec<F> {
        let (k, d) = (self.k, self.d);
        let mut gc = vec![F::zero(); n * k * d];
        gc.par_chunks_mut(k * d)
            .enumerate()
            .with_min_len(256)
            .for_each_init(
                || {
                    let z = vec![F::zero(); d];
                    let (e, ge) = (vec![F::zero(); d * d], vec![F::zero(); d * d]);
                    (
                        e,
                        ge,
                        Vec::with_capacity(d * d * d),
                        z.clone(),
                        z.clone(),
                        z,
                    )
                },
                |(e, ge, tape, v, norms, gv), (node, gcn)| {
                    let cn = &c[node * k * d..(node + 1) * k * d];
                    tape.clear();
                    self.node(cn, node, e, Some(tape), v, norms);
                    ge.copy_from_slice(&g[node * d * d..(node + 1) * d * d]);
                    let mut end = tape.len();
                    for a in (0..d).rev() {
                        let (ea, ga) = (&e[a * d..(a + 1) * d], &ge[a * d..(a + 1) * d]);
                        let dot = ga.iter().zip(ea).fold(F::zero(), |s, (x, y)| s + *x * *y);
                        for i in 0..d {
                            gv[i] = (ga[i] - dot * ea[i]) / norms[a];
                        }
                        // The projections of row `a`: two passes over rows 0..a, undone backwards.
                        for step in (0..2 * a).rev() {
                            let b = step % a;
                            end -= d;
                            let v = &tape[end..end + d];
                            let eb = &e[b * d..(b + 1) * d];
                            let t = v.iter().zip(eb).fold(F::zero(), |s, (x, y)| s + *x * *y);
                            let gb = gv.iter().zip(eb).fold(F::zero(), |s, (x, y)| s + *x * *y);
                            for i in 0..d {
                                ge[b * d + i] -= t * gv[i] + gb * v[i];
                            }
                            for i in 0..d {
                                gv[i] -= gb * eb[i];
                            }
                        }
                        let pick = self.chosen[node * d + a] as usize;
                        if pick < k {
                            gcn[pick * d..(pick + 1) * d]
                                .iter_mut()
                                .zip(gv.iter())
                                .for_each(|(o, x)| *o += *x);
                        }
                    }
                },
            );
        gc
    }
}

impl CustomOp1 for GramSchmidt {
    fn name(&self) -> &'static str {
        "tf-gram-schmidt"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, k, d) = l.shape().dims3()?;
        if k != self.k || d != self.d || self.chosen.len() != n * d {
            bail!(
                "gram-schmidt: candidates {:?} do not fit the plan",
                l.dims()
            );
        }
        let out = match s {
            CpuStorage::F32(c) => CpuStorage::F32(self.forward(slice(c, l)?, n)),
            CpuStorage::F64(c) => CpuStorage::F64(self.forward(slice(c, l)?, n)),
            _ => bail!("gram-schmidt: candidates must be f32 or f64"),
        };
        Ok((out, (n, d, d).into()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        host_grad(self, arg, grad, "gram-schmidt").map(Some)
    }
}

impl HostGrad for GramSchmidt {
    fn f32(&self, c: &[f32], g: &[f32]) -> Vec<f32> {
        self.backward(c, g, c.len() / (self.k * self.d).max(1))
    }

    fn f64(&self, c: &[f64], g: &[f64]) -> Vec<f64> {
        self.backward(c, g, c.len() / (self.k * self.d).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use tf_group::orthogonal::orthogonality_error;

    /// The candle-ops Gram-Schmidt the op replaced, on the same chosen rows.
    fn reference(candidates: &Tensor, chosen: &[u32]) -> Tensor {
        let (n, _, d) = candidates.dims3().unwrap();
        let dev = candidates.device();
        let axes = Tensor::eye(d, candidates.dtype(), dev)
            .unwrap()
            .unsqueeze(0)
            .unwrap()
            .broadcast_as((n, d, d))
            .unwrap();
        let all = Tensor::cat(&[candidates, &axes], 1).unwrap();
        let idx = Tensor::from_vec(chosen.to_vec(), (n, d, 1), dev)
            .unwrap()
            .broadcast_as((n, d, d))
            .unwrap()
            .contiguous()
            .unwrap();
        let sel = all.contiguous().unwrap().gather(&idx, 1).unwrap();
        let mut rows: Vec<Tensor> = Vec::new();
        for a in 0..d {
            let mut v = sel.narrow(1, a, 1).unwrap().squeeze(1).unwrap();
            for _ in 0..2 {
                for b in &rows {
                    let dot = (&v * b).unwrap().sum_keepdim(1).unwrap();
                    v = (v - b.broadcast_mul(&dot).unwrap()).unwrap();
                }
            }
            let len = (v.sqr().unwrap().sum_keepdim(1).unwrap() + 1e-300)
                .unwrap()
                .sqrt()
                .unwrap();
            rows.push(v.broadcast_div(&len).unwrap());
        }
        Tensor::stack(&rows, 1).unwrap()
    }

    /// The fused op against the candle composition in f64, values and candidate gradients,
    /// with nodes that need a global axis (parallel and zero candidates) in d = 2, 3 and 4.
    #[test]
    fn fused_gram_schmidt_matches_candle_ops() {
        use candle_core::{Device, Var};
        for d in [2usize, 3, 4] {
            let (n, k) = (9, d + 2);
            let mut v: Vec<f64> = (0..n * k * d).map(|i| (i as f64 * 0.731).sin()).collect();
            // node 1: all candidates parallel; node 2: all zero
            for c in 0..k {
                for a in 0..d {
                    v[(k + c) * d + a] = (c + 1) as f64 * (a as f64 + 0.5);
                    v[(2 * k + c) * d + a] = 0.0;
                }
            }
            let cands =
                Var::from_tensor(&Tensor::from_vec(v.clone(), (n, k, d), &Device::Cpu).unwrap())
                    .unwrap();
            let (chosen, degenerate) = choose(&v, n, k, d, &Orthonormalize::new(d));
            assert!(degenerate[1] && degenerate[2] && chosen.iter().any(|&c| c as usize >= k));
            let (fused, _) = orthonormalize(&cands, &Orthonormalize::new(d)).unwrap();
            let want = reference(&cands, &chosen);
            let diff = |a: &Tensor, b: &Tensor| tf_testing::max_abs_diff(a, b).unwrap();
            assert!(diff(&fused, &want) < 1e-14, "d = {d}");
            let w = Tensor::from_vec(
                (0..n * d * d)
                    .map(|i| (i as f64 * 1.3).cos())
                    .collect::<Vec<_>>(),
                (n, d, d),
                &Device::Cpu,
            )
            .unwrap();
            let g1 = (fused * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (want * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let (g1, g2) = (g1.get(&cands).unwrap(), g2.get(&cands).unwrap());
            assert!(diff(g1, g2) < 1e-12, "d = {d}: {}", diff(g1, g2));
        }
    }

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
