//! Building blocks shared by the models: MLPs, radial bases, the input embedding, the PointNet conv, and the output heads.

use candle_core::{bail, Result, Tensor};
use candle_nn::{Linear, Module, VarBuilder};
use tf_frames::{FrameBuilder, FrameInput, LocalFrames};
use tf_graphs::{knn_graph, scatter_max, segments};
use tf_group::{RepAction, TensorReps};
use tf_mp::{Aggregation, GraphContext, Messages};

use crate::config::HeadConfig;
use crate::fused::{silu, Dense};
use crate::io::Batch;

/// Parses a rep string from a configuration, naming the field on error.
pub(crate) fn reps(field: &str, s: &str) -> Result<TensorReps> {
    if s.trim().is_empty() {
        return Ok(TensorReps::empty());
    }
    s.parse()
        .map_err(|e| candle_core::Error::Msg(format!("config field {field}: {e}")))
}

/// `Linear -> SiLU -> Linear`: any MLP is allowed on local (invariant) features.
#[derive(Debug, Clone)]
pub(crate) struct Mlp {
    a: Dense,
    b: Dense,
}

impl Mlp {
    pub(crate) fn new(input: usize, hidden: usize, output: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            a: Dense::new(candle_nn::linear(input, hidden, vb.pp("0"))?),
            b: Dense::new(candle_nn::linear(hidden, output, vb.pp("1"))?),
        })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.b.forward(&silu(&self.a.forward(x)?)?)
    }
}

/// Gaussian radial basis `(E, n)` of distances `(E, 1)` on `[0, cutoff]`.
pub(crate) fn rbf(dist: &Tensor, n: usize, cutoff: f64) -> Result<Tensor> {
    if n == 0 {
        return Tensor::zeros((dist.dims()[0], 0), dist.dtype(), dist.device());
    }
    let step = cutoff / n.max(2).saturating_sub(1) as f64;
    let centers: Vec<f64> = (0..n).map(|k| k as f64 * step).collect();
    let centers = Tensor::from_vec(centers, (1, n), dist.device())?.to_dtype(dist.dtype())?;
    (dist.broadcast_sub(&centers)? / step)?.sqr()?.neg()?.exp()
}

/// Global per-point inputs into the local frames; without inputs, one constant scalar.
#[derive(Debug, Clone)]
pub(crate) struct InputEmbedding {
    reps: TensorReps,
    rho: Option<RepAction>,
}

impl InputEmbedding {
    pub(crate) fn new(reps: TensorReps, d: usize) -> Result<Self> {
        if reps.is_empty() {
            return Ok(Self {
                reps: TensorReps::scalars(1),
                rho: None,
            });
        }
        Ok(Self {
            rho: Some(RepAction::new(&reps, d)?),
            reps,
        })
    }

    /// The rep of the local features produced.
    pub(crate) fn reps(&self) -> &TensorReps {
        &self.reps
    }

    pub(crate) fn forward(
        &self,
        ctx: &GraphContext,
        pos: &Tensor,
        features: Option<&Tensor>,
    ) -> Result<Tensor> {
        match (&self.rho, features) {
            (Some(rho), Some(f)) => ctx.node_to_local(f, rho),
            (None, None) => Tensor::ones((pos.dims()[0], 1), pos.dtype(), pos.device()),
            (Some(_), None) => bail!(
                "the model expects per-point input features of rep {}",
                self.reps
            ),
            (None, Some(_)) => {
                bail!("the model was configured without input features (in_reps is empty)")
            }
        }
    }
}

/// PointNet conv on a (bipartite) graph: `max_j MLP([rho(R_c R_j^T) f_j, R_c (x_j - x_c), rbf(|x_j - x_c|)])`.
#[derive(Debug, Clone)]
pub(crate) struct PointConv {
    rho: RepAction,
    mlp: Mlp,
    messages: Messages,
    n_rbf: usize,
    cutoff: f64,
}

impl PointConv {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        d: usize,
        in_reps: &TensorReps,
        out_reps: &TensorReps,
        hidden: usize,
        n_rbf: usize,
        cutoff: f64,
        messages: Messages,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            rho: RepAction::new(in_reps, d)?,
            mlp: Mlp::new(in_reps.dim(d) + d + n_rbf, hidden, out_reps.dim(d), vb)?,
            messages,
            n_rbf,
            cutoff,
        })
    }

    /// `x (N_src, in_dim)` local -> `(N_dst, out_dim)` local.
    pub(crate) fn forward(&self, ctx: &GraphContext, x: &Tensor) -> Result<Tensor> {
        let xj = ctx.sender(x, &self.rho, self.messages)?;
        let radial = rbf(ctx.distances(), self.n_rbf, self.cutoff)?;
        let input = Tensor::cat(&[&xj, ctx.edge_vectors(), &radial], 1)?;
        ctx.aggregate(&self.mlp.forward(&input)?, Aggregation::Max)
    }
}

/// The invariant weights of a normal head's input estimates.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    lin: Linear,
    offset: usize,
    count: usize,
}

/// The output layer of each head kind.
#[derive(Debug, Clone)]
pub(crate) enum Head {
    /// A `1n` vector per point, mapped back to global coordinates. With `gate`, the model was
    /// given estimates of the normal among its input features (`count` contiguous `1n` vectors
    /// from column `offset`); the head then predicts `Σ_s a_s(f) * estimate_s + W f`: invariant
    /// weights that can keep, flip, discount or choose between the estimates, plus a
    /// correction.
    Normals {
        lin: Linear,
        rho: RepAction,
        gate: Option<Gate>,
    },
    /// Invariant logits (per point or per shape).
    Logits { mlp: Mlp },
}

impl Head {
    pub(crate) fn new(
        head: HeadConfig,
        d: usize,
        in_dim: usize,
        hidden: usize,
        gate: Option<(usize, usize)>,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(match head {
            HeadConfig::Normals => match gate {
                None => Head::Normals {
                    lin: candle_nn::linear(in_dim, d, vb.pp("normals"))?,
                    rho: RepAction::new(&TensorReps::vectors(1), d)?,
                    gate: None,
                },
                // Refining estimates: the correction starts at zero and every gate at 1 / count,
                // so training starts from the estimates' mean (a zero-initialised residual
                // branch; with one estimate, the estimate itself).
                Some((offset, count)) => {
                    let zero = |vb: &VarBuilder, rows: usize, bias: f64| -> Result<Linear> {
                        let w =
                            vb.get_with_hints((rows, in_dim), "weight", candle_nn::init::ZERO)?;
                        let b = vb.get_with_hints(rows, "bias", candle_nn::Init::Const(bias))?;
                        Ok(Linear::new(w, Some(b)))
                    };
                    Head::Normals {
                        lin: zero(&vb.pp("normals"), d, 0.0)?,
                        rho: RepAction::new(&TensorReps::vectors(1), d)?,
                        gate: Some(Gate {
                            lin: zero(&vb.pp("gate"), count, 1.0 / count as f64)?,
                            offset,
                            count,
                        }),
                    }
                }
            },
            HeadConfig::Segmentation { classes } | HeadConfig::Classification { classes } => {
                Head::Logits {
                    mlp: Mlp::new(in_dim, hidden, classes, vb.pp("logits"))?,
                }
            }
        })
    }

    /// Local features -> outputs (normals need the frames of the rows, in `ctx`).
    pub(crate) fn forward(&self, ctx: &GraphContext, local: &Tensor) -> Result<Tensor> {
        self.forward_with_input(ctx, local, None)
    }

    /// As [`forward`](Self::forward), with the rows' input features in local coordinates (the
    /// estimate a gated normals head refines).
    pub(crate) fn forward_with_input(
        &self,
        ctx: &GraphContext,
        local: &Tensor,
        input: Option<&Tensor>,
    ) -> Result<Tensor> {
        match self {
            Head::Normals { lin, rho, gate } => {
                let mut out = lin.forward(local)?;
                if let Some(Gate { lin, offset, count }) = gate {
                    let Some(input) = input else {
                        bail!("a gated normals head needs the input features");
                    };
                    let (d, n) = (rho.d(), input.dim(0)?);
                    let estimates = input
                        .narrow(1, *offset, count * d)?
                        .reshape((n, *count, d))?;
                    let weights = lin.forward(local)?.unsqueeze(2)?;
                    out = (out + estimates.broadcast_mul(&weights)?.sum(1)?)?;
                }
                ctx.node_to_global(&out, rho)
            }
            Head::Logits { mlp } => mlp.forward(local),
        }
    }
}

/// What every model does first: check the dimension, get the batch vector and the number of
/// shapes, and predict the frames of the input points from their `k` nearest neighbours.
pub(crate) struct Prologue {
    pub(crate) batch: Tensor,
    pub(crate) n_graphs: usize,
    pub(crate) frames: LocalFrames,
}

pub(crate) fn prologue(
    b: &Batch,
    d: usize,
    frames: &dyn FrameBuilder,
    k: usize,
) -> Result<Prologue> {
    let (n, pd) = b.pos.dims2()?;
    if pd != d {
        bail!("model built for d = {d} but positions have d = {pd}");
    }
    let batch = b.batch_or_zeros()?;
    let n_graphs = segments(Some(&batch), n)?.len();
    let edges = if frames.needs_graph() {
        knn_graph(b.pos, Some(&batch), k, false)?
    } else {
        Tensor::zeros((2, 0), candle_core::DType::U32, b.pos.device())?
    };
    let frames = frames.build(&FrameInput {
        pos: b.pos,
        edge_index: &edges,
        batch: Some(&batch),
        scalars: None,
    })?;
    Ok(Prologue {
        batch,
        n_graphs,
        frames,
    })
}

/// Per-point heads read each point's features; the classification head max-pools the
/// (invariant) local features of each shape first.
pub(crate) fn read_out(
    head: &Head,
    kind: HeadConfig,
    ctx: &GraphContext,
    f: &Tensor,
    p: &Prologue,
) -> Result<Tensor> {
    match kind {
        HeadConfig::Classification { .. } => {
            head.forward(ctx, &scatter_max(f, &p.batch, p.n_graphs)?)
        }
        _ => head.forward(ctx, f),
    }
}
