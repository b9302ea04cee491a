//! The built-in layers by name, and [`LayerNet`]: one layer wrapped between [`Embed`] and
//! [`Readout`] with a frame builder, i.e. a complete global-in, global-out network. Used by the
//! property tests and by `tensor-frames equivariance`.

use candle_core::{bail, Result, Tensor};
use candle_nn::VarBuilder;
use tf_frames::{FrameBuilder, FrameInput};
use tf_graphs::knn_graph;
use tf_group::TensorReps;

use crate::attention::{AttentionConv, AttentionConvConfig};
use crate::context::{GraphContext, Messages};
use crate::edgeconv::{EdgeConv, EdgeConvConfig};
use crate::gcn::{GcnConfig, GcnConv};
use crate::io::{Embed, Readout};
use crate::layer::Layer;

/// Names accepted by [`builtin_layer`].
pub const LAYER_NAMES: &[&str] = &[
    "gcn",
    "gcn-scalar",
    "edgeconv",
    "edgeconv-scalar",
    "attention",
    "attention-scalar",
];

/// A built-in layer by name, mapping `reps` to `reps` (hidden width 32 where there is one).
pub fn builtin_layer(
    name: &str,
    d: usize,
    reps: &TensorReps,
    vb: VarBuilder,
) -> Result<Box<dyn Layer>> {
    let messages = if name.ends_with("-scalar") {
        Messages::Scalar
    } else {
        Messages::Tensorial
    };
    Ok(match name.trim_end_matches("-scalar") {
        "gcn" => Box::new(GcnConv::new(
            GcnConfig {
                d,
                in_reps: reps.clone(),
                out_reps: reps.clone(),
                messages,
            },
            vb,
        )?),
        "edgeconv" => Box::new(EdgeConv::new(
            EdgeConvConfig {
                d,
                in_reps: reps.clone(),
                out_reps: reps.clone(),
                hidden: 32,
                messages,
            },
            vb,
        )?),
        "attention" => Box::new(AttentionConv::new(
            AttentionConvConfig {
                d,
                reps: reps.clone(),
                heads: 2,
                head_dim: 8,
                messages,
            },
            vb,
        )?),
        _ => bail!(
            "unknown layer {name:?}; known layers: {}",
            LAYER_NAMES.join(", ")
        ),
    })
}

/// `frames -> Embed -> layer -> Readout`: global input features and positions in, global output
/// features out. The neighbourhood is the kNN graph of the positions.
#[derive(Debug)]
pub struct LayerNet {
    /// The frame builder.
    pub frames: Box<dyn FrameBuilder>,
    /// Global input -> local hidden.
    pub embed: Embed,
    /// The layer under test.
    pub layer: Box<dyn Layer>,
    /// Local hidden -> global output.
    pub readout: Readout,
    /// Neighbours per node.
    pub k: usize,
}

impl LayerNet {
    /// Assembles the network; weights under `vb` as `embed`, `layer`, `readout`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        d: usize,
        frames: Box<dyn FrameBuilder>,
        layer_name: &str,
        in_reps: &TensorReps,
        hidden: &TensorReps,
        out_reps: &TensorReps,
        k: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            frames,
            embed: Embed::new(d, in_reps, hidden, vb.pp("embed"))?,
            layer: builtin_layer(layer_name, d, hidden, vb.pp("layer"))?,
            readout: Readout::new(d, hidden, out_reps, vb.pp("readout"))?,
            k,
        })
    }

    /// Runs the network; returns the global outputs and the number of degenerate frames.
    pub fn forward(&self, pos: &Tensor, global: &Tensor) -> Result<(Tensor, usize)> {
        let edges = knn_graph(pos, None, self.k, false)?;
        let fr = self.frames.build(&FrameInput {
            pos,
            edge_index: &edges,
            batch: None,
            scalars: None,
        })?;
        let degenerate = fr.degenerate();
        let ctx = GraphContext::new(pos, &edges, fr)?;
        let h = self.embed.forward(&ctx, global)?;
        let h = self.layer.forward(&ctx, &h)?;
        Ok((self.readout.forward(&ctx, &h)?, degenerate))
    }
}
