//! Named model configurations: the one table of presets that the CLI, the tests and the docs
//! read, and the figment loader that starts from a preset.
//!
//! A preset is a model the paper's tables or the bundled tools use; variations of it (the
//! bundled normal estimator's input features, a run's learning rate) live in `configs/*.toml`
//! files merged on top of a preset by [`ModelConfig::load`].

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use tf_frames::{FrameChoice, FrameConfig};
use tf_mp::Messages;
use tf_normals::InputFeatures;

use crate::config::{
    AttentionConfig, ConfigError, DgcnnConfig, FeaturePropagationConfig, HeadConfig, ModelConfig,
    PointNet2Config, SetAbstractionConfig,
};

/// One named configuration.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// The name `--preset` and [`ModelConfig::preset`] take.
    pub name: &'static str,
    /// What it is, in a line.
    pub summary: &'static str,
    build: fn(usize) -> ModelConfig,
}

impl Preset {
    /// The configuration in dimension `d`.
    pub fn config(&self, d: usize) -> ModelConfig {
        (self.build)(d)
    }
}

/// Every preset, the paper's normal-regression rows first.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "pointnet2-normals",
        summary: "TF-PointNet++ normals: learned frames, tensorial messages (the paper's method)",
        build: |d| pointnet2_normals(d, |_| {}),
    },
    Preset {
        name: "pointnet2-normals-refined",
        summary: "the same, with the frames refined after the first set abstraction",
        build: |d| pointnet2_normals(d, |c| c.refine = true),
    },
    Preset {
        name: "pointnet2-normals-pca",
        summary: "the same, refining each point's PCA normal (k = 16) given as an input feature",
        build: |d| pointnet2_normals(d, |c| c.input = InputFeatures::pca(16)),
    },
    Preset {
        name: "pointnet2-normals-ssg",
        summary: "the paper-sized trunk: PointNet++ SSG widths (about 1.4M parameters), learned frames, tensorial messages",
        build: |d| ModelConfig::Pointnet2(pointnet2_ssg(d, HeadConfig::Normals)),
    },
    Preset {
        name: "pointnet2-normals-scalar",
        summary: "learned frames, scalar messages (no transport; the local-canonicalisation prior)",
        build: |d| pointnet2_normals(d, |c| c.messages = Messages::Scalar),
    },
    Preset {
        name: "pointnet2-normals-random-frames",
        summary: "random frames per node, tensorial messages (control)",
        build: |d| pointnet2_normals(d, |c| c.frames.kind = FrameChoice::Random),
    },
    Preset {
        name: "pointnet2-normals-augmentation",
        summary: "one random frame per shape, scalar messages: data augmentation (control)",
        build: |d| {
            pointnet2_normals(d, |c| {
                c.frames.kind = FrameChoice::RandomGlobal;
                c.messages = Messages::Scalar;
            })
        },
    },
    Preset {
        name: "pointnet2-normals-plain",
        summary: "identity frames, scalar messages: plain PointNet++ (non-equivariant baseline)",
        build: |d| {
            pointnet2_normals(d, |c| {
                c.frames.kind = FrameChoice::Identity;
                c.messages = Messages::Scalar;
            })
        },
    },
    Preset {
        name: "pointnet2-segmentation",
        summary: "TF-PointNet++ part segmentation (4 parts)",
        build: |d| ModelConfig::Pointnet2(pointnet2(d, HeadConfig::Segmentation { classes: 4 })),
    },
    Preset {
        name: "pointnet2-classification",
        summary: "TF-PointNet++ shape classification (10 classes)",
        build: |d| ModelConfig::Pointnet2(pointnet2(d, HeadConfig::Classification { classes: 10 })),
    },
    Preset {
        name: "dgcnn-normals",
        summary: "TF-DGCNN normals: three EdgeConv layers on a kNN graph",
        build: |d| dgcnn(d, HeadConfig::Normals),
    },
    Preset {
        name: "dgcnn-classification",
        summary: "TF-DGCNN shape classification (10 classes)",
        build: |d| dgcnn(d, HeadConfig::Classification { classes: 10 }),
    },
    Preset {
        name: "attention-normals",
        summary: "a LoCaFormer-style attention model for normals",
        build: |d| {
            ModelConfig::Attention(AttentionConfig {
                d,
                frames: FrameConfig::new(FrameChoice::Learned),
                messages: Messages::Tensorial,
                in_reps: String::new(),
                k: 16,
                reps: "16x0n+8x1n+2x2n".into(),
                layers: 2,
                heads: 4,
                n_rbf: 8,
                head: HeadConfig::Normals,
            })
        },
    },
];

/// The preset's names, comma-separated (for messages and help).
pub fn preset_names() -> String {
    PRESETS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The default TF-PointNet++ for unit-scale shapes of ~1k points: two set abstraction levels.
fn pointnet2(d: usize, head: HeadConfig) -> PointNet2Config {
    let sa = |radius: f64, reps: &str| SetAbstractionConfig {
        ratio: 0.25,
        radius,
        max_neighbors: 24,
        reps: reps.into(),
        hidden: 64,
    };
    let fp = |k: usize, reps: &str| FeaturePropagationConfig {
        k,
        reps: reps.into(),
        hidden: 64,
    };
    PointNet2Config {
        d,
        frames: FrameConfig::new(FrameChoice::Learned),
        messages: Messages::Tensorial,
        refine: false,
        in_reps: String::new(),
        input: InputFeatures::None,
        n_rbf: 8,
        sa: vec![sa(0.2, "16x0n+8x1n+2x2n"), sa(0.4, "32x0n+8x1n+2x2n")],
        global_reps: "64x0n+8x1n".into(),
        global_hidden: 64,
        fp: vec![
            fp(1, "32x0n+8x1n+2x2n"),
            fp(3, "32x0n+8x1n"),
            fp(3, "16x0n+8x1n"),
        ],
        head,
    }
}

/// TF-PointNet++ at the widths of PointNet++ SSG (Qi et al. 2017: 512 and 128 centres with
/// MLPs up to 128 and 256 channels, a wide global layer, feature propagation down to 128
/// channels), so the frame network's share of the parameters compares with the paper's.
fn pointnet2_ssg(d: usize, head: HeadConfig) -> PointNet2Config {
    let mut c = pointnet2(d, head);
    c.sa = vec![
        SetAbstractionConfig {
            ratio: 0.5,
            radius: 0.2,
            max_neighbors: 32,
            reps: "64x0n+16x1n+4x2n".into(),
            hidden: 128,
        },
        SetAbstractionConfig {
            ratio: 0.25,
            radius: 0.4,
            max_neighbors: 64,
            reps: "128x0n+32x1n+8x2n".into(),
            hidden: 256,
        },
    ];
    c.global_reps = "512x0n+64x1n".into();
    c.global_hidden = 768;
    let fp = |k: usize, reps: &str, hidden: usize| FeaturePropagationConfig {
        k,
        reps: reps.into(),
        hidden,
    };
    c.fp = vec![
        fp(1, "128x0n+32x1n+8x2n", 256),
        fp(3, "64x0n+16x1n+4x2n", 256),
        fp(3, "64x0n+16x1n", 128),
    ];
    c
}

/// The normals TF-PointNet++ with one change.
fn pointnet2_normals(d: usize, change: fn(&mut PointNet2Config)) -> ModelConfig {
    let mut c = pointnet2(d, HeadConfig::Normals);
    change(&mut c);
    ModelConfig::Pointnet2(c)
}

fn dgcnn(d: usize, head: HeadConfig) -> ModelConfig {
    ModelConfig::Dgcnn(DgcnnConfig {
        d,
        frames: FrameConfig::new(FrameChoice::Learned),
        messages: Messages::Tensorial,
        in_reps: String::new(),
        k: 16,
        layers: vec![
            "16x0n+8x1n+2x2n".into(),
            "16x0n+8x1n+2x2n".into(),
            "32x0n+8x1n".into(),
        ],
        hidden: 64,
        head,
    })
}

impl ModelConfig {
    /// A named preset in dimension `d` (see [`PRESETS`]).
    pub fn preset(name: &str, d: usize) -> Result<Self, ConfigError> {
        PRESETS
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.config(d))
            .ok_or_else(|| ConfigError::UnknownPreset {
                name: name.into(),
                known: preset_names(),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_preset_validates() {
        for (i, p) in PRESETS.iter().enumerate() {
            assert!(PRESETS[..i].iter().all(|q| q.name != p.name), "{}", p.name);
            for d in [2, 3, 4] {
                let c = ModelConfig::preset(p.name, d).unwrap_or_else(|e| panic!("{e}"));
                assert!(c.validate().is_ok(), "{} in d = {d}", p.name);
                assert_eq!(c.d(), d);
            }
        }
        let err = ModelConfig::preset("pointnet2-normal", 3)
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("attention-normals")));
    }
}
