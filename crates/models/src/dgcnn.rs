//! DGCNN with tensor frames: a stack of [`EdgeConv`] layers on a kNN graph of the points, the
//! outputs of all layers concatenated, then a head. Classification max-pools the (invariant)
//! local features over each shape. The graph is the static kNN graph of the positions.
//!
//! # Shapes
//! `pos (N, d)`, `batch (N,)`, optional global `features` -> normals `(N, d)`, segmentation
//! `(N, classes)`, classification `(G, classes)`.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use tf_frames::FrameBuilder;
use tf_graphs::knn_graph;
use tf_mp::{EdgeConv, EdgeConvConfig, GraphContext, Layer};

use crate::blocks::{prologue, read_out, reps, Head, InputEmbedding};
use crate::config::DgcnnConfig;
use crate::io::{Batch, Prediction};

/// DGCNN; weights under `frames`, `conv.{i}`, `head`.
#[derive(Debug)]
pub struct Dgcnn {
    cfg: DgcnnConfig,
    pub(crate) frames: Box<dyn FrameBuilder>,
    input: InputEmbedding,
    convs: Vec<EdgeConv>,
    head: Head,
}

impl Dgcnn {
    /// Builds the model.
    pub fn new(cfg: DgcnnConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.d;
        let frames = cfg.frames.builder(d, vb.pp("frames"))?;
        let input = InputEmbedding::new(reps("in_reps", &cfg.in_reps)?, d)?;
        let mut cur = input.reps().clone();
        let mut convs = Vec::new();
        let mut total = 0;
        for (i, r) in cfg.layers.iter().enumerate() {
            let out = reps(&format!("layers[{i}]"), r)?;
            total += out.dim(d);
            let c = EdgeConvConfig {
                d,
                in_reps: cur.clone(),
                out_reps: out.clone(),
                hidden: cfg.hidden,
                messages: cfg.messages,
            };
            convs.push(EdgeConv::new(c, vb.pp(format!("conv.{i}")))?);
            cur = out;
        }
        let head = Head::new(cfg.head, d, total, cfg.hidden, None, vb.pp("head"))?;
        Ok(Self {
            cfg,
            frames,
            input,
            convs,
            head,
        })
    }

    /// Runs the model.
    pub fn forward(&self, b: &Batch) -> Result<Prediction> {
        let p = prologue(b, self.cfg.d, self.frames.as_ref(), self.cfg.frames.k)?;
        let degenerate = p.frames.degenerate();
        let edges = knn_graph(b.pos, Some(&p.batch), self.cfg.k, false)?;
        let ctx = GraphContext::new(b.pos, &edges, p.frames.clone())?;
        let mut f = self.input.forward(&ctx, b.pos, b.features)?;
        let mut outs = Vec::new();
        for conv in &self.convs {
            f = conv.forward(&ctx, &f)?;
            outs.push(f.clone());
        }
        let values = read_out(&self.head, self.cfg.head, &ctx, &Tensor::cat(&outs, 1)?, &p)?;
        Ok(Prediction {
            values,
            degenerate_frames: degenerate,
        })
    }
}
