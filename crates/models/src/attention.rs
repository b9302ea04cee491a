//! An attention model: a stack of tensor-frames [`AttentionConv`] layers (LoCaFormer-style) on a
//! kNN graph, between an input embedding and a head.
//!
//! # Shapes
//! As [`crate::Dgcnn`].

use candle_core::{bail, Result};
use candle_nn::{Linear, Module, VarBuilder};
use tf_frames::{FrameBuilder, FrameInput};
use tf_graphs::{knn_graph, scatter_max, segments};
use tf_mp::{AttentionConv, AttentionConvConfig, GraphContext, Layer};

use crate::blocks::{frame_builder, messages, reps, Head, InputEmbedding};
use crate::config::{AttentionConfig, HeadConfig};
use crate::model::{Batch, Prediction};

/// The attention model; weights under `frames`, `embed`, `layer.{i}`, `head`.
#[derive(Debug)]
pub struct AttentionModel {
    cfg: AttentionConfig,
    frames: Box<dyn FrameBuilder>,
    input: InputEmbedding,
    embed: Linear,
    layers: Vec<AttentionConv>,
    head: Head,
}

impl AttentionModel {
    /// Builds the model.
    pub fn new(cfg: AttentionConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.d;
        let frames = frame_builder(&cfg.frames, d, vb.pp("frames"))?;
        let input = InputEmbedding::new(&cfg.in_reps, d)?;
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
                    messages: messages(cfg.messages),
                };
                AttentionConv::new(c, vb.pp(format!("layer.{i}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let head = Head::new(cfg.head, d, hidden.dim(d), 64, vb.pp("head"))?;
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
        let mut f = self
            .embed
            .forward(&self.input.forward(&ctx, b.pos, b.features)?)?;
        for layer in &self.layers {
            f = layer.forward(&ctx, &f)?;
        }
        let values = match self.cfg.head {
            HeadConfig::Classification { .. } => {
                let g = segments(Some(&batch), n)?.len();
                self.head.forward(&ctx, &scatter_max(&f, &batch, g)?)?
            }
            _ => self.head.forward(&ctx, &f)?,
        };
        Ok(Prediction {
            values,
            degenerate_frames: degenerate,
        })
    }
}
