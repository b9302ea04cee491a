//! The charged N-body benchmark of equivariant message passing (Kipf et al. 2018; the protocol of
//! Satorras et al. 2021, "E(n) Equivariant Graph Neural Networks"), simulated here in any
//! dimension, and the published generator's `.npy` files read back.
//!
//! Particles of unit mass carry charges `+1` or `-1` (probability 1/2 each). The force on `i` is
//! `sum_j q_i q_j (x_i - x_j) / |x_i - x_j|^3` (like charges repel), each component clipped to
//! `[-max_force, max_force]`. Starting from positions `~ N(0, loc_std^2)` per coordinate and
//! velocities of random direction and norm `vel_norm`, the integrator takes one velocity half
//! step `v += dt F`, then for `i = 1 .. steps - 1`: `x += dt v`, save `(x, v)` when `i` is a
//! multiple of `save_every`, recompute `F`, `v += dt F`. With the published settings (5
//! particles, `dt` = 0.001, 5,000 steps, every 100th saved) a trajectory holds 49 frames; a
//! sample maps frame 30 (positions, velocities, charges) to the positions at frame 40.
//!
//! # Layout
//! A [`Trajectory`] stores frames row-major as `(frames, particles, d)`. The published files
//! store `(sims, frames, d, particles)` for positions and velocities and `(sims, particles, 1)`
//! for charges; [`read_published`] transposes them.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::DataError;

/// The simulation's settings; [`Default`] is the published protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct ChargedNBody {
    /// Particles per system.
    pub particles: usize,
    /// Dimension.
    pub d: usize,
    /// Integration steps (the last saved frame is the last multiple of `save_every` below it).
    pub steps: usize,
    /// Every this many steps a frame is saved.
    pub save_every: usize,
    /// Time step.
    pub dt: f64,
    /// Clip of each force component.
    pub max_force: f64,
    /// Standard deviation of the initial positions.
    pub loc_std: f64,
    /// Norm of the initial velocities.
    pub vel_norm: f64,
}

impl Default for ChargedNBody {
    fn default() -> Self {
        Self {
            particles: 5,
            d: 3,
            steps: 5000,
            save_every: 100,
            dt: 0.001,
            max_force: 100.0,
            loc_std: 1.0,
            vel_norm: 0.5,
        }
    }
}

/// One simulated (or read) system.
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectory {
    /// Particles.
    pub particles: usize,
    /// Dimension.
    pub d: usize,
    /// Positions, `(frames, particles, d)` row-major.
    pub loc: Vec<f64>,
    /// Velocities, same layout.
    pub vel: Vec<f64>,
    /// Charge per particle (`+1` or `-1`).
    pub charges: Vec<f64>,
}

impl Trajectory {
    /// Saved frames.
    pub fn frames(&self) -> usize {
        self.loc.len() / (self.particles * self.d).max(1)
    }

    /// Positions of frame `t`, `particles * d`.
    pub fn loc_at(&self, t: usize) -> &[f64] {
        let w = self.particles * self.d;
        &self.loc[t * w..(t + 1) * w]
    }

    /// Velocities of frame `t`.
    pub fn vel_at(&self, t: usize) -> &[f64] {
        let w = self.particles * self.d;
        &self.vel[t * w..(t + 1) * w]
    }

    /// Kinetic plus electrostatic potential energy of frame `t` (unit masses; the potential of
    /// a pair is `q_i q_j / r`).
    pub fn energy(&self, t: usize) -> f64 {
        let (x, v, d) = (self.loc_at(t), self.vel_at(t), self.d);
        let kinetic = 0.5 * v.iter().map(|c| c * c).sum::<f64>();
        let mut potential = 0.0;
        for i in 0..self.particles {
            for j in i + 1..self.particles {
                let r = (0..d)
                    .map(|a| (x[i * d + a] - x[j * d + a]).powi(2))
                    .sum::<f64>()
                    .sqrt();
                potential += self.charges[i] * self.charges[j] / r;
            }
        }
        kinetic + potential
    }
}

impl ChargedNBody {
    /// Clipped forces on every particle at positions `x` (`particles * d`).
    pub fn forces(&self, x: &[f64], charges: &[f64]) -> Vec<f64> {
        let (n, d) = (self.particles, self.d);
        let mut f = vec![0.0; n * d];
        for i in 0..n {
            for j in 0..n {
                if i == j {
                    continue;
                }
                let diff: Vec<f64> = (0..d).map(|a| x[i * d + a] - x[j * d + a]).collect();
                let r3 = diff.iter().map(|c| c * c).sum::<f64>().powf(1.5);
                for a in 0..d {
                    f[i * d + a] += charges[i] * charges[j] * diff[a] / r3;
                }
            }
        }
        for c in &mut f {
            // A NaN (two particles at one point, which has probability zero) would poison the
            // whole trajectory; it is taken as no force.
            *c = if c.is_nan() {
                0.0
            } else {
                c.clamp(-self.max_force, self.max_force)
            };
        }
        f
    }

    /// Integrates from the given state (see the module docs) and returns the saved frames.
    pub fn integrate(&self, loc: Vec<f64>, vel: Vec<f64>, charges: Vec<f64>) -> Trajectory {
        let (mut x, mut v) = (loc, vel);
        let f = self.forces(&x, &charges);
        v.iter_mut().zip(&f).for_each(|(v, f)| *v += self.dt * f);
        let (mut saved_x, mut saved_v) = (Vec::new(), Vec::new());
        for i in 1..self.steps {
            x.iter_mut().zip(&v).for_each(|(x, v)| *x += self.dt * v);
            if i % self.save_every == 0 {
                saved_x.extend_from_slice(&x);
                saved_v.extend_from_slice(&v);
            }
            let f = self.forces(&x, &charges);
            v.iter_mut().zip(&f).for_each(|(v, f)| *v += self.dt * f);
        }
        Trajectory {
            particles: self.particles,
            d: self.d,
            loc: saved_x,
            vel: saved_v,
            charges,
        }
    }

    /// One system with random charges, positions and velocities drawn from `rng`.
    pub fn simulate(&self, rng: &mut impl Rng) -> Trajectory {
        let (n, d) = (self.particles, self.d);
        let charges: Vec<f64> = (0..n)
            .map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 })
            .collect();
        let loc: Vec<f64> = (0..n * d)
            .map(|_| self.loc_std * Distribution::<f64>::sample(&StandardNormal, rng))
            .collect();
        let mut vel: Vec<f64> = (0..n * d).map(|_| StandardNormal.sample(rng)).collect();
        for p in vel.chunks_mut(d) {
            let norm = p.iter().map(|c| c * c).sum::<f64>().sqrt().max(1e-12);
            p.iter_mut().for_each(|c| *c *= self.vel_norm / norm);
        }
        self.integrate(loc, vel, charges)
    }

    /// `count` systems from `seed` (system `k` from its own stream, so sets of different sizes
    /// share their first systems).
    pub fn dataset(&self, count: usize, seed: u64) -> Vec<Trajectory> {
        (0..count)
            .map(|k| {
                let mut rng = ChaCha8Rng::seed_from_u64(
                    seed ^ (k as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                );
                self.simulate(&mut rng)
            })
            .collect()
    }
}

/// The published generator's file name for `kind` (`loc`, `vel` or `charges`) and `split`
/// (`train`, `valid` or `test`).
pub fn published_name(kind: &str, split: &str) -> String {
    format!("{kind}_{split}_charged5_initvel1small.npy")
}

/// Reads the published generator's `loc_`, `vel_` and `charges_` arrays of `split` from
/// `folder`: positions and velocities `(sims, frames, d, particles)`, charges
/// `(sims, particles, 1)`, float32 or float64.
pub fn read_published(folder: &Path, split: &str) -> Result<Vec<Trajectory>, DataError> {
    let loc = read_array(&folder.join(published_name("loc", split)), 4)?;
    let vel = read_array(&folder.join(published_name("vel", split)), 4)?;
    let charges = read_array(&folder.join(published_name("charges", split)), 3)?;
    let (sims, frames, d, n) = (loc.1[0], loc.1[1], loc.1[2], loc.1[3]);
    if vel.1 != loc.1 {
        return Err(DataError::layout(
            folder,
            format!(
                "velocities {:?} and positions {:?} differ in shape",
                vel.1, loc.1
            ),
        ));
    }
    if charges.1 != [sims, n, 1] {
        return Err(DataError::layout(
            folder,
            format!(
                "charges have shape {:?}, expected [{sims}, {n}, 1]",
                charges.1
            ),
        ));
    }
    // (sims, frames, d, n) -> per system (frames, n, d).
    let transpose = |a: &[f64], s: usize| -> Vec<f64> {
        let mut out = vec![0.0; frames * n * d];
        for t in 0..frames {
            for a_ in 0..d {
                for p in 0..n {
                    out[(t * n + p) * d + a_] = a[((s * frames + t) * d + a_) * n + p];
                }
            }
        }
        out
    };
    Ok((0..sims)
        .map(|s| Trajectory {
            particles: n,
            d,
            loc: transpose(&loc.0, s),
            vel: transpose(&vel.0, s),
            charges: charges.0[s * n..(s + 1) * n].to_vec(),
        })
        .collect())
}

/// A float `.npy` array of `rank` dimensions (see [`crate::npy::read_npy`]).
fn read_array(path: &Path, rank: usize) -> Result<(Vec<f64>, Vec<usize>), DataError> {
    let (values, shape) = crate::npy::read_npy(path)?;
    if shape.len() != rank {
        return Err(DataError::layout(
            path,
            format!("expected {rank} dimensions, got shape {shape:?}"),
        ));
    }
    Ok((values, shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_charges_one_step_by_hand() {
        // +1 at the origin, -1 at (2, 0): attraction of 1/4 along x on each.
        let sim = ChargedNBody {
            particles: 2,
            d: 2,
            steps: 3,
            save_every: 1,
            dt: 0.1,
            ..Default::default()
        };
        let f = sim.forces(&[0.0, 0.0, 2.0, 0.0], &[1.0, -1.0]);
        assert_eq!(f, vec![0.25, 0.0, -0.25, 0.0]);
        let t = sim.integrate(vec![0.0, 0.0, 2.0, 0.0], vec![0.0; 4], vec![1.0, -1.0]);
        assert_eq!(t.frames(), 2);
        // v = dt F = 0.025, then x = dt v = 0.0025 (saved with that v).
        let x = t.loc_at(0);
        assert!((x[0] - 0.0025).abs() < 1e-15 && (x[2] - 1.9975).abs() < 1e-15);
        assert!((t.vel_at(0)[0] - 0.025).abs() < 1e-15);
        // The second step: F at distance 1.995, v += dt F, x += dt v.
        let f2 = 1.0 / 1.995f64.powi(2);
        let v2 = 0.025 + 0.1 * f2;
        assert!((t.vel_at(1)[0] - v2).abs() < 1e-12);
        assert!((t.loc_at(1)[0] - (0.0025 + 0.1 * v2)).abs() < 1e-12);
    }

    #[test]
    fn forces_are_clipped_per_component() {
        let sim = ChargedNBody {
            particles: 2,
            d: 3,
            ..Default::default()
        };
        let f = sim.forces(&[0.0, 0.0, 0.0, 1e-3, 0.0, 0.0], &[1.0, 1.0]);
        assert_eq!(f[0], -100.0);
        assert_eq!(f[3], 100.0);
    }

    #[test]
    fn the_published_protocol_saves_49_frames_and_energy_stays_bounded() {
        let sim = ChargedNBody::default();
        let data = sim.dataset(4, 7);
        for t in &data {
            assert_eq!(t.frames(), 49);
            assert!(t.charges.iter().all(|&q| q == 1.0 || q == -1.0));
            assert!(t.loc.iter().chain(&t.vel).all(|v| v.is_finite()));
            // Opposite charges may pass close, where the clipped forces do not conserve energy;
            // it still stays bounded.
            assert!((0..49).all(|k| t.energy(k).abs() < 50.0));
        }
        // Like charges never meet: then the integrator conserves energy closely.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let start = sim.simulate(&mut rng);
        let repelling = sim.integrate(
            start.loc_at(0).to_vec(),
            start.vel_at(0).to_vec(),
            vec![1.0; sim.particles],
        );
        let e0 = repelling.energy(0);
        let drift = (0..49)
            .map(|k| (repelling.energy(k) - e0).abs())
            .fold(0.0, f64::max);
        assert!(drift < 1e-2 * e0.abs(), "energy drift {drift} of {e0}");
        // Deterministic from the seed, and systems differ.
        assert_eq!(sim.dataset(2, 7), data[..2].to_vec());
        assert_ne!(data[0], data[1]);
    }
}
