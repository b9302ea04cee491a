//! Samples of the benchmark: positions, velocities and charges at one saved frame, positions at
//! a later one, from our simulation or from the published generator's `.npy` files.

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use candle_core::{DType, Device, Tensor};
use tf_datasets::{read_published, ChargedNBody, Trajectory};
use tf_models::fully_connected;

/// The saved frame the inputs come from (the published protocol).
pub const INPUT_FRAME: usize = 30;
/// The saved frame whose positions are predicted (1,000 integration steps later).
pub const TARGET_FRAME: usize = 40;

/// Seeds of our simulated splits: separate streams, so no system appears in two splits.
const SPLIT_SEEDS: [u64; 3] = [0x5eed_0001, 0x5eed_0002, 0x5eed_0003];

/// Input/target pairs of one split, on the host, particles of a system consecutive.
#[derive(Debug, Clone, PartialEq)]
pub struct Samples {
    /// Dimension.
    pub d: usize,
    /// Particles per system.
    pub particles: usize,
    /// Positions at the input frame, `(systems * particles, d)` row-major.
    pub loc: Vec<f64>,
    /// Velocities at the input frame.
    pub vel: Vec<f64>,
    /// Charges, `(systems * particles,)`.
    pub charges: Vec<f64>,
    /// Positions at the target frame.
    pub target: Vec<f64>,
}

/// One batch as tensors.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `(N, d)`.
    pub loc: Tensor,
    /// `(N, d)`.
    pub vel: Tensor,
    /// `(N, 1)`.
    pub charges: Tensor,
    /// `(N, d)`.
    pub target: Tensor,
    /// Fully connected edges within each system.
    pub edges: Tensor,
    /// System id per particle.
    pub batch: Tensor,
}

impl Samples {
    /// Frame [`INPUT_FRAME`] -> frame [`TARGET_FRAME`] of every trajectory; all must agree in
    /// particles and dimension, hold enough frames and be finite.
    pub fn from_trajectories(trajectories: &[Trajectory]) -> Result<Self> {
        let Some(first) = trajectories.first() else {
            bail!("no systems");
        };
        let (d, particles) = (first.d, first.particles);
        ensure!(
            d >= 2 && particles >= 2,
            "systems need d >= 2 and at least 2 particles"
        );
        let mut s = Self {
            d,
            particles,
            loc: Vec::new(),
            vel: Vec::new(),
            charges: Vec::new(),
            target: Vec::new(),
        };
        for (k, t) in trajectories.iter().enumerate() {
            ensure!(
                t.d == d && t.particles == particles,
                "system {k} has {} particles in d = {}, the first has {particles} in d = {d}",
                t.particles,
                t.d
            );
            ensure!(
                t.frames() > TARGET_FRAME,
                "system {k} has {} saved frames; the task needs frame {TARGET_FRAME}",
                t.frames()
            );
            let (x, v, y) = (
                t.loc_at(INPUT_FRAME),
                t.vel_at(INPUT_FRAME),
                t.loc_at(TARGET_FRAME),
            );
            ensure!(
                x.iter()
                    .chain(v)
                    .chain(y)
                    .chain(&t.charges)
                    .all(|c| c.is_finite()),
                "system {k} has a non-finite position, velocity or charge"
            );
            s.loc.extend_from_slice(x);
            s.vel.extend_from_slice(v);
            s.target.extend_from_slice(y);
            s.charges.extend_from_slice(&t.charges);
        }
        Ok(s)
    }

    /// Number of systems.
    pub fn len(&self) -> usize {
        self.charges.len() / self.particles
    }

    /// Whether there are no systems.
    pub fn is_empty(&self) -> bool {
        self.charges.is_empty()
    }

    /// The first `n` systems.
    pub fn take(&self, n: usize) -> Self {
        let n = n.min(self.len());
        let (w, p) = (self.particles * self.d, self.particles);
        Self {
            d: self.d,
            particles: self.particles,
            loc: self.loc[..n * w].to_vec(),
            vel: self.vel[..n * w].to_vec(),
            charges: self.charges[..n * p].to_vec(),
            target: self.target[..n * w].to_vec(),
        }
    }

    /// The systems `systems` as one batch of tensors of `dtype`.
    pub fn batch(&self, systems: &[usize], dtype: DType, device: &Device) -> Result<Batch> {
        let (p, d) = (self.particles, self.d);
        let w = p * d;
        let n = systems.len() * p;
        let gather = |src: &[f64], width: usize| -> Vec<f64> {
            systems
                .iter()
                .flat_map(|&s| src[s * width..(s + 1) * width].iter().copied())
                .collect()
        };
        let t = |v: Vec<f64>, c: usize| -> Result<Tensor> {
            Ok(Tensor::from_vec(v, (n, c), device)?.to_dtype(dtype)?)
        };
        let owner: Vec<u32> = (0..n as u32).map(|i| i / p as u32).collect();
        Ok(Batch {
            loc: t(gather(&self.loc, w), d)?,
            vel: t(gather(&self.vel, w), d)?,
            charges: t(gather(&self.charges, p), 1)?,
            target: t(gather(&self.target, w), d)?,
            edges: fully_connected(systems.len(), p, device)?,
            batch: Tensor::from_vec(owner, n, device)?,
        })
    }

    /// The least-squares constant-velocity fit `x + tau v` (the "linear" floor): `tau` and
    /// the mean squared error of the fit on these samples.
    pub fn linear_fit(&self) -> (f64, f64) {
        let (mut num, mut den) = (0.0, 0.0);
        for ((x, v), y) in self.loc.iter().zip(&self.vel).zip(&self.target) {
            num += v * (y - x);
            den += v * v;
        }
        let tau = if den > 0.0 { num / den } else { 0.0 };
        (tau, self.linear_mse(tau))
    }

    /// Mean squared error of `x + tau v` against the targets.
    pub fn linear_mse(&self, tau: f64) -> f64 {
        let n = self.loc.len().max(1) as f64;
        self.loc
            .iter()
            .zip(&self.vel)
            .zip(&self.target)
            .map(|((x, v), y)| (x + tau * v - y).powi(2))
            .sum::<f64>()
            / n
    }
}

/// Train, validation and test samples.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training systems.
    pub train: Samples,
    /// Validation systems (model selection only).
    pub valid: Samples,
    /// Test systems.
    pub test: Samples,
    /// Where they came from, for the tables.
    pub source: String,
    /// A short stable name of the data (part of a run's identity).
    pub id: String,
}

/// Our simulation with the published settings in dimension `d`: `counts` systems per split,
/// each split from its own seed.
pub fn simulated(d: usize, counts: [usize; 3]) -> Result<Splits> {
    let sim = ChargedNBody {
        d,
        ..ChargedNBody::default()
    };
    let [train, valid, test] = [0, 1, 2].map(|k| sim.dataset(counts[k], SPLIT_SEEDS[k]));
    Ok(Splits {
        train: Samples::from_trajectories(&train)?,
        valid: Samples::from_trajectories(&valid)?,
        test: Samples::from_trajectories(&test)?,
        source: format!(
            "our simulation of the published protocol (d = {d}, 5 particles, dt 0.001, frame \
             {INPUT_FRAME} -> {TARGET_FRAME}), {} / {} / {} systems (train / validation / test, \
             separate seeds)",
            counts[0], counts[1], counts[2]
        ),
        id: format!(
            "simulated-d{d}-{}-{}-{}-v1",
            counts[0], counts[1], counts[2]
        ),
    })
}

/// The published generator's files in `folder` (`train`, `valid`, `test` splits).
pub fn published(folder: &Path) -> Result<Splits> {
    let read = |split: &str| -> Result<Samples> {
        let t = read_published(folder, split)
            .with_context(|| format!("reading the {split} split of {}", folder.display()))?;
        Samples::from_trajectories(&t)
            .with_context(|| format!("the {split} split of {}", folder.display()))
    };
    let (train, valid, test) = (read("train")?, read("valid")?, read("test")?);
    let source = format!(
        "the published generator's files in {} ({} / {} / {} systems)",
        folder.display(),
        train.len(),
        valid.len(),
        test.len()
    );
    // The files' content identifies them: a hash of the first systems' numbers.
    let h = train
        .loc
        .iter()
        .chain(&valid.loc)
        .chain(&test.loc)
        .take(4096)
        .fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
            (h ^ v.to_bits()).wrapping_mul(0x100_0000_01b3)
        });
    let id = format!(
        "published-{}-{}-{}-{h:016x}",
        train.len(),
        valid.len(),
        test.len()
    );
    Ok(Splits {
        train,
        valid,
        test,
        source,
        id,
    })
}
