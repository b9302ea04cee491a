//! Model configurations: serde structs, tagged by `model = "..."` in TOML, with the range
//! checks serde cannot express. Named presets and the figment loader are in `presets.rs`.

use serde::{Deserialize, Serialize};
use tf_frames::FrameConfig;
use tf_mp::Messages;
use tf_normals::InputFeatures;

/// What the model predicts.
// Read through `RawHead`: serde ignores unknown keys next to the tag of a unit variant
// (`[model.head] kind = "normals"`), even with `deny_unknown_fields`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", try_from = "RawHead")]
pub enum HeadConfig {
    /// A `1n` vector per point (normal regression), in global coordinates.
    Normals,
    /// Class logits per point (part segmentation), invariant.
    Segmentation {
        /// Number of part classes.
        classes: usize,
    },
    /// Class logits per shape (classification), invariant.
    Classification {
        /// Number of classes.
        classes: usize,
    },
}

/// `[model.head]` as written: every key known, then checked against the kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHead {
    kind: String,
    classes: Option<usize>,
}

impl TryFrom<RawHead> for HeadConfig {
    type Error = String;
    fn try_from(r: RawHead) -> Result<Self, Self::Error> {
        match (r.kind.as_str(), r.classes) {
            ("normals", None) => Ok(HeadConfig::Normals),
            ("normals", Some(_)) => Err("a normals head takes no `classes`".into()),
            ("segmentation", Some(classes)) => Ok(HeadConfig::Segmentation { classes }),
            ("classification", Some(classes)) => Ok(HeadConfig::Classification { classes }),
            ("segmentation" | "classification", None) => {
                Err(format!("a {} head needs `classes`", r.kind))
            }
            (other, _) => Err(format!(
                "unknown head kind {other:?}; kinds: normals, segmentation, classification"
            )),
        }
    }
}

/// One set abstraction level: FPS centres, radius neighbourhoods, PointNet conv, max.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetAbstractionConfig {
    /// Fraction of points kept as centres.
    pub ratio: f64,
    /// Neighbourhood radius.
    pub radius: f64,
    /// Neighbour cap (nearest first).
    pub max_neighbors: usize,
    /// Output rep (local features), e.g. `"32x0n+8x1n+2x2n"`.
    pub reps: String,
    /// Hidden width of the conv MLP.
    pub hidden: usize,
}

/// One feature propagation level: kNN inverse-distance interpolation + skip + MLP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturePropagationConfig {
    /// Coarse neighbours interpolated from.
    pub k: usize,
    /// Output rep.
    pub reps: String,
    /// Hidden width of the MLP.
    pub hidden: usize,
}

/// TF-PointNet++ (docs/method.md, section 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointNet2Config {
    /// Dimension `d`.
    pub d: usize,
    /// Frames.
    pub frames: FrameConfig,
    /// Tensorial or scalar messages.
    pub messages: Messages,
    /// Refine the frames after the first set abstraction.
    pub refine: bool,
    /// Global input features per point (a rep string) or empty for none.
    pub in_reps: String,
    /// Features the data pipeline computes from the whole cloud (instead of `in_reps`). With a
    /// PCA normal, the normals head refines that estimate (see the crate docs).
    #[serde(default)]
    pub input: InputFeatures,
    /// Radial basis functions per edge.
    pub n_rbf: usize,
    /// Set abstraction levels.
    pub sa: Vec<SetAbstractionConfig>,
    /// Output rep and hidden width of the global layer.
    pub global_reps: String,
    /// Hidden width of the global layer.
    pub global_hidden: usize,
    /// Feature propagation levels, coarse to fine (one per set abstraction level plus one from
    /// the global layer); ignored by the classification head.
    pub fp: Vec<FeaturePropagationConfig>,
    /// Output.
    pub head: HeadConfig,
}

/// DGCNN: a stack of tensor-frames EdgeConv layers on a kNN graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DgcnnConfig {
    /// Dimension `d`.
    pub d: usize,
    /// Frames.
    pub frames: FrameConfig,
    /// Tensorial or scalar messages.
    pub messages: Messages,
    /// Global input features per point, or empty.
    pub in_reps: String,
    /// Neighbours of the EdgeConv graph.
    pub k: usize,
    /// Output rep of each EdgeConv layer.
    pub layers: Vec<String>,
    /// Hidden width of each EdgeConv MLP and of the head.
    pub hidden: usize,
    /// Output.
    pub head: HeadConfig,
}

/// A LoCaFormer-style attention model: softmax attention whose keys and values are built from
/// transported neighbour features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttentionConfig {
    /// Dimension `d`.
    pub d: usize,
    /// Frames.
    pub frames: FrameConfig,
    /// Tensorial or scalar messages.
    pub messages: Messages,
    /// Global input features per point, or empty.
    pub in_reps: String,
    /// Neighbours of the attention graph.
    pub k: usize,
    /// Hidden rep of every layer.
    pub reps: String,
    /// Number of layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Radial basis functions per edge.
    pub n_rbf: usize,
    /// Output.
    pub head: HeadConfig,
}

/// Any model of this crate, tagged by `model = "..."` in TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "kebab-case")]
pub enum ModelConfig {
    /// TF-PointNet++.
    Pointnet2(PointNet2Config),
    /// DGCNN.
    Dgcnn(DgcnnConfig),
    /// Attention.
    Attention(AttentionConfig),
}

/// A configuration problem: unknown preset, unreadable/invalid file, bad values.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No preset of that name.
    #[error("unknown model preset {name:?}; known presets: {known}")]
    UnknownPreset {
        /// The name asked for.
        name: String,
        /// Comma-separated known names.
        known: String,
    },
    /// figment could not read or merge the sources.
    #[error("invalid model configuration: {0}")]
    Figment(#[from] Box<figment::Error>),
    /// A value is out of range.
    #[error("invalid model configuration: {0}")]
    Invalid(String),
}

impl ModelConfig {
    /// Range checks that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let (d, fr, head) = match self {
            ModelConfig::Pointnet2(c) => {
                if c.sa.is_empty() {
                    return bad("pointnet2 needs at least one set abstraction level".into());
                }
                for (i, s) in c.sa.iter().enumerate() {
                    if !(s.ratio > 0.0 && s.ratio <= 1.0 && s.radius > 0.0 && s.radius.is_finite())
                        || s.max_neighbors == 0
                        || s.hidden == 0
                    {
                        return bad(format!("sa[{i}]: need 0 < ratio <= 1, radius > 0, max_neighbors > 0, hidden > 0"));
                    }
                }
                if !matches!(c.head, HeadConfig::Classification { .. })
                    && c.fp.len() != c.sa.len() + 1
                {
                    return bad(format!(
                        "dense heads need one fp level per sa level plus one ({} != {} + 1)",
                        c.fp.len(),
                        c.sa.len()
                    ));
                }
                if c.input.is_some() && !c.in_reps.is_empty() {
                    return bad(format!(
                        "set in_reps (features the caller supplies) or input (features computed \
                         from the cloud), not both (in_reps = {:?})",
                        c.in_reps
                    ));
                }
                if let InputFeatures::PcaNormal { k, scales, .. } = c.input {
                    if k < c.d {
                        return bad(format!(
                            "input: a PCA normal needs k >= d = {}, got {k}",
                            c.d
                        ));
                    }
                    if !(1..=InputFeatures::MAX_PCA_SCALES).contains(&scales) {
                        return bad(format!(
                            "input: PCA scales must be 1 to {}, got {scales}",
                            InputFeatures::MAX_PCA_SCALES
                        ));
                    }
                }
                (c.d, &c.frames, c.head)
            }
            ModelConfig::Dgcnn(c) => {
                if c.layers.is_empty() || c.k == 0 {
                    return bad("dgcnn needs at least one layer and k > 0".into());
                }
                (c.d, &c.frames, c.head)
            }
            ModelConfig::Attention(c) => {
                if c.layers == 0 || c.heads == 0 || c.k == 0 {
                    return bad("attention needs layers, heads and k > 0".into());
                }
                (c.d, &c.frames, c.head)
            }
        };
        if d < 2 {
            return bad(format!("d must be at least 2, got {d}"));
        }
        if fr.k == 0 || fr.cutoff.is_nan() || fr.cutoff <= 0.0 {
            return bad("frames: need k > 0 and cutoff > 0".into());
        }
        match head {
            HeadConfig::Segmentation { classes } | HeadConfig::Classification { classes }
                if classes == 0 =>
            {
                bad("the head needs at least one class".into())
            }
            _ => Ok(()),
        }
    }

    /// The dimension.
    pub fn d(&self) -> usize {
        match self {
            ModelConfig::Pointnet2(c) => c.d,
            ModelConfig::Dgcnn(c) => c.d,
            ModelConfig::Attention(c) => c.d,
        }
    }

    /// Features the data pipeline must compute from each whole cloud and pass as
    /// `Batch::features` (none for models that take caller-supplied `in_reps` features).
    pub fn input_features(&self) -> InputFeatures {
        match self {
            ModelConfig::Pointnet2(c) => c.input,
            _ => InputFeatures::None,
        }
    }

    /// The head.
    pub fn head(&self) -> HeadConfig {
        match self {
            ModelConfig::Pointnet2(c) => c.head,
            ModelConfig::Dgcnn(c) => c.head,
            ModelConfig::Attention(c) => c.head,
        }
    }

    /// The frame configuration.
    pub fn frames(&self) -> &FrameConfig {
        match self {
            ModelConfig::Pointnet2(c) => &c.frames,
            ModelConfig::Dgcnn(c) => &c.frames,
            ModelConfig::Attention(c) => &c.frames,
        }
    }

    /// The frame configuration (mutable, e.g. to swap in identity frames).
    pub fn frames_mut(&mut self) -> &mut FrameConfig {
        match self {
            ModelConfig::Pointnet2(c) => &mut c.frames,
            ModelConfig::Dgcnn(c) => &mut c.frames,
            ModelConfig::Attention(c) => &mut c.frames,
        }
    }
}
