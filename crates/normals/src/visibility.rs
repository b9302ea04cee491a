//! Orientation by visibility: the side of a surface from which the shape can be left.
//!
//! The winding number ([`crate::orient_by_winding`]) signs a normal by the field of the whole
//! cloud, in which the two faces of a thin wall cancel and the walls of a cavity hear mostly
//! each other: on connector housings and other thin-walled parts it abstains or errs in
//! patches. Rays ask a different question. Give every point a splat, a disc of radius `splat`
//! spacings in its (unsigned) tangent plane; from a point, cast rays to each side of its
//! surface and count the splats each ray crosses on its way out of the cloud. Leaving a
//! closed surface from a point on it takes an even number of further crossings along the
//! outward side and an odd number along the inward one (parity), and on the outward side a ray
//! often meets nothing at all (escape). Both votes are pooled over the rays of each side, and
//! a point's sign is set by them where the two sides disagree by more than `margin`; elsewhere
//! (both sides blocked or both open, as deep inside a cavity or far from any wall) the input
//! sign is kept. A thin wall resolves as long as its faces are more than `skip` spacings apart:
//! from one face, the ray into the wall meets the other face at once.
//!
//! The rays of a point are its normal and the normal tilted towards each of its `fan` nearest
//! neighbours (projected into the tangent plane), by each angle of [`VisibilityOrientation::TILTS`]:
//! chosen by the cloud itself, so the votes, like everything else here, commute with rotations,
//! reflections, translations and scaling. Directions never change, only signs.
//!
//! Splats are bucketed in a uniform grid (each into every cell its disc's bounding box meets)
//! and a ray walks the grid cell by cell (Amanatides and Woo's traversal, in any dimension)
//! until it leaves the cloud's bounding box. Cost: `n` points times `2 (1 + fan |TILTS|)` rays
//! times the cells a ray crosses. Most of those cells are empty and most splats are listed in
//! several cells, so a ray skips empty cells by one bit per cell, tests each splat once, and
//! reads a cell's splats from one packed array (timings: docs/performance.md).
//!
//! # Shapes
//! `points (n * d)`, `normals (n * d)` (unit or zero rows), flat row-major.

use candle_core::{bail, Result};
use rayon::prelude::*;

use crate::orientation::{check, flip_where, knn_edges};

/// Settings of [`orient_by_visibility`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VisibilityOrientation {
    /// Neighbours whose farthest sets a point's spacing.
    pub k: usize,
    /// Splat radius, in spacings of its point.
    pub splat: f64,
    /// Crossings nearer the ray's origin than this many spacings are the point's own surface.
    pub skip: f64,
    /// Hits along a ray closer than this many spacings (of the ray's origin) to the previous
    /// one belong to the same crossing (neighbouring splats overlap).
    pub gap: f64,
    /// Crossings nearer than this many times the point's surface roughness (the RMS distance
    /// of its `k` neighbours from their mean along its normal) are its own surface too, and
    /// hits closer than that merge: on a noisy scan the roughness, not the spacing, says how
    /// far the own surface reaches.
    pub roughness: f64,
    /// Tilted rays per tilt angle and side: towards this many nearest neighbours.
    pub fan: usize,
    /// A normal is flipped only where its [`visibility_scores`] score (in `[-1, 1]`) is below
    /// minus this; 0 flips wherever the inward side looks out more than the outward one.
    pub margin: f64,
}

impl VisibilityOrientation {
    /// Tilts of the fanned rays from the normal, in radians.
    pub const TILTS: [f64; 2] = [0.35, 0.7];
}

/// Chosen on the trainer's validation shapes (never the test split), by how often the sign of a
/// winding-signed PCA normal ends up right: smaller splats let rays slip through between
/// points, a smaller `skip` counts the ray's own surface, and without the roughness term noisy
/// scans vote worse than the winding number does.
impl Default for VisibilityOrientation {
    fn default() -> Self {
        Self {
            k: 8,
            splat: 0.7,
            skip: 0.6,
            gap: 0.6,
            roughness: 5.0,
            fan: 6,
            margin: 0.0,
        }
    }
}

/// Per point, how much more the side along its normal looks outward than the other side: each
/// ray's parity vote (+1 for an even number of crossings, -1 for odd) and escape vote (1 for
/// none) are averaged, the rays' votes summed per side, and the two sides' difference is
/// scaled to `[-1, 1]`.
/// Positive: the normal points out. Zero rows of `normals` get 0.
pub fn visibility_scores(
    points: &[f64],
    normals: &[f64],
    d: usize,
    opts: &VisibilityOrientation,
) -> Result<Vec<f64>> {
    let n = check("visibility orientation", points, normals, d)?;
    if !(opts.splat > 0.0 && opts.skip >= 0.0 && opts.gap >= 0.0 && opts.roughness >= 0.0)
        || opts.k == 0
    {
        bail!(
            "visibility orientation needs k >= 1, splat > 0, skip >= 0 and gap >= 0, got {opts:?}"
        );
    }
    if n <= opts.k.max(opts.fan) {
        return Ok(vec![0.0; n]);
    }
    let (src, dst) = knn_edges(points, d, opts.k.max(opts.fan))?;
    let dist = |i: usize, j: usize| -> f64 {
        (0..d)
            .map(|a| (points[i * d + a] - points[j * d + a]).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    // Neighbours of each point, nearest first, ties by index: an order the pose cannot change.
    let mut nbrs: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (&s, &t) in src.iter().zip(&dst) {
        nbrs[t as usize].push(s);
    }
    for (i, list) in nbrs.iter_mut().enumerate() {
        list.sort_by(|&a, &b| {
            dist(i, a as usize)
                .total_cmp(&dist(i, b as usize))
                .then(a.cmp(&b))
        });
    }
    let spacing: Vec<f64> = (0..n)
        .map(|i| {
            nbrs[i]
                .iter()
                .take(opts.k)
                .map(|&j| dist(i, j as usize))
                .fold(0.0, f64::max)
        })
        .collect();
    // Surface roughness along each point's normal, which sets the own surface's reach.
    let reach: Vec<f64> = (0..n)
        .map(|i| {
            let nrm = &normals[i * d..(i + 1) * d];
            let len = nrm.iter().map(|v| v * v).sum::<f64>().sqrt();
            let list = &nbrs[i][..nbrs[i].len().min(opts.k)];
            if len <= 0.0 || list.is_empty() {
                return 0.0;
            }
            let along =
                |j: usize| -> f64 { (0..d).map(|a| points[j * d + a] * nrm[a]).sum::<f64>() / len };
            let m = list.len() as f64;
            let mean = list.iter().map(|&j| along(j as usize)).sum::<f64>() / m;
            let var = list
                .iter()
                .map(|&j| (along(j as usize) - mean).powi(2))
                .sum::<f64>()
                / m;
            opts.roughness * var.sqrt()
        })
        .collect();
    let grid = SplatGrid::new(points, normals, &spacing, d, opts.splat);
    Ok((0..n)
        .into_par_iter()
        // Buffers reused across a thread's points and rays instead of allocated per ray.
        .map_init(
            || {
                (
                    Ray::new(d, n),
                    Vec::new(),
                    Vec::new(),
                    vec![0.0; d],
                    vec![0.0; d],
                )
            },
            |(ray, dirs, hits, w, t), i| {
                let nrm = &normals[i * d..(i + 1) * d];
                let len = nrm.iter().map(|v| v * v).sum::<f64>().sqrt();
                if len <= 0.0 || spacing[i] <= 0.0 {
                    return 0.0;
                }
                let x = &points[i * d..(i + 1) * d];
                // The directions, flat: the unit normal, then the fanned rays.
                dirs.clear();
                dirs.extend(nrm.iter().map(|v| v / len));
                for &j in nbrs[i].iter().take(opts.fan) {
                    for a in 0..d {
                        w[a] = points[j as usize * d + a] - x[a];
                    }
                    let along: f64 = w.iter().zip(&dirs[..d]).map(|(a, b)| a * b).sum();
                    for a in 0..d {
                        t[a] = w[a] - along * dirs[a];
                    }
                    let tl = t.iter().map(|v| v * v).sum::<f64>().sqrt();
                    if tl <= 1e-12 * spacing[i] {
                        continue;
                    }
                    for th in VisibilityOrientation::TILTS {
                        let (s, c) = th.sin_cos();
                        for a in 0..d {
                            let v = c * dirs[a] + s * t[a] / tl;
                            dirs.push(v);
                        }
                    }
                }
                let skip = (opts.skip * spacing[i]).max(reach[i]);
                let gap = (opts.gap * spacing[i]).max(reach[i]);
                let rays = dirs.len() / d;
                let mut side = [0.0f64; 2];
                for (k, sign) in [1.0, -1.0].into_iter().enumerate() {
                    for u0 in dirs.chunks(d) {
                        for (a, v) in ray.u.iter_mut().zip(u0) {
                            *a = sign * v;
                        }
                        grid.cast(i, x, skip, ray, hits);
                        hits.sort_by(f64::total_cmp);
                        let mut crossings = 0usize;
                        let mut last = f64::NEG_INFINITY;
                        for &t in hits.iter() {
                            if t - last > gap {
                                crossings += 1;
                            }
                            last = t;
                        }
                        let parity = if crossings % 2 == 0 { 1.0 } else { -1.0 };
                        let escape = if crossings == 0 { 1.0 } else { 0.0 };
                        side[k] += 0.5 * (parity + escape);
                    }
                }
                // Each ray's vote is in [-1/2, 1]: the difference of two sides' sums spans 3 rays'.
                (side[0] - side[1]) / (1.5 * rays as f64)
            },
        )
        .collect())
}

/// Signs each normal by [`visibility_scores`] where its score's magnitude exceeds
/// `opts.margin` (flipping those that point in); returns the number of flips.
pub fn orient_by_visibility(
    points: &[f64],
    normals: &mut [f64],
    d: usize,
    opts: &VisibilityOrientation,
) -> Result<usize> {
    let scores = visibility_scores(points, normals, d, opts)?;
    Ok(flip_where(
        normals,
        d,
        scores.iter().map(|&s| s < -opts.margin.max(0.0)),
    ))
}

/// Largest splat radius, in median splat radii (see [`SplatGrid::new`]).
const MAX_SPLAT: f64 = 4.0;

/// Splats bucketed by grid cell: each splat is listed in every cell its disc's bounding box
/// meets.
struct SplatGrid {
    d: usize,
    cell: f64,
    origin: Vec<f64>,
    dims: Vec<i64>,
    /// `starts[c]..starts[c + 1]` indexes `ids` for the cell with linear key `c`, when the key
    /// space is small; otherwise `keys` is searched.
    starts: Vec<u32>,
    /// One bit per cell with the dense index: whether it holds any splat. Most cells a ray
    /// crosses are empty, and this is 32 times smaller than `starts` (it stays in cache).
    occupied: Vec<u64>,
    keys: Vec<u64>,
    ids: Vec<u32>,
    /// Per entry of `ids`, its splat packed for the ray test: the centre, the unit normal and
    /// the squared radius (`2 d + 1` numbers). A ray reads a cell's splats in one sweep of
    /// memory instead of gathering them from three arrays by index.
    packed: Vec<f64>,
    /// Key step per unit step along each axis.
    strides: Vec<u64>,
}

/// One ray's direction and grid-walk state, reused from ray to ray.
struct Ray {
    u: Vec<f64>,
    c: Vec<i64>,
    step: Vec<i64>,
    t_max: Vec<f64>,
    t_delta: Vec<f64>,
    /// Per splat, the number of the last ray that tested it: a splat listed in several cells
    /// along the ray is tested once (a second test would give the same `t`, which the
    /// crossing count merges anyway).
    seen: Vec<u32>,
    number: u32,
}

impl Ray {
    fn new(d: usize, n: usize) -> Self {
        Self {
            u: vec![0.0; d],
            c: vec![0; d],
            step: vec![0; d],
            t_max: vec![0.0; d],
            t_delta: vec![0.0; d],
            seen: vec![0; n],
            number: 0,
        }
    }
}

impl SplatGrid {
    fn new(points: &[f64], normals: &[f64], spacing: &[f64], d: usize, splat: f64) -> Self {
        let n = points.len() / d;
        let mut unit = normals.to_vec();
        for row in unit.chunks_mut(d) {
            let l = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            row.iter_mut()
                .for_each(|v| *v = if l > 0.0 { *v / l } else { 0.0 });
        }
        // An isolated point (an outlier of a scan) has a spacing as large as the cloud, and its
        // splat would fill every cell; splats are capped at MAX_SPLAT median radii (an
        // invariant bound, so the votes stay equivariant).
        let mut sorted: Vec<f64> = spacing.iter().map(|s| splat * s).collect();
        sorted.sort_by(f64::total_cmp);
        let median = sorted.get(n / 2).copied().unwrap_or(0.0);
        let radius: Vec<f64> = spacing
            .iter()
            .map(|s| (splat * s).min(MAX_SPLAT * median))
            .collect();
        let mut lo = vec![f64::INFINITY; d];
        let mut hi = vec![f64::NEG_INFINITY; d];
        for (p, r) in points.chunks(d).zip(&radius) {
            for a in 0..d {
                lo[a] = lo[a].min(p[a] - r);
                hi[a] = hi[a].max(p[a] + r);
            }
        }
        let extent = lo.iter().zip(&hi).map(|(l, h)| h - l).fold(0.0, f64::max);
        // Cells about a splat across, but never more than ~n cells per axis in total key space
        // worth indexing: at most 2^20 per axis keeps keys in 64 bits up to d = 3 comfortably.
        let per_axis_cap = (1u64 << (62 / d as u32).min(20)) as f64;
        let cell = (2.0 * median)
            .max(extent / per_axis_cap)
            .max(f64::MIN_POSITIVE);
        let dims: Vec<i64> = (0..d)
            .map(|a| ((hi[a] - lo[a]) / cell).floor() as i64 + 1)
            .collect();
        let total: u64 = dims.iter().map(|&c| c as u64).product();
        let mut grid = Self {
            d,
            cell,
            origin: lo,
            dims,
            starts: Vec::new(),
            occupied: Vec::new(),
            keys: Vec::new(),
            ids: Vec::new(),
            packed: Vec::new(),
            strides: Vec::new(),
        };
        let mut stride = 1u64;
        for a in 0..d {
            grid.strides.push(stride);
            stride = stride.wrapping_mul(grid.dims[a] as u64);
        }
        let mut entries: Vec<(u64, u32)> = Vec::new();
        let mut from = vec![0i64; d];
        let mut to = vec![0i64; d];
        for j in 0..n {
            if radius[j] <= 0.0 || unit[j * d..(j + 1) * d].iter().all(|v| *v == 0.0) {
                continue;
            }
            // The disc's own bounding box: along axis `a` it reaches `r sqrt(1 - n_a^2)` from
            // its centre, not `r` (a disc lying in a grid plane stays in one layer of cells),
            // padded by a millionth of `r` for rounding.
            for a in 0..d {
                let p = points[j * d + a];
                let na = unit[j * d + a];
                let reach = radius[j] * ((1.0 - na * na).max(0.0).sqrt() + 1e-6);
                from[a] = grid.coord(a, p - reach);
                to[a] = grid.coord(a, p + reach);
            }
            let mut c = from.clone();
            loop {
                entries.push((grid.key(&c), j as u32));
                let mut a = 0;
                while a < d {
                    if c[a] < to[a] {
                        c[a] += 1;
                        break;
                    }
                    c[a] = from[a];
                    a += 1;
                }
                if a == d {
                    break;
                }
            }
        }
        entries.sort_unstable();
        grid.keys = entries.iter().map(|e| e.0).collect();
        grid.ids = entries.iter().map(|e| e.1).collect();
        grid.packed = Vec::with_capacity(entries.len() * (2 * d + 1));
        for &(_, j) in &entries {
            let j = j as usize;
            grid.packed.extend_from_slice(&points[j * d..(j + 1) * d]);
            grid.packed.extend_from_slice(&unit[j * d..(j + 1) * d]);
            grid.packed.push(radius[j] * radius[j]);
        }
        if total <= 8 * entries.len().max(1) as u64 && entries.len() < u32::MAX as usize {
            let mut starts = vec![0u32; total as usize + 1];
            let mut occupied = vec![0u64; (total as usize).div_ceil(64)];
            for &k in &grid.keys {
                starts[k as usize + 1] += 1;
                occupied[k as usize / 64] |= 1 << (k % 64);
            }
            grid.occupied = occupied;
            for c in 0..total as usize {
                starts[c + 1] += starts[c];
            }
            grid.starts = starts;
        }
        grid
    }

    fn coord(&self, a: usize, x: f64) -> i64 {
        (((x - self.origin[a]) / self.cell).floor() as i64).clamp(0, self.dims[a] - 1)
    }

    fn key(&self, c: &[i64]) -> u64 {
        let mut k = 0u64;
        for a in (0..self.d).rev() {
            k = k * self.dims[a] as u64 + c[a] as u64;
        }
        k
    }

    /// The entries (indices into `ids` and, times `2 d + 1`, into `packed`) of a cell.
    fn cell(&self, key: u64) -> std::ops::Range<usize> {
        if !self.starts.is_empty() {
            return self.starts[key as usize] as usize..self.starts[key as usize + 1] as usize;
        }
        let s = self.keys.partition_point(|&k| k < key);
        let e = self.keys.partition_point(|&k| k <= key);
        s..e
    }

    /// The distances `t > skip` along the ray `x + t ray.u` (`ray.u` unit) at which it meets a
    /// splat other than point `i`'s, into `hits`, each splat once (unsorted).
    fn cast(&self, i: usize, x: &[f64], skip: f64, ray: &mut Ray, hits: &mut Vec<f64>) {
        let d = self.d;
        hits.clear();
        ray.number = ray.number.wrapping_add(1);
        if ray.number == 0 {
            ray.seen.iter_mut().for_each(|v| *v = 0);
            ray.number = 1;
        }
        let Ray {
            u,
            c,
            step,
            t_max,
            t_delta,
            seen,
            number,
        } = ray;
        let number = *number;
        for a in 0..d {
            c[a] = self.coord(a, x[a]);
            step[a] = 0;
            t_max[a] = f64::INFINITY;
            t_delta[a] = f64::INFINITY;
            if u[a] > 0.0 {
                step[a] = 1;
                let edge = self.origin[a] + (c[a] + 1) as f64 * self.cell;
                t_max[a] = (edge - x[a]) / u[a];
                t_delta[a] = self.cell / u[a];
            } else if u[a] < 0.0 {
                step[a] = -1;
                let edge = self.origin[a] + c[a] as f64 * self.cell;
                t_max[a] = (edge - x[a]) / u[a];
                t_delta[a] = -self.cell / u[a];
            }
        }
        // The cell's key, kept up to date step by step instead of recomputed.
        let mut key = self.key(c);
        let width = 2 * d + 1;
        let dense = !self.occupied.is_empty();
        loop {
            let empty = dense && self.occupied[key as usize / 64] & (1 << (key % 64)) == 0;
            let cell = if empty { 0..0 } else { self.cell(key) };
            let splats = &self.packed[cell.start * width..cell.end * width];
            for (&j, splat) in self.ids[cell].iter().zip(splats.chunks_exact(width)) {
                let j = j as usize;
                if j == i || seen[j] == number {
                    continue;
                }
                seen[j] = number;
                let (xj, rest) = splat.split_at(d);
                let (nj, r2) = rest.split_at(d);
                let (mut den, mut num) = (0.0, 0.0);
                for a in 0..d {
                    den += u[a] * nj[a];
                    num += (xj[a] - x[a]) * nj[a];
                }
                if den.abs() < 1e-3 {
                    continue; // grazing: the ray runs within the splat's plane
                }
                let t = num / den;
                if t <= skip {
                    continue;
                }
                let mut q2 = 0.0;
                for a in 0..d {
                    let q = x[a] + t * u[a] - xj[a];
                    q2 += q * q;
                }
                if q2 < r2[0] {
                    hits.push(t);
                }
            }
            // Next cell: across the nearest cell boundary.
            let mut a = 0;
            for b in 1..d {
                if t_max[b] < t_max[a] {
                    a = b;
                }
            }
            if !t_max[a].is_finite() {
                return;
            }
            c[a] += step[a];
            if c[a] < 0 || c[a] >= self.dims[a] {
                return;
            }
            key = if step[a] > 0 {
                key + self.strides[a]
            } else {
                key - self.strides[a]
            };
            t_max[a] += t_delta[a];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// Points whose normal disagrees in sign with the truth.
    fn wrong(est: &[f64], truth: &[f64], d: usize) -> usize {
        est.chunks(d)
            .zip(truth.chunks(d))
            .filter(|(a, b)| dot(a, b) < 0.0)
            .count()
    }

    /// The surface of the box `[-1, 1]^2 x [-h, h]` on a grid of step `s`, with outward normals.
    fn plate(h: f64, s: f64) -> (Vec<f64>, Vec<f64>) {
        let (mut p, mut n) = (Vec::new(), Vec::new());
        let m = (2.0 / s).round() as usize;
        for i in 0..=m {
            for j in 0..=m {
                let (x, y) = (-1.0 + i as f64 * s, -1.0 + j as f64 * s);
                for z in [-h, h] {
                    p.extend([x, y, z]);
                    n.extend([0.0, 0.0, z.signum()]);
                }
            }
        }
        // The rim, one row per side at mid-height.
        for i in 0..m {
            let t = -1.0 + (i as f64 + 0.5) * s;
            for (x, y, nx, ny) in [
                (t, -1.0, 0.0, -1.0),
                (t, 1.0, 0.0, 1.0),
                (-1.0, t, -1.0, 0.0),
                (1.0, t, 1.0, 0.0),
            ] {
                p.extend([x, y, 0.0]);
                n.extend([nx, ny, 0.0]);
            }
        }
        (p, n)
    }

    #[test]
    fn orients_a_sphere_with_a_third_of_its_signs_wrong() {
        let unit = tf_testing::strategies::PointCloud::sphere(2000).coords;
        let mut nrm = unit.clone();
        for i in (0..2000).filter(|i| i % 3 == 0) {
            nrm[i * 3..i * 3 + 3].iter_mut().for_each(|x| *x = -*x);
        }
        let opts = VisibilityOrientation::default();
        let scores = visibility_scores(&unit, &unit, 3, &opts).unwrap();
        let min = scores.iter().copied().fold(f64::INFINITY, f64::min);
        // Outward rays all escape (parity even, escape 1), inward ones cross once.
        assert!(min > 0.9, "outward normals: smallest score {min}");
        let flips = orient_by_visibility(&unit, &mut nrm, 3, &opts).unwrap();
        assert_eq!(flips, 667);
        assert_eq!(wrong(&nrm, &unit, 3), 0);
    }

    #[test]
    fn tells_the_faces_of_a_thin_plate_apart_where_the_winding_vote_cannot() {
        // Faces 0.1 apart on a grid of 0.04: the winding field of one face is cancelled by the
        // other's, a ray into the plate meets the other face at once.
        let (p, truth) = plate(0.05, 0.04);
        let n = p.len() / 3;
        let start: Vec<f64> = truth
            .chunks(3)
            .enumerate()
            .flat_map(|(i, v)| {
                let s = if (i * 7919) % 5 < 2 { -1.0 } else { 1.0 };
                v.iter().map(move |x| s * x).collect::<Vec<_>>()
            })
            .collect();
        let before = wrong(&start, &truth, 3);
        assert!(before > n / 3, "{before} of {n} wrong to start with");
        let mut rays = start.clone();
        orient_by_visibility(&p, &mut rays, 3, &VisibilityOrientation::default()).unwrap();
        let after = wrong(&rays, &truth, 3);
        assert!(after * 100 <= n, "visibility: {after} of {n} still wrong");
        let mut winding = start;
        crate::orient_by_winding(&p, &mut winding, 3, &crate::WindingOrientation::default())
            .unwrap();
        let w = wrong(&winding, &truth, 3);
        assert!(
            w > 10 * after.max(1),
            "winding: {w} wrong, visibility: {after}"
        );
    }

    #[test]
    fn a_noisy_sphere_is_still_oriented() {
        use rand::SeedableRng;
        use rand_distr::{Distribution, StandardNormal};
        let unit = tf_testing::strategies::PointCloud::sphere(3000).coords;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        // Noise of about a third of the spacing (0.065 for 3,000 points on the unit sphere).
        let noisy: Vec<f64> = unit
            .iter()
            .map(|v| {
                let e: f64 = StandardNormal.sample(&mut rng);
                v + 0.02 * e
            })
            .collect();
        let mut nrm: Vec<f64> = unit.iter().map(|v| -v).collect();
        orient_by_visibility(&noisy, &mut nrm, 3, &VisibilityOrientation::default()).unwrap();
        let w = wrong(&nrm, &unit, 3);
        assert!(w * 100 <= 3000, "{w} of 3000 wrong");
    }

    #[test]
    fn rejects_bad_input_and_passes_over_tiny_clouds() {
        let opts = VisibilityOrientation::default();
        let (p, n) = plate(0.05, 0.2);
        let mut bad = p.clone();
        bad[4] = f64::INFINITY;
        assert!(visibility_scores(&bad, &n, 3, &opts).is_err());
        assert!(visibility_scores(&p, &n[..n.len() - 3], 3, &opts).is_err());
        assert!(visibility_scores(&p, &n, 1, &opts).is_err());
        let silly = VisibilityOrientation { splat: 0.0, ..opts };
        assert!(visibility_scores(&p, &n, 3, &silly).is_err());
        // Fewer points than neighbours: no opinion, nothing flips.
        let mut few = n[..15].to_vec();
        assert_eq!(
            orient_by_visibility(&p[..15], &mut few, 3, &opts).unwrap(),
            0
        );
        // A far outlier neither blows up the grid nor changes the others' votes much.
        let mut far = p.clone();
        far.extend([1e3, 0.0, 0.0]);
        let mut far_n = n.clone();
        far_n.extend([1.0, 0.0, 0.0]);
        let with = visibility_scores(&far, &far_n, 3, &opts).unwrap();
        let without = visibility_scores(&p, &n, 3, &opts).unwrap();
        let same = with
            .iter()
            .zip(&without)
            .filter(|(a, b)| (*a > &0.0) == (*b > &0.0))
            .count();
        assert_eq!(same, without.len());
        // Zero normals score 0.
        let zero = vec![0.0; n.len()];
        assert!(visibility_scores(&p, &zero, 3, &opts)
            .unwrap()
            .iter()
            .all(|&s| s == 0.0));
    }

    proptest! {
        #![proptest_config(tf_testing::config(12))]

        /// The grid walk finds exactly the splats that testing every splat finds: listing a
        /// splat only in the cells its disc meets, skipping empty cells and testing a splat
        /// once per ray lose no crossing (d from 2 to 4; random discs, some isolated by the
        /// radius cap, and rays from every point in random directions).
        #[test]
        fn grid_walk_finds_the_splats_a_test_of_every_splat_finds(
            d in 2usize..=4,
            seed in tf_testing::strategies::seed(),
            n in 20usize..200,
        ) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let points: Vec<f64> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut normals: Vec<f64> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
            // Some normals along an axis: their discs lie in a plane of the grid.
            for i in (0..n).step_by(5) {
                let row = &mut normals[i * d..(i + 1) * d];
                row.iter_mut().for_each(|v| *v = 0.0);
                row[i % d] = 1.0;
            }
            let mut spacing: Vec<f64> = (0..n).map(|_| rng.random_range(0.05..0.4)).collect();
            // A few isolated points, whose splats the grid caps at MAX_SPLAT median radii.
            for i in (0..n).step_by(17) {
                spacing[i] = 3.0;
            }
            let grid = SplatGrid::new(&points, &normals, &spacing, d, 0.7);
            // The same splats, one by one: the radii as the grid caps them.
            let mut sorted: Vec<f64> = spacing.iter().map(|s| 0.7 * s).collect();
            sorted.sort_by(f64::total_cmp);
            let cap = MAX_SPLAT * sorted[n / 2];
            let mut ray = Ray::new(d, n);
            let mut hits = Vec::new();
            for i in 0..n {
                let x = &points[i * d..(i + 1) * d];
                let u: Vec<f64> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
                let l = dot(&u, &u).sqrt();
                if l < 1e-3 {
                    continue;
                }
                ray.u.iter_mut().zip(&u).for_each(|(a, b)| *a = b / l);
                let skip = 0.01;
                grid.cast(i, x, skip, &mut ray, &mut hits);
                let mut found = hits.clone();
                found.sort_by(f64::total_cmp);
                let mut expected = Vec::new();
                for j in (0..n).filter(|&j| j != i) {
                    let nj = &normals[j * d..(j + 1) * d];
                    let len = dot(nj, nj).sqrt();
                    let nj: Vec<f64> = nj.iter().map(|v| v / len).collect();
                    let xj = &points[j * d..(j + 1) * d];
                    let (mut den, mut num) = (0.0, 0.0);
                    for a in 0..d {
                        den += ray.u[a] * nj[a];
                        num += (xj[a] - x[a]) * nj[a];
                    }
                    if den.abs() < 1e-3 {
                        continue;
                    }
                    let t = num / den;
                    if t <= skip {
                        continue;
                    }
                    let q2: f64 = (0..d).map(|a| (x[a] + t * ray.u[a] - xj[a]).powi(2)).sum();
                    let r = (0.7 * spacing[j]).min(cap);
                    if q2 < r * r {
                        expected.push(t);
                    }
                }
                expected.sort_by(f64::total_cmp);
                prop_assert_eq!(&found, &expected, "d = {}, ray from point {}", d, i);
            }
        }

        /// The scores of a moved, scaled cloud with its normals moved are the original scores
        /// (rotations and reflections, any d from 2 to 4, translation, scale).
        #[test]
        fn scores_are_invariant_under_similarity_transforms(
            d in 2usize..=4,
            seed in tf_testing::strategies::seed(),
            scale in 0.1f64..10.0,
        ) {
            use rand::{Rng, SeedableRng};
            let n = 300;
            let cloud = tf_testing::strategies::PointCloud::uniform(d, n, seed).coords;
            // A surface: each point pushed onto the unit sphere, with a random-signed normal.
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 1);
            let (mut p, mut nrm) = (Vec::new(), Vec::new());
            for x in cloud.chunks(d) {
                let l = dot(x, x).sqrt().max(1e-9);
                let s = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                p.extend(x.iter().map(|v| v / l));
                nrm.extend(x.iter().map(|v| s * v / l));
            }
            let opts = VisibilityOrientation::default();
            let base = visibility_scores(&p, &nrm, d, &opts).unwrap();
            let mut control = 0.0f64;
            for t in tf_testing::Transform::pair(d, seed) {
                let mv = |v: &[f64], shift: bool| -> Vec<f64> {
                    v.chunks(d)
                        .flat_map(|x| {
                            (0..d)
                                .map(|r| {
                                    let y: f64 = (0..d).map(|c| t.q[r * d + c] * x[c]).sum();
                                    if shift { scale * y + t.t[r] } else { y }
                                })
                                .collect::<Vec<_>>()
                        })
                        .collect()
                };
                let moved = visibility_scores(&mv(&p, true), &mv(&nrm, false), d, &opts).unwrap();
                let err = base.iter().zip(&moved).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                prop_assert!(err < 1e-9, "d = {}, det {}: score error {}", d, t.det(), err);
                // Control: the same check on points moved without their normals (not an
                // equivariant input) must see the scores change, for at least one of the pair
                // (one element alone may fix most normals, e.g. a reflection close to one).
                let unmoved = visibility_scores(&mv(&p, true), &nrm, d, &opts).unwrap();
                control = base
                    .iter()
                    .zip(&unmoved)
                    .map(|(a, b)| (a - b).abs())
                    .fold(control, f64::max);
            }
            prop_assert!(control > 0.1, "d = {}: the check missed unmoved normals ({})", d, control);
            // On the outward unit sphere most points score positive; flipped ones negative.
            let agree = base
                .iter()
                .zip(nrm.chunks(d).zip(p.chunks(d)))
                .filter(|(s, (m, x))| (**s > 0.0) == (dot(m, x) > 0.0))
                .count();
            prop_assert!(agree * 10 >= n * 9, "d = {}: {} of {} scores agree with the truth", d, agree, n);
        }
    }
}
