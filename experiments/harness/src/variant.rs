//! The paper's rows as edits of one model configuration.

use tf_models::{FrameChoice, Messages, ModelConfig};

/// A row of the paper's tables: which frames, which messages, refinement or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Identity frames + scalar messages: the plain, non-equivariant network.
    Plain,
    /// One random O(d) frame per shape and pass + scalar messages: data augmentation.
    Augmentation,
    /// Learned frames, scalar messages.
    LearnedScalar,
    /// Learned frames, tensorial messages (the paper's model).
    LearnedTensorial,
    /// Learned frames, tensorial messages, refined frames (PointNet++ only).
    Refined,
    /// Random per-node frames, scalar messages (ablation).
    RandomScalar,
    /// Random per-node frames, tensorial messages (ablation).
    RandomTensorial,
}

impl Variant {
    /// Applies the variant to a configuration.
    pub fn apply(self, mut m: ModelConfig) -> ModelConfig {
        use FrameChoice as F;
        use Messages as M;
        let (frames, messages, refine) = match self {
            Variant::Plain => (F::Identity, M::Scalar, false),
            Variant::Augmentation => (F::RandomGlobal, M::Scalar, false),
            Variant::LearnedScalar => (F::Learned, M::Scalar, false),
            Variant::LearnedTensorial => (F::Learned, M::Tensorial, false),
            Variant::Refined => (F::Learned, M::Tensorial, true),
            Variant::RandomScalar => (F::Random, M::Scalar, false),
            Variant::RandomTensorial => (F::Random, M::Tensorial, false),
        };
        m.frames_mut().kind = frames;
        match &mut m {
            ModelConfig::Pointnet2(c) => {
                c.messages = messages;
                c.refine = refine;
            }
            ModelConfig::Dgcnn(c) => c.messages = messages,
            ModelConfig::Attention(c) => c.messages = messages,
        }
        m
    }

    /// The label used in tables.
    pub fn label(self, model: &str) -> String {
        match self {
            Variant::Plain => format!("{model} (plain: identity frames)"),
            Variant::Augmentation => format!("{model} + augmentation (random global frame)"),
            Variant::LearnedScalar => format!("TF-{model}, scalar messages"),
            Variant::LearnedTensorial => format!("TF-{model}, tensorial messages"),
            Variant::Refined => format!("TF-{model}, tensorial, refined frames"),
            Variant::RandomScalar => format!("{model}, random frames, scalar messages"),
            Variant::RandomTensorial => format!("{model}, random frames, tensorial messages"),
        }
    }

    /// True for the rows that are exactly O(d)-equivariant.
    pub fn is_equivariant(self) -> bool {
        matches!(
            self,
            Variant::LearnedScalar | Variant::LearnedTensorial | Variant::Refined
        )
    }
}

/// The rows of tables 1-3, in the paper's order.
pub const PAPER_ROWS: [Variant; 5] = [
    Variant::Plain,
    Variant::Augmentation,
    Variant::LearnedScalar,
    Variant::LearnedTensorial,
    Variant::Refined,
];
