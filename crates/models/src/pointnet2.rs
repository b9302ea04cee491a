//! TF-PointNet++ (docs/method.md, section 5), generic in d.
//!
//! - frames are predicted at the input points (kNN graph) and inherited by sampled centres;
//!   optionally refined after the first set abstraction;
//! - set abstraction: FPS centres (started at the point farthest from the centroid, so the
//!   samples depend on geometry only), radius neighbourhoods capped nearest first, PointNet conv
//!   on `[rho(R_c R_j^T) f_j, R_c (x_j - x_c), rbf]`, max;
//! - a global layer whose centre is the point nearest the centroid;
//! - feature propagation, coarse to fine: inverse squared distance interpolation of the `k`
//!   nearest coarse features, transported into the fine point's frame, concatenated with the
//!   skip features, MLP;
//! - heads: normals (`1n` per point, back to global with `rho(R_i^T)`), per-point logits,
//!   per-shape logits.
//!
//! With identity frames and scalar messages this is plain PointNet++; with one random frame
//! per shape it is PointNet++ with rotation/reflection augmentation.
//!
//! # Shapes
//! `pos (N, d)`, `batch (N,)` sorted, optional `features (N, in_reps.dim(d))` global ->
//! normals `(N, d)`, segmentation `(N, classes)`, classification `(G, classes)`.

use candle_core::{bail, Result, Tensor};
use candle_nn::{Module, VarBuilder};
use tf_frames::{FrameBuilder, FrameRefinement, LocalFrames};
use tf_graphs::{
    farthest_point_sampling, host_positions, knn_neighbors, radius_neighbors, segments, FpsStart,
};
use tf_group::{RepAction, TensorReps};
use tf_mp::{Aggregation, GraphContext, Messages};

use crate::blocks::{prologue, reps, Head, InputEmbedding, Mlp, PointConv};
use crate::config::{HeadConfig, PointNet2Config};
use crate::io::{Batch, Prediction};

#[derive(Debug, Clone)]
struct SetAbstraction {
    ratio: f64,
    radius: f64,
    max_neighbors: usize,
    conv: PointConv,
}

#[derive(Debug, Clone)]
struct FeaturePropagation {
    k: usize,
    rho_coarse: RepAction,
    mlp: Mlp,
}

/// TF-PointNet++; weights under `frames`, `sa.{i}`, `refine`, `global`, `fp.{i}`, `head`.
#[derive(Debug)]
pub struct PointNet2 {
    cfg: PointNet2Config,
    pub(crate) frames: Box<dyn FrameBuilder>,
    input: InputEmbedding,
    sa: Vec<SetAbstraction>,
    refine: Option<(FrameRefinement, RepAction)>,
    global: PointConv,
    rho_global: RepAction,
    fp: Vec<FeaturePropagation>,
    head: Head,
    messages: Messages,
}

/// Points, frames and features of one level of the hierarchy.
struct Level {
    pos: Tensor,
    batch: Tensor,
    frames: LocalFrames,
    feats: Tensor,
}

impl PointNet2 {
    /// Builds the model from its configuration.
    pub fn new(cfg: PointNet2Config, vb: VarBuilder) -> Result<Self> {
        let d = cfg.d;
        let msgs = cfg.messages;
        let frames = cfg.frames.builder(d, vb.pp("frames"))?;
        let in_reps = if cfg.input.is_some() {
            cfg.input.reps()
        } else {
            reps("in_reps", &cfg.in_reps)?
        };
        let input = InputEmbedding::new(in_reps, d)?;
        let mut level_reps = vec![input.reps().clone()];
        let mut sa = Vec::new();
        for (i, s) in cfg.sa.iter().enumerate() {
            let out = reps(&format!("sa[{i}].reps"), &s.reps)?;
            let conv = PointConv::new(
                d,
                &level_reps[i],
                &out,
                s.hidden,
                cfg.n_rbf,
                s.radius,
                msgs,
                vb.pp(format!("sa.{i}")),
            )?;
            sa.push(SetAbstraction {
                ratio: s.ratio,
                radius: s.radius,
                max_neighbors: s.max_neighbors,
                conv,
            });
            level_reps.push(out);
        }
        let refine = if cfg.refine {
            let sa_out = &level_reps[1];
            let r = FrameRefinement::new(sa_out.dim(d), 32, d, vb.pp("refine"))?;
            Some((r, RepAction::new(sa_out, d)?))
        } else {
            None
        };
        let global_reps = reps("global_reps", &cfg.global_reps)?;
        let last = level_reps.last().cloned().unwrap_or_else(TensorReps::empty);
        let max_radius = cfg.sa.iter().map(|s| s.radius).fold(0.0, f64::max);
        let global = PointConv::new(
            d,
            &last,
            &global_reps,
            cfg.global_hidden,
            cfg.n_rbf,
            2.0 * max_radius,
            msgs,
            vb.pp("global"),
        )?;
        let mut fp = Vec::new();
        let mut coarse = global_reps.clone();
        let head_in = match cfg.head {
            HeadConfig::Classification { .. } => global_reps.dim(d),
            _ => {
                let l = cfg.sa.len();
                if cfg.fp.len() != l + 1 {
                    bail!(
                        "dense heads need {} feature propagation levels, got {}",
                        l + 1,
                        cfg.fp.len()
                    );
                }
                for (i, f) in cfg.fp.iter().enumerate() {
                    let out = reps(&format!("fp[{i}].reps"), &f.reps)?;
                    let skip = &level_reps[l - i];
                    let mlp = Mlp::new(
                        coarse.dim(d) + skip.dim(d),
                        f.hidden,
                        out.dim(d),
                        vb.pp(format!("fp.{i}")),
                    )?;
                    fp.push(FeaturePropagation {
                        k: f.k.max(1),
                        rho_coarse: RepAction::new(&coarse, d)?,
                        mlp,
                    });
                    coarse = out;
                }
                coarse.dim(d)
            }
        };
        let head = Head::new(
            cfg.head,
            d,
            head_in,
            cfg.global_hidden,
            cfg.input.estimates(),
            vb.pp("head"),
        )?;
        Ok(Self {
            rho_global: RepAction::new(&global_reps, d)?,
            cfg,
            frames,
            input,
            sa,
            refine,
            global,
            fp,
            head,
            messages: msgs,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PointNet2Config {
        &self.cfg
    }

    /// Runs the model.
    pub fn forward(&self, b: &Batch) -> Result<Prediction> {
        // The sampled levels depend on the positions only, so they are built while the frames
        // are: both are host work with serial stretches (a neighbour search per graph, candle
        // glue between the frame kernels) that leave a core idle when run one after the other.
        let batch0 = b.batch_or_zeros()?;
        // The portable-path choice is per thread: carry it to rayon's workers.
        let forced = tf_group::portable::is_forced();
        let (p, sampled) = rayon::join(
            || {
                tf_group::portable::carry(forced, || {
                    prologue(b, self.cfg.d, self.frames.as_ref(), self.cfg.frames.k)
                })
            },
            || {
                tf_group::portable::carry(forced, || {
                    let sampled = self.sample_levels(b.pos, &batch0)?;
                    let interp = self.interpolation_edges(b.pos, &batch0, &sampled)?;
                    Ok::<_, candle_core::Error>((sampled, interp))
                })
            },
        );
        let (p, (sampled, interp_edges)) = (p?, sampled?);
        let (n_graphs, fr0) = (p.n_graphs, p.frames);
        let degenerate = fr0.degenerate();
        // Level 0 only enters and leaves the frames: a context without edges does that.
        let no_edges = Tensor::zeros((2, 0), candle_core::DType::U32, b.pos.device())?;
        let ctx0 = GraphContext::new(b.pos, &no_edges, fr0.clone())?;
        let f0 = self.input.forward(&ctx0, b.pos, b.features)?;
        let mut levels = vec![Level {
            pos: b.pos.clone(),
            batch: batch0,
            frames: fr0,
            feats: f0,
        }];
        for ((l, sa), level) in self.sa.iter().enumerate().zip(sampled) {
            let cur = &levels[l];
            let Sampled {
                idx,
                pos,
                batch,
                edges,
            } = level;
            let mut frames = cur.frames.index_select(&idx)?;
            let ctx = GraphContext::bipartite(&cur.pos, &cur.frames, &pos, frames.clone(), &edges)?;
            let mut feats = sa.conv.forward(&ctx, &cur.feats)?;
            if let (0, Some((refine, rho))) = (l, &self.refine) {
                let (fr, f) = refine.forward(&frames, &feats, rho)?;
                frames = fr;
                feats = f;
            }
            levels.push(Level {
                pos,
                batch,
                frames,
                feats,
            });
        }
        // Global layer: every point of the last level -> its shape's most central point.
        let last = &levels[levels.len() - 1];
        let centres = nearest_to_centroid(&last.pos, &last.batch, n_graphs)?;
        let gpos = last.pos.index_select(&centres, 0)?;
        let gframes = last.frames.index_select(&centres)?;
        let n_last = last.pos.dims()[0] as u32;
        let to_graph = Tensor::stack(
            &[
                Tensor::arange(0u32, n_last, b.pos.device())?,
                last.batch.clone(),
            ],
            0,
        )?;
        let gctx =
            GraphContext::bipartite(&last.pos, &last.frames, &gpos, gframes.clone(), &to_graph)?;
        let g = self.global.forward(&gctx, &last.feats)?;
        if let HeadConfig::Classification { .. } = self.cfg.head {
            return Ok(Prediction {
                values: self.head.forward(&gctx, &g)?,
                degenerate_frames: degenerate,
            });
        }
        // Feature propagation, coarse to fine, starting from the global feature.
        let from_graph = Tensor::stack(
            &[
                last.batch.clone(),
                Tensor::arange(0u32, n_last, b.pos.device())?,
            ],
            0,
        )?;
        let ctx =
            GraphContext::bipartite(&gpos, &gframes, &last.pos, last.frames.clone(), &from_graph)?;
        let interp = ctx.aggregate(
            &ctx.sender(&g, &self.rho_global, self.messages)?,
            Aggregation::Sum,
        )?;
        let mut f = self.fp[0]
            .mlp
            .forward(&Tensor::cat(&[&interp, &last.feats], 1)?)?;
        for ((i, fp), edges) in self.fp.iter().enumerate().skip(1).zip(interp_edges) {
            let (coarse, fine) = (&levels[levels.len() - i], &levels[levels.len() - 1 - i]);
            let ctx = GraphContext::bipartite(
                &coarse.pos,
                &coarse.frames,
                &fine.pos,
                fine.frames.clone(),
                &edges,
            )?;
            let w = (ctx.distances().sqr()? + 1e-8)?.recip()?;
            let wsum = ctx
                .aggregate(&w, Aggregation::Sum)?
                .index_select(ctx.receivers(), 0)?;
            let xj = ctx.sender(&f, &fp.rho_coarse, self.messages)?;
            let interp = ctx.aggregate(&xj.broadcast_mul(&(w / wsum)?)?, Aggregation::Sum)?;
            f = fp.mlp.forward(&Tensor::cat(&[&interp, &fine.feats], 1)?)?;
        }
        Ok(Prediction {
            values: self
                .head
                .forward_with_input(&ctx0, &f, Some(&levels[0].feats))?,
            degenerate_frames: degenerate,
        })
    }

    /// The sampled points and neighbourhoods of every set abstraction level.
    fn sample_levels(&self, pos: &Tensor, batch: &Tensor) -> Result<Vec<Sampled>> {
        let (mut pos, mut batch) = (pos.clone(), batch.clone());
        let mut out = Vec::with_capacity(self.sa.len());
        for sa in &self.sa {
            let idx = farthest_point_sampling(
                &pos,
                Some(&batch),
                sa.ratio,
                FpsStart::FarthestFromCentroid,
            )?;
            let (p, bt) = (pos.index_select(&idx, 0)?, batch.index_select(&idx, 0)?);
            let edges = radius_neighbors(
                &pos,
                Some(&batch),
                &p,
                Some(&bt),
                sa.radius,
                sa.max_neighbors,
            )?;
            out.push(Sampled {
                idx,
                pos: p.clone(),
                batch: bt.clone(),
                edges,
            });
            (pos, batch) = (p, bt);
        }
        Ok(out)
    }

    /// The interpolation neighbourhoods of feature propagation levels `1..`: for level `i`,
    /// the `k` nearest points of level `L - i` to each point of level `L - i - 1`, where
    /// level 0 is the input and `L` the number of set abstraction levels.
    fn interpolation_edges(
        &self,
        pos: &Tensor,
        batch: &Tensor,
        sampled: &[Sampled],
    ) -> Result<Vec<Tensor>> {
        if let HeadConfig::Classification { .. } = self.cfg.head {
            return Ok(Vec::new()); // read out after the global layer: no propagation
        }
        let levels: Vec<(&Tensor, &Tensor)> = std::iter::once((pos, batch))
            .chain(sampled.iter().map(|s| (&s.pos, &s.batch)))
            .collect();
        let last = levels.len() - 1;
        self.fp
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, fp)| {
                let (coarse, fine) = (levels[last + 1 - i], levels[last - i]);
                knn_neighbors(coarse.0, Some(coarse.1), fine.0, Some(fine.1), fp.k)
            })
            .collect()
    }
}

/// One set abstraction level's points: the farthest point samples `idx` of the level below,
/// their positions and graphs, and the radius neighbourhoods `edges` (senders below, receivers
/// the samples).
struct Sampled {
    idx: Tensor,
    pos: Tensor,
    batch: Tensor,
    edges: Tensor,
}

/// Per graph, the point nearest its centroid (ties: lowest index), as `(G,)` u32 indices.
fn nearest_to_centroid(pos: &Tensor, batch: &Tensor, n_graphs: usize) -> Result<Tensor> {
    let (p, n, d) = host_positions(pos)?;
    let segs = segments(Some(batch), n)?;
    let mut out = Vec::with_capacity(n_graphs);
    for (g, s) in segs.iter().enumerate() {
        if s.is_empty() {
            bail!("graph {g} has no points left at the last level");
        }
        let m = s.len() as f64;
        let mut c = vec![0.0; d];
        for i in s.clone() {
            c.iter_mut()
                .enumerate()
                .for_each(|(a, v)| *v += p[i * d + a] / m);
        }
        let dist = |i: usize| -> f64 { (0..d).map(|a| (p[i * d + a] - c[a]).powi(2)).sum() };
        out.push(s.clone().fold(
            s.start,
            |best, i| if dist(i) < dist(best) { i } else { best },
        ) as u32);
    }
    Tensor::from_vec(out, n_graphs, pos.device())
}
