//! The learned-frame edge network as one CPU kernel.
//!
//! `V[i, k, :] = sum_{e -> i} phi_k(x_e) env_e unit_e` with `phi(x) = W2 silu(W1 x + b1) + b2`,
//! where `x_e` is the edge's invariant scalars followed by a Gaussian radial basis of its length.
//!
//! Composed from candle ops this evaluates a dozen elementwise kernels over `(E, hidden)`
//! tensors and keeps them all for the backward pass; with 262k edges it was the entire cost of
//! TF-PointNet++ over plain PointNet++ (see the README). Here the edges go in fixed chunks, each
//! layer of a chunk is one matrix product (SIMD kernels), nothing of size `(E, hidden)` outlives
//! its chunk, and the backward recomputes the hidden layer instead of storing it. The math runs
//! in the tensors' own dtype (f32 products and exponentials cost half of f64 ones). The radial
//! basis is expanded inside the chunk from each edge's length, so the `(E, n_rbf)` basis is never
//! materialised either (as candle ops it cost five passes over it and a libm `exp` per entry).
//!
//! # Shapes
//! - `packed`: `[W1 (H, I) row-major, b1 (H), W2 (d, H) row-major, b2 (d)]`, flattened
//! - `edges`: `(E, S + [1] + 1 + d)`: the `S = I - n_rbf` scalars of `x_e`, the edge length
//!   (when `n_rbf > 0`), envelope `env_e`, unit vector `unit_e`
//! - output: `(N, d * d)`, row `i` holding the `d` learned vectors of node `i`
//!
//! Gradients flow to both inputs (so positions still receive gradients through the frames);
//! weight gradients are summed over fixed chunks of edges in order, so they are deterministic.
//! The backward has no backward of its own (no second derivatives through learned frames).

use std::any::Any;
use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Storage, Tensor, WithDType};
use nalgebra::{DMatrix, RealField};
use rayon::prelude::*;
use tf_group::small_matmul::slice;

/// Edges per parallel chunk (fixed, so sums do not depend on the number of threads).
const CHUNK: usize = 2048;

/// The float types the kernel computes in.
trait Real: RealField + Copy + WithDType + 'static {
    /// `exp(z)`, vectorisable where it matters (f32).
    fn fast_exp(z: Self) -> Self;
    /// `1 / (1 + exp(-z))`.
    fn sigmoid(z: Self) -> Self {
        Self::one() / (Self::one() + Self::fast_exp(-z))
    }
}

impl Real for f32 {
    fn fast_exp(z: f32) -> f32 {
        exp_f32(z)
    }
}

impl Real for f64 {
    fn fast_exp(z: f64) -> f64 {
        z.exp()
    }
}

/// `exp(x)` in f32 to about 2 ulp, branch-free so that loops over it vectorise (libm's `expf`
/// is a call per element, and was the largest single cost of the edge network): `2^n e^r` with
/// `n = round(x / ln 2)`, `|r| <= ln 2 / 2`, and Cephes' degree-6 polynomial for `e^r`.
#[inline]
fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Round to nearest by the 1.5 * 2^23 trick (no libm call).
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let n = (x * LOG2E + MAGIC) - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    er * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `a . b` with eight independent partial sums: a single running sum is one dependent chain
/// of float additions, which the compiler may not reorder and so cannot vectorise.
#[inline(always)]
fn dot<F: Real>(a: &[F], b: &[F]) -> F {
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
            acc[l] += xa[l] * xb[l];
        }
    }
    acc.iter().fold(tail, |t, v| t + *v)
}

#[derive(Debug, Clone)]
pub(crate) struct EdgeMlp {
    pub(crate) dst: Arc<Vec<u32>>,
    pub(crate) n: usize,
    /// Width `I` of the MLP input.
    pub(crate) input: usize,
    /// The last `rbf` MLP inputs are a Gaussian basis with centres `k * step`, `k < rbf`, and
    /// width `step`, expanded from the edge length (0: no basis, every input is given).
    pub(crate) rbf: usize,
    pub(crate) step: f64,
    pub(crate) hidden: usize,
    pub(crate) d: usize,
    /// Keep the forward's activations for the backward (when a gradient will be asked for).
    pub(crate) keep: bool,
    pub(crate) cache: ActsCache,
}

/// One chunk's MLP inputs `x (I, c)`, pre-activations `z`, `sigmoid(z)` (both `(H, c)`) and
/// outputs `w (d, c)`.
struct Acts<F: Real> {
    x: DMatrix<F>,
    z: DMatrix<F>,
    sig: DMatrix<F>,
    w: DMatrix<F>,
}

/// The forward's [`Acts`] of every chunk, kept for the backward: recomputing them was a third
/// of the kernel's time (the first product and 32 sigmoids per edge), for about 80 floats of
/// memory per edge while the graph is alive.
#[derive(Clone, Default)]
pub(crate) struct ActsCache(Arc<Mutex<Option<Box<dyn Any + Send + Sync>>>>);

impl ActsCache {
    fn lock(&self) -> MutexGuard<'_, Option<Box<dyn Any + Send + Sync>>> {
        // A panic elsewhere cannot leave the cache half-written: it is replaced whole.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for ActsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ActsCache")
    }
}

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

/// The weights as matrices (nalgebra hands products of this size to matrixmultiply's SIMD
/// kernels).
struct Mats<F: Real> {
    w1: DMatrix<F>,
    w1t: DMatrix<F>,
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

    /// Splits the packed weights `[W1 (H, I), b1, W2 (d, H), b2]` into matrices.
    fn mats<F: Real>(&self, p: &[F]) -> Mats<F> {
        let (h, i, d) = (self.hidden, self.input, self.d);
        let (w1, rest) = p.split_at(h * i);
        let (b1, rest) = rest.split_at(h);
        let (w2, b2) = rest.split_at(d * h);
        let w1 = DMatrix::from_row_slice(h, i, w1);
        Mats {
            w1t: w1.transpose(),
            w1,
            b1: b1.to_vec(),
            w2_rows: w2.to_vec(),
            b2: b2.to_vec(),
            centres: (0..self.rbf)
                .map(|k| <F as WithDType>::from_f64(k as f64 * self.step))
                .collect(),
            inv_step: <F as WithDType>::from_f64(1.0 / self.step),
        }
    }

    /// The MLP inputs of one chunk of edge rows, one column per edge: the scalars, then
    /// `exp(-((r - c_k) / step)^2)` of the edge length `r`.
    fn inputs<F: Real>(&self, m: &Mats<F>, rows: &[F]) -> DMatrix<F> {
        let (i, width) = (self.input, self.raw() + 1 + self.d);
        let ns = i - self.rbf;
        let c = rows.len() / width;
        let mut x = DMatrix::<F>::zeros(i, c);
        for (col, row) in x
            .as_mut_slice()
            .chunks_exact_mut(i)
            .zip(rows.chunks_exact(width))
        {
            col[..ns].copy_from_slice(&row[..ns]);
            if self.rbf > 0 {
                let r = row[ns];
                for (v, &ck) in col[ns..].iter_mut().zip(&m.centres) {
                    let t = (r - ck) * m.inv_step;
                    *v = F::fast_exp(-t * t);
                }
            }
        }
        x
    }

    /// The inputs and both layers of one chunk of edge rows.
    #[inline(always)]
    fn acts<F: Real>(&self, m: &Mats<F>, rows: &[F], d: usize) -> Acts<F> {
        let x = self.inputs(m, rows);
        let (h, c) = (self.hidden, x.ncols());
        let mut z = &m.w1 * &x;
        for col in z.as_mut_slice().chunks_exact_mut(h) {
            col.iter_mut().zip(&m.b1).for_each(|(v, b)| *v += *b);
        }
        // Over flat slices (nalgebra's element-wise map indexes per element and does not
        // vectorise).
        let mut sig = DMatrix::<F>::zeros(h, c);
        let mut s = DMatrix::<F>::zeros(h, c);
        for ((g, a), &v) in sig
            .as_mut_slice()
            .iter_mut()
            .zip(s.as_mut_slice())
            .zip(z.as_slice())
        {
            *g = F::sigmoid(v);
            *a = v * *g;
        }
        // d <= 5 rows: nalgebra would take its generic (slow) product; per-column dot products
        // over the contiguous columns of `s` instead.
        let mut w = DMatrix::<F>::zeros(d, c);
        for (mut wcol, scol) in w.column_iter_mut().zip(s.as_slice().chunks_exact(h)) {
            for k in 0..d {
                wcol[k] = m.b2[k] + dot(&m.w2_rows[k * h..(k + 1) * h], scol);
            }
        }
        Acts { x, z, sig, w }
    }

    /// One chunk of [`forward`](Self::forward): its messages and activations. Always inlined,
    /// so that a literal `d` propagates.
    #[inline(always)]
    fn forward_chunk<F: Real>(&self, m: &Mats<F>, rows: &[F], d: usize) -> (Vec<F>, Acts<F>) {
        let raw = self.raw();
        let width = raw + 1 + d;
        let acts = self.acts(m, rows, d);
        let w = &acts.w;
        let mut out = vec![F::zero(); w.ncols() * d * d];
        for ((mo, row), wcol) in out
            .chunks_exact_mut(d * d)
            .zip(rows.chunks_exact(width))
            .zip(w.column_iter())
        {
            let (env, unit) = (row[raw], &row[raw + 1..]);
            for (k, mk) in mo.chunks_exact_mut(d).enumerate() {
                let wk = wcol[k] * env;
                mk.iter_mut().zip(unit).for_each(|(o, u)| *o = wk * *u);
            }
        }
        (out, acts)
    }

    /// One chunk of [`backward`](Self::backward): writes the edge-row gradients into `grows`
    /// and returns the chunk's weight gradients (packed layout). Always inlined, so that a
    /// literal `d` propagates.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn backward_chunk<F: Real>(
        &self,
        m: &Mats<F>,
        packed_len: usize,
        rows: &[F],
        grows: &mut [F],
        chunk: usize,
        cached: Option<&Acts<F>>,
        g: &[F],
        d: usize,
    ) -> Vec<F> {
        let (h, inp, raw) = (self.hidden, self.input, self.raw());
        let width = raw + 1 + d;
        let ns = inp - self.rbf;
        let c = rows.len() / width;
        // The forward's activations when it kept them, else recomputed.
        let fresh;
        let Acts { x, z, sig, w } = match cached {
            Some(a) if a.w.ncols() == c => a,
            _ => {
                fresh = self.acts(m, rows, d);
                &fresh
            }
        };
        // msg[k, a] = w[k] env unit[a]: gradients of w (as a matrix), env and unit.
        let mut gw = DMatrix::<F>::zeros(d, c);
        // Bias gradients are summed in the loops (row sums of column-major matrices
        // are strided walks).
        let (mut gb1, mut gb2) = (vec![F::zero(); h], vec![F::zero(); d]);
        for (e, ((row, grow), mut gcol)) in rows
            .chunks_exact(width)
            .zip(grows.chunks_exact_mut(width))
            .zip(gw.column_iter_mut())
            .enumerate()
        {
            let i = self.dst[chunk * CHUNK + e] as usize;
            let gi = &g[i * d * d..(i + 1) * d * d];
            let (env, unit) = (row[raw], &row[raw + 1..]);
            let mut genv = F::zero();
            for k in 0..d {
                let gu = gi[k * d..(k + 1) * d]
                    .iter()
                    .zip(unit)
                    .fold(F::zero(), |acc, (a, b)| acc + *a * *b);
                gcol[k] = env * gu;
                gb2[k] += env * gu;
                genv += w[(k, e)] * gu;
            }
            grow[raw] = genv;
            for a in 0..d {
                grow[raw + 1 + a] =
                    env * (0..d).fold(F::zero(), |acc, k| acc + w[(k, e)] * gi[k * d + a]);
            }
        }
        // gs = W2^T gw and gW2 = gw s^T as axpys over contiguous rows (d is tiny);
        // then gz = gs * silu'(z).
        let mut gz = DMatrix::<F>::zeros(h, c);
        let mut gw2 = vec![F::zero(); d * h];
        let mut scol = vec![F::zero(); h];
        for (e, (gzcol, (zcol, sgcol))) in gz
            .as_mut_slice()
            .chunks_exact_mut(h)
            .zip(
                z.as_slice()
                    .chunks_exact(h)
                    .zip(sig.as_slice().chunks_exact(h)),
            )
            .enumerate()
        {
            // Activations s = z sigmoid(z).
            for ((sj, &zj), &sg) in scol.iter_mut().zip(zcol).zip(sgcol) {
                *sj = zj * sg;
            }
            for k in 0..d {
                let gk = gw[(k, e)];
                let row = &m.w2_rows[k * h..(k + 1) * h];
                gzcol.iter_mut().zip(row).for_each(|(o, w)| *o += gk * *w);
                gw2[k * h..(k + 1) * h]
                    .iter_mut()
                    .zip(&scol)
                    .for_each(|(o, sj)| *o += gk * *sj);
            }
            for (((g, &zj), &sg), b) in gzcol.iter_mut().zip(zcol).zip(sgcol).zip(&mut gb1) {
                *g *= sg * (F::one() + zj * (F::one() - sg));
                *b += *g;
            }
        }
        let gw1 = &gz * x.transpose();
        let gx = &m.w1t * &gz;
        // Scalars take their input gradient; the length takes the basis' chain rule,
        // d/dr exp(-t^2) = -2 t exp(-t^2) / step with t = (r - c_k) / step.
        let two = <F as WithDType>::from_f64(2.0);
        for ((grow, row), (gcol, xcol)) in grows
            .chunks_exact_mut(width)
            .zip(rows.chunks_exact(width))
            .zip(
                gx.as_slice()
                    .chunks_exact(inp)
                    .zip(x.as_slice().chunks_exact(inp)),
            )
        {
            grow[..ns].copy_from_slice(&gcol[..ns]);
            if self.rbf > 0 {
                let r = row[ns];
                grow[ns] = gcol[ns..]
                    .iter()
                    .zip(&xcol[ns..])
                    .zip(&m.centres)
                    .fold(F::zero(), |acc, ((g, b), &ck)| {
                        acc - two * *g * *b * (r - ck) * m.inv_step * m.inv_step
                    });
            }
        }
        // Packed layout: W1 (H, I) row-major, b1, W2 (d, H) row-major, b2.
        let mut gp = Vec::with_capacity(packed_len);
        for j in 0..h {
            gp.extend((0..inp).map(|i| gw1[(j, i)]));
        }
        gp.extend_from_slice(&gb1);
        gp.extend_from_slice(&gw2);
        gp.extend_from_slice(&gb2);
        gp
    }

    fn forward<F: Real>(&self, p: &[F], edges: &[F]) -> Vec<F> {
        let (d, raw) = (self.d, self.raw());
        let width = raw + 1 + d;
        let m = self.mats(p);
        // Per-edge messages, chunk by chunk in parallel, then a sequential scatter in edge
        // order: deterministic.
        let chunks: Vec<(Vec<F>, Acts<F>)> = edges
            .par_chunks(width * CHUNK)
            .map(|rows| match d {
                // A literal `d` per arm unrolls the per-edge loops over the frame axes.
                2 => self.forward_chunk(&m, rows, 2),
                3 => self.forward_chunk(&m, rows, 3),
                4 => self.forward_chunk(&m, rows, 4),
                _ => self.forward_chunk(&m, rows, d),
            })
            .collect();
        let (msgs, acts): (Vec<Vec<F>>, Vec<Acts<F>>) = chunks.into_iter().unzip();
        if self.keep {
            *self.cache.lock() = Some(Box::new(acts));
        }
        let mut out = vec![F::zero(); self.n * d * d];
        for (m, &i) in msgs
            .iter()
            .flat_map(|c| c.chunks_exact(d * d))
            .zip(self.dst.iter())
        {
            out[i as usize * d * d..(i as usize + 1) * d * d]
                .iter_mut()
                .zip(m)
                .for_each(|(o, v)| *o += *v);
        }
        out
    }

    /// Returns `(d packed, d edges)` given the upstream gradient `g (N, d*d)`.
    fn backward<F: Real>(&self, p: &[F], edges: &[F], g: &[F]) -> (Vec<F>, Vec<F>) {
        let (d, raw) = (self.d, self.raw());
        let width = raw + 1 + d;
        let m = self.mats(p);
        let guard = self.cache.lock();
        let cached = guard
            .as_ref()
            .and_then(|b| b.downcast_ref::<Vec<Acts<F>>>())
            .filter(|a| a.len() == edges.len().div_ceil(width * CHUNK));
        let mut gedges = vec![F::zero(); edges.len()];
        let partials: Vec<Vec<F>> = edges
            .par_chunks(width * CHUNK)
            .zip(gedges.par_chunks_mut(width * CHUNK))
            .enumerate()
            .map(|(chunk, (rows, grows))| {
                let acts = cached.map(|a| &a[chunk]);
                match d {
                    2 => self.backward_chunk(&m, p.len(), rows, grows, chunk, acts, g, 2),
                    3 => self.backward_chunk(&m, p.len(), rows, grows, chunk, acts, g, 3),
                    4 => self.backward_chunk(&m, p.len(), rows, grows, chunk, acts, g, 4),
                    _ => self.backward_chunk(&m, p.len(), rows, grows, chunk, acts, g, d),
                }
            })
            .collect();
        let mut gp = vec![F::zero(); p.len()];
        for part in partials {
            gp.iter_mut().zip(part).for_each(|(a, b)| *a += b);
        }
        (gp, gedges)
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
    ) -> Result<(Tensor, Tensor)> {
        let (gp, ge) = self.backward(p, e, g);
        Ok((
            Tensor::from_vec(gp, packed.dims(), packed.device())?,
            Tensor::from_vec(ge, edges.dims(), edges.device())?,
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
        Ok((Some(gp), Some(ge)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_matches_libm() {
        let mut worst: f64 = 0.0;
        for i in -200_000..=200_000 {
            let x = i as f32 * 4.35e-4; // [-87, 87]
            let (a, b) = (exp_f32(x) as f64, (x as f64).exp());
            worst = worst.max(((a - b) / b).abs());
        }
        assert!(worst < 3e-7, "relative error {worst:e}");
        assert!(exp_f32(-1e30) >= 0.0 && exp_f32(1e30).is_finite());
        assert!(exp_f32(f32::NAN).is_nan() || exp_f32(f32::NAN).is_finite());
        assert_eq!(f32::sigmoid(0.0), 0.5);
        assert!(f32::sigmoid(-200.0) >= 0.0 && f32::sigmoid(200.0) <= 1.0);
    }
}
