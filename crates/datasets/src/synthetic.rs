//! The embedded synthetic dataset: procedurally generated 3D shapes with exact normals, class
//! labels and part labels, deterministic from a seed. It is what the quick experiments run on.
//!
//! Ten classes, each with random parameters per shape:
//!
//! | class | shape | parts |
//! |---|---|---|
//! | 0 sphere | superellipsoid, equal axes, p = 2 | one part |
//! | 1 ellipsoid | superellipsoid, random axes, p = 2 | band / tips of the longest axis |
//! | 2 rounded box | superellipsoid, random axes, p in [3, 6] | flat faces / rounded edges |
//! | 3 box | cuboid, distinct side lengths | long, middle, short face pairs |
//! | 4 cylinder | capped cylinder | side / caps |
//! | 5 cone | capped cone | lateral / base |
//! | 6 torus | torus | outer / inner half |
//! | 7 capsule | cylinder + two spheres (union) | body / caps |
//! | 8 dumbbell | two spheres + thin cylinder (union) | ends / bar |
//! | 9 table | slab + four legs (union) | top / legs |
//!
//! Every part label is defined by the shape's own geometry (extents, curvature, pieces), never
//! by its pose, so an invariant model can recover it: a label that only a canonical pose
//! reveals (say, the sign of z on a shape symmetric in z) would cap every equivariant model's
//! score. The labels are invariant under each shape's mirror symmetries (tested).
//!
//! Points are area-uniform on each primitive (rejection sampling where the area element is not
//! constant); in unions, points inside another piece are dropped, so every point lies on the
//! union's surface with that surface's exact outward normal.
//!
//! How it differs from ModelNet40: 10 simple classes instead of 40 CAD categories, closed
//! surfaces without scanning or meshing artefacts, exact normals (ModelNet40's come from meshes
//! that are not always consistently oriented), canonical orientation up to the random
//! parameters, and any number of shapes.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::shape::Shape;

/// Changes whenever the generator draws different shapes or labels from the same seed, so that
/// caches keyed by a data configuration (training runs, run summaries) are not reused across
/// versions. 2: part labels by geometry (ellipsoid tips, rounded-box faces, box faces by size).
pub const GENERATOR_VERSION: u32 = 2;

/// Number of classes of the synthetic set.
pub const SYNTHETIC_CLASSES: usize = 10;

/// Class names, by label.
pub const SYNTHETIC_CLASS_NAMES: [&str; SYNTHETIC_CLASSES] = [
    "sphere",
    "ellipsoid",
    "rounded_box",
    "box",
    "cylinder",
    "cone",
    "torus",
    "capsule",
    "dumbbell",
    "table",
];

/// Which part of the dataset a shape belongs to (different seeds, so the splits never share a
/// shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Training shapes.
    Train,
    /// Test shapes.
    Test,
}

/// The generator: `shapes_per_class` shapes of each class per split, `points` points each.
#[derive(Debug, Clone, PartialEq)]
pub struct Synthetic {
    /// Shapes of each class in each split.
    pub shapes_per_class: usize,
    /// Points per shape.
    pub points: usize,
    /// Standard deviation of Gaussian position noise (0 for exact surfaces).
    pub noise: f64,
    /// Strength of a random smooth deformation of every shape, in `[0, 1)` (0: none). See
    /// [`Warp`]: it gives each class a continuum of shapes, so that a model's error keeps
    /// falling with more training shapes instead of saturating at a few per class.
    pub warp: f64,
    /// Seed of the whole dataset.
    pub seed: u64,
}

impl Synthetic {
    /// Number of shapes in a split.
    pub fn len(&self) -> usize {
        self.shapes_per_class * SYNTHETIC_CLASSES
    }

    /// True if the split is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shape `index` of a split (class `index % 10`), normalised into the unit ball.
    pub fn shape(&self, split: Split, index: usize) -> Shape {
        let label = (index % SYNTHETIC_CLASSES) as u32;
        let salt = match split {
            Split::Train => 0x7472_6169_6e00_0000u64,
            Split::Test => 0x7465_7374_0000_0000u64,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.seed ^ salt ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        let pieces = pieces(label, &mut rng);
        let mut shape = sample_union(&pieces, self.points, label, &mut rng);
        // Drawn after the shape, and only when asked for, so that unwarped sets are the same
        // shapes as before the option existed.
        if self.warp > 0.0 {
            Warp::draw(self.warp, &mut rng).apply(&mut shape);
        }
        if self.noise > 0.0 {
            for v in shape.points.iter_mut() {
                let e: f64 = StandardNormal.sample(&mut rng);
                *v += self.noise * e;
            }
        }
        shape.normalize();
        shape
    }
}

/// A random smooth deformation `x -> x + sum_k a_k u_k sin(w_k . x + c_k)` of four modes,
/// with unit directions `u_k`, wave vectors `w_k` of length 1.5 to 3 (about one wavelength
/// across a shape) and amplitudes with `sum_k a_k |w_k| <= strength < 1`. That bound keeps
/// the Jacobian `J = I + sum_k a_k cos(..) u_k w_k^T` within distance `strength` of the identity,
/// so the map is a diffeomorphism that keeps orientation, and normals map exactly as
/// `cof(J) n` (the cofactor matrix, `det(J) J^-T`). Points move off area-uniform sampling by the
/// local area change (at most a factor `(1 +- strength)^2`); part labels stay those of the
/// undeformed piece.
#[derive(Debug, Clone, PartialEq)]
pub struct Warp {
    modes: Vec<([f64; 3], [f64; 3], f64, f64)>,
}

impl Warp {
    /// Four random modes of total strength `strength` (clamped to `[0, 0.95]`).
    pub fn draw(strength: f64, rng: &mut impl Rng) -> Self {
        let strength = strength.clamp(0.0, 0.95);
        let k = 4;
        let modes = (0..k)
            .map(|_| {
                let u = unit_vector(rng);
                let f = rng.random_range(1.5..3.0);
                let w = unit_vector(rng).map(|x| f * x);
                let c = rng.random_range(0.0..std::f64::consts::TAU);
                // Each mode takes at most its share of the strength budget.
                let a = strength / k as f64 / f * rng.random_range(0.5..1.0);
                (u, w, a, c)
            })
            .collect();
        Warp { modes }
    }

    /// The deformed position of `x` and the Jacobian there (row-major).
    pub fn map(&self, x: [f64; 3]) -> ([f64; 3], [[f64; 3]; 3]) {
        let mut y = x;
        let mut j = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        for (u, w, a, c) in &self.modes {
            let phase = w[0] * x[0] + w[1] * x[1] + w[2] * x[2] + c;
            let (sin, cos) = phase.sin_cos();
            for r in 0..3 {
                y[r] += a * u[r] * sin;
                for col in 0..3 {
                    j[r][col] += a * cos * u[r] * w[col];
                }
            }
        }
        (y, j)
    }

    /// Deforms a shape's points and maps its normals with the cofactor matrix.
    pub fn apply(&self, shape: &mut Shape) {
        for (p, n) in shape
            .points
            .chunks_exact_mut(3)
            .zip(shape.normals.chunks_exact_mut(3))
        {
            let (y, j) = self.map([p[0], p[1], p[2]]);
            p.copy_from_slice(&y);
            // Columns of J, and cof(J) n = sum_i n_i (c_{i+1} x c_{i+2}).
            let col = |i: usize| [j[0][i], j[1][i], j[2][i]];
            let mut m = [0.0; 3];
            for (i, ni) in n.iter().enumerate() {
                let x = cross(col((i + 1) % 3), col((i + 2) % 3));
                for (mr, xr) in m.iter_mut().zip(x) {
                    *mr += ni * xr;
                }
            }
            n.copy_from_slice(&normalized(m));
        }
    }
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// One primitive of a shape, with the part label its points get.
#[derive(Debug, Clone)]
enum Piece {
    /// `|x/a|^p + |y/b|^p + |z/c|^p = 1` around `center`.
    Superellipsoid {
        center: [f64; 3],
        axes: [f64; 3],
        p: f64,
        part: PartRule,
        bound: f64,
    },
    /// Axis-aligned box with half extents `half`.
    /// An axis-aligned box; its faces get the part of their axis (0, 1, 2) unless `part` says.
    Cuboid {
        center: [f64; 3],
        half: [f64; 3],
        part: Option<u32>,
    },
    /// Cylinder along `axis` (0, 1 or 2) with caps.
    Cylinder {
        center: [f64; 3],
        axis: usize,
        radius: f64,
        half_height: f64,
        side_part: u32,
        cap_part: u32,
    },
    /// Cone along z, apex up, base at `center.z - half_height`.
    Cone {
        center: [f64; 3],
        radius: f64,
        half_height: f64,
    },
    /// Torus around z.
    Torus { major: f64, minor: f64 },
}

/// How a superellipsoid assigns parts to its points.
#[derive(Debug, Clone, Copy)]
enum PartRule {
    /// `k` on the band around the longest axis (axis 0), `k + 1` on the tips beyond 70% of its
    /// half-length.
    Tips(u32),
    /// `k` where the surface is flat (the normal within about 18 degrees of an axis), `k + 1` on
    /// the rounded edges and corners.
    Flat(u32),
    /// One part for the whole piece.
    Whole(u32),
}

fn uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    rng.random_range(lo..hi)
}

fn pieces(label: u32, rng: &mut ChaCha8Rng) -> Vec<Piece> {
    let o = [0.0; 3];
    match label {
        0 => {
            let r = uniform(rng, 0.6, 1.0);
            vec![se(o, [r; 3], 2.0, PartRule::Whole(0), rng)]
        }
        1 => {
            let axes = [
                uniform(rng, 0.8, 1.2),
                uniform(rng, 0.4, 0.7),
                uniform(rng, 0.2, 0.4),
            ];
            vec![se(o, axes, 2.0, PartRule::Tips(0), rng)]
        }
        2 => {
            let axes = [
                uniform(rng, 0.6, 1.0),
                uniform(rng, 0.5, 0.9),
                uniform(rng, 0.4, 0.8),
            ];
            let p = uniform(rng, 3.0, 6.0);
            vec![se(o, axes, p, PartRule::Flat(0), rng)]
        }
        // Distinct side lengths, so "the long faces" are a property of the box, not of its pose.
        3 => vec![Piece::Cuboid {
            center: o,
            half: [
                uniform(rng, 0.75, 1.0),
                uniform(rng, 0.45, 0.65),
                uniform(rng, 0.15, 0.35),
            ],
            part: None,
        }],
        4 => vec![Piece::Cylinder {
            center: o,
            axis: 2,
            radius: uniform(rng, 0.3, 0.6),
            half_height: uniform(rng, 0.5, 1.0),
            side_part: 0,
            cap_part: 1,
        }],
        5 => vec![Piece::Cone {
            center: o,
            radius: uniform(rng, 0.4, 0.8),
            half_height: uniform(rng, 0.5, 1.0),
        }],
        6 => {
            let major = uniform(rng, 0.6, 0.9);
            vec![Piece::Torus {
                major,
                minor: uniform(rng, 0.15, 0.35).min(0.6 * major),
            }]
        }
        7 => {
            let (r, h) = (uniform(rng, 0.25, 0.45), uniform(rng, 0.4, 0.8));
            vec![
                Piece::Cylinder {
                    center: o,
                    axis: 2,
                    radius: r,
                    half_height: h,
                    side_part: 0,
                    cap_part: 0,
                },
                se([0.0, 0.0, h], [r; 3], 2.0, PartRule::Whole(1), rng),
                se([0.0, 0.0, -h], [r; 3], 2.0, PartRule::Whole(1), rng),
            ]
        }
        8 => {
            let (r, l) = (uniform(rng, 0.3, 0.45), uniform(rng, 0.6, 0.9));
            let bar = uniform(rng, 0.08, 0.15);
            vec![
                se([-l, 0.0, 0.0], [r; 3], 2.0, PartRule::Whole(0), rng),
                se([l, 0.0, 0.0], [r; 3], 2.0, PartRule::Whole(0), rng),
                Piece::Cylinder {
                    center: o,
                    axis: 0,
                    radius: bar,
                    half_height: l,
                    side_part: 1,
                    cap_part: 1,
                },
            ]
        }
        _ => {
            let (w, dpt, h) = (
                uniform(rng, 0.7, 1.0),
                uniform(rng, 0.4, 0.7),
                uniform(rng, 0.4, 0.7),
            );
            let t = uniform(rng, 0.04, 0.08);
            let leg = uniform(rng, 0.05, 0.09);
            let mut v = vec![Piece::Cuboid {
                center: [0.0, 0.0, h],
                half: [w, dpt, t],
                part: Some(0),
            }];
            for (sx, sy) in [(1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)] {
                v.push(Piece::Cylinder {
                    center: [sx * (w - 2.0 * leg), sy * (dpt - 2.0 * leg), 0.0],
                    axis: 2,
                    radius: leg,
                    half_height: h - t,
                    side_part: 1,
                    cap_part: 1,
                });
            }
            v
        }
    }
}

/// A superellipsoid piece with its rejection bound: 1.5 times the largest area weight seen over
/// 512 random directions, so acceptance probabilities stay below one.
fn se(center: [f64; 3], axes: [f64; 3], p: f64, part: PartRule, rng: &mut ChaCha8Rng) -> Piece {
    let max = (0..512)
        .map(|_| area_weight(unit_vector(rng), axes, p))
        .fold(0.0f64, f64::max);
    let extremes = (0..3).map(|i| axes[i] * axes[i]).fold(0.0f64, f64::max);
    Piece::Superellipsoid {
        center,
        axes,
        p,
        part,
        bound: 1.5 * max.max(extremes),
    }
}

fn unit_vector(rng: &mut impl Rng) -> [f64; 3] {
    loop {
        let v: [f64; 3] = [
            StandardNormal.sample(rng),
            StandardNormal.sample(rng),
            StandardNormal.sample(rng),
        ];
        let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        if n > 1e-9 {
            return [v[0] / n, v[1] / n, v[2] / n];
        }
    }
}

fn add(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

fn normalized(v: [f64; 3]) -> [f64; 3] {
    let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    [v[0] / n, v[1] / n, v[2] / n]
}

/// Superellipsoid level function `sum |x_i / a_i|^p` (1 on the surface, < 1 inside).
fn se_level(p: [f64; 3], axes: [f64; 3], e: f64) -> f64 {
    (0..3).map(|i| (p[i] / axes[i]).abs().powf(e)).sum()
}

/// A point on the superellipsoid in direction `u` from its centre, and the outward normal.
fn se_point(u: [f64; 3], axes: [f64; 3], e: f64) -> ([f64; 3], [f64; 3]) {
    let r = se_level(u, axes, e).powf(-1.0 / e);
    let x = [r * u[0], r * u[1], r * u[2]];
    let g = [0, 1, 2]
        .map(|i| (x[i] / axes[i]).signum() * (x[i] / axes[i]).abs().powf(e - 1.0) / axes[i]);
    (x, normalized(g))
}

/// Area element of the radial map from the unit sphere onto a superellipsoid: `r^2 / (n . u)`.
fn area_weight(u: [f64; 3], axes: [f64; 3], e: f64) -> f64 {
    let (x, n) = se_point(u, axes, e);
    let r2 = x[0] * x[0] + x[1] * x[1] + x[2] * x[2];
    r2 / (n[0] * u[0] + n[1] * u[1] + n[2] * u[2]).max(1e-9)
}

impl Piece {
    /// Approximate surface area, for splitting points between pieces.
    fn area(&self, rng: &mut ChaCha8Rng) -> f64 {
        use std::f64::consts::PI;
        match *self {
            // Monte Carlo estimate of 4 pi E[r^2 / (n . u)] over directions u.
            Piece::Superellipsoid { axes, p, .. } => {
                let m = 256;
                let s: f64 = (0..m).map(|_| area_weight(unit_vector(rng), axes, p)).sum();
                4.0 * PI * s / m as f64
            }
            Piece::Cuboid { half: h, .. } => 8.0 * (h[0] * h[1] + h[1] * h[2] + h[0] * h[2]),
            Piece::Cylinder {
                radius: r,
                half_height: h,
                ..
            } => 2.0 * PI * r * (2.0 * h) + 2.0 * PI * r * r,
            Piece::Cone {
                radius: r,
                half_height: h,
                ..
            } => PI * r * (r * r + 4.0 * h * h).sqrt() + PI * r * r,
            Piece::Torus { major, minor } => 4.0 * PI * PI * major * minor,
        }
    }

    /// True if `q` is strictly inside this piece (with a small margin so surface points of
    /// touching pieces are not dropped twice).
    fn contains(&self, q: [f64; 3]) -> bool {
        let eps = 1e-9;
        match *self {
            Piece::Superellipsoid {
                center, axes, p, ..
            } => {
                se_level(
                    [q[0] - center[0], q[1] - center[1], q[2] - center[2]],
                    axes,
                    p,
                ) < 1.0 - eps
            }
            Piece::Cuboid { center, half, .. } => {
                (0..3).all(|i| (q[i] - center[i]).abs() < half[i] - eps)
            }
            Piece::Cylinder {
                center,
                axis,
                radius,
                half_height,
                ..
            } => {
                let (a, b) = ((axis + 1) % 3, (axis + 2) % 3);
                let rr = (q[a] - center[a]).powi(2) + (q[b] - center[b]).powi(2);
                rr < (radius - eps).powi(2) && (q[axis] - center[axis]).abs() < half_height - eps
            }
            Piece::Cone {
                center,
                radius,
                half_height,
            } => {
                let z = q[2] - center[2] + half_height; // 0 at the base, 2h at the apex
                let rad = radius * (1.0 - z / (2.0 * half_height));
                z > eps
                    && rad > eps
                    && (q[0] - center[0]).powi(2) + (q[1] - center[1]).powi(2) < (rad - eps).powi(2)
            }
            Piece::Torus { major, minor } => {
                let rho = (q[0] * q[0] + q[1] * q[1]).sqrt() - major;
                rho * rho + q[2] * q[2] < (minor - eps).powi(2)
            }
        }
    }

    /// One area-uniform sample: point, outward normal, part.
    fn sample(&self, rng: &mut ChaCha8Rng) -> ([f64; 3], [f64; 3], u32) {
        use std::f64::consts::PI;
        match *self {
            Piece::Superellipsoid {
                center,
                axes,
                p,
                part,
                bound,
            } => {
                // Rejection: accept direction u with probability proportional to the area
                // element of the radial map.
                loop {
                    let u = unit_vector(rng);
                    let w = area_weight(u, axes, p);
                    if rng.random::<f64>() * bound <= w {
                        let (x, n) = se_point(u, axes, p);
                        let part = match part {
                            PartRule::Tips(k) => k + u32::from(x[0].abs() > 0.7 * axes[0]),
                            PartRule::Flat(k) => k + u32::from(n.iter().all(|v| v.abs() < 0.95)),
                            PartRule::Whole(k) => k,
                        };
                        return (add(center, x), n, part);
                    }
                }
            }
            Piece::Cuboid { center, half, part } => {
                let areas = [half[1] * half[2], half[0] * half[2], half[0] * half[1]];
                let t = rng.random::<f64>() * (areas[0] + areas[1] + areas[2]);
                let axis = if t < areas[0] {
                    0
                } else if t < areas[0] + areas[1] {
                    1
                } else {
                    2
                };
                let side = if rng.random::<bool>() { 1.0 } else { -1.0 };
                let mut x = [0.0; 3];
                let mut n = [0.0; 3];
                for i in 0..3 {
                    x[i] = if i == axis {
                        side * half[i]
                    } else {
                        uniform(rng, -half[i], half[i])
                    };
                }
                n[axis] = side;
                (add(center, x), n, part.unwrap_or(axis as u32))
            }
            Piece::Cylinder {
                center,
                axis,
                radius,
                half_height,
                side_part,
                cap_part,
            } => {
                let (a, b) = ((axis + 1) % 3, (axis + 2) % 3);
                let side_area = 2.0 * PI * radius * 2.0 * half_height;
                let cap_area = 2.0 * PI * radius * radius;
                let mut x = [0.0; 3];
                let mut n = [0.0; 3];
                let th = uniform(rng, 0.0, 2.0 * PI);
                if rng.random::<f64>() * (side_area + cap_area) < side_area {
                    x[a] = radius * th.cos();
                    x[b] = radius * th.sin();
                    x[axis] = uniform(rng, -half_height, half_height);
                    n[a] = th.cos();
                    n[b] = th.sin();
                    (add(center, x), n, side_part)
                } else {
                    let rr = radius * rng.random::<f64>().sqrt();
                    let side = if rng.random::<bool>() { 1.0 } else { -1.0 };
                    x[a] = rr * th.cos();
                    x[b] = rr * th.sin();
                    x[axis] = side * half_height;
                    n[axis] = side;
                    (add(center, x), n, cap_part)
                }
            }
            Piece::Cone {
                center,
                radius,
                half_height,
            } => {
                let h = 2.0 * half_height;
                let slant = (radius * radius + h * h).sqrt();
                let lateral = PI * radius * slant;
                let base = PI * radius * radius;
                let th = uniform(rng, 0.0, 2.0 * PI);
                if rng.random::<f64>() * (lateral + base) < lateral {
                    // distance from the apex grows like sqrt(u) for area-uniform samples
                    let s = rng.random::<f64>().sqrt();
                    let rad = radius * s;
                    let x = [rad * th.cos(), rad * th.sin(), half_height - h * s];
                    let n = normalized([h * th.cos(), h * th.sin(), radius]);
                    (add(center, x), n, 0)
                } else {
                    let rr = radius * rng.random::<f64>().sqrt();
                    (
                        add(center, [rr * th.cos(), rr * th.sin(), -half_height]),
                        [0.0, 0.0, -1.0],
                        1,
                    )
                }
            }
            Piece::Torus { major, minor } => loop {
                let (th, ph) = (uniform(rng, 0.0, 2.0 * PI), uniform(rng, 0.0, 2.0 * PI));
                // area element (major + minor cos th)
                if rng.random::<f64>() * (major + minor) <= major + minor * th.cos() {
                    let n = [th.cos() * ph.cos(), th.cos() * ph.sin(), th.sin()];
                    let x = [
                        (major + minor * th.cos()) * ph.cos(),
                        (major + minor * th.cos()) * ph.sin(),
                        minor * th.sin(),
                    ];
                    return (x, n, u32::from(th.cos() < 0.0));
                }
            },
        }
    }
}

/// `n` points on the surface of the union of `pieces`.
fn sample_union(pieces: &[Piece], n: usize, label: u32, rng: &mut ChaCha8Rng) -> Shape {
    let areas: Vec<f64> = pieces.iter().map(|p| p.area(rng)).collect();
    let total: f64 = areas.iter().sum();
    let (mut points, mut normals, mut parts) = (
        Vec::with_capacity(3 * n),
        Vec::with_capacity(3 * n),
        Vec::with_capacity(n),
    );
    let mut attempts = 0usize;
    while parts.len() < n && attempts < 1000 * n.max(1) {
        attempts += 1;
        let mut t = rng.random::<f64>() * total;
        let k = areas.iter().position(|&a| {
            t -= a;
            t <= 0.0
        });
        let k = k.unwrap_or(pieces.len() - 1);
        let (x, nrm, part) = pieces[k].sample(rng);
        // keep only points on the union's outer surface
        if pieces
            .iter()
            .enumerate()
            .any(|(j, p)| j != k && p.contains(x))
        {
            continue;
        }
        points.extend_from_slice(&x);
        normals.extend_from_slice(&nrm);
        parts.push(part);
    }
    Shape {
        d: 3,
        points,
        normals,
        label,
        parts: Some(parts),
    }
}
