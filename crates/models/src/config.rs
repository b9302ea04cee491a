//! Model configurations: serde structs loadable with figment (defaults <- TOML file <- `TF_MODEL_`
//! environment variables), with named presets for the paper's rows.

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
pub use tf_frames::{InputFeatures, PcaOrientation};

/// Which frames a model predicts (method.md section 3; the last three are the paper's controls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FrameChoice {
    /// The paper's learned frames.
    Learned,
    /// PCA of the neighbourhood with the equivariant sign rule.
    Pca,
    /// Gram-Schmidt of the nearest neighbour vectors.
    Nearest,
    /// Independent random O(d) frames per node, redrawn every pass (control).
    Random,
    /// One random O(d) frame per shape, redrawn every pass: data augmentation (control).
    RandomGlobal,
    /// Identity frames: the plain, non-equivariant network (control).
    Identity,
}

/// Tensorial messages (features transported between frames) or scalar ones (no transport).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageChoice {
    /// `rho(R_i R_j^T)` transport.
    Tensorial,
    /// Features used in the sender's frame.
    Scalar,
}

/// What the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
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

/// How frames are predicted at the input points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameConfig {
    /// Builder.
    pub kind: FrameChoice,
    /// Neighbours (kNN) the frames are predicted from.
    pub k: usize,
    /// Envelope cutoff of learned frames.
    pub cutoff: f64,
    /// Hidden width of the learned-frame MLP.
    pub hidden: usize,
    /// Seed of the random controls.
    pub seed: u64,
}

/// One set abstraction level: FPS centres, radius neighbourhoods, PointNet conv, max.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
pub struct FeaturePropagationConfig {
    /// Coarse neighbours interpolated from.
    pub k: usize,
    /// Output rep.
    pub reps: String,
    /// Hidden width of the MLP.
    pub hidden: usize,
}

/// TF-PointNet++ (method.md section 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointNet2Config {
    /// Dimension `d`.
    pub d: usize,
    /// Frames.
    pub frames: FrameConfig,
    /// Tensorial or scalar messages.
    pub messages: MessageChoice,
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
pub struct DgcnnConfig {
    /// Dimension `d`.
    pub d: usize,
    /// Frames.
    pub frames: FrameConfig,
    /// Tensorial or scalar messages.
    pub messages: MessageChoice,
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
pub struct AttentionConfig {
    /// Dimension `d`.
    pub d: usize,
    /// Frames.
    pub frames: FrameConfig,
    /// Tensorial or scalar messages.
    pub messages: MessageChoice,
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

/// Names accepted by [`ModelConfig::preset`].
pub const PRESETS: &[&str] = &[
    "pointnet2-normals",
    "pointnet2-normals-refined",
    "pointnet2-normals-pca",
    "pointnet2-normals-pca-multiscale",
    "pointnet2-normals-pca-winding",
    "pointnet2-normals-pca-winding-coarse",
    "pointnet2-normals-pca-winding-confidence",
    "pointnet2-normals-pca-winding-offset",
    "pointnet2-normals-pca-visibility",
    "pointnet2-normals-pca-visibility-confident",
    "pointnet2-normals-pca-winding-visibility-score",
    "pointnet2-normals-scalar",
    "pointnet2-normals-random-frames",
    "pointnet2-normals-augmentation",
    "pointnet2-normals-plain",
    "pointnet2-segmentation",
    "pointnet2-classification",
    "dgcnn-normals",
    "dgcnn-classification",
    "attention-normals",
];

fn frames(kind: FrameChoice) -> FrameConfig {
    FrameConfig {
        kind,
        k: 16,
        cutoff: 0.3,
        hidden: 32,
        seed: 0,
    }
}

/// The default TF-PointNet++ for unit-scale shapes of ~1k points: two set abstraction levels.
fn pointnet2(d: usize, head: HeadConfig) -> PointNet2Config {
    PointNet2Config {
        d,
        frames: frames(FrameChoice::Learned),
        messages: MessageChoice::Tensorial,
        refine: false,
        in_reps: String::new(),
        input: InputFeatures::None,
        n_rbf: 8,
        sa: vec![
            SetAbstractionConfig {
                ratio: 0.25,
                radius: 0.2,
                max_neighbors: 24,
                reps: "16x0n+8x1n+2x2n".into(),
                hidden: 64,
            },
            SetAbstractionConfig {
                ratio: 0.25,
                radius: 0.4,
                max_neighbors: 24,
                reps: "32x0n+8x1n+2x2n".into(),
                hidden: 64,
            },
        ],
        global_reps: "64x0n+8x1n".into(),
        global_hidden: 64,
        fp: vec![
            FeaturePropagationConfig {
                k: 1,
                reps: "32x0n+8x1n+2x2n".into(),
                hidden: 64,
            },
            FeaturePropagationConfig {
                k: 3,
                reps: "32x0n+8x1n".into(),
                hidden: 64,
            },
            FeaturePropagationConfig {
                k: 3,
                reps: "16x0n+8x1n".into(),
                hidden: 64,
            },
        ],
        head,
    }
}

impl ModelConfig {
    /// A named preset in dimension `d` (the paper's rows are the `pointnet2-normals*` family).
    pub fn preset(name: &str, d: usize) -> Result<Self, ConfigError> {
        let normals = HeadConfig::Normals;
        let with = |f: &dyn Fn(&mut PointNet2Config)| {
            let mut c = pointnet2(d, normals);
            f(&mut c);
            ModelConfig::Pointnet2(c)
        };
        // PCA inputs at k = 8, 16 and 32, signed by `orient`, with the optional scalars
        // (confidence, offset, visibility score).
        let multiscale = |orient, confidence, offset, visibility| {
            with(&|c| {
                c.input = InputFeatures::PcaNormal {
                    k: 8,
                    scales: 3,
                    orient,
                    confidence,
                    offset,
                    visibility,
                }
            })
        };
        Ok(match name {
            "pointnet2-normals" => with(&|_| {}),
            "pointnet2-normals-refined" => with(&|c| c.refine = true),
            "pointnet2-normals-pca" => with(&|c| c.input = InputFeatures::pca(16)),
            "pointnet2-normals-pca-multiscale" => {
                multiscale(PcaOrientation::Centroid, false, false, false)
            }
            // The first PCA normal signed by the cloud's winding number (the bundled normal
            // estimator's second stage).
            "pointnet2-normals-pca-winding" => {
                multiscale(PcaOrientation::Winding, false, false, false)
            }
            // The same, signed coarse to fine (the bundled normal estimator's third stage).
            "pointnet2-normals-pca-winding-coarse" => {
                multiscale(PcaOrientation::WindingCoarse, false, false, false)
            }
            // The same, told how confidently the winding vote signed each point.
            "pointnet2-normals-pca-winding-confidence" => {
                multiscale(PcaOrientation::WindingCoarse, true, false, false)
            }
            // The same, told which side of each neighbourhood every point sits on.
            "pointnet2-normals-pca-winding-offset" => {
                multiscale(PcaOrientation::WindingCoarse, false, true, false)
            }
            // The same, signed where the two sides of the surface see out differently.
            "pointnet2-normals-pca-visibility" => {
                multiscale(PcaOrientation::Visibility, false, false, false)
            }
            // The same, but the rays overrule the winding sign only where they are confident
            // (the bundled normal estimator's input).
            "pointnet2-normals-pca-visibility-confident" => {
                multiscale(PcaOrientation::VisibilityConfident, false, false, false)
            }
            // Winding-signed, told what the rays say about each sign.
            "pointnet2-normals-pca-winding-visibility-score" => {
                multiscale(PcaOrientation::WindingCoarse, false, false, true)
            }
            "pointnet2-normals-scalar" => with(&|c| c.messages = MessageChoice::Scalar),
            "pointnet2-normals-random-frames" => with(&|c| c.frames.kind = FrameChoice::Random),
            "pointnet2-normals-augmentation" => with(&|c| {
                c.frames.kind = FrameChoice::RandomGlobal;
                c.messages = MessageChoice::Scalar;
            }),
            "pointnet2-normals-plain" => with(&|c| {
                c.frames.kind = FrameChoice::Identity;
                c.messages = MessageChoice::Scalar;
            }),
            "pointnet2-segmentation" => {
                ModelConfig::Pointnet2(pointnet2(d, HeadConfig::Segmentation { classes: 4 }))
            }
            "pointnet2-classification" => {
                ModelConfig::Pointnet2(pointnet2(d, HeadConfig::Classification { classes: 10 }))
            }
            "dgcnn-normals" | "dgcnn-classification" => ModelConfig::Dgcnn(DgcnnConfig {
                d,
                frames: frames(FrameChoice::Learned),
                messages: MessageChoice::Tensorial,
                in_reps: String::new(),
                k: 16,
                layers: vec![
                    "16x0n+8x1n+2x2n".into(),
                    "16x0n+8x1n+2x2n".into(),
                    "32x0n+8x1n".into(),
                ],
                hidden: 64,
                head: if name == "dgcnn-normals" {
                    normals
                } else {
                    HeadConfig::Classification { classes: 10 }
                },
            }),
            "attention-normals" => ModelConfig::Attention(AttentionConfig {
                d,
                frames: frames(FrameChoice::Learned),
                messages: MessageChoice::Tensorial,
                in_reps: String::new(),
                k: 16,
                reps: "16x0n+8x1n+2x2n".into(),
                layers: 2,
                heads: 4,
                n_rbf: 8,
                head: normals,
            }),
            _ => {
                return Err(ConfigError::UnknownPreset {
                    name: name.into(),
                    known: PRESETS.join(", "),
                })
            }
        })
    }

    /// `preset` <- TOML file (if any) <- `TF_MODEL_*` environment variables (nested keys with
    /// `__`, e.g. `TF_MODEL_FRAMES__KIND=pca`), then validated.
    pub fn load(preset: &str, d: usize, file: Option<&Path>) -> Result<Self, ConfigError> {
        let base = Self::preset(preset, d)?;
        let mut fig = Figment::from(Serialized::defaults(base));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        let cfg: ModelConfig = fig
            .merge(Env::prefixed("TF_MODEL_").split("__"))
            .extract()
            .map_err(|e| ConfigError::Figment(Box::new(e)))?;
        cfg.validate()?;
        Ok(cfg)
    }

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
