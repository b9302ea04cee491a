//! Tensor frames: make any message passing network exactly O(d)-equivariant.
//!
//! The facade of the workspace. Each concept lives in its own crate, re-exported here:
//!
//! | module | crate | concept |
//! |---|---|---|
//! | [`group`] | `tf-group` | O(d) elements, Cartesian tensor reps, `rho(U)` |
//! | [`graphs`] | `tf-graphs` | radius/kNN graphs, FPS, scatter reductions |
//! | [`frames`] | `tf-frames` | local frames: learned, PCA, nearest, controls, refinement |
//! | [`mp`] | `tf-mp` | message passing layers with tensorial messages |
//! | [`models`] | `tf-models` | TF-PointNet++, DGCNN, attention; configs and presets |
//! | [`datasets`] | `tf-datasets` | synthetic shapes, point-set and ModelNet-normal loaders |
//! | [`diagnostics`] | here | equivariance measurements behind the CLI |
//!
//! The `tensor-frames` binary offers `tensor-frames equivariance --layer edgeconv --dim 5`.
//!
//! # Example
//! ```
//! use tensor_frames::prelude::*;
//! use tensor_frames::diagnostics::{layer_equivariance, EquivarianceRequest};
//!
//! let mut req = EquivarianceRequest::new("edgeconv", 4);
//! req.trials = 1;
//! let result = layer_equivariance(&req).expect("runs");
//! assert!(result.max_rel_error < 1e-9);
//! let reps: TensorReps = "8x0n+4x1n".parse().expect("valid");
//! assert_eq!(reps.dim(4), 8 + 16);
//! ```

pub mod diagnostics;
pub mod evaluate;
pub mod predict;

pub use tf_datasets as datasets;
pub use tf_frames as frames;
pub use tf_graphs as graphs;
pub use tf_group as group;
pub use tf_models as models;
pub use tf_mp as mp;
pub use tf_normals as normals;
pub use tf_train as train;

/// The names most programs need.
pub mod prelude {
    pub use tf_frames::{
        FrameBuilder, FrameChoice, FrameConfig, FrameInput, FrameRefinement, Handedness,
        IdentityFrames, LearnedFrames, LearnedFramesConfig, LocalFrames, NearestFrames, PcaFrames,
        RandomFrames, RandomGlobalFrames,
    };
    pub use tf_graphs::{
        farthest_point_sampling, knn_graph, radius_graph, scatter_max, scatter_mean,
        scatter_softmax, scatter_sum, FpsStart, RadiusGraph,
    };
    pub use tf_group::{orthogonal, Parity, RepAction, RepTerm, TensorReps};
    pub use tf_models::{Batch, HeadConfig, Model, ModelConfig, Prediction};
    pub use tf_mp::{
        Aggregation, EdgeConv, EdgeConvConfig, Embed, GcnConfig, GcnConv, GraphContext, Layer,
        Messages, Readout,
    };
    pub use tf_normals::{orient_by_visibility, orient_by_winding, pca_normals, InputFeatures};
}
