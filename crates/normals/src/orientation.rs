//! Orientation post-processes for normal fields: neighbour consensus, and repair by the
//! generalised winding number of the point cloud.
//!
//! [`orientation_consensus`] flips normals that disagree with their surface neighbours.
//! [`orient_by_winding`]: a direction field (PCA's, or a model's) leaves each normal's sign to a guess. The oriented
//! points themselves define a field: the winding number
//! `w(q) = sum_j a_j (x_j - q) . n_j / (omega_d |x_j - q|^d)` (Barill et al. 2018), which is 1
//! inside a closed, outward-oriented surface and 0 outside. Take away the points within `rho`
//! of `x_i` and the rest of the surface still knows where the inside is: on the axis through
//! the hole the field falls from inside to outside with slope `-1 / (2 rho)` (the solid angle of
//! the missing disc), smoothly, whatever `n_i` is. So `n_i` is outward exactly when
//! `grad w_rest(x_i) . n_i < 0`; a point whose normal disagrees is flipped. Every point decides
//! from the current signs of the others, all at once, for a few rounds.
//!
//! The votes weigh `1 / r^d` by distance, so the surface just outside the hole speaks loudest:
//! a wrongly oriented patch up to about `2 rho` across (isolated errors, small islands) is
//! outvoted and repaired, while a large consistently wrong region (a whole component inside
//! out) is its own majority and stays. This is a repair for a mostly right orientation (the
//! model's), not an orientation from scratch. Both sides of a thin sheet vote with equal
//! weight and opposite signs; [`WindingOrientation::margin`] makes the vote abstain there.
//!
//! Only distances and dot products enter, so the result commutes with rotations, reflections,
//! translations and scaling. Directions never change, so unoriented accuracy is untouched.
//! Cost: `n` queries times at most [`WindingOrientation::max_sources`] sources in the first
//! round, and times the sources that flipped in each later one (the vote changes only by
//! their terms); the per-source loop runs in blocks of [`LANES`] with a partial sum per lane,
//! so it vectorises.
//!
//! # Shapes
//! `points (n * d)`, `normals (n * d)` (unit or zero rows), flat row-major.

use candle_core::{bail, DType, Device, Result, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;

/// Settings of [`orient_by_winding`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindingOrientation {
    /// Rounds of simultaneous sign updates (stops early when nothing flips).
    pub rounds: usize,
    /// At most this many points carry the field (a fixed-seed subset of the indices, so the
    /// choice does not depend on the pose); every point is a query.
    pub max_sources: usize,
    /// Neighbours whose distance sets each source's area weight and the spacing.
    pub k: usize,
    /// Radius of the hole around each query, in median spacings (distance to the `k`-th
    /// neighbour among the sources); the hole's rim is smoothed over the next `rho`.
    pub hole: f64,
    /// A normal is flipped only when the sources' votes against it outweigh those for it by
    /// this fraction of all votes (0: any majority). Both sides of a thin sheet vote with
    /// equal weight and opposite signs, so there the field has no opinion and the input sign
    /// is kept.
    pub margin: f64,
}

impl Default for WindingOrientation {
    fn default() -> Self {
        Self {
            rounds: 4,
            max_sources: 4096,
            k: 8,
            hole: 1.0,
            margin: 0.3,
        }
    }
}

/// Flips the normals whose sign disagrees with the winding number of the rest of the cloud
/// (see the module doc); returns the number of flips over all rounds.
pub fn orient_by_winding(
    points: &[f64],
    normals: &mut [f64],
    d: usize,
    opts: &WindingOrientation,
) -> Result<usize> {
    let n = check("winding orientation", points, normals, d)?;
    let Some(Field {
        sources,
        src_pos,
        area,
        rho,
    }) = Field::new(points, n, d, opts)?
    else {
        return Ok(0);
    };
    // Each term of a query's slope is `sign_i sign_j c_ij`, with `c_ij` from the input normals
    // and the current signs: the total vote `V_i = sum |c_ij|` never changes, and the slope
    // only changes by the terms of the sources that flipped. So the first round sums over all
    // sources and every later round only over the last round's flipped sources (usually a
    // few), which makes the rounds after the first nearly free.
    let input = normals.to_vec();
    let weighted =
        |j: usize, a: f64, s: f64| input[j * d..(j + 1) * d].iter().map(move |v| v * a * s);
    let all = area_weighted(&sources, &area, &input, d);
    let (mut slope, votes): (Vec<f64>, Vec<f64>) =
        field_at_all(points, &input, &src_pos, &all, d, rho)
            .into_iter()
            .unzip();
    let mut sign = vec![1.0f64; n];
    let mut flips = 0;
    for round in 0..opts.rounds {
        let flip: Vec<bool> = (0..n)
            .map(|i| sign[i] * slope[i] > opts.margin * votes[i])
            .collect();
        let changed = flip.iter().filter(|f| **f).count();
        if changed == 0 {
            break;
        }
        flips += changed;
        // The flipped sources' terms change from `+c` to `-c`: add `-2c` at the old signs.
        let (mut pos, mut delta) = (Vec::new(), Vec::new());
        for (s, (&j, &a)) in sources.iter().zip(&area).enumerate() {
            if flip[j] {
                pos.extend_from_slice(&src_pos[s * d..(s + 1) * d]);
                delta.extend(weighted(j, a, -2.0 * sign[j]));
            }
        }
        for (s, f) in sign.iter_mut().zip(&flip) {
            if *f {
                *s = -*s;
            }
        }
        if round + 1 < opts.rounds && !pos.is_empty() {
            for (t, (dt, _)) in slope
                .iter_mut()
                .zip(field_at_all(points, &input, &pos, &delta, d, rho))
            {
                *t += dt;
            }
        }
    }
    for (row, s) in normals.chunks_exact_mut(d).zip(&sign) {
        row.iter_mut().for_each(|x| *x *= s);
    }
    Ok(flips)
}

/// How strongly the winding field of the rest of the cloud agrees with each normal's sign:
/// `-grad w_rest(x_i) . n_i` over the total vote (see the module doc), in `[-1, 1]`. Near 1 the
/// surface around the hole, as currently oriented, says "this side is out"; near 0 the vote
/// abstains (both sides of a thin sheet, or no surface around); negative values disagree (a
/// sign [`orient_by_winding`] kept because the disagreement was below its margin). It measures
/// consistency, not truth: a whole surface inside out agrees with itself. Zero where there
/// is no field at all (too few or coincident points) or a normal is zero. Only distances and
/// dot products enter: invariant under rotations, reflections, translations and scaling.
pub fn winding_agreement(
    points: &[f64],
    normals: &[f64],
    d: usize,
    opts: &WindingOrientation,
) -> Result<Vec<f64>> {
    let n = check("winding agreement", points, normals, d)?;
    let Some(field) = Field::new(points, n, d, opts)? else {
        return Ok(vec![0.0; n]);
    };
    let weighted = area_weighted(&field.sources, &field.area, normals, d);
    Ok(
        field_at_all(points, normals, &field.src_pos, &weighted, d, field.rho)
            .into_iter()
            .map(|(slope, votes)| if votes > 0.0 { -slope / votes } else { 0.0 })
            .collect(),
    )
}

/// Each source's normal times its area weight, row-major `(sources, d)`: the dipoles of the
/// field.
fn area_weighted(sources: &[usize], area: &[f64], normals: &[f64], d: usize) -> Vec<f64> {
    sources
        .iter()
        .zip(area)
        .flat_map(|(&j, &a)| normals[j * d..(j + 1) * d].iter().map(move |v| v * a))
        .collect()
}

/// What carries the winding field: the source indices and positions, their area weights and
/// the hole radius.
struct Field {
    sources: Vec<usize>,
    src_pos: Vec<f64>,
    area: Vec<f64>,
    rho: f64,
}

impl Field {
    /// `None` when there is nothing to vote with (too few points, no rounds, coincident points).
    fn new(points: &[f64], n: usize, d: usize, opts: &WindingOrientation) -> Result<Option<Self>> {
        if n <= opts.k + 1 || opts.rounds == 0 || opts.k == 0 {
            return Ok(None);
        }
        // Sources: all points, or a fixed subset of indices (pose-independent).
        let mut sources: Vec<usize> = (0..n).collect();
        if n > opts.max_sources.max(opts.k + 2) {
            sources.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
            sources.truncate(opts.max_sources.max(opts.k + 2));
            sources.sort_unstable();
        }
        let m = sources.len();
        let src_pos: Vec<f64> = sources
            .iter()
            .flat_map(|&j| points[j * d..(j + 1) * d].iter().copied())
            .collect();
        let spacing = kth_neighbour_distance(&src_pos, d, opts.k)?;
        let mut sorted = spacing.clone();
        sorted.sort_unstable_by(f64::total_cmp);
        let median = sorted[m / 2];
        if median <= 0.0 {
            // Most sources coincide: there is no surface to speak of.
            return Ok(None);
        }
        // Area per source ~ spacing^(d-1); only ratios matter (the decision is a sign).
        let area: Vec<f64> = spacing
            .iter()
            .map(|r| (r / median).min(4.0).powi(d as i32 - 1))
            .collect();
        let rho = opts.hole.max(1e-3) * median;
        Ok(Some(Self {
            sources,
            src_pos,
            area,
            rho,
        }))
    }
}

/// Lanes of the field kernel: sources go in blocks of this many, with one partial sum per
/// lane, so the per-source loop vectorises (a single running sum fixes the order of the
/// additions and keeps it scalar).
const LANES: usize = 8;

/// Sources in structure-of-arrays layout, `d` axis columns of positions and of weighted
/// normals, padded to whole blocks with weight-0 sources (which contribute exactly 0).
struct Soa {
    pos: Vec<Vec<f64>>,
    weighted: Vec<Vec<f64>>,
}

impl Soa {
    fn new(pos: &[f64], weighted: &[f64], d: usize) -> Self {
        let m = pos.len() / d;
        let padded = m.div_ceil(LANES) * LANES;
        let column = |v: &[f64], a: usize| -> Vec<f64> {
            let mut c: Vec<f64> = v.chunks_exact(d).map(|r| r[a]).collect();
            c.resize(padded, 0.0);
            c
        };
        Self {
            pos: (0..d).map(|a| column(pos, a)).collect(),
            weighted: (0..d).map(|a| column(weighted, a)).collect(),
        }
    }
}

/// [`slope_along`] at every point of `points (n * d)` along its normal, in parallel.
fn field_at_all(
    points: &[f64],
    normals: &[f64],
    pos: &[f64],
    weighted: &[f64],
    d: usize,
    rho: f64,
) -> Vec<(f64, f64)> {
    let src = Soa::new(pos, weighted, d);
    let arch = pulp::Arch::new();
    // Blocks of queries in parallel (the order is kept), each block in the widest SIMD the
    // machine has.
    const QUERIES: usize = 64;
    points
        .par_chunks(QUERIES * d)
        .zip(normals.par_chunks(QUERIES * d))
        .flat_map_iter(|(points, normals)| {
            arch.dispatch(Slopes {
                points,
                normals,
                src: &src,
                d,
                rho,
            })
        })
        .collect()
}

/// [`slope_along`] at a block of queries, run by [`pulp::Arch::dispatch`]: pulp compiles
/// `with_simd` for baseline x86-64 and for AVX2 (four f64 lanes per vector instead of two) and
/// picks the widest the machine has, without `unsafe` here. The kernel is `#[inline(always)]`
/// so that it is compiled into each version. Rust does not fuse multiplies and adds on its own,
/// so every version computes bit-identical slopes.
struct Slopes<'a> {
    points: &'a [f64],
    normals: &'a [f64],
    src: &'a Soa,
    d: usize,
    rho: f64,
}

impl pulp::WithSimd for Slopes<'_> {
    type Output = Vec<(f64, f64)>;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> Self::Output {
        let Self {
            points,
            normals,
            src,
            d,
            rho,
        } = self;
        let mut out = vec![(0.0, 0.0); points.len() / d];
        for ((o, q), u) in out
            .iter_mut()
            .zip(points.chunks_exact(d))
            .zip(normals.chunks_exact(d))
        {
            *o = match d {
                // A literal `d` per arm unrolls the loops over the axes.
                2 => slope_along(q, u, src, 2, rho),
                3 => slope_along(q, u, src, 3, rho),
                4 => slope_along(q, u, src, 4, rho),
                _ => slope_along(q, u, src, d, rho),
            };
        }
        out
    }
}

/// Neighbour consensus on orientation: `rounds` times, every unit normal whose `k` nearest
/// neighbours' normals disagree with it in sign (weighted sum of `n_i . n_j` below zero) is
/// flipped, all at once. Directions never change, so unoriented accuracy is untouched; isolated
/// sign errors inside consistently oriented regions are repaired (the propagation idea of Hoppe
/// et al. 1992, without a spanning tree). Only dot products and distances enter, so it commutes
/// with rotations, reflections and translations. Returns the number of flips.
pub fn orientation_consensus(
    points: &[f64],
    normals: &mut [f64],
    d: usize,
    k: usize,
    rounds: usize,
) -> Result<usize> {
    let n = check("orientation consensus", points, normals, d)?;
    if rounds == 0 || n <= k || k == 0 {
        return Ok(0);
    }
    let (src, dst) = knn_edges(points, d, k)?;
    let mut flips = 0;
    for _ in 0..rounds {
        let mut vote = vec![0.0f64; n];
        for (&s, &t) in src.iter().zip(&dst) {
            let (s, t) = (s as usize, t as usize);
            // Only neighbours along the surface vote: one across a thin sheet sits along the
            // normal and faces the other way.
            let (mut along, mut dist2) = (0.0, 0.0);
            for a in 0..d {
                let off = points[s * d + a] - points[t * d + a];
                along += off * normals[t * d + a];
                dist2 += off * off;
            }
            if along * along > 0.25 * dist2 {
                continue;
            }
            vote[t] += (0..d)
                .map(|a| normals[s * d + a] * normals[t * d + a])
                .sum::<f64>();
        }
        let changed = flip_where(normals, d, vote.iter().map(|v| *v < 0.0));
        flips += changed;
        if changed == 0 {
            break;
        }
    }
    Ok(flips)
}

/// Checks `points` and `normals` are finite `n x d` arrays with `d >= 2`; returns `n`.
pub(crate) fn check(what: &str, points: &[f64], normals: &[f64], d: usize) -> Result<usize> {
    if d < 2 || points.len() % d != 0 || normals.len() != points.len() {
        bail!(
            "{what} needs n x d points and normals with d >= 2 (d = {d}, {} and {} numbers)",
            points.len(),
            normals.len()
        );
    }
    if points.iter().chain(normals).any(|v| !v.is_finite()) {
        bail!("{what}: non-finite points or normals");
    }
    Ok(points.len() / d)
}

/// The `k` nearest neighbour edges of `points (n * d)` as (senders, receivers).
pub(crate) fn knn_edges(points: &[f64], d: usize, k: usize) -> Result<(Vec<u32>, Vec<u32>)> {
    let pos = Tensor::from_slice(points, (points.len() / d, d), &Device::Cpu)?;
    let edges = tf_graphs::knn_graph(&pos, None, k, false)?.to_dtype(DType::U32)?;
    Ok((
        edges.get(0)?.to_vec1::<u32>()?,
        edges.get(1)?.to_vec1::<u32>()?,
    ))
}

/// Negates the rows of `normals (n * d)` where `flip` is true; returns how many.
pub(crate) fn flip_where(
    normals: &mut [f64],
    d: usize,
    flip: impl IntoIterator<Item = bool>,
) -> usize {
    let mut changed = 0;
    for (row, f) in normals.chunks_exact_mut(d).zip(flip) {
        if f {
            row.iter_mut().for_each(|x| *x = -*x);
            changed += 1;
        }
    }
    changed
}

/// `grad w_rest(q) . u` up to a positive factor, and the sum of its terms' magnitudes (the
/// total vote): the sources' dipole field with a hole of radius `rho` around `q` (weight 0
/// inside `rho`, rising smoothly to 1 at `2 rho`). Per source `r = x_j - q`:
/// `grad_q [(r . m_j) / |r|^d] . u = -(m_j . u) / |r|^d + d (r . m_j)(r . u) / |r|^(d+2)`.
#[inline(always)]
fn slope_along(q: &[f64], u: &[f64], src: &Soa, d: usize, rho: f64) -> (f64, f64) {
    let inv_rho = 1.0 / rho;
    let (mut total, mut votes) = ([0.0f64; LANES], [0.0f64; LANES]);
    let blocks = src.pos.first().map_or(0, |c| c.len() / LANES);
    for b in 0..blocks {
        let lanes = b * LANES..(b + 1) * LANES;
        let (mut r2, mut rm, mut ru, mut mu) =
            ([0.0f64; LANES], [0.0; LANES], [0.0; LANES], [0.0; LANES]);
        for a in 0..d {
            let (x, m) = (&src.pos[a][lanes.clone()], &src.weighted[a][lanes.clone()]);
            for l in 0..LANES {
                let r = x[l] - q[a];
                r2[l] += r * r;
                rm[l] += r * m[l];
                ru[l] += r * u[a];
                mu[l] += m[l] * u[a];
            }
        }
        // Branch-free: inside the hole the mask is exactly 0, and `1 / r` is taken no closer
        // than the hole's rim so that it stays finite there (the query itself is at 0).
        for l in 0..LANES {
            let r = r2[l].sqrt();
            let t = ((r - rho) * inv_rho).clamp(0.0, 1.0);
            let mask = t * t * (3.0 - 2.0 * t);
            let inv = 1.0 / r.max(rho);
            let inv2 = inv * inv;
            let mut inv_d = if d % 2 == 1 { inv } else { 1.0 };
            for _ in 0..d / 2 {
                inv_d *= inv2;
            }
            let term = mask * inv_d * (d as f64 * rm[l] * ru[l] * inv2 - mu[l]);
            total[l] += term;
            votes[l] += term.abs();
        }
    }
    (total.iter().sum(), votes.iter().sum())
}

/// Distance from each point of `pos (m * d)` to its `k`-th nearest other point.
fn kth_neighbour_distance(pos: &[f64], d: usize, k: usize) -> Result<Vec<f64>> {
    let m = pos.len() / d;
    let (src, dst) = knn_edges(pos, d, k)?;
    let mut far = vec![0.0f64; m];
    for (&s, &t) in src.iter().zip(&dst) {
        let (s, t) = (s as usize, t as usize);
        let r2: f64 = (0..d)
            .map(|a| (pos[s * d + a] - pos[t * d + a]).powi(2))
            .sum();
        far[t] = far[t].max(r2.sqrt());
    }
    Ok(far)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` points on a sphere of radius `r` (Fibonacci lattice) and their outward normals.
    fn sphere(n: usize, r: f64) -> (Vec<f64>, Vec<f64>) {
        let unit = tf_testing::strategies::PointCloud::sphere(n).coords;
        (unit.iter().map(|v| r * v).collect(), unit)
    }

    #[test]
    fn repairs_a_sphere_with_a_third_of_its_signs_wrong() {
        let (p, truth) = sphere(2000, 1.0);
        let mut nrm = truth.clone();
        for i in (0..2000).filter(|i| i % 3 == 0) {
            nrm[i * 3..i * 3 + 3].iter_mut().for_each(|x| *x = -*x);
        }
        let flips = orient_by_winding(&p, &mut nrm, 3, &WindingOrientation::default()).unwrap();
        assert!(flips >= 600, "{flips} flips");
        assert_eq!(nrm, truth);
    }

    #[test]
    fn repairs_a_small_flipped_cap_but_not_a_flipped_hemisphere() {
        let (p, truth) = sphere(2000, 1.0);
        let flip_cap = |cos_max: f64| -> Vec<f64> {
            truth
                .chunks(3)
                .flat_map(|u| {
                    let s = if u[2] > cos_max { -1.0 } else { 1.0 };
                    u.iter().map(move |v| s * v).collect::<Vec<_>>()
                })
                .collect()
        };
        // About 20 points around the pole: inside the reach of the vote.
        let mut cap = flip_cap(0.98);
        orient_by_winding(&p, &mut cap, 3, &WindingOrientation::default()).unwrap();
        assert_eq!(cap, truth);
        // A whole hemisphere is its own consistent majority near every one of its points:
        // the vote is local-first, and only its rim can be contested.
        let mut half = flip_cap(0.0);
        orient_by_winding(&p, &mut half, 3, &WindingOrientation::default()).unwrap();
        let wrong = half
            .chunks(3)
            .zip(truth.chunks(3))
            .filter(|(a, b)| a.iter().zip(*b).map(|(x, y)| x * y).sum::<f64>() < 0.0);
        assert!(wrong.count() > 500);
    }

    /// The rounds as first written: every round recomputes every slope from the current signs.
    fn direct(points: &[f64], normals: &mut [f64], d: usize, opts: &WindingOrientation) {
        let n = points.len() / d;
        let Some(f) = Field::new(points, n, d, opts).unwrap() else {
            return;
        };
        for _ in 0..opts.rounds {
            let weighted: Vec<f64> = f
                .sources
                .iter()
                .zip(&f.area)
                .flat_map(|(&j, &a)| normals[j * d..(j + 1) * d].iter().map(move |v| v * a))
                .collect();
            let field = field_at_all(points, normals, &f.src_pos, &weighted, d, f.rho);
            let flip: Vec<bool> = field
                .iter()
                .map(|(slope, votes)| *slope > opts.margin * votes)
                .collect();
            if flip_where(normals, d, flip) == 0 {
                break;
            }
        }
    }

    #[test]
    fn incremental_rounds_match_recomputing_every_round() {
        // Noisy normals on an ellipsoid, a third flipped, more points than sources, so that
        // several rounds flip and the subset of sources matters; d = 3 and the generic d = 5.
        for (d, n) in [(3usize, 6000usize), (5, 1500)] {
            let unit = tf_testing::strategies::PointCloud::uniform(d, n, 7).coords;
            let mut p = Vec::new();
            let mut nrm = Vec::new();
            for (i, x) in unit.chunks(d).enumerate() {
                let len = x.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-9);
                let s = if i % 3 == 0 { -1.0 } else { 1.0 };
                for (a, v) in x.iter().enumerate() {
                    let axis = 1.0 + a as f64 * 0.5;
                    p.push(axis * v / len);
                    nrm.push(s * (v / len / axis + 0.05 * ((i * 7 + a) % 5) as f64 - 0.1));
                }
            }
            let opts = WindingOrientation {
                max_sources: n / 2,
                ..Default::default()
            };
            let (mut fast, mut slow) = (nrm.clone(), nrm.clone());
            let flips = orient_by_winding(&p, &mut fast, d, &opts).unwrap();
            direct(&p, &mut slow, d, &opts);
            assert!(flips > n / 4, "d = {d}: {flips} flips");
            let differ = fast
                .chunks(d)
                .zip(slow.chunks(d))
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(differ, 0, "d = {d}: {differ} of {n} signs differ");
        }
    }

    #[test]
    fn works_in_two_dimensions_and_rejects_bad_input() {
        let n = 400;
        let p: Vec<f64> = (0..n)
            .flat_map(|i| {
                let t = std::f64::consts::TAU * i as f64 / n as f64;
                [2.0 * t.cos(), t.sin()]
            })
            .collect();
        let truth: Vec<f64> = (0..n)
            .flat_map(|i| {
                let t = std::f64::consts::TAU * i as f64 / n as f64;
                let (a, b) = (t.cos(), 2.0 * t.sin());
                let l = (a * a + b * b).sqrt();
                [a / l, b / l]
            })
            .collect();
        let mut nrm: Vec<f64> = truth
            .iter()
            .enumerate()
            .map(|(k, v)| if (k / 2) % 4 == 1 { -v } else { *v })
            .collect();
        orient_by_winding(&p, &mut nrm, 2, &WindingOrientation::default()).unwrap();
        assert_eq!(nrm, truth);
        let mut bad = nrm.clone();
        bad[0] = f64::NAN;
        assert!(orient_by_winding(&p, &mut bad, 2, &WindingOrientation::default()).is_err());
        assert!(orient_by_winding(&p[..3], &mut nrm[..3], 2, &Default::default()).is_err());
        // Mismatched lengths are errors, not an index panic, for both post-processes.
        assert!(orientation_consensus(&p, &mut nrm[..10], 2, 8, 2).is_err());
        assert!(orientation_consensus(&p, &mut bad, 2, 8, 2).is_err());
    }

    #[test]
    fn agreement_is_high_where_consistent_negative_on_a_flipped_cap_zero_on_a_sheet() {
        let opts = WindingOrientation::default();
        let (p, out) = sphere(2000, 1.0);
        let a = winding_agreement(&p, &out, 3, &opts).unwrap();
        let min = a.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(min > 0.9, "outward sphere: min agreement {min}");
        // The field measures consistency with the rest: a sphere wholly inside out agrees
        // with itself, while a small flipped cap disagrees with the surface around it.
        let inward: Vec<f64> = out.iter().map(|v| -v).collect();
        let b = winding_agreement(&p, &inward, 3, &opts).unwrap();
        let err = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-12, "inside-out sphere differs by {err}");
        let cap: Vec<f64> = out
            .chunks(3)
            .flat_map(|u| {
                let s = if u[2] > 0.98 { -1.0 } else { 1.0 };
                u.iter().map(move |v| s * v).collect::<Vec<_>>()
            })
            .collect();
        let c = winding_agreement(&p, &cap, 3, &opts).unwrap();
        for (i, u) in out.chunks(3).enumerate() {
            if u[2] > 0.99 {
                assert!(
                    c[i] < -0.3,
                    "point {i} of the flipped cap: agreement {}",
                    c[i]
                );
            }
        }
        // Both sides of a sheet of zero thickness, each with its own normal: the two sides
        // vote with equal weight and opposite signs, so the field has no opinion.
        let mut sheet = Vec::new();
        let mut up = Vec::new();
        for side in [1.0, -1.0] {
            for i in 0..30 {
                for j in 0..30 {
                    sheet.extend([i as f64 / 29.0, j as f64 / 29.0, 0.0]);
                    up.extend([0.0, 0.0, side]);
                }
            }
        }
        let t = winding_agreement(&sheet, &up, 3, &opts).unwrap();
        let worst = t.iter().map(|v| v.abs()).fold(0.0, f64::max);
        assert!(worst < 1e-9, "thin sheet: agreement up to {worst}");
        // Invariant under a reflection, a translation and a scaling.
        let moved: Vec<f64> = p
            .chunks(3)
            .flat_map(|x| [3.0 * x[1] + 1.0, 3.0 * x[0] - 2.0, 3.0 * x[2]])
            .collect();
        let turned: Vec<f64> = out.chunks(3).flat_map(|u| [u[1], u[0], u[2]]).collect();
        let e = winding_agreement(&moved, &turned, 3, &opts).unwrap();
        let err = a
            .iter()
            .zip(&e)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-9, "invariance error {err}");
        // Too few points: no field, no opinion; bad input: an error.
        assert_eq!(
            winding_agreement(&p[..9], &out[..9], 3, &opts).unwrap(),
            vec![0.0; 3]
        );
        assert!(winding_agreement(&p, &out[..30], 3, &opts).is_err());
    }
}
