//! Which frames a model predicts, as configuration: one serde enum for the builders, one struct
//! for their settings, and the one factory that turns them into a [`FrameBuilder`].
//!
//! The last three choices are the paper's controls: per-node random frames, one random frame
//! per shape (= data augmentation) and identity frames (= the plain, non-equivariant network).

use std::fmt;
use std::str::FromStr;

use candle_core::Result;
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::builder::FrameBuilder;
use crate::controls::{IdentityFrames, RandomFrames, RandomGlobalFrames};
use crate::learned::{LearnedFrames, LearnedFramesConfig};
use crate::nearest::NearestFrames;
use crate::pca::PcaFrames;

/// A frame builder, by the name configurations and the CLI use (`"random-global"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FrameChoice {
    /// The paper's learned frames ([`LearnedFrames`]).
    Learned,
    /// PCA of the neighbourhood with the equivariant sign rule ([`PcaFrames`]).
    Pca,
    /// Gram-Schmidt of the nearest neighbour vectors ([`NearestFrames`]).
    Nearest,
    /// Independent random O(d) frames per node, redrawn every pass (control).
    Random,
    /// One random O(d) frame per shape, redrawn every pass: data augmentation (control).
    RandomGlobal,
    /// Identity frames: the plain, non-equivariant network (control).
    Identity,
}

impl FrameChoice {
    /// Every choice, equivariant builders first.
    pub const ALL: [FrameChoice; 6] = [
        FrameChoice::Learned,
        FrameChoice::Pca,
        FrameChoice::Nearest,
        FrameChoice::Random,
        FrameChoice::RandomGlobal,
        FrameChoice::Identity,
    ];

    /// The name in configurations and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FrameChoice::Learned => "learned",
            FrameChoice::Pca => "pca",
            FrameChoice::Nearest => "nearest",
            FrameChoice::Random => "random",
            FrameChoice::RandomGlobal => "random-global",
            FrameChoice::Identity => "identity",
        }
    }
}

impl fmt::Display for FrameChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown frame name; the message lists the known ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFrames(pub String);

impl fmt::Display for UnknownFrames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known: Vec<&str> = FrameChoice::ALL.iter().map(|c| c.name()).collect();
        write!(
            f,
            "unknown frames {:?}; known frames: {}",
            self.0,
            known.join(", ")
        )
    }
}

impl std::error::Error for UnknownFrames {}

impl FromStr for FrameChoice {
    type Err = UnknownFrames;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        FrameChoice::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownFrames(s.to_string()))
    }
}

/// How frames are predicted at the input points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

impl FrameConfig {
    /// `kind` with 16 neighbours, cutoff 0.3 (unit-scale shapes of about 1k points), hidden 32
    /// and seed 0.
    pub fn new(kind: FrameChoice) -> Self {
        Self {
            kind,
            k: 16,
            cutoff: 0.3,
            hidden: 32,
            seed: 0,
        }
    }

    /// The configured builder in dimension `d`; learned frames keep their weights under `vb`.
    pub fn builder(&self, d: usize, vb: VarBuilder) -> Result<Box<dyn FrameBuilder>> {
        Ok(match self.kind {
            FrameChoice::Learned => {
                let mut lc = LearnedFramesConfig::new(d, self.cutoff);
                lc.hidden = self.hidden;
                Box::new(LearnedFrames::new(lc, vb)?)
            }
            FrameChoice::Pca => Box::new(PcaFrames::default()),
            FrameChoice::Nearest => Box::new(NearestFrames::default()),
            FrameChoice::Random => Box::new(RandomFrames::new(self.seed)),
            FrameChoice::RandomGlobal => Box::new(RandomGlobalFrames::new(self.seed)),
            FrameChoice::Identity => Box::new(IdentityFrames),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_str_and_serde() {
        for c in FrameChoice::ALL {
            assert_eq!(c.name().parse::<FrameChoice>(), Ok(c));
            let json = serde_json::to_string(&c).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", c.name()));
        }
        let err = "pcaa".parse::<FrameChoice>().err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("pcaa") && e.contains("random-global")));
    }

    #[test]
    fn the_factory_builds_the_named_builder() -> Result<()> {
        let vm = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, candle_core::DType::F64, &candle_core::Device::Cpu);
        for c in FrameChoice::ALL {
            let b = FrameConfig::new(c).builder(3, vb.pp(c.name()))?;
            assert_eq!(b.name(), c.name());
        }
        Ok(())
    }
}
