//! The learned-frame edge network as one CPU kernel.
//!
//! `V[i, k, :] = sum_{e -> i} phi_k(x_e) env_e unit_e` with `phi(x) = W2 silu(W1 x + b1) + b2`.
//!
//! Composed from candle ops this evaluates a dozen elementwise kernels over `(E, hidden)`
//! tensors and keeps them all for the backward pass; with 262k edges it was the entire cost of
//! TF-PointNet++ over plain PointNet++ (see the README). Here one pass per edge computes the
//! message, and the backward recomputes the hidden layer instead of storing it.
//!
//! # Shapes
//! - `packed`: `[W1 (H, I) row-major, b1 (H), W2 (d, H) row-major, b2 (d)]`, flattened
//! - `edges`: `(E, I + 1 + d)`: MLP input `x_e`, envelope `env_e`, unit vector `unit_e`
//! - output: `(N, d * d)`, row `i` holding the `d` learned vectors of node `i`
//!
//! Gradients flow to both inputs (so positions still receive gradients through the frames);
//! weight gradients are summed over fixed chunks of edges in order, so they are deterministic.
//! The backward has no backward of its own (no second derivatives through learned frames).

use std::sync::Arc;

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;
use tf_group::small_matmul::slice;

/// Edges per parallel chunk of the backward pass (fixed, so sums do not depend on threads).
const CHUNK: usize = 2048;

#[derive(Debug, Clone)]
pub(crate) struct EdgeMlp {
    pub(crate) dst: Arc<Vec<u32>>,
    pub(crate) n: usize,
    pub(crate) input: usize,
    pub(crate) hidden: usize,
    pub(crate) d: usize,
}

/// `V = edge_mlp(packed, edges)`; see the module docs.
pub(crate) fn edge_mlp(op: EdgeMlp, packed: &Tensor, edges: &Tensor) -> Result<Tensor> {
    let (e, w) = edges.dims2()?;
    if w != op.input + 1 + op.d || e != op.dst.len() {
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

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl EdgeMlp {
    /// Splits the packed weights into `(W1, b1, W2, b2)`.
    fn weights<'a>(&self, p: &'a [f64]) -> (&'a [f64], &'a [f64], &'a [f64], &'a [f64]) {
        let (h, i, d) = (self.hidden, self.input, self.d);
        let (w1, rest) = p.split_at(h * i);
        let (b1, rest) = rest.split_at(h);
        let (w2, b2) = rest.split_at(d * h);
        (w1, b1, w2, b2)
    }

    /// `W1^T` (I, H) row-major: the per-edge layer then runs as axpy loops over contiguous
    /// rows, which vectorise (dot-product reductions do not, under strict float semantics).
    fn w1_t(&self, p: &[f64]) -> Vec<f64> {
        let (w1, _, _, _) = self.weights(p);
        let (h, inp) = (self.hidden, self.input);
        let mut t = vec![0.0; inp * h];
        for j in 0..h {
            for i in 0..inp {
                t[i * h + j] = w1[j * inp + i];
            }
        }
        t
    }

    /// Hidden pre-activations `z`, activations `s = silu(z)` and outputs `w` for one edge.
    fn edge(&self, p: &[f64], w1t: &[f64], x: &[f64], z: &mut [f64], s: &mut [f64], w: &mut [f64]) {
        let (_, b1, w2, b2) = self.weights(p);
        let h = self.hidden;
        z.copy_from_slice(b1);
        for (i, &xi) in x.iter().enumerate() {
            for (zj, &wij) in z.iter_mut().zip(&w1t[i * h..(i + 1) * h]) {
                *zj += wij * xi;
            }
        }
        for (sj, &zj) in s.iter_mut().zip(z.iter()) {
            *sj = zj * sigmoid(zj);
        }
        for k in 0..self.d {
            let row = &w2[k * h..(k + 1) * h];
            w[k] = b2[k] + row.iter().zip(s.iter()).map(|(a, b)| a * b).sum::<f64>();
        }
    }

    fn forward(&self, p: &[f64], edges: &[f64]) -> Vec<f64> {
        let (d, width) = (self.d, self.input + 1 + self.d);
        // Per-edge messages in parallel (scratch reused per task), then a sequential scatter in
        // edge order: deterministic.
        let w1t = self.w1_t(p);
        let mut msgs = vec![0.0; self.dst.len() * d * d];
        msgs.par_chunks_mut(d * d)
            .zip(edges.par_chunks(width))
            .with_min_len(256)
            .for_each_init(
                || (vec![0.0; self.hidden], vec![0.0; self.hidden], vec![0.0; d]),
                |(z, s, w), (m, row)| {
                    let (x, rest) = row.split_at(self.input);
                    let (env, unit) = (rest[0], &rest[1..]);
                    self.edge(p, &w1t, x, z, s, w);
                    for (k, mk) in m.chunks_exact_mut(d).enumerate() {
                        let wk = w[k] * env;
                        mk.iter_mut().zip(unit).for_each(|(o, u)| *o = wk * u);
                    }
                },
            );
        let mut out = vec![0.0; self.n * d * d];
        for (m, &i) in msgs.chunks_exact(d * d).zip(self.dst.iter()) {
            out[i as usize * d * d..(i as usize + 1) * d * d]
                .iter_mut()
                .zip(m)
                .for_each(|(o, v)| *o += v);
        }
        out
    }

    /// Returns `(d packed, d edges)` given the upstream gradient `g (N, d*d)`.
    fn backward(&self, p: &[f64], edges: &[f64], g: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (d, h, inp, width) = (self.d, self.hidden, self.input, self.input + 1 + self.d);
        let (w1, _, w2, _) = self.weights(p);
        let w1t = self.w1_t(p);
        let mut gedges = vec![0.0; edges.len()];
        let partials: Vec<Vec<f64>> = edges
            .par_chunks(width * CHUNK)
            .zip(gedges.par_chunks_mut(width * CHUNK))
            .enumerate()
            .map(|(c, (rows, grows))| {
                let mut gp = vec![0.0; p.len()];
                let (mut z, mut s, mut w) = (vec![0.0; h], vec![0.0; h], vec![0.0; d]);
                let (mut gw, mut gz) = (vec![0.0; d], vec![0.0; h]);
                for (r, (row, grow)) in rows
                    .chunks_exact(width)
                    .zip(grows.chunks_exact_mut(width))
                    .enumerate()
                {
                    let e = c * CHUNK + r;
                    let (x, rest) = row.split_at(inp);
                    let (env, unit) = (rest[0], &rest[1..]);
                    let gi = &g[self.dst[e] as usize * d * d..(self.dst[e] as usize + 1) * d * d];
                    self.edge(p, &w1t, x, &mut z, &mut s, &mut w);
                    // msg[k, a] = w[k] env unit[a]
                    let mut genv = 0.0;
                    for k in 0..d {
                        let gk = &gi[k * d..(k + 1) * d];
                        let gu: f64 = gk.iter().zip(unit).map(|(a, b)| a * b).sum();
                        gw[k] = env * gu;
                        genv += w[k] * gu;
                    }
                    let (gx, grest) = grow.split_at_mut(inp);
                    grest[0] = genv;
                    for a in 0..d {
                        grest[1 + a] = env * (0..d).map(|k| w[k] * gi[k * d + a]).sum::<f64>();
                    }
                    // w = W2 s + b2; s = silu(z); z = W1 x + b1
                    let (gw1, rest) = gp.split_at_mut(h * inp);
                    let (gb1, rest) = rest.split_at_mut(h);
                    let (gw2, gb2) = rest.split_at_mut(d * h);
                    for k in 0..d {
                        gb2[k] += gw[k];
                        for j in 0..h {
                            gw2[k * h + j] += gw[k] * s[j];
                        }
                    }
                    for j in 0..h {
                        let gs: f64 = (0..d).map(|k| w2[k * h + j] * gw[k]).sum();
                        let sg = sigmoid(z[j]);
                        gz[j] = gs * sg * (1.0 + z[j] * (1.0 - sg));
                        gb1[j] += gz[j];
                        for (i, &xi) in x.iter().enumerate() {
                            gw1[j * inp + i] += gz[j] * xi;
                        }
                    }
                    for (i, gxi) in gx.iter_mut().enumerate() {
                        *gxi = (0..h).map(|j| w1[j * inp + i] * gz[j]).sum();
                    }
                }
                gp
            })
            .collect();
        let mut gp = vec![0.0; p.len()];
        for part in partials {
            gp.iter_mut().zip(part).for_each(|(a, b)| *a += b);
        }
        (gp, gedges)
    }
}

fn to_f64<T: WithDType>(s: &[T]) -> Vec<f64> {
    s.iter().map(|v| v.to_f64()).collect()
}

fn from_f64<T: WithDType>(v: Vec<f64>) -> Vec<T> {
    v.into_iter().map(T::from_f64).collect()
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
            (CpuStorage::F32(p), CpuStorage::F32(e)) => CpuStorage::F32(from_f64(
                self.forward(&to_f64(slice(p, l1)?), &to_f64(slice(e, l2)?)),
            )),
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
        let f = |t: &Tensor| -> Result<Vec<f64>> {
            t.to_dtype(candle_core::DType::F64)?
                .flatten_all()?
                .to_vec1::<f64>()
        };
        let (gp, ge) = self.backward(&f(packed)?, &f(edges)?, &f(grad)?);
        let gp = Tensor::from_vec(gp, packed.dims(), packed.device())?.to_dtype(packed.dtype())?;
        let ge = Tensor::from_vec(ge, edges.dims(), edges.device())?.to_dtype(edges.dtype())?;
        Ok((Some(gp), Some(ge)))
    }
}
