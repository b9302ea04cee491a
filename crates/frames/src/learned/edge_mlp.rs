//! The learned-frame edge network as one CPU kernel.
//!
//! `V[i, k, :] = sum_{e -> i} phi_k(x_e) env_e unit_e` with `phi(x) = W2 silu(W1 x + b1) + b2`,
//! where `x_e` is the edge's invariant scalars followed by a Gaussian radial basis of its length.
//!
//! Composed from candle ops this evaluates a dozen elementwise kernels over `(E, hidden)`
//! tensors and keeps them all for the backward pass; with 262k edges it was the entire cost of
//! TF-PointNet++ over plain PointNet++ (see the README). Here the edges go in fixed chunks and
//! each edge's whole MLP runs in registers and L1: the radial basis is expanded from the edge
//! length, the first layer is `I` vector axpys of length `H` with the partial sums held in
//! registers, the sigmoid uses a branch-free `exp`, and nothing of size `(E, hidden)` is ever
//! stored: the backward recomputes each edge's activations (a few hundred vector operations)
//! rather than keep about 80 floats per edge alive between the passes (84 MB at 262k edges).
//! The chunk kernels are compiled for baseline x86-64 and for AVX2 + FMA, and the version is
//! chosen at run time ([`pulp`]). The FMA version fuses its multiply-adds and so rounds
//! differently from the baseline one (they agree to 1e-12 in f64, tested); on one machine the
//! results are deterministic, across instruction sets they may differ in the last bits. The
//! weight-gradient outer products are added a block of edges at a time, with the partial sums
//! in registers. Each chunk sums its messages per run of edges with the same receiver, so the
//! sequential scatter that keeps the result deterministic adds about one row per node rather
//! than one per edge (graph builders emit edges sorted by receiver). The math runs in the
//! tensors' own dtype (f32 products and exponentials cost half of f64 ones).
//!
//! Edges may come in pairs with equal MLP inputs (an edge and its reverse, when the input is
//! the edge length alone): a pair runs the MLP once, in the forward (its outputs `w` are
//! computed first, then the messages read them) and in the backward (the gradients of both
//! edges' outputs are summed, then propagated once through the shared activations). The
//! messages are the same bit for bit; the weight gradients differ in rounding only. A kNN
//! graph is mostly pairs, so the MLP runs for little more than half of its edges.
//!
//! # Shapes
//! - `packed`: `[W1 (H, I) row-major, b1 (H), W2 (d, H) row-major, b2 (d)]`, flattened
//! - `edges`: `(E, S + [1] + 1 + d)`: the `S = I - n_rbf` scalars of `x_e`, the edge length
//!   (when `n_rbf > 0`), envelope `env_e`, unit vector `unit_e`
//! - output: `(N, d * d)`, row `i` holding the `d` learned vectors of node `i`
//!
//! Gradients flow to both inputs (so positions still receive gradients through the frames), to
//! the edge data only when it is tracked (in training positions are data, so nothing would
//! read that gradient); weight gradients are summed over fixed chunks of edges in order, so they are deterministic.
//! The backward has no backward of its own (no second derivatives through learned frames).

use std::borrow::Cow;
use std::sync::Arc;

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Storage, Tensor, WithDType};
use nalgebra::RealField;
use rayon::prelude::*;
use tf_group::small_matmul::slice;

/// Edges per parallel chunk (fixed, so sums do not depend on the number of threads).
const CHUNK: usize = 2048;

/// The float types the kernel computes in.
trait Real: RealField + Copy + WithDType + 'static {
    /// `exp(z)`, vectorisable where it matters (f32); with fused multiply-adds when `FUSED`.
    fn fast_exp<const FUSED: bool>(z: Self) -> Self;
    /// `1 / (1 + exp(-z))`.
    #[inline(always)]
    fn sigmoid<const FUSED: bool>(z: Self) -> Self {
        Self::one() / (Self::one() + Self::fast_exp::<FUSED>(-z))
    }
}

// Always inlined, here and below: the SIMD dispatch compiles only what is inlined into the
// chunk kernels for the wider instruction sets.
impl Real for f32 {
    #[inline(always)]
    fn fast_exp<const FUSED: bool>(z: f32) -> f32 {
        exp_f32::<FUSED>(z)
    }
}

impl Real for f64 {
    #[inline(always)]
    fn fast_exp<const FUSED: bool>(z: f64) -> f64 {
        z.exp()
    }
}

/// `exp(x)` in f32 to about 2 ulp, branch-free so that loops over it vectorise (libm's `expf`
/// is a call per element, and was the largest single cost of the edge network): `2^n e^r` with
/// `n = round(x / ln 2)`, `|r| <= ln 2 / 2`, and Cephes' degree-6 polynomial for `e^r`. With
/// `FUSED` the reduction and the polynomial are chains of fused multiply-adds, about half the
/// instructions and latency of separate multiplies and adds (the exponentials of the radial
/// basis and the sigmoids are the kernel's longest dependency chains).
#[inline(always)]
fn exp_f32<const FUSED: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Round to nearest by the 1.5 * 2^23 trick (no libm call): `t`'s low mantissa bits hold
    // the integer `n` itself.
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let fma = fma::<f32, FUSED>;
    let t = fma(x, LOG2E, MAGIC);
    let n = t - MAGIC;
    let r = fma(-n, LN2_LO, fma(-n, LN2_HI, x));
    let p = 1.987_569_1e-4_f32;
    let p = fma(p, r, 1.398_199_9e-3);
    let p = fma(p, r, 8.333_452e-3);
    let p = fma(p, r, 4.166_579_6e-2);
    let p = fma(p, r, 1.666_666_5e-1);
    let p = fma(p, r, 0.5);
    let er = fma(p * r, r, r) + 1.0;
    // `2^n` from the integer in `t`'s low bits: MAGIC's low 9 bits are 0, so the shift keeps
    // exactly `n + 127` (in 1..=254 after the clamp) as the exponent. An `n as i32` cast
    // instead saturates and checks for NaN per lane, which kept the loops scalar.
    er * f32::from_bits(t.to_bits().wrapping_add(127) << 23)
}

/// `a . b` with eight independent partial sums: a single running sum is one dependent chain
/// of float additions, which the compiler may not reorder and so cannot vectorise.
#[inline(always)]
fn dot<F: Real, const FUSED: bool>(a: &[F], b: &[F]) -> F {
    const LANES: usize = 8;
    let mut acc = [F::zero(); LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .fold(F::zero(), |t, (x, y)| t + *x * *y);
    for (xa, xb) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] = fma::<F, FUSED>(xa[l], xb[l], acc[l]);
        }
    }
    acc.iter().fold(tail, |t, v| t + *v)
}

/// `a * b + c`, fused (one rounding, one instruction) in the kernels compiled for instruction
/// sets with FMA, and as a product and a sum in the baseline one, where `mul_add` would be a
/// libm call per element. Rust never contracts `a * b + c` by itself, so without this the AVX2
/// kernels issued separate multiplies and adds.
#[inline(always)]
fn fma<F: Real, const FUSED: bool>(a: F, b: F, c: F) -> F {
    if FUSED {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `out = b + sum_i x_i cols_i`, where `cols` holds `x.len()` runs of `out.len()`: in blocks
/// of 32 outputs with their own partial sums, so that the additions over the inputs form
/// independent chains (accumulating into `out` waited on a store and a load per input, and a
/// block of one vector on its own additions). Even and odd inputs go to two sets of partial
/// sums: one set is a chain of dependent additions per register, which left the core waiting
/// on their latency half the time. The compiler keeps part of these sums on the stack (66
/// fused multiply-adds with a stack operand in the bench binary); blocks of 16 keep them in
/// registers but were no faster (docs/performance.md), so the wider blocks stay.
#[inline(always)]
fn affine<F: Real, const FUSED: bool>(out: &mut [F], b: &[F], x: &[F], cols: &[F]) {
    const B: usize = 32;
    let h = out.len();
    let full = h / B * B;
    let pairs = x.len() / 2;
    for j0 in (0..full).step_by(B) {
        let mut even = [F::zero(); B];
        even.copy_from_slice(&b[j0..j0 + B]);
        let mut odd = [F::zero(); B];
        for (xp, cp) in x.chunks_exact(2).zip(cols.chunks_exact(2 * h)) {
            let c0: &[F; B] = cp[j0..j0 + B].try_into().expect("a block of B");
            let c1: &[F; B] = cp[h + j0..h + j0 + B].try_into().expect("a block of B");
            for l in 0..B {
                even[l] = fma::<F, FUSED>(xp[0], c0[l], even[l]);
                odd[l] = fma::<F, FUSED>(xp[1], c1[l], odd[l]);
            }
        }
        if x.len() % 2 == 1 {
            let xi = x[2 * pairs];
            let c: &[F; B] = cols[2 * pairs * h + j0..2 * pairs * h + j0 + B]
                .try_into()
                .expect("a block of B");
            for l in 0..B {
                even[l] = fma::<F, FUSED>(xi, c[l], even[l]);
            }
        }
        for l in 0..B {
            out[j0 + l] = even[l] + odd[l];
        }
    }
    for j in full..h {
        out[j] = x
            .iter()
            .zip(cols.chunks_exact(h))
            .fold(b[j], |a, (&xi, col)| fma::<F, FUSED>(xi, col[j], a));
    }
}

/// `acc[i * h + j] += sum_e xs[e * n + i] ys[e * h + j]` for `e < edges`: the outer products of
/// a block of edges added to a weight gradient at once. Added edge by edge, each edge loaded and
/// stored the whole gradient (`I x H` floats) and the kernel waited on those stores; per block
/// the partial sums are loaded and stored once for all its edges.
#[inline(always)]
fn add_outer<F: Real, const FUSED: bool>(
    acc: &mut [F],
    xs: &[F],
    ys: &[F],
    n: usize,
    h: usize,
    edges: usize,
) {
    const B: usize = 32;
    let full = h / B * B;
    for (i, row) in acc.chunks_exact_mut(h).enumerate() {
        for j0 in (0..full).step_by(B) {
            let mut a = [F::zero(); B];
            a.copy_from_slice(&row[j0..j0 + B]);
            for e in 0..edges {
                let xe = xs[e * n + i];
                let y: &[F; B] = ys[e * h + j0..e * h + j0 + B]
                    .try_into()
                    .expect("a block of B");
                for l in 0..B {
                    a[l] = fma::<F, FUSED>(xe, y[l], a[l]);
                }
            }
            row[j0..j0 + B].copy_from_slice(&a);
        }
        for j in full..h {
            for e in 0..edges {
                row[j] = fma::<F, FUSED>(xs[e * n + i], ys[e * h + j], row[j]);
            }
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct EdgeMlp {
    pub(crate) dst: Arc<Vec<u32>>,
    /// Pairs of edges whose MLP inputs are equal bit for bit, so that each pair runs the MLP
    /// once: `pairs[e]` is `e`'s partner or `u32::MAX`, partners are mutual, and the lower
    /// edge id of a pair runs it. With the edge length alone as input (no node scalars) the
    /// reverse edges of a graph ([`crate::geometry::HostEdges::reverse`]) are such pairs:
    /// `|x_j - x_i|` and `|x_i - x_j|` round alike. `None`: no pairs.
    pub(crate) pairs: Option<Arc<Vec<u32>>>,
    pub(crate) n: usize,
    /// Width `I` of the MLP input.
    pub(crate) input: usize,
    /// The last `rbf` MLP inputs are a Gaussian basis with centres `k * step`, `k < rbf`, and
    /// width `step`, expanded from the edge length (0: no basis, every input is given).
    pub(crate) rbf: usize,
    pub(crate) step: f64,
    pub(crate) hidden: usize,
    pub(crate) d: usize,
}

/// One edge's MLP activations: inputs `x (I)`, pre-activations `z (H)`, `sigmoid(z)`, the
/// hidden layer `s = z sigmoid(z)` and outputs `w (d)`; scratch reused across a chunk's edges,
/// and a few gradients of the backward.
struct Scratch<F: Real> {
    x: Vec<F>,
    z: Vec<F>,
    sig: Vec<F>,
    s: Vec<F>,
    w: Vec<F>,
    gw: Vec<F>,
    gz: Vec<F>,
    gx: Vec<F>,
    /// The last edges' `x`, `gz`, `gw` and `s`, `EDGE_BLOCK` rows each, whose outer products
    /// are added to the weight gradients together ([`add_outer`]).
    xs: Vec<F>,
    gzs: Vec<F>,
    gws: Vec<F>,
    ss: Vec<F>,
}

/// Edges whose weight-gradient outer products are added at once.
const EDGE_BLOCK: usize = 8;

/// `V = edge_mlp(packed, edges)`; see the module docs.
pub(crate) fn edge_mlp(op: EdgeMlp, packed: &Tensor, edges: &Tensor) -> Result<Tensor> {
    let (e, w) = edges.dims2()?;
    if op.rbf > op.input || w != op.raw() + 1 + op.d || e != op.dst.len() {
        bail!(
            "edge network: edge data {:?} does not fit the plan",
            edges.dims()
        );
    }
    let want = op.hidden * op.input + op.hidden + op.d * op.hidden + op.d;
    if packed.dims() != [want] {
        bail!(
            "edge network: {} packed weights, expected {want}",
            packed.elem_count()
        );
    }
    packed.contiguous()?.apply_op2(&edges.contiguous()?, op)
}

/// The weights, laid out for the per-edge loops.
struct Mats<F: Real> {
    /// `W1 (H, I)` by input: `w1_cols[i * H + j] = W1[j, i]`, so that each input's weights
    /// are one contiguous run of `H` (the layer is `I` axpys of length `H` per edge).
    w1_cols: Vec<F>,
    b1: Vec<F>,
    /// `W2 (d, H)` row-major.
    w2_rows: Vec<F>,
    b2: Vec<F>,
    /// Radial basis centres.
    centres: Vec<F>,
    inv_step: F,
}

impl EdgeMlp {
    /// Edge-row columns before the envelope: the scalars, then the length if there is a basis.
    fn raw(&self) -> usize {
        self.input - self.rbf + usize::from(self.rbf > 0)
    }

    /// Splits the packed weights `[W1 (H, I), b1, W2 (d, H), b2]`.
    fn mats<F: Real>(&self, p: &[F]) -> Mats<F> {
        let (h, i, d) = (self.hidden, self.input, self.d);
        let (w1, rest) = p.split_at(h * i);
        let (b1, rest) = rest.split_at(h);
        let (w2, b2) = rest.split_at(d * h);
        Mats {
            w1_cols: (0..i)
                .flat_map(|c| (0..h).map(move |j| w1[j * i + c]))
                .collect(),
            b1: b1.to_vec(),
            w2_rows: w2.to_vec(),
            b2: b2.to_vec(),
            centres: (0..self.rbf)
                .map(|k| <F as WithDType>::from_f64(k as f64 * self.step))
                .collect(),
            inv_step: <F as WithDType>::from_f64(1.0 / self.step),
        }
    }

    /// The MLP inputs of one edge row: the scalars, then `exp(-((r - c_k) / step)^2)` of the
    /// edge length `r`.
    #[inline(always)]
    fn input_column<F: Real, const FUSED: bool>(&self, m: &Mats<F>, row: &[F], col: &mut [F]) {
        let ns = self.input - self.rbf;
        col[..ns].copy_from_slice(&row[..ns]);
        if self.rbf > 0 {
            let r = row[ns];
            for (v, &ck) in col[ns..].iter_mut().zip(&m.centres) {
                let t = (r - ck) * m.inv_step;
                *v = F::fast_exp::<FUSED>(-t * t);
            }
        }
    }

    fn scratch<F: Real>(&self) -> Scratch<F> {
        let (h, i, d) = (self.hidden, self.input, self.d);
        let v = |n| vec![F::zero(); n];
        Scratch {
            x: v(i),
            z: v(h),
            sig: v(h),
            s: v(h),
            w: v(d),
            gw: v(d),
            gz: v(h),
            gx: v(i),
            xs: v(EDGE_BLOCK * i),
            gzs: v(EDGE_BLOCK * h),
            gws: v(EDGE_BLOCK * d),
            ss: v(EDGE_BLOCK * h),
        }
    }

    /// The inputs and both layers of one edge row, into `t`. With `H` = 32 and `I` about 10
    /// a matrix-product library spends more time packing its operands than multiplying; these
    /// loops over contiguous runs of `H` vectorise and keep every intermediate in L1, cheaply
    /// enough that the backward recomputes them (storing them for it was no faster and took
    /// more memory). Plain
    /// loops over slices throughout: iterator adapters such as `collect` are not inlined into
    /// the SIMD versions of the kernel (see `Chunk`).
    #[inline(always)]
    fn edge_acts<F: Real, const FUSED: bool>(&self, m: &Mats<F>, row: &[F], t: &mut Scratch<F>) {
        self.hidden_acts::<F, FUSED>(m, row, t);
        let h = self.hidden;
        for (k, wk) in t.w.iter_mut().enumerate() {
            *wk = m.b2[k] + dot::<F, FUSED>(&m.w2_rows[k * h..(k + 1) * h], &t.s);
        }
    }

    /// The inputs and the hidden layer of one edge row, into `t` (all of [`edge_acts`]
    /// but the outputs `w`, which the backward of a pair does not read).
    ///
    /// [`edge_acts`]: Self::edge_acts
    #[inline(always)]
    fn hidden_acts<F: Real, const FUSED: bool>(&self, m: &Mats<F>, row: &[F], t: &mut Scratch<F>) {
        self.input_column::<F, FUSED>(m, row, &mut t.x);
        affine::<F, FUSED>(&mut t.z, &m.b1, &t.x, &m.w1_cols);
        for ((g, sj), &v) in t.sig.iter_mut().zip(t.s.iter_mut()).zip(t.z.iter()) {
            *g = F::sigmoid::<FUSED>(v);
            *sj = v * *g;
        }
    }

    /// The MLP outputs `w (d)` of the chunk's edges into `w`, except for the second edge of a
    /// pair (its partner's are read instead). `first`: the chunk's first edge id.
    #[inline(always)]
    fn outputs_chunk<F: Real, const FUSED: bool>(
        &self,
        m: &Mats<F>,
        rows: &[F],
        work: Outputs<'_, F>,
        d: usize,
    ) {
        let Outputs { w, pairs, first } = work;
        let width = self.raw() + 1 + d;
        let mut t = self.scratch();
        for (e, (row, we)) in rows
            .chunks_exact(width)
            .zip(w.chunks_exact_mut(d))
            .enumerate()
        {
            let q = pairs[first + e];
            if q != u32::MAX && (q as usize) < first + e {
                continue;
            }
            self.edge_acts::<F, FUSED>(m, row, &mut t);
            we.copy_from_slice(&t.w);
        }
    }

    /// One chunk of [`forward`](Self::forward), from the MLP outputs `w (E, d)` of
    /// [`outputs_chunk`](Self::outputs_chunk): its messages summed over each run of edges
    /// with the same receiver, as `(receivers, sums (runs, d * d))`. Edges sorted by
    /// receiver (as graph builders emit them) leave about one run per node, so the sequential
    /// scatter after the chunks adds a few rows per node instead of one per edge. Always
    /// inlined, so that a literal `d` propagates.
    #[inline(always)]
    fn message_chunk<F: Real>(
        &self,
        rows: &[F],
        w: &[F],
        pairs: &[u32],
        first: usize,
        d: usize,
    ) -> (Vec<u32>, Vec<F>) {
        let raw = self.raw();
        let width = raw + 1 + d;
        let mut nodes: Vec<u32> = Vec::new();
        let mut sums: Vec<F> = Vec::new();
        for (e, (row, &i)) in rows.chunks_exact(width).zip(&self.dst[first..]).enumerate() {
            let (e, q) = (first + e, pairs[first + e]);
            let at_w = if q != u32::MAX && (q as usize) < e {
                q as usize
            } else {
                e
            };
            if nodes.last() != Some(&i) {
                nodes.push(i);
                sums.resize(sums.len() + d * d, F::zero());
            }
            let at = sums.len() - d * d;
            let (env, unit) = (row[raw], &row[raw + 1..]);
            for (sk, &wk) in sums[at..]
                .chunks_exact_mut(d)
                .zip(&w[at_w * d..(at_w + 1) * d])
            {
                let wk = wk * env;
                sk.iter_mut().zip(unit).for_each(|(o, u)| *o += wk * *u);
            }
        }
        (nodes, sums)
    }

    /// One chunk of [`backward`](Self::backward): writes the edge-row gradients into `grows`
    /// (when given) and returns the chunk's weight gradients (packed layout). Edge by edge,
    /// recomputing the forward's activations. With the gradients of the MLP outputs given
    /// per edge (`gw`, and the `pairs` of the forward; no edge-row gradients) a pair's are
    /// summed and propagated once, through the activations they share. Always inlined, so
    /// that a literal `d` propagates.
    #[inline(always)]
    fn backward_chunk<F: Real, const FUSED: bool>(
        &self,
        m: &Mats<F>,
        rows: &[F],
        work: Backward<'_, F>,
        d: usize,
    ) -> Vec<F> {
        let Backward {
            packed_len,
            mut grows,
            chunk,
            g,
            paired,
        } = work;
        let (h, inp, raw) = (self.hidden, self.input, self.raw());
        let width = raw + 1 + d;
        let ns = inp - self.rbf;
        let mut t = self.scratch();
        let (mut gb1, mut gb2) = (vec![F::zero(); h], vec![F::zero(); d]);
        // `gW1` by input, like `w1_cols`, and `gW2 (d, H)` row-major.
        let mut gw1 = vec![F::zero(); inp * h];
        let mut gw2 = vec![F::zero(); d * h];
        let two = <F as WithDType>::from_f64(2.0);
        let mut filled = 0;
        for (e, row) in rows.chunks_exact(width).enumerate() {
            let at = chunk * CHUNK + e;
            let (env, unit) = (row[raw], &row[raw + 1..]);
            let mut genv = F::zero();
            if let Some((gw, pairs)) = paired {
                let q = pairs[at];
                if q != u32::MAX && (q as usize) < at {
                    continue;
                }
                self.hidden_acts::<F, FUSED>(m, row, &mut t);
                t.gw.copy_from_slice(&gw[at * d..(at + 1) * d]);
                if q != u32::MAX {
                    let q = q as usize;
                    t.gw.iter_mut()
                        .zip(&gw[q * d..(q + 1) * d])
                        .for_each(|(a, b)| *a += *b);
                }
                gb2.iter_mut().zip(&t.gw).for_each(|(a, b)| *a += *b);
            } else {
                self.edge_acts::<F, FUSED>(m, row, &mut t);
                let i = self.dst[at] as usize;
                let gi = &g[i * d * d..(i + 1) * d * d];
                // msg[k, a] = w[k] env unit[a]: gradients of w, env and unit.
                for k in 0..d {
                    let gu = gi[k * d..(k + 1) * d]
                        .iter()
                        .zip(unit)
                        .fold(F::zero(), |acc, (a, b)| acc + *a * *b);
                    t.gw[k] = env * gu;
                    gb2[k] += env * gu;
                    genv += t.w[k] * gu;
                }
            }
            // gs = W2^T gw, then gz = gs silu'(z); gW2 += gw s^T below.
            t.gz.iter_mut().for_each(|v| *v = F::zero());
            for (k, &gk) in t.gw.iter().enumerate() {
                let w2 = &m.w2_rows[k * h..(k + 1) * h];
                t.gz.iter_mut()
                    .zip(w2)
                    .for_each(|(o, wv)| *o = fma::<F, FUSED>(gk, *wv, *o));
            }
            for (((gj, &zj), &sg), b) in t.gz.iter_mut().zip(&t.z).zip(&t.sig).zip(gb1.iter_mut()) {
                *gj *= sg * (F::one() + zj * (F::one() - sg));
                *b += *gj;
            }
            // gW1[:, i] += x_i gz and gW2 += gw s^T, a block of edges at a time.
            t.xs[filled * inp..(filled + 1) * inp].copy_from_slice(&t.x);
            t.gzs[filled * h..(filled + 1) * h].copy_from_slice(&t.gz);
            t.gws[filled * d..(filled + 1) * d].copy_from_slice(&t.gw);
            t.ss[filled * h..(filled + 1) * h].copy_from_slice(&t.s);
            filled += 1;
            if filled == EDGE_BLOCK {
                add_outer::<F, FUSED>(&mut gw1, &t.xs, &t.gzs, inp, h, filled);
                add_outer::<F, FUSED>(&mut gw2, &t.gws, &t.ss, d, h, filled);
                filled = 0;
            }
            let Some(grows) = grows.as_deref_mut() else {
                continue;
            };
            let gi = &g[self.dst[at] as usize * d * d..][..d * d];
            let grow = &mut grows[e * width..(e + 1) * width];
            grow[raw] = genv;
            for a in 0..d {
                grow[raw + 1 + a] =
                    env * (0..d).fold(F::zero(), |acc, k| acc + t.w[k] * gi[k * d + a]);
            }
            // gx_i = W1[:, i] . gz. Scalars take it as it is; the length takes the basis'
            // chain rule, d/dr exp(-t^2) = -2 t exp(-t^2) / step with t = (r - c_k) / step.
            for (gxi, w1i) in t.gx.iter_mut().zip(m.w1_cols.chunks_exact(h)) {
                *gxi = dot::<F, FUSED>(w1i, &t.gz);
            }
            grow[..ns].copy_from_slice(&t.gx[..ns]);
            if self.rbf > 0 {
                let r = row[ns];
                let mut gr = F::zero();
                for ((gv, xv), &ck) in t.gx[ns..].iter().zip(&t.x[ns..]).zip(&m.centres) {
                    gr -= two * *gv * *xv * (r - ck) * m.inv_step * m.inv_step;
                }
                grow[ns] = gr;
            }
        }
        add_outer::<F, FUSED>(&mut gw1, &t.xs, &t.gzs, inp, h, filled);
        add_outer::<F, FUSED>(&mut gw2, &t.gws, &t.ss, d, h, filled);
        // Packed layout: W1 (H, I) row-major, b1, W2 (d, H) row-major, b2.
        let mut gp = vec![F::zero(); packed_len];
        for j in 0..h {
            for ii in 0..inp {
                gp[j * inp + ii] = gw1[ii * h + j];
            }
        }
        let (_, rest) = gp.split_at_mut(h * inp);
        let (b1, rest) = rest.split_at_mut(h);
        let (w2, b2) = rest.split_at_mut(d * h);
        b1.copy_from_slice(&gb1);
        w2.copy_from_slice(&gw2);
        b2.copy_from_slice(&gb2);
        gp
    }

    /// [`pairs`](Self::pairs), or no pairs.
    fn pairs(&self) -> Cow<'_, [u32]> {
        match &self.pairs {
            Some(p) => Cow::Borrowed(p.as_slice()),
            None => Cow::Owned(vec![u32::MAX; self.dst.len()]),
        }
    }

    fn forward<F: Real>(&self, p: &[F], edges: &[F]) -> Vec<F> {
        let d = self.d;
        let width = self.raw() + 1 + d;
        let m = self.mats(p);
        let arch = pulp::Arch::new();
        let pairs = &*self.pairs();
        // The MLP outputs of every edge (once per pair), then the messages chunk by chunk in
        // parallel, summed per run of one receiver, then a sequential scatter of those sums
        // in edge order: deterministic, and the same sums as without pairs.
        let mut w = vec![F::zero(); self.dst.len() * d];
        w.par_chunks_mut(d * CHUNK)
            .zip(edges.par_chunks(width * CHUNK))
            .enumerate()
            .for_each(|(chunk, (w, rows))| {
                arch.dispatch(Chunk {
                    op: self,
                    m: &m,
                    rows,
                    work: Outputs {
                        w,
                        pairs,
                        first: chunk * CHUNK,
                    },
                })
            });
        let runs: Vec<(Vec<u32>, Vec<F>)> = edges
            .par_chunks(width * CHUNK)
            .enumerate()
            .map(|(chunk, rows)| match d {
                3 => self.message_chunk(rows, &w, pairs, chunk * CHUNK, 3),
                _ => self.message_chunk(rows, &w, pairs, chunk * CHUNK, d),
            })
            .collect();
        let mut out = vec![F::zero(); self.n * d * d];
        for (nodes, sums) in &runs {
            for (&i, sum) in nodes.iter().zip(sums.chunks_exact(d * d)) {
                out[i as usize * d * d..(i as usize + 1) * d * d]
                    .iter_mut()
                    .zip(sum)
                    .for_each(|(o, v)| *o += *v);
            }
        }
        out
    }

    /// Returns `(d packed, d edges)` given the upstream gradient `g (N, d*d)`; the edges'
    /// gradient only when `want_edges` (positions are data in training, not variables: the
    /// gradient would be computed for nothing). Without it, the gradients of the MLP outputs
    /// come first, edge by edge, so that each pair propagates theirs once.
    fn backward<F: Real>(
        &self,
        p: &[F],
        edges: &[F],
        g: &[F],
        want_edges: bool,
    ) -> (Vec<F>, Option<Vec<F>>) {
        let (d, raw) = (self.d, self.raw());
        let width = raw + 1 + d;
        let m = self.mats(p);
        let arch = pulp::Arch::new();
        let run = |chunk: usize, rows: &[F], grows: Option<&mut [F]>, paired| {
            arch.dispatch(Chunk {
                op: self,
                m: &m,
                rows,
                work: Backward {
                    packed_len: p.len(),
                    grows,
                    chunk,
                    g,
                    paired,
                },
            })
        };
        let (partials, gedges): (Vec<Vec<F>>, _) = if want_edges {
            let mut ge = vec![F::zero(); edges.len()];
            let parts = edges
                .par_chunks(width * CHUNK)
                .zip(ge.par_chunks_mut(width * CHUNK))
                .enumerate()
                .map(|(chunk, (rows, grows))| run(chunk, rows, Some(grows), None))
                .collect();
            (parts, Some(ge))
        } else {
            let pairs = &*self.pairs();
            // msg[k, a] = w[k] env unit[a], so gw[k] = env (g_i[k, :] . unit).
            let mut gw = vec![F::zero(); self.dst.len() * d];
            gw.par_chunks_mut(d)
                .zip(edges.par_chunks(width))
                .zip(self.dst.par_iter())
                .with_min_len(1024)
                .for_each(|((gw, row), &i)| {
                    let (env, unit) = (row[raw], &row[raw + 1..]);
                    let gi = &g[i as usize * d * d..(i as usize + 1) * d * d];
                    for (gk, gik) in gw.iter_mut().zip(gi.chunks_exact(d)) {
                        *gk = env
                            * gik
                                .iter()
                                .zip(unit)
                                .fold(F::zero(), |acc, (a, b)| acc + *a * *b);
                    }
                });
            let parts = edges
                .par_chunks(width * CHUNK)
                .enumerate()
                .map(|(chunk, rows)| run(chunk, rows, None, Some((gw.as_slice(), pairs))))
                .collect();
            (parts, None)
        };
        let mut gp = vec![F::zero(); p.len()];
        for part in partials {
            gp.iter_mut().zip(part).for_each(|(a, b)| *a += b);
        }
        (gp, gedges)
    }
}

/// One chunk of edges and what to do with it, run by [`pulp::Arch::dispatch`]: pulp compiles
/// `with_simd` once per instruction set (baseline SSE2, and AVX2 + FMA) and picks the widest
/// the machine has at run time, without `unsafe` here. Everything the chunk kernels call
/// is `#[inline(always)]` so that it is compiled into each version (a closure or an ordinary
/// call would stay baseline code).
struct Chunk<'a, F: Real, W> {
    op: &'a EdgeMlp,
    m: &'a Mats<F>,
    rows: &'a [F],
    work: W,
}

/// [`EdgeMlp::outputs_chunk`]'s other arguments: the chunk's rows of `w (E, d)`, the pairs
/// of all edges, and the chunk's first edge id.
struct Outputs<'a, F: Real> {
    w: &'a mut [F],
    pairs: &'a [u32],
    first: usize,
}

/// [`EdgeMlp::backward_chunk`]'s other arguments.
struct Backward<'a, F: Real> {
    packed_len: usize,
    grows: Option<&'a mut [F]>,
    chunk: usize,
    g: &'a [F],
    /// The gradients of the MLP outputs `(E, d)` and the forward's pairs: a pair's MLP is
    /// propagated once (no edge-row gradients then).
    paired: Option<(&'a [F], &'a [u32])>,
}

impl<F: Real> pulp::WithSimd for Chunk<'_, F, Outputs<'_, F>> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> Self::Output {
        let Self { op, m, rows, work } = self;
        if S::IS_SCALAR {
            output_arms::<F, false>(op, m, rows, work)
        } else {
            // Every vector instruction set pulp dispatches to (x86-64-v3 and up, NEON) has FMA.
            output_arms::<F, true>(op, m, rows, work)
        }
    }
}

impl<F: Real> pulp::WithSimd for Chunk<'_, F, Backward<'_, F>> {
    type Output = Vec<F>;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> Self::Output {
        let Self { op, m, rows, work } = self;
        if S::IS_SCALAR {
            backward_arms::<F, false>(op, m, rows, work)
        } else {
            backward_arms::<F, true>(op, m, rows, work)
        }
    }
}

/// A literal `d` per arm unrolls the per-edge loops over the frame axes.
#[inline(always)]
fn output_arms<F: Real, const FUSED: bool>(
    op: &EdgeMlp,
    m: &Mats<F>,
    rows: &[F],
    work: Outputs<'_, F>,
) {
    match op.d {
        2 => op.outputs_chunk::<F, FUSED>(m, rows, work, 2),
        3 => op.outputs_chunk::<F, FUSED>(m, rows, work, 3),
        4 => op.outputs_chunk::<F, FUSED>(m, rows, work, 4),
        d => op.outputs_chunk::<F, FUSED>(m, rows, work, d),
    }
}

#[inline(always)]
fn backward_arms<F: Real, const FUSED: bool>(
    op: &EdgeMlp,
    m: &Mats<F>,
    rows: &[F],
    work: Backward<'_, F>,
) -> Vec<F> {
    match op.d {
        2 => op.backward_chunk::<F, FUSED>(m, rows, work, 2),
        3 => op.backward_chunk::<F, FUSED>(m, rows, work, 3),
        4 => op.backward_chunk::<F, FUSED>(m, rows, work, 4),
        d => op.backward_chunk::<F, FUSED>(m, rows, work, d),
    }
}

impl EdgeMlp {
    /// [`backward`](Self::backward) as tensors shaped like the op's inputs.
    fn backward_tensors<F: Real>(
        &self,
        p: &[F],
        e: &[F],
        g: &[F],
        packed: &Tensor,
        edges: &Tensor,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (gp, ge) = self.backward(p, e, g, edges.track_op());
        Ok((
            Tensor::from_vec(gp, packed.dims(), packed.device())?,
            ge.map(|ge| Tensor::from_vec(ge, edges.dims(), edges.device()))
                .transpose()?,
        ))
    }
}

impl CustomOp2 for EdgeMlp {
    fn name(&self) -> &'static str {
        "tf-learned-frame-edge-mlp"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let shape: Shape = (self.n, self.d * self.d).into();
        let out = match (s1, s2) {
            (CpuStorage::F32(p), CpuStorage::F32(e)) => {
                CpuStorage::F32(self.forward(slice(p, l1)?, slice(e, l2)?))
            }
            (CpuStorage::F64(p), CpuStorage::F64(e)) => {
                CpuStorage::F64(self.forward(slice(p, l1)?, slice(e, l2)?))
            }
            _ => bail!("edge network: expected f32 or f64 inputs of one dtype"),
        };
        Ok((out, shape))
    }

    fn bwd(
        &self,
        packed: &Tensor,
        edges: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // Everything is read in place, in the edges' dtype.
        let dtype = edges.dtype();
        let (packed, grad, edges_c) = (
            packed.to_dtype(dtype)?.contiguous()?,
            grad.to_dtype(dtype)?.contiguous()?,
            edges.contiguous()?,
        );
        let (ps, pl) = packed.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let (es, el) = edges_c.storage_and_layout();
        let (gp, ge) = match (&*ps, &*gs, &*es) {
            (
                Storage::Cpu(CpuStorage::F32(p)),
                Storage::Cpu(CpuStorage::F32(g)),
                Storage::Cpu(CpuStorage::F32(e)),
            ) => {
                self.backward_tensors(slice(p, pl)?, slice(e, el)?, slice(g, gl)?, &packed, edges)?
            }
            (
                Storage::Cpu(CpuStorage::F64(p)),
                Storage::Cpu(CpuStorage::F64(g)),
                Storage::Cpu(CpuStorage::F64(e)),
            ) => {
                self.backward_tensors(slice(p, pl)?, slice(e, el)?, slice(g, gl)?, &packed, edges)?
            }
            _ => bail!("edge network: expected f32 or f64 tensors on the CPU"),
        };
        Ok((Some(gp), ge))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_matches_libm() {
        for fused in [false, true] {
            let exp = |x: f32| {
                if fused {
                    exp_f32::<true>(x)
                } else {
                    exp_f32::<false>(x)
                }
            };
            let mut worst: f64 = 0.0;
            for i in -200_000..=200_000 {
                let x = i as f32 * 4.35e-4; // [-87, 87]
                let (a, b) = (exp(x) as f64, (x as f64).exp());
                worst = worst.max(((a - b) / b).abs());
            }
            assert!(worst < 3e-7, "relative error {worst:e}, fused: {fused}");
            assert!(exp(-1e30) >= 0.0 && exp(1e30).is_finite());
            assert!(exp(f32::NAN).is_nan() || exp(f32::NAN).is_finite());
        }
        assert_eq!(f32::sigmoid::<true>(0.0), 0.5);
        assert!(f32::sigmoid::<true>(-200.0) >= 0.0 && f32::sigmoid::<true>(200.0) <= 1.0);
    }

    /// The baseline kernel (separate multiplies and adds) and the FMA one compute the same
    /// messages and gradients. The dispatch runs only one of them on a given machine, so the
    /// candle-ops comparison in `learned.rs` alone would leave the other untested. The shapes
    /// take every tail path: an odd input width (11) for `affine`'s pairs, a hidden width (40)
    /// that is not a multiple of the 32-wide blocks, and an edge count (301) that is not a
    /// multiple of `EDGE_BLOCK`.
    #[test]
    fn baseline_and_fused_kernels_agree() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for d in [2usize, 3, 5] {
            let (n, e, scalars, rbf, hidden) = (17, 301, 3, 8, 40);
            let op = EdgeMlp {
                dst: Arc::new((0..e).map(|_| rng.random_range(0..n as u32)).collect()),
                pairs: None,
                n,
                input: scalars + rbf,
                rbf,
                step: 0.25,
                hidden,
                d,
            };
            let width = op.raw() + 1 + d;
            let p: Vec<f64> = (0..hidden * op.input + hidden + d * hidden + d)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let rows: Vec<f64> = (0..e * width).map(|_| rng.random_range(0.0..1.5)).collect();
            let g: Vec<f64> = (0..n * d * d)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let m = op.mats(&p);
            let close = |a: &[f64], b: &[f64], what: &str| {
                assert_eq!(a.len(), b.len(), "{what}");
                let scale = a.iter().fold(1.0f64, |s, v| s.max(v.abs()));
                let worst = a
                    .iter()
                    .zip(b)
                    .fold(0.0f64, |w, (x, y)| w.max((x - y).abs()));
                assert!(worst <= 1e-12 * scale, "{what}, d = {d}: {worst:e}");
            };
            // Every third edge pairs with the next (a pair's partner ids need not be
            // reverse edges here: the kernel only reads that they share their MLP).
            let pairs: Vec<u32> = (0..e as u32)
                .map(|k| match k % 3 {
                    0 if k + 1 < e as u32 => k + 1,
                    1 => k - 1,
                    _ => u32::MAX,
                })
                .collect();
            let outputs = |fused: bool| {
                let mut w = vec![0.0; e * d];
                let work = Outputs {
                    w: &mut w,
                    pairs: &pairs,
                    first: 0,
                };
                if fused {
                    output_arms::<f64, true>(&op, &m, &rows, work);
                } else {
                    output_arms::<f64, false>(&op, &m, &rows, work);
                }
                w
            };
            close(&outputs(false), &outputs(true), "MLP outputs");
            let gw: Vec<f64> = (0..e * d).map(|_| rng.random_range(-1.0..1.0)).collect();
            let backward = |fused: bool, paired: bool| {
                let mut grows = vec![0.0; rows.len()];
                let work = Backward {
                    packed_len: p.len(),
                    grows: (!paired).then_some(&mut grows[..]),
                    chunk: 0,
                    g: &g,
                    paired: paired.then_some((&gw[..], &pairs[..])),
                };
                let gp = if fused {
                    backward_arms::<f64, true>(&op, &m, &rows, work)
                } else {
                    backward_arms::<f64, false>(&op, &m, &rows, work)
                };
                (gp, grows)
            };
            let ((gp0, ge0), (gp1, ge1)) = (backward(false, false), backward(true, false));
            close(&gp0, &gp1, "weight gradients");
            close(&ge0, &ge1, "edge gradients");
            assert!(gp0.iter().all(|v| v.is_finite()) && gp0.iter().any(|v| *v != 0.0));
            let ((gp0, _), (gp1, _)) = (backward(false, true), backward(true, true));
            close(&gp0, &gp1, "weight gradients of pairs");
            assert!(gp0.iter().all(|v| v.is_finite()) && gp0.iter().any(|v| *v != 0.0));
        }
    }

    /// With a graph's reverse edges as pairs, on the rows `edge_rows` writes (the edge length
    /// alone as input), each pair runs the MLP once: the messages are the same bit for bit as
    /// without pairs, and the weight gradients agree to rounding. On a graph with mutual
    /// edges, one-way edges, a repeated edge and a self-loop, in f64 and f32.
    #[test]
    fn reverse_edges_share_their_mlp_evaluation() {
        use crate::geometry::HostEdges;
        use candle_core::{Device, Tensor};
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for d in [2usize, 3, 4] {
            let n = 40;
            let pos: Vec<f64> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut list: Vec<(u32, u32)> = Vec::new();
            for i in 0..n as u32 {
                for _ in 0..6 {
                    let j = rng.random_range(0..n as u32);
                    if j != i {
                        list.push((j, i));
                        if rng.random_bool(0.7) {
                            list.push((i, j));
                        }
                    }
                }
            }
            list.extend([(3, 5), (3, 5), (5, 3), (7, 7)]);
            list.sort_by_key(|&(_, i)| i);
            let (src, dst): (Vec<u32>, Vec<u32>) = list.iter().copied().unzip();
            let ei = Tensor::new(vec![src, dst], &Device::Cpu).unwrap();
            let edges = Arc::new(HostEdges::new(&ei, n).unwrap());
            let pos = Tensor::from_vec(pos, (n, d), &Device::Cpu).unwrap();
            let rows = super::super::edge_rows::edge_rows(&pos, edges.clone(), 1.5).unwrap();
            let data: Vec<f64> = rows.flatten_all().unwrap().to_vec1().unwrap();
            let (rbf, hidden) = (6, 20);
            let op = |pairs: Option<Arc<Vec<u32>>>| EdgeMlp {
                dst: edges.dst.clone(),
                pairs,
                n,
                input: rbf,
                rbf,
                step: 0.3,
                hidden,
                d,
            };
            let reverse = Arc::new(edges.reverse());
            let paired_edges = reverse.iter().filter(|&&f| f != u32::MAX).count();
            assert!(
                paired_edges > list.len() / 2,
                "{paired_edges} of {}",
                list.len()
            );
            let (paired, plain) = (op(Some(reverse)), op(None));
            assert_eq!(paired.raw() + 1 + d, rows.dims()[1]);
            let p: Vec<f64> = (0..hidden * rbf + hidden + d * hidden + d)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let g: Vec<f64> = (0..n * d * d)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            assert_eq!(
                paired.forward(&p, &data),
                plain.forward(&p, &data),
                "d = {d}"
            );
            let (gp0, ge0) = plain.backward(&p, &data, &g, false);
            let (gp1, ge1) = paired.backward(&p, &data, &g, false);
            assert!(ge0.is_none() && ge1.is_none());
            let scale = gp0.iter().fold(1.0f64, |s, v| s.max(v.abs()));
            let worst = gp0
                .iter()
                .zip(&gp1)
                .fold(0.0f64, |w, (a, b)| w.max((a - b).abs()));
            assert!(worst <= 1e-12 * scale, "d = {d}: {worst:e}");
            // Edge gradients take the unpaired path, so they are those of the plain op.
            assert_eq!(
                paired.backward(&p, &data, &g, true),
                plain.backward(&p, &data, &g, true)
            );
            // f32: the same messages bit for bit, gradients to f32 rounding.
            let rows32: Vec<f32> = edge_rows_f32(&pos, &edges);
            let to32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
            let (p32, g32) = (to32(&p), to32(&g));
            assert_eq!(paired.forward(&p32, &rows32), plain.forward(&p32, &rows32));
            let (a, _) = paired.backward(&p32, &rows32, &g32, false);
            let (b, _) = plain.backward(&p32, &rows32, &g32, false);
            let scale = b.iter().fold(1.0f32, |s, v| s.max(v.abs()));
            let worst = a
                .iter()
                .zip(&b)
                .fold(0.0f32, |w, (x, y)| w.max((x - y).abs()));
            assert!(worst <= 1e-5 * scale, "f32, d = {d}: {worst:e}");
        }
    }

    /// `edge_rows` of f32 positions (rounded from `pos`), flattened.
    fn edge_rows_f32(
        pos: &candle_core::Tensor,
        edges: &Arc<crate::geometry::HostEdges>,
    ) -> Vec<f32> {
        let pos = pos.to_dtype(candle_core::DType::F32).unwrap();
        super::super::edge_rows::edge_rows(&pos, edges.clone(), 1.5)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }
}
