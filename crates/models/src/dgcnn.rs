//! DGCNN with tensor frames: a stack of [`EdgeConv`] layers on a kNN graph of the points, the
//! outputs of all layers concatenated, then a head. Classification max-pools the (invariant)
//! local features over each shape. The graph is the static kNN graph of the positions.
//!
//! # Shapes
//! `pos (N, d)`, `batch (N,)`, optional global `features` -> normals `(N, d)`, segmentation
//! `(N, classes)`, classification `(G, classes)`.

use candle_core::{bail, Result, Tensor};
use candle_nn::VarBuilder;
use tf_frames::{FrameBuilder, FrameInput};
use tf_graphs::{knn_graph, scatter_max, segments};
use tf_mp::{EdgeConv, EdgeConvConfig, GraphContext, Layer};

use crate::blocks::{frame_builder, messages, reps, Head, InputEmbedding};
use crate::config::{DgcnnConfig, HeadConfig};
use crate::model::{Batch, Prediction};

/// DGCNN; weights under `frames`, `conv.{i}`, `head`.
#[derive(Debug)]
pub struct Dgcnn {
    cfg: DgcnnConfig,
    frames: Box<dyn FrameBuilder>,
    input: InputEmbedding,
    convs: Vec<EdgeConv>,
    head: Head,
}

impl Dgcnn {
    /// Builds the model.
    pub fn new(cfg: DgcnnConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.d;
        let frames = frame_builder(&cfg.frames, d, vb.pp("frames"))?;
        let input = InputEmbedding::new(&cfg.in_reps, d)?;
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
                messages: messages(cfg.messages),
            };
            convs.push(EdgeConv::new(c, vb.pp(format!("conv.{i}")))?);
            cur = out;
        }
        let head = Head::new(cfg.head, d, total, cfg.hidden, vb.pp("head"))?;
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
        let (n, d) = b.pos.dims2()?;
        if d != self.cfg.d {
            bail!(
                "model built for d = {} but positions have d = {d}",
                self.cfg.d
            );
        }
        let batch = b.batch_or_zeros()?;
        let frame_edges = knn_graph(b.pos, Some(&batch), self.cfg.frames.k, false)?;
        let fr = self.frames.build(&FrameInput {
            pos: b.pos,
            edge_index: &frame_edges,
            batch: Some(&batch),
            scalars: None,
        })?;
        let degenerate = fr.degenerate();
        let edges = knn_graph(b.pos, Some(&batch), self.cfg.k, false)?;
        let ctx = GraphContext::new(b.pos, &edges, fr)?;
        let mut f = self.input.forward(&ctx, b.pos, b.features)?;
        let mut outs = Vec::new();
        for conv in &self.convs {
            f = conv.forward(&ctx, &f)?;
            outs.push(f.clone());
        }
        let all = Tensor::cat(&outs, 1)?;
        let values = match self.cfg.head {
            HeadConfig::Classification { .. } => {
                let g = segments(Some(&batch), n)?.len();
                self.head.forward(&ctx, &scatter_max(&all, &batch, g)?)?
            }
            _ => self.head.forward(&ctx, &all)?,
        };
        Ok(Prediction {
            values,
            degenerate_frames: degenerate,
        })
    }
}
