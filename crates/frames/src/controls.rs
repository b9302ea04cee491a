//! The paper's control frames. None is equivariant; the property tests check that the
//! equivariance test detects this.
//!
//! - [`IdentityFrames`]: `R_i = I`, the plain network in global coordinates.
//! - [`RandomFrames`]: an independent Haar-random O(d) frame per node, redrawn every call.
//! - [`RandomGlobalFrames`]: one Haar-random O(d) frame per graph, redrawn every call: exactly
//!   data augmentation with random rotations and reflections.
//!
//! Random draws come from a seeded ChaCha RNG owned by the builder, so runs are reproducible.

use std::sync::Mutex;

use candle_core::{bail, Result, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tf_graphs::segments;
use tf_group::orthogonal::{haar_orthogonal, identity};

use crate::builder::{FrameBuilder, FrameInput};
use crate::geometry::check_positions;
use crate::local_frames::LocalFrames;

/// `R_i = I` for every node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdentityFrames;

impl FrameBuilder for IdentityFrames {
    fn build(&self, input: &FrameInput) -> Result<LocalFrames> {
        let (_, n, d) = check_positions(input.pos)?;
        LocalFrames::new(identity(n, d, input.pos.dtype(), input.pos.device())?, 0)
    }
    fn needs_graph(&self) -> bool {
        false
    }

    fn is_equivariant(&self) -> bool {
        false
    }
    fn name(&self) -> &'static str {
        "identity"
    }
}

/// A fresh Haar-random O(d) frame for every node at every call.
#[derive(Debug)]
pub struct RandomFrames {
    rng: Mutex<ChaCha8Rng>,
}

impl RandomFrames {
    /// Seeded control.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }
}

fn lock(rng: &Mutex<ChaCha8Rng>) -> Result<std::sync::MutexGuard<'_, ChaCha8Rng>> {
    match rng.lock() {
        Ok(g) => Ok(g),
        Err(_) => bail!("frame RNG poisoned by a panic in another thread"),
    }
}

impl FrameBuilder for RandomFrames {
    fn build(&self, input: &FrameInput) -> Result<LocalFrames> {
        let (_, n, d) = check_positions(input.pos)?;
        let mut rng = lock(&self.rng)?;
        let r = haar_orthogonal(
            n,
            d,
            false,
            &mut *rng,
            input.pos.dtype(),
            input.pos.device(),
        )?;
        LocalFrames::new(r, 0)
    }
    fn needs_graph(&self) -> bool {
        false
    }

    fn is_equivariant(&self) -> bool {
        false
    }
    fn name(&self) -> &'static str {
        "random"
    }
    fn reseed(&self, seed: u64) -> Result<()> {
        *lock(&self.rng)? = ChaCha8Rng::seed_from_u64(seed);
        Ok(())
    }
}

/// One fresh Haar-random O(d) frame per graph of the batch at every call.
#[derive(Debug)]
pub struct RandomGlobalFrames {
    rng: Mutex<ChaCha8Rng>,
}

impl RandomGlobalFrames {
    /// Seeded control.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }
}

impl FrameBuilder for RandomGlobalFrames {
    fn build(&self, input: &FrameInput) -> Result<LocalFrames> {
        let (_, n, d) = check_positions(input.pos)?;
        let segs = segments(input.batch, n)?;
        let mut rng = lock(&self.rng)?;
        let per_graph = haar_orthogonal(
            segs.len(),
            d,
            false,
            &mut *rng,
            input.pos.dtype(),
            input.pos.device(),
        )?;
        let owner: Vec<u32> = segs
            .iter()
            .enumerate()
            .flat_map(|(g, r)| std::iter::repeat_n(g as u32, r.len()))
            .collect();
        let owner = Tensor::from_vec(owner, n, input.pos.device())?;
        LocalFrames::new(per_graph.index_select(&owner, 0)?, 0)
    }
    fn needs_graph(&self) -> bool {
        false
    }

    fn is_equivariant(&self) -> bool {
        false
    }
    fn name(&self) -> &'static str {
        "random-global"
    }
    fn reseed(&self, seed: u64) -> Result<()> {
        *lock(&self.rng)? = ChaCha8Rng::seed_from_u64(seed);
        Ok(())
    }
}
