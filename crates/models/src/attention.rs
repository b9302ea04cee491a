//! An attention model: a stack of tensor-frames [`AttentionConv`] layers (LoCaFormer-style) on a
//! kNN graph, between an input embedding and a head.
//!
//! # Shapes
//! As [`crate::Dgcnn`].

use candle_core::Result;
use candle_nn::{Linear, Module, VarBuilder};
use tf_frames::FrameBuilder;
use tf_graphs::knn_graph;
use tf_mp::{AttentionConv, AttentionConvConfig, GraphContext, Layer};

use crate::blocks::{prologue, read_out, reps, Head, InputEmbedding};
use crate::config::AttentionConfig;
use crate::io::{Batch, Prediction};

/// The attention model; weights under `frames`, `embed`, `layer.{i}`, `head`.
#[derive(Debug)]
pub struct AttentionModel {
    cfg: AttentionConfig,
    pub(crate) frames: Box<dyn FrameBuilder>,
    input: InputEmbedding,
    embed: Linear,
    layers: Vec<AttentionConv>,
    head: Head,
}

impl AttentionModel {
    /// Builds the model.
    pub fn new(cfg: AttentionConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.d;
        let frames = cfg.frames.builder(d, vb.pp("frames"))?;
        let input = InputEmbedding::new(reps("in_reps", &cfg.in_reps)?, d)?;
        let hidden = reps("reps", &cfg.reps)?;
        let embed = candle_nn::linear(input.reps().dim(d), hidden.dim(d), vb.pp("embed"))?;
        let head_dim = (cfg.n_rbf.max(8) / cfg.heads.max(1)).max(4);
        let layers = (0..cfg.layers)
            .map(|i| {
                let c = AttentionConvConfig {
                    d,
                    reps: hidden.clone(),
                    heads: cfg.heads,
                    head_dim,
                    messages: cfg.messages,
                };
                AttentionConv::new(c, vb.pp(format!("layer.{i}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let head = Head::new(cfg.head, d, hidden.dim(d), 64, None, vb.pp("head"))?;
        Ok(Self {
            cfg,
            frames,
            input,
            embed,
            layers,
            head,
        })
    }

    /// Runs the model.
    pub fn forward(&self, b: &Batch) -> Result<Prediction> {
        let p = prologue(b, self.cfg.d, self.frames.as_ref(), self.cfg.frames.k)?;
        let degenerate = p.frames.degenerate();
        let edges = knn_graph(b.pos, Some(&p.batch), self.cfg.k, false)?;
        let ctx = GraphContext::new(b.pos, &edges, p.frames.clone())?;
        let mut f = self
            .embed
            .forward(&self.input.forward(&ctx, b.pos, b.features)?)?;
        for layer in &self.layers {
            f = layer.forward(&ctx, &f)?;
        }
        let values = read_out(&self.head, self.cfg.head, &ctx, &f, &p)?;
        Ok(Prediction {
            values,
            degenerate_frames: degenerate,
        })
    }
}
