//! Applying `rho(U)` to batched features: `out[n] = rho(U[n]) features[n]`.
//!
//! # Shapes
//! - `features`: `(N, rep_dim)`, layout of [`TensorReps`]
//! - `u`: `(N, d, d)`, one element of O(d) per row
//! - output: `(N, rep_dim)`
//!
//! # Algorithm (why it is fast)
//! `rho(U)` on an order-k tensor is `U^(x)k`, a `d^k x d^k` matrix; building it costs `d^(2k)`
//! per channel. Instead each channel is rotated one tensor axis at a time (docs/method.md, section 2):
//! viewing the channel as `(d^p, d, d^(k-1-p))`, axis `p` becomes `U` times that axis, a cost of
//! `d^(k+1)` per axis and `k d^(k+1)` per channel. Pseudo terms are then multiplied by `det U`.
//!
//! The whole action is one CPU kernel (a candle custom op, rayon over rows) that reads the input
//! once and writes the output once, in the original layout: composing it from candle ops costs
//! far more, almost all in strided `cat`/`index_select` copies (see the `rho` bench).
//!
//! # Gradients
//! `d out / d features` is `rho(U)^T = rho(U^T)`, i.e. the same kernel with `U^T` (itself
//! differentiable, so second derivatives in the features work). `d out / d U` sums, over every
//! tensor axis `p`, the contraction of the upstream gradient with the channel rotated on all axes
//! but `p`; it is computed by a second kernel that has no backward of its own (second
//! derivatives through `U` are not supported yet). `det U` is treated as a constant: it is
//! locally constant on O(d).

use std::sync::Arc;

use candle_core::{
    bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, WithDType,
};
use rayon::prelude::*;

use crate::orthogonal::{check_dim, det_host};
use crate::reps::{Parity, TensorReps};
use crate::small_matmul::slice;

/// Rows per rayon task: amortises scheduling over cheap rows.
const MIN_ROWS_PER_TASK: usize = 64;

/// A plan for applying `rho(U)` of one rep in one dimension. Build it once per layer and reuse
/// it every forward pass (cloning is cheap: the plan is shared).
#[derive(Debug, Clone)]
pub struct RepAction {
    reps: TensorReps,
    plan: Arc<Plan>,
}

/// Per-term layout facts the kernels need, precomputed.
#[derive(Debug)]
struct Plan {
    d: usize,
    rep_dim: usize,
    /// `(offset, mul, order, pseudo)` per term with order >= 1 or pseudo parity; invariant
    /// scalar terms are plain copies and handled by `copy_ranges`.
    terms: Vec<Term>,
    /// Column ranges that pass through unchanged (`0n` terms).
    copy_ranges: Vec<(usize, usize)>,
    /// Largest channel width `d^order`, for scratch buffers.
    max_width: usize,
    /// Some term is pseudo: rows need `det U`.
    has_pseudo: bool,
}

#[derive(Debug, Clone, Copy)]
struct Term {
    offset: usize,
    mul: usize,
    order: usize,
    pseudo: bool,
}

impl RepAction {
    /// Plans the action of `reps` in dimension `d >= 2`.
    pub fn new(reps: &TensorReps, d: usize) -> Result<Self> {
        check_dim(d)?;
        let offsets = reps.offsets(d);
        let mut terms = Vec::new();
        let mut copy_ranges = Vec::new();
        for (t, &offset) in reps.terms().iter().zip(&offsets) {
            let pseudo = t.parity == Parity::Pseudo;
            if t.order == 0 && !pseudo {
                copy_ranges.push((offset, t.mul));
            } else {
                terms.push(Term {
                    offset,
                    mul: t.mul,
                    order: t.order,
                    pseudo,
                });
            }
        }
        let max_width = reps
            .terms()
            .iter()
            .map(|t| t.channel_dim(d))
            .max()
            .unwrap_or(1)
            .max(2 * d * d);
        Ok(Self {
            reps: reps.clone(),
            plan: Arc::new(Plan {
                d,
                rep_dim: reps.dim(d),
                terms,
                copy_ranges,
                max_width,
                has_pseudo: reps.has_pseudo(),
            }),
        })
    }

    /// The rep this plan acts on.
    pub fn reps(&self) -> &TensorReps {
        &self.reps
    }

    /// The dimension `d`.
    pub fn d(&self) -> usize {
        self.plan.d
    }

    /// Feature width `reps.dim(d)`.
    pub fn rep_dim(&self) -> usize {
        self.plan.rep_dim
    }

    /// `rho(U) features` for `features (N, rep_dim)` and orthogonal `u (N, d, d)`.
    pub fn apply(&self, features: &Tensor, u: &Tensor) -> Result<Tensor> {
        let (n, dim) = features.dims2()?;
        let d = self.plan.d;
        if dim != self.plan.rep_dim {
            bail!(
                "features have {dim} columns but rep {} has dimension {} in d = {d}",
                self.reps,
                self.plan.rep_dim,
            );
        }
        let (un, d1, d2) = u.dims3()?;
        if un != n || d1 != d || d2 != d {
            bail!("expected U of shape ({n}, {d}, {d}), got {:?}", u.dims());
        }
        if features.dtype() != u.dtype() {
            bail!(
                "features are {:?} but U is {:?}",
                features.dtype(),
                u.dtype()
            );
        }
        if self.reps.is_invariant() {
            return Ok(features.clone());
        }
        if !crate::portable::use_kernels(features) {
            return self.apply_portable(features, u);
        }
        features
            .contiguous()?
            .apply_op2(&u.contiguous()?, RhoOp(self.plan.clone()))
    }

    /// The portable path of [`apply`](Self::apply): each term's channels rotated one tensor
    /// axis at a time by a batched `matmul`, differentiable in both inputs by candle's
    /// autograd. `det U` comes from the host (a constant, as in the kernel).
    fn apply_portable(&self, features: &Tensor, u: &Tensor) -> Result<Tensor> {
        let d = self.plan.d;
        let n = features.dim(0)?;
        let det = if self.plan.has_pseudo {
            let host = u
                .to_dtype(candle_core::DType::F64)?
                .flatten_all()?
                .to_vec1::<f64>()?;
            let det: Vec<f64> = host.chunks_exact(d * d).map(|m| det_host(m, d)).collect();
            Some(
                Tensor::from_vec(det, (n, 1), u.device())?
                    .to_dtype(features.dtype())?
                    .detach(),
            )
        } else {
            None
        };
        let u = u.contiguous()?;
        let mut parts = Vec::with_capacity(self.reps.terms().len());
        for (t, &offset) in self.reps.terms().iter().zip(&self.reps.offsets(d)) {
            let width = t.dim(d);
            let mut x = features.narrow(1, offset, width)?;
            if t.order > 0 {
                let k = t.order;
                let mut y = x.reshape((n, width))?;
                for p in 0..k {
                    let (pre, post) = (t.mul * d.pow(p as u32), d.pow((k - 1 - p) as u32));
                    // axis p to the front, rotate, and back: (n, pre, d, post)
                    let z = y
                        .reshape((n, pre, d, post))?
                        .permute((0, 2, 1, 3))?
                        .contiguous()?
                        .reshape((n, d, pre * post))?;
                    y = u
                        .matmul(&z)?
                        .reshape((n, d, pre, post))?
                        .permute((0, 2, 1, 3))?
                        .contiguous()?
                        .reshape((n, width))?;
                }
                x = y;
            }
            if let (Parity::Pseudo, Some(det)) = (t.parity, &det) {
                x = x.broadcast_mul(det)?;
            }
            parts.push(x);
        }
        Tensor::cat(&parts, 1)
    }

    /// `rho(Q) features` for one element `Q` of shape `(d, d)` shared by all rows.
    pub fn apply_shared(&self, features: &Tensor, q: &Tensor) -> Result<Tensor> {
        let (n, _) = features.dims2()?;
        let d = self.plan.d;
        if q.dims() != [d, d] {
            bail!("expected Q of shape ({d}, {d}), got {:?}", q.dims());
        }
        let u = q.unsqueeze(0)?.broadcast_as((n, d, d))?.contiguous()?;
        self.apply(features, &u)
    }
}

impl TensorReps {
    /// One-off `rho(U) features`; build a [`RepAction`] instead inside a layer.
    pub fn apply(&self, features: &Tensor, u: &Tensor) -> Result<Tensor> {
        let d = u.dim(u.rank().saturating_sub(1))?;
        RepAction::new(self, d)?.apply(features, u)
    }
}

/// `(features, U) -> rho(U) features`.
struct RhoOp(Arc<Plan>);

/// `(features, U, upstream) -> d<upstream, rho(U) features>/dU`.
struct RhoGradU(Arc<Plan>);

/// Rotates axis `p` of a `d^k` channel: `dst[pre, i, post] = sum_j u[i, j] src[pre, j, post]`.
#[inline]
fn rotate_axis<T: WithDType>(u: &[T], src: &[T], dst: &mut [T], d: usize, k: usize, p: usize) {
    let post = d.pow((k - 1 - p) as u32);
    let pre = d.pow(p as u32);
    for a in 0..pre {
        let base = a * d * post;
        for i in 0..d {
            let ui = &u[i * d..(i + 1) * d];
            let out = &mut dst[base + i * post..base + (i + 1) * post];
            out.fill(T::zero());
            for (j, &uij) in ui.iter().enumerate() {
                let inp = &src[base + j * post..base + (j + 1) * post];
                for (o, &x) in out.iter_mut().zip(inp) {
                    *o += uij * x;
                }
            }
        }
    }
}

/// Rotates all axes except `skip` (or all axes when `skip >= k`) of one channel from `src`,
/// leaving the result in the returned buffer (one of `a`, `b`).
fn rotate_channel<'s, T: WithDType>(
    u: &[T],
    src: &[T],
    a: &'s mut [T],
    b: &'s mut [T],
    d: usize,
    k: usize,
    skip: usize,
) -> &'s [T] {
    let w = src.len();
    a[..w].copy_from_slice(src);
    let (mut cur, mut next) = (a, b);
    for p in (0..k).filter(|&p| p != skip) {
        rotate_axis(u, &cur[..w], &mut next[..w], d, k, p);
        std::mem::swap(&mut cur, &mut next);
    }
    &cur[..w]
}

/// Order 1: `out = s U x`.
#[inline(always)]
fn apply_order1<T: WithDType>(u: &[T], x: &[T], out: &mut [T], d: usize, s: T) {
    for (i, o) in out.iter_mut().enumerate() {
        let ui = &u[i * d..(i + 1) * d];
        *o = s * ui
            .iter()
            .zip(x)
            .fold(T::zero(), |acc, (&a, &b)| acc + a * b);
    }
}

/// Order 2: `out = s U X U^T`, as `tmp = U X` (in `scratch`) then `out[i, a] = tmp[i, :] . U[a, :]`.
#[inline(always)]
fn apply_order2<T: WithDType>(u: &[T], x: &[T], out: &mut [T], scratch: &mut [T], d: usize, s: T) {
    let tmp = &mut scratch[..d * d];
    for i in 0..d {
        let ti = &mut tmp[i * d..(i + 1) * d];
        ti.fill(T::zero());
        for j in 0..d {
            let uij = u[i * d + j];
            for (t, &xv) in ti.iter_mut().zip(&x[j * d..(j + 1) * d]) {
                *t += uij * xv;
            }
        }
    }
    for i in 0..d {
        let ti = &tmp[i * d..(i + 1) * d];
        for a in 0..d {
            let ua = &u[a * d..(a + 1) * d];
            out[i * d + a] = s * ti
                .iter()
                .zip(ua)
                .fold(T::zero(), |acc, (&p, &q)| acc + p * q);
        }
    }
}

/// Gradient of `<G, s rho(U) X>` in `U` for one low-order channel, accumulated into `du`:
/// order 1 (`y = s U x`): `s g x^T`; order 2 (`Y = s U X U^T`): `s (G U X^T + G^T U X)`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn grad_u_low_order<T: WithDType>(
    u: &[T],
    x: &[T],
    g: &[T],
    du: &mut [T],
    scratch: &mut [T],
    d: usize,
    k: usize,
    s: T,
) {
    if k == 1 {
        for a in 0..d {
            let sg = s * g[a];
            for (dst, &xb) in du[a * d..(a + 1) * d].iter_mut().zip(x) {
                *dst += sg * xb;
            }
        }
        return;
    }
    // scratch holds UX[a, q] = sum_j U[a, j] X[j, q] and then UXt[b, q] = sum_j U[b, j] X[q, j].
    let (ux, uxt) = scratch[..2 * d * d].split_at_mut(d * d);
    for a in 0..d {
        for q in 0..d {
            let (mut p1, mut p2) = (T::zero(), T::zero());
            for j in 0..d {
                p1 += u[a * d + j] * x[j * d + q];
                p2 += u[a * d + j] * x[q * d + j];
            }
            ux[a * d + q] = p1;
            uxt[a * d + q] = p2;
        }
    }
    for p in 0..d {
        for q in 0..d {
            let mut acc = T::zero();
            for b in 0..d {
                acc += g[p * d + b] * uxt[b * d + q] + g[b * d + p] * ux[b * d + q];
            }
            du[p * d + q] += s * acc;
        }
    }
}

/// `U` of one row as nine locals, so that the `d = 3` kernels below keep it in registers.
#[inline(always)]
fn u3<T: WithDType>(u: &[T]) -> [T; 9] {
    let mut m = [T::zero(); 9];
    m.copy_from_slice(&u[..9]);
    m
}

/// `U X` for a `3 x 3` channel `X` (row-major), with `U` in locals.
#[inline(always)]
fn u_times3<T: WithDType>(m: &[T; 9], x: &[T]) -> [T; 9] {
    let mut t = [T::zero(); 9];
    for i in 0..3 {
        for q in 0..3 {
            t[i * 3 + q] = m[i * 3] * x[q] + m[i * 3 + 1] * x[3 + q] + m[i * 3 + 2] * x[6 + q];
        }
    }
    t
}

/// A whole order-1 term in `d = 3`: `out_c = s U x_c` for every channel `c`. Written out with
/// `U` in locals and one loop over the term's channels: the generic path (a call per channel,
/// order 2 through a scratch buffer) is slower (the `rho` bench; docs/performance.md). The sums run in the generic path's order, so the outputs are identical.
#[inline(always)]
fn apply_order1_d3<T: WithDType>(u: &[T], x: &[T], out: &mut [T], s: T) {
    let m = u3(u);
    for (xc, oc) in x.chunks_exact(3).zip(out.chunks_exact_mut(3)) {
        let (a, b, c) = (xc[0], xc[1], xc[2]);
        oc[0] = s * (m[0] * a + m[1] * b + m[2] * c);
        oc[1] = s * (m[3] * a + m[4] * b + m[5] * c);
        oc[2] = s * (m[6] * a + m[7] * b + m[8] * c);
    }
}

/// A whole order-2 term in `d = 3`: `Y_c = s U X_c U^T`, as `T = U X_c` then `T U^T`, in
/// locals.
#[inline(always)]
fn apply_order2_d3<T: WithDType>(u: &[T], x: &[T], out: &mut [T], s: T) {
    let m = u3(u);
    for (xc, oc) in x.chunks_exact(9).zip(out.chunks_exact_mut(9)) {
        let t = u_times3(&m, xc);
        for i in 0..3 {
            for a in 0..3 {
                oc[i * 3 + a] = s
                    * (t[i * 3] * m[a * 3]
                        + t[i * 3 + 1] * m[a * 3 + 1]
                        + t[i * 3 + 2] * m[a * 3 + 2]);
            }
        }
    }
}

/// The `U`-gradient of a whole order-1 or order-2 term in `d = 3` (see
/// [`grad_u_low_order`]), summed over its channels in locals and added to `du` once.
#[inline(always)]
fn grad_u_term_d3<T: WithDType>(u: &[T], x: &[T], g: &[T], du: &mut [T], order: usize, s: T) {
    let mut acc = [T::zero(); 9];
    if order == 1 {
        for (gc, xc) in g.chunks_exact(3).zip(x.chunks_exact(3)) {
            for a in 0..3 {
                for b in 0..3 {
                    acc[a * 3 + b] += gc[a] * xc[b];
                }
            }
        }
    } else {
        let m = u3(u);
        for (gc, xc) in g.chunks_exact(9).zip(x.chunks_exact(9)) {
            // ux = U X, uxt = U X^T; dU += G uxt + G^T ux.
            let ux = u_times3(&m, xc);
            let mut uxt = [T::zero(); 9];
            for a in 0..3 {
                for q in 0..3 {
                    uxt[a * 3 + q] = m[a * 3] * xc[q * 3]
                        + m[a * 3 + 1] * xc[q * 3 + 1]
                        + m[a * 3 + 2] * xc[q * 3 + 2];
                }
            }
            for p in 0..3 {
                for q in 0..3 {
                    acc[p * 3 + q] += gc[p * 3] * uxt[q]
                        + gc[p * 3 + 1] * uxt[3 + q]
                        + gc[p * 3 + 2] * uxt[6 + q]
                        + gc[p] * ux[q]
                        + gc[3 + p] * ux[3 + q]
                        + gc[6 + p] * ux[6 + q];
                }
            }
        }
    }
    for (o, a) in du[..9].iter_mut().zip(acc) {
        *o += s * a;
    }
}

/// Sign of `det U` (U orthogonal), from an LU factorisation of the row's matrix.
fn det_sign<T: WithDType>(u: &[T], d: usize) -> T {
    let m: Vec<f64> = u.iter().map(|v| v.to_f64()).collect();
    T::from_f64(det_host(&m, d).signum())
}

impl Plan {
    /// Runs `f(row, out_row, scratch_a, scratch_b)` for every output row in parallel, with two
    /// scratch buffers per rayon task.
    fn par_rows<T: WithDType>(
        &self,
        out: &mut [T],
        row_len: usize,
        f: impl Fn(usize, &mut [T], &mut [T], &mut [T]) + Send + Sync,
    ) {
        out.par_chunks_mut(row_len)
            .with_min_len(MIN_ROWS_PER_TASK)
            .enumerate()
            .for_each_init(
                || {
                    (
                        vec![T::zero(); self.max_width],
                        vec![T::zero(); self.max_width],
                    )
                },
                |(sa, sb), (r, o)| f(r, o, sa, sb),
            );
    }

    /// `det U` of one row's matrix where the rep needs it (pseudo terms), else 1.
    fn sign<T: WithDType>(&self, u: &[T]) -> T {
        if self.has_pseudo {
            det_sign(u, self.d)
        } else {
            T::one()
        }
    }

    fn forward<T: WithDType>(&self, x: &[T], u: &[T], n: usize) -> Vec<T> {
        let (d, dim) = (self.d, self.rep_dim);
        let mut out = vec![T::zero(); n * dim];
        if dim == 0 {
            return out;
        }
        self.par_rows(&mut out, dim, |r, o, sa, sb| {
            let xr = &x[r * dim..(r + 1) * dim];
            let ur = &u[r * d * d..(r + 1) * d * d];
            // A literal `d` per arm lets the compiler unroll the d-sized loops (about 2x on
            // the vector terms that dominate every layer).
            match d {
                2 => self.forward_row(xr, ur, o, sa, sb, 2),
                3 => self.forward_row(xr, ur, o, sa, sb, 3),
                4 => self.forward_row(xr, ur, o, sa, sb, 4),
                _ => self.forward_row(xr, ur, o, sa, sb, d),
            }
        });
        out
    }

    /// One row of [`forward`](Self::forward); always inlined so that a constant `d` propagates.
    #[inline(always)]
    fn forward_row<T: WithDType>(
        &self,
        xr: &[T],
        ur: &[T],
        o: &mut [T],
        sa: &mut [T],
        sb: &mut [T],
        d: usize,
    ) {
        for &(off, len) in &self.copy_ranges {
            o[off..off + len].copy_from_slice(&xr[off..off + len]);
        }
        let sign = self.sign(ur);
        for t in &self.terms {
            let w = d.pow(t.order as u32);
            let s = if t.pseudo { sign } else { T::one() };
            if d == 3 && (t.order == 1 || t.order == 2) {
                let block = t.offset..t.offset + t.mul * w;
                let (xb, ob) = (&xr[block.clone()], &mut o[block]);
                if t.order == 1 {
                    apply_order1_d3(ur, xb, ob, s);
                } else {
                    apply_order2_d3(ur, xb, ob, s);
                }
                continue;
            }
            for c in 0..t.mul {
                let range = t.offset + c * w..t.offset + (c + 1) * w;
                let (xc, oc) = (&xr[range.clone()], &mut o[range]);
                match t.order {
                    0 => oc[0] = s * xc[0],
                    1 => apply_order1(ur, xc, oc, d, s),
                    2 => apply_order2(ur, xc, oc, sa, d, s),
                    k => {
                        let rotated = rotate_channel(ur, xc, sa, sb, d, k, usize::MAX);
                        for (dst, &v) in oc.iter_mut().zip(rotated) {
                            *dst = s * v;
                        }
                    }
                }
            }
        }
    }

    fn grad_u<T: WithDType>(&self, x: &[T], u: &[T], g: &[T], n: usize) -> Vec<T> {
        let (d, dim) = (self.d, self.rep_dim);
        let mut out = vec![T::zero(); n * d * d];
        self.par_rows(&mut out, d * d, |r, o, sa, sb| {
            let xr = &x[r * dim..(r + 1) * dim];
            let gr = &g[r * dim..(r + 1) * dim];
            let ur = &u[r * d * d..(r + 1) * d * d];
            match d {
                2 => self.grad_u_row(xr, gr, ur, o, sa, sb, 2),
                3 => self.grad_u_row(xr, gr, ur, o, sa, sb, 3),
                4 => self.grad_u_row(xr, gr, ur, o, sa, sb, 4),
                _ => self.grad_u_row(xr, gr, ur, o, sa, sb, d),
            }
        });
        out
    }

    /// One row of [`grad_u`](Self::grad_u); always inlined so that a constant `d` propagates.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn grad_u_row<T: WithDType>(
        &self,
        xr: &[T],
        gr: &[T],
        ur: &[T],
        o: &mut [T],
        sa: &mut [T],
        sb: &mut [T],
        d: usize,
    ) {
        let sign = self.sign(ur);
        for t in self.terms.iter().filter(|t| t.order > 0) {
            let k = t.order;
            let w = d.pow(k as u32);
            let s = if t.pseudo { sign } else { T::one() };
            if d == 3 && k <= 2 {
                let block = t.offset..t.offset + t.mul * w;
                grad_u_term_d3(ur, &xr[block.clone()], &gr[block], o, k, s);
                continue;
            }
            for c in 0..t.mul {
                let range = t.offset + c * w..t.offset + (c + 1) * w;
                let gc = &gr[range.clone()];
                if k <= 2 {
                    grad_u_low_order(ur, &xr[range.clone()], gc, o, sa, d, k, s);
                    continue;
                }
                for p in 0..k {
                    // out_c = U_p A_p with A_p the channel rotated on all axes but p:
                    // dU[a, b] += s sum_{pre, post} G[pre, a, post] A_p[pre, b, post].
                    let ap = rotate_channel(ur, &xr[range.clone()], sa, sb, d, k, p);
                    let post = d.pow((k - 1 - p) as u32);
                    let pre = d.pow(p as u32);
                    for q in 0..pre {
                        let base = q * d * post;
                        for a in 0..d {
                            let ga = &gc[base + a * post..base + (a + 1) * post];
                            for b in 0..d {
                                let ab = &ap[base + b * post..base + (b + 1) * post];
                                let dot = ga
                                    .iter()
                                    .zip(ab)
                                    .fold(T::zero(), |acc, (&x, &y)| acc + x * y);
                                o[a * d + b] += s * dot;
                            }
                        }
                    }
                }
            }
        }
    }

    fn check(&self, x: &Layout, u: &Layout) -> Result<usize> {
        let (&[n, dim], &[un, d1, d2]) = (x.dims(), u.dims()) else {
            bail!(
                "rho kernel: expected (N, rep_dim) and (N, d, d), got {:?} and {:?}",
                x.dims(),
                u.dims()
            );
        };
        if dim != self.rep_dim || un != n || d1 != self.d || d2 != self.d {
            bail!(
                "rho kernel: shapes {:?} and {:?} do not fit the plan",
                x.dims(),
                u.dims()
            );
        }
        Ok(n)
    }
}

impl CustomOp2 for RhoOp {
    fn name(&self) -> &'static str {
        "tf-rho"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.0.check(l1, l2)?;
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(u)) => {
                CpuStorage::F32(self.0.forward(slice(x, l1)?, slice(u, l2)?, n))
            }
            (CpuStorage::F64(x), CpuStorage::F64(u)) => {
                CpuStorage::F64(self.0.forward(slice(x, l1)?, slice(u, l2)?, n))
            }
            _ => bail!("rho kernel: expected f32 or f64 features and U of the same dtype"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        u: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        // rho(U)^T = rho(U^T): the same kernel, so this gradient is itself differentiable.
        // Untracked inputs (fixed frames, constant features) get no gradient: nothing would
        // read it.
        let gx = if x.track_op() {
            let ut = u.transpose(1, 2)?.contiguous()?;
            Some(grad.apply_op2(&ut, RhoOp(self.0.clone()))?)
        } else {
            None
        };
        let gu = if u.track_op() {
            Some(x.apply_op3_no_bwd(u, &grad, &RhoGradU(self.0.clone()))?)
        } else {
            None
        };
        Ok((gx, gu))
    }
}

impl CustomOp3 for RhoGradU {
    fn name(&self) -> &'static str {
        "tf-rho-grad-u"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.0.check(l1, l2)?;
        if l3.dims() != l1.dims() {
            bail!(
                "rho gradient: upstream shape {:?} != {:?}",
                l3.dims(),
                l1.dims()
            );
        }
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(u), CpuStorage::F32(g)) => CpuStorage::F32(
                self.0
                    .grad_u(slice(x, l1)?, slice(u, l2)?, slice(g, l3)?, n),
            ),
            (CpuStorage::F64(x), CpuStorage::F64(u), CpuStorage::F64(g)) => CpuStorage::F64(
                self.0
                    .grad_u(slice(x, l1)?, slice(u, l2)?, slice(g, l3)?, n),
            ),
            _ => bail!("rho gradient: dtype mismatch"),
        };
        Ok((out, l2.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn rotates_a_vector_and_a_matrix_in_2d() {
        // 90 degree rotation: e_x -> e_y.
        let u = Tensor::from_vec(vec![0.0f64, -1.0, 1.0, 0.0], (1, 2, 2), &Device::Cpu).unwrap();
        let reps = TensorReps::parse("1x0n+1x1n+1x2n").unwrap();
        // scalar 7, vector e_x, matrix e_x e_x^T
        let x = Tensor::from_vec(
            vec![7.0f64, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0],
            (1, 7),
            &Device::Cpu,
        )
        .unwrap();
        let y = reps.apply(&x, &u).unwrap().to_vec2::<f64>().unwrap();
        let want = [7.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        for (a, b) in y[0].iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{:?}", y);
        }
    }

    #[test]
    fn pseudo_scalar_flips_under_reflection() {
        let u = Tensor::from_vec(vec![-1.0f64, 0.0, 0.0, 1.0], (1, 2, 2), &Device::Cpu).unwrap();
        let reps = TensorReps::parse("1x0p+1x1p").unwrap();
        let x = Tensor::from_vec(vec![2.0f64, 1.0, 1.0], (1, 3), &Device::Cpu).unwrap();
        let y = reps.apply(&x, &u).unwrap().to_vec2::<f64>().unwrap();
        assert_eq!(y[0], vec![-2.0, 1.0, -1.0]);
    }

    #[test]
    fn shape_errors_are_reported() {
        let reps = TensorReps::parse("1x1n").unwrap();
        let plan = RepAction::new(&reps, 3).unwrap();
        let x = Tensor::zeros((2, 4), DType::F64, &Device::Cpu).unwrap();
        let u = Tensor::zeros((2, 3, 3), DType::F64, &Device::Cpu).unwrap();
        assert!(plan.apply(&x, &u).is_err());
        let x = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
        assert!(plan.apply(&x, &u).is_err());
        assert!(RepAction::new(&reps, 1).is_err());
    }
}
