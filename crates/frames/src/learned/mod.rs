//! Learned frames (docs/method.md, section 3), in any dimension.
//!
//! `v_{i,k} = sum_{j in N(i)} phi_k(s_i, s_j, rbf(|x_j - x_i|)) env(|x_j - x_i| / r_c) unit(x_j - x_i)`
//! for `k = 1..d`, then Gram-Schmidt ([`crate::orthonormalize`]). `phi` is an MLP on invariant
//! inputs only, so every `v_{i,k}` is an equivariant vector and Gram-Schmidt of `d` of them is
//! O(d)-equivariant, reflections included (no cross product, no handedness fix needed). With
//! [`Handedness::Special`] the last axis is flipped to `det = +1` instead (SO(d) only).
//! Should the learned vectors be (nearly) dependent, the `2d` nearest neighbour vectors follow
//! as equivariant fallback candidates, then the offset to the graph's centroid (which orients
//! flat patches), and only then the global axes (counted as degenerate).
//!
//! # Shapes
//! `pos (N, d)`, `edge_index (2, E)`, `scalars (N, S)` -> frames `(N, d, d)`.

mod edge_mlp;
mod edge_rows;

use std::sync::Arc;

use candle_core::{bail, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use self::edge_mlp::{edge_mlp, EdgeMlp};
use self::edge_rows::edge_rows;
use crate::builder::{FrameBuilder, FrameInput};
use crate::geometry::{check_positions, envelope, relative, HostEdges};
use crate::local_frames::{split_edges, LocalFrames};
use crate::orthonormalize::{orthonormalize, Handedness, Orthonormalize};

/// Hyper-parameters of [`LearnedFrames`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearnedFramesConfig {
    /// Dimension `d`.
    pub d: usize,
    /// Width `S` of the invariant node features fed to `phi` (0 for none).
    pub n_scalars: usize,
    /// Hidden width of `phi`.
    pub hidden: usize,
    /// Number of Gaussian radial basis functions on `[0, cutoff]`.
    pub n_rbf: usize,
    /// Envelope cutoff `r_c`; neighbours beyond it contribute nothing.
    pub cutoff: f64,
    /// O(d) (default) or SO(d).
    pub handedness: Handedness,
    /// Number `C` of equivariant node vectors (a particle's velocity, say) that
    /// [`LearnedFrames::build_with_vectors`] adds to the candidates: `v_{i,k} += sum_c
    /// psi_k(s_i, rbf(|u_{i,c}|)) u_{i,c}` (0 for none).
    pub n_vectors: usize,
    /// Take the candidates (learned vectors, then the neighbour fallbacks) best conditioned
    /// first instead of in order (see [`Orthonormalize::pivot`]). The learned weights depend
    /// on distances (and node scalars) only, so in high `d` the `d` learned vectors are
    /// numerically of low rank: taken in order, the later ones pass the acceptance test with
    /// little of their norm left and round-off grows with the dimension (relative
    /// equivariance error 1e-7 at d = 16, 3e-5 at d = 32); pivoted, it stays near 1e-14 up
    /// to d = 50. On by default above [`PIVOT_ABOVE`](Self::PIVOT_ABOVE) dimensions; below,
    /// frames are taken in order, as every trained model here (d <= 4) was.
    pub pivot: bool,
}

impl LearnedFramesConfig {
    /// Dimensions above which [`pivot`](Self::pivot) is on by default.
    pub const PIVOT_ABOVE: usize = 8;

    /// Defaults for dimension `d` and cutoff `r_c`: hidden 32, 16 radial functions, O(d),
    /// pivoting above [`PIVOT_ABOVE`](Self::PIVOT_ABOVE) dimensions.
    pub fn new(d: usize, cutoff: f64) -> Self {
        Self {
            d,
            n_scalars: 0,
            hidden: 32,
            n_rbf: 16,
            cutoff,
            handedness: Handedness::Orthogonal,
            n_vectors: 0,
            pivot: d > Self::PIVOT_ABOVE,
        }
    }
}

/// The paper's learned frames; weights live under the given `VarBuilder` (`phi.0`, `phi.1`).
#[derive(Debug, Clone)]
pub struct LearnedFrames {
    cfg: LearnedFramesConfig,
    lin1: Linear,
    lin2: Linear,
    /// `psi` of the node vectors (`psi.0`, `psi.1`), when `n_vectors > 0`.
    psi: Option<(Linear, Linear)>,
}

impl LearnedFrames {
    /// Builds the MLP `phi: [s_i, s_j, rbf] -> R^d`.
    pub fn new(cfg: LearnedFramesConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.d < 2 {
            bail!("learned frames need d >= 2, got {}", cfg.d);
        }
        if !(cfg.cutoff.is_finite() && cfg.cutoff > 0.0) || cfg.n_rbf == 0 || cfg.hidden == 0 {
            bail!(
                "learned frames need a positive finite cutoff, n_rbf > 0 and hidden > 0: {cfg:?}"
            );
        }
        let in_dim = 2 * cfg.n_scalars + cfg.n_rbf;
        let lin1 = candle_nn::linear(in_dim, cfg.hidden, vb.pp("phi.0"))?;
        let lin2 = candle_nn::linear(cfg.hidden, cfg.d, vb.pp("phi.1"))?;
        let psi = if cfg.n_vectors > 0 {
            Some((
                candle_nn::linear(cfg.n_scalars + cfg.n_rbf, cfg.hidden, vb.pp("psi.0"))?,
                candle_nn::linear(cfg.hidden, cfg.d, vb.pp("psi.1"))?,
            ))
        } else {
            None
        };
        Ok(Self {
            cfg,
            lin1,
            lin2,
            psi,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LearnedFramesConfig {
        &self.cfg
    }

    /// Spacing (and width) of the radial basis functions on `[0, cutoff]`.
    fn rbf_step(&self) -> f64 {
        self.cfg.cutoff / self.cfg.n_rbf.max(2).saturating_sub(1) as f64
    }

    /// Gaussian radial basis `(E, n_rbf)` of distances `(E, 1)`, as candle ops (the kernel
    /// computes the same inside its chunks; this is the portable path and the reference the
    /// kernel is tested against).
    fn rbf(&self, dist: &Tensor) -> Result<Tensor> {
        let n = self.cfg.n_rbf;
        let step = self.rbf_step();
        let centers: Vec<f64> = (0..n).map(|k| k as f64 * step).collect();
        let centers = Tensor::from_vec(centers, (1, n), dist.device())?.to_dtype(dist.dtype())?;
        (dist.broadcast_sub(&centers)? / step)?.sqr()?.neg()?.exp()
    }
}

impl LearnedFrames {
    /// `v_{i,k} = sum_{e -> i} phi_k(x_e) env_e unit_e` as `(N, d, d)`, by the fused kernel.
    /// `edges` holds each edge's scalars, then its length (the kernel expands the radial
    /// basis), envelope and unit vector; `pairs` pairs of edges with equal inputs, which run
    /// the MLP once (see [`EdgeMlp::pairs`]).
    fn learned_vectors(
        &self,
        edges: &Tensor,
        dst: Arc<Vec<u32>>,
        pairs: Option<Arc<Vec<u32>>>,
        n: usize,
    ) -> Result<Tensor> {
        let d = self.cfg.d;
        if !tf_group::portable::use_kernels(edges) {
            return self.learned_vectors_portable(edges, &dst, n);
        }
        let (Some(b1), Some(b2)) = (self.lin1.bias(), self.lin2.bias()) else {
            bail!("learned frames: the edge MLP must have biases");
        };
        let packed = Tensor::cat(
            &[
                &self.lin1.weight().flatten_all()?,
                b1,
                &self.lin2.weight().flatten_all()?,
                b2,
            ],
            0,
        )?;
        let n_rbf = self.cfg.n_rbf;
        let op = EdgeMlp {
            dst,
            pairs,
            n,
            input: edges.dims()[1] - 2 - d + n_rbf,
            rbf: n_rbf,
            step: self.rbf_step(),
            hidden: self.cfg.hidden,
            d,
        };
        edge_mlp(op, &packed, edges)?.reshape((n, d, d))
    }
}

impl LearnedFrames {
    /// The portable path of [`learned_vectors`](Self::learned_vectors): the edge MLP, the
    /// messages and their sum as candle ops.
    fn learned_vectors_portable(&self, edges: &Tensor, dst: &[u32], n: usize) -> Result<Tensor> {
        use candle_nn::Module;
        let d = self.cfg.d;
        let (e, w) = edges.dims2()?;
        let s = w - 2 - d;
        let len = edges.narrow(1, s, 1)?;
        let env = edges.narrow(1, s + 1, 1)?;
        let unit = edges.narrow(1, s + 2, d)?;
        let phi_in = Tensor::cat(&[edges.narrow(1, 0, s)?, self.rbf(&len)?], 1)?;
        let phi = self.lin2.forward(&self.lin1.forward(&phi_in)?.silu()?)?;
        let msg = phi
            .broadcast_mul(&env)?
            .unsqueeze(2)?
            .broadcast_mul(&unit.unsqueeze(1)?)?
            .reshape((e, d * d))?;
        let dst = Tensor::from_slice(dst, e, edges.device())?;
        tf_graphs::scatter_sum(&msg, &dst, n)?.reshape((n, d, d))
    }
}

impl LearnedFrames {
    /// `sum_c psi_k(s_i, rbf(|u_{i,c}|)) u_{i,c}` as `(N, d, d)` for node vectors `(N, C, d)`:
    /// invariant weights times equivariant vectors, so the sum is equivariant.
    fn node_vector_terms(&self, vectors: &Tensor, scalars: Option<&Tensor>) -> Result<Tensor> {
        use candle_nn::Module;
        let Some((l1, l2)) = &self.psi else {
            bail!("these learned frames were built without node vectors (n_vectors = 0)");
        };
        let d = self.cfg.d;
        let (n, c, dv) = vectors.dims3()?;
        if c != self.cfg.n_vectors || dv != d {
            bail!(
                "node vectors must be (N, {}, {d}), got {:?}",
                self.cfg.n_vectors,
                vectors.dims()
            );
        }
        let len = (vectors.sqr()?.sum_keepdim(2)? + 1e-24)?
            .sqrt()?
            .reshape((n * c, 1))?;
        let mut inputs = vec![self.rbf(&len)?];
        if let Some(s) = scalars {
            let s = s
                .unsqueeze(1)?
                .broadcast_as((n, c, self.cfg.n_scalars))?
                .reshape((n * c, self.cfg.n_scalars))?;
            inputs.insert(0, s);
        }
        let w = l2.forward(&l1.forward(&Tensor::cat(&inputs, 1)?)?.silu()?)?;
        // (N, d, C) x (N, C, d): row k of node i is sum_c w_{i,c,k} u_{i,c}.
        w.reshape((n, c, d))?
            .transpose(1, 2)?
            .contiguous()?
            .matmul(&vectors.contiguous()?)
    }

    /// [`build`](FrameBuilder::build) with equivariant node vectors `(N, n_vectors, d)` among
    /// the learned candidates (see [`LearnedFramesConfig::n_vectors`]).
    pub fn build_with_vectors(
        &self,
        input: &FrameInput,
        vectors: Option<&Tensor>,
    ) -> Result<LocalFrames> {
        if self.cfg.n_vectors > 0 && vectors.is_none() {
            bail!(
                "learned frames expect {} node vectors per node",
                self.cfg.n_vectors
            );
        }
        let (p, n, d) = check_positions(input.pos)?;
        if d != self.cfg.d {
            bail!(
                "learned frames were built for d = {} but positions have d = {d}",
                self.cfg.d
            );
        }
        let edges = Arc::new(HostEdges::new(input.edge_index, n)?);
        // [length, envelope, unit vector] per edge, the layout the kernel reads after the
        // scalars. Without node scalars that length is the MLP's whole input, and it is the
        // same for an edge and its reverse: the reverse edges, found meanwhile, share the
        // MLP.
        // The path is chosen here: the thread-local choice does not reach rayon's workers.
        let (rows, pairs) = if tf_group::portable::use_kernels(input.pos) {
            let (rows, pairs) = rayon::join(
                || edge_rows(input.pos, edges.clone(), self.cfg.cutoff),
                || (self.cfg.n_scalars == 0).then(|| Arc::new(edges.reverse())),
            );
            (rows?, pairs)
        } else {
            let (rel, dist) = relative(input.pos, input.edge_index)?;
            let rows = Tensor::cat(
                &[
                    dist.clone(),
                    envelope(&dist, self.cfg.cutoff)?,
                    rel.broadcast_div(&dist)?,
                ],
                1,
            )?;
            (rows, None)
        };
        let rows = if self.cfg.n_scalars > 0 {
            let Some(s) = input.scalars else {
                bail!(
                    "learned frames expect {} invariant node scalars",
                    self.cfg.n_scalars
                );
            };
            if s.dims() != [n, self.cfg.n_scalars] {
                bail!(
                    "node scalars must be ({n}, {}), got {:?}",
                    self.cfg.n_scalars,
                    s.dims()
                );
            }
            let (src, dst) = split_edges(input.edge_index)?;
            Tensor::cat(
                &[s.index_select(&dst, 0)?, s.index_select(&src, 0)?, rows],
                1,
            )?
        } else {
            rows
        };
        let mut learned = self.learned_vectors(&rows, edges.dst.clone(), pairs, n)?;
        if let Some(u) = vectors {
            learned = (learned
                + self.node_vector_terms(u, input.scalars.filter(|_| self.cfg.n_scalars > 0))?)?;
        }
        let k = 2 * d;
        let fallback = edges.slot_vectors(input.pos, &edges.nearest(&p, d, k), k)?;
        // Last equivariant resort: the offset to the graph's centroid. A flat patch (a box
        // face, a cylinder cap) leaves every local vector in its plane, and the reflection
        // through that plane is a symmetry of the patch; the rest of the shape breaks it.
        let centroid = centroid_offsets(input.pos, input.batch, n)?.unsqueeze(1)?;
        let candidates = Tensor::cat(&[learned, fallback, centroid], 1)?;
        // Degenerate = the global axes were needed; equivariant fallbacks do not count.
        let mut opts = Orthonormalize::new(0);
        opts.handedness = self.cfg.handedness;
        if self.cfg.pivot {
            // The learned vectors and the neighbour fallbacks, best conditioned first.
            opts.pivot = d + k;
        }
        let (frames, degenerate) = orthonormalize(&candidates, &opts)?;
        LocalFrames::new(frames, degenerate.iter().filter(|&&x| x).count())
    }
}

impl FrameBuilder for LearnedFrames {
    fn build(&self, input: &FrameInput) -> Result<LocalFrames> {
        self.build_with_vectors(input, None)
    }

    fn is_equivariant(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "learned"
    }
}

/// `centroid(graph(i)) - x_i` for every node: equivariant and translation invariant.
fn centroid_offsets(pos: &Tensor, batch: Option<&Tensor>, n: usize) -> Result<Tensor> {
    let segs = tf_graphs::segments(batch, n)?;
    let mut parts = Vec::with_capacity(segs.len());
    for r in segs {
        let p = pos.narrow(0, r.start, r.len())?;
        let c = p.mean_keepdim(0)?;
        parts.push(c.broadcast_sub(&p)?);
    }
    Tensor::cat(&parts, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};
    use candle_nn::{Module, VarMap};
    use tf_graphs::scatter_sum;

    /// `learned_vectors` on separate edge inputs (concatenated, so each keeps its gradient).
    fn vectors(
        lf: &LearnedFrames,
        x: &Tensor,
        env: &Tensor,
        unit: &Tensor,
        dst: &Tensor,
        n: usize,
    ) -> Result<Tensor> {
        let edges = Tensor::cat(&[x, env, unit], 1)?;
        lf.learned_vectors(&edges, Arc::new(dst.to_vec1::<u32>()?), None, n)
    }

    /// The kernel against the candle-ops composition it replaces, in values and gradients:
    /// the default width, a width that is not a multiple of the kernel's 32-wide blocks, and
    /// more edges than one chunk.
    #[test]
    fn fused_edge_network_matches_candle_ops() {
        for (d, hidden, e, n) in [(3, 32, 20, 7), (2, 20, 2500, 60), (4, 40, 300, 11)] {
            check_fused(d, hidden, e, n);
        }
    }

    fn check_fused(d: usize, hidden: usize, e: usize, n: usize) {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
        let mut cfg = LearnedFramesConfig::new(d, 1.2);
        cfg.n_scalars = 2;
        cfg.hidden = hidden;
        let lf = LearnedFrames::new(cfg, vb).unwrap();
        let dst: Vec<u32> = (0..e as u32).map(|k| (k * 5) % n as u32).collect();
        let dst = Tensor::new(dst.as_slice(), &Device::Cpu).unwrap();
        let rnd = |shape: (usize, usize), seed: f64| {
            let v: Vec<f64> = (0..shape.0 * shape.1)
                .map(|i| ((i as f64 + seed) * 1.618).sin())
                .collect();
            Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
        };
        // Edge inputs: 2 x 2 node scalars, then the edge length (the kernel expands its basis).
        let (x, env, unit) = (rnd((e, 4 + 1), 0.1), rnd((e, 1), 0.2), rnd((e, d), 0.3));
        let fused = vectors(&lf, &x, &env, &unit, &dst, n).unwrap();
        let phi_in = Tensor::cat(
            &[
                x.narrow(1, 0, 4).unwrap(),
                lf.rbf(&x.narrow(1, 4, 1).unwrap()).unwrap(),
            ],
            1,
        )
        .unwrap();
        let w = lf
            .lin2
            .forward(&lf.lin1.forward(&phi_in).unwrap().silu().unwrap())
            .unwrap();
        let msg = w
            .broadcast_mul(&env)
            .unwrap()
            .unsqueeze(2)
            .unwrap()
            .broadcast_mul(&unit.unsqueeze(1).unwrap())
            .unwrap();
        let reference = scatter_sum(&msg.reshape((e, d * d)).unwrap(), &dst, n)
            .unwrap()
            .reshape((n, d, d))
            .unwrap();
        let diff = |a: &Tensor, b: &Tensor| {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        assert!(diff(&fused, &reference) < 1e-12);
        let wt = Tensor::from_vec(
            (0..n * d * d)
                .map(|i| (i as f64 * 0.7).cos())
                .collect::<Vec<_>>(),
            (n, d, d),
            &Device::Cpu,
        )
        .unwrap();
        let g1 = (&fused * &wt)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g2 = (reference * &wt)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let mut checked = 0;
        for t in vm.all_vars().iter().map(|v| v.as_tensor().clone()).chain([
            x.as_tensor().clone(),
            env.as_tensor().clone(),
            unit.as_tensor().clone(),
        ]) {
            let (a, b) = (g1.get(&t).unwrap(), g2.get(&t).unwrap());
            assert!(
                diff(a, b) < 1e-12,
                "gradient mismatch for a tensor of shape {:?}",
                t.dims()
            );
            checked += 1;
        }
        assert_eq!(checked, 7);
        // Edge data that is not a variable (positions in training) takes no gradient, and the
        // weights' gradients are the same without it.
        let detached = Tensor::cat(&[x.as_tensor(), env.as_tensor(), unit.as_tensor()], 1)
            .unwrap()
            .detach();
        let (xd, envd, unitd) = (
            detached.narrow(1, 0, 5).unwrap(),
            detached.narrow(1, 5, 1).unwrap(),
            detached.narrow(1, 6, d).unwrap(),
        );
        let g3 = (vectors(&lf, &xd, &envd, &unitd, &dst, n).unwrap() * &wt)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(g3.get(&detached).is_none() && g3.get(&xd).is_none());
        for v in vm.all_vars() {
            let (a, b) = (
                g3.get(v.as_tensor()).unwrap(),
                g1.get(v.as_tensor()).unwrap(),
            );
            assert_eq!(
                diff(a, b),
                0.0,
                "weight gradients depend on the edges' gradient"
            );
        }
        // The f32 kernel (computed in f32 throughout) agrees with the f64 one to f32 precision,
        // values and gradients.
        let vm32 = VarMap::new();
        let lf32 = LearnedFrames::new(
            cfg,
            VarBuilder::from_varmap(&vm32, DType::F32, &Device::Cpu),
        )
        .unwrap();
        for (name, v) in vm.data().lock().unwrap().iter() {
            let t = v.as_tensor().to_dtype(DType::F32).unwrap();
            vm32.data().lock().unwrap()[name].set(&t).unwrap();
        }
        let to32 =
            |v: &Var| Var::from_tensor(&v.as_tensor().to_dtype(DType::F32).unwrap()).unwrap();
        let (x32, env32, unit32) = (to32(&x), to32(&env), to32(&unit));
        let fused32 = vectors(&lf32, &x32, &env32, &unit32, &dst, n).unwrap();
        let wt32 = wt.to_dtype(DType::F32).unwrap();
        let g32 = (&fused32 * &wt32)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let rel = |a: &Tensor, b: &Tensor| {
            let a = a.to_dtype(DType::F64).unwrap();
            let scale = b
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
            diff(&a, b) / scale.max(1e-12)
        };
        assert!(rel(&fused32, &fused) < 1e-5);
        let pairs = [(&x32, &x), (&env32, &env), (&unit32, &unit)];
        for (a, b) in pairs {
            let e = rel(
                g32.get(a.as_tensor()).unwrap(),
                g1.get(b.as_tensor()).unwrap(),
            );
            assert!(e < 1e-5, "f32 gradient differs by {e:e}");
        }
        for (name, v) in vm32.data().lock().unwrap().iter() {
            let reference = &vm.data().lock().unwrap()[name];
            let e = rel(
                g32.get(v.as_tensor()).unwrap(),
                g1.get(reference.as_tensor()).unwrap(),
            );
            assert!(e < 1e-5, "{name}: f32 gradient differs by {e:e}");
        }
    }
}
