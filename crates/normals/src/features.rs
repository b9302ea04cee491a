//! Input features a model can ask for, computed from a point cloud by the data pipeline.
//!
//! A model sees subsets of a shape (the training size), but some cues are best measured on the
//! whole cloud at its full density: the classical PCA normal is the prime example. Declaring the
//! feature in the model's configuration lets training, evaluation and inference all compute it
//! the same way, from the full cloud, before the subset is drawn. Every feature here is
//! O(d)-equivariant and translation invariant, with the rep [`InputFeatures::reps`] declares, so
//! a tensor-frames model stays exactly equivariant when it consumes them.

use candle_core::Result;
use serde::{Deserialize, Serialize};
use tf_group::{Parity, RepTerm, TensorReps};

use crate::normals::{pca_fit_scales, ScaleFit};
use crate::orientation::{orient_by_winding, winding_agreement, WindingOrientation};
use crate::visibility::{orient_by_visibility, visibility_scores, VisibilityOrientation};

/// Per-point features computed from the whole cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum InputFeatures {
    /// No computed features.
    #[default]
    None,
    /// The PCA fit of each point's nearest neighbours at `scales` neighbourhood sizes `k, 2k,
    /// 4k, ...`: per scale the surface variation `λ_min / Σλ` (`0n`) and the normal (`1n`),
    /// rep `Sx0n+Sx1n` (all variations first, then the normals). The first scale's normal is
    /// signed as `orient` says (away from the centroid by default) and every other scale's
    /// normal is signed to agree with it, so the estimates differ only where the neighbourhood size matters: small
    /// neighbourhoods resolve edges and thin parts, large ones average out noise, and a model
    /// can choose per point.
    ///
    /// With `confidence`, each winding pass also reports, per point, how strongly the rest of
    /// the cloud agrees with the final sign ([`winding_agreement`] at that pass's hole
    /// size; one pass for `Centroid`): invariant scalars after the variations, rep
    /// `(S+C)x0n+Sx1n` with `C` passes. They tell a model where the orientation it is given was
    /// a confident vote and where the vote abstained (cavities, inner walls, thin parts).
    ///
    /// With `offset`, each scale also reports which side of its neighbourhood the point sits
    /// on: its offset from the neighbourhood's mean along that scale's (final) normal, in units
    /// of the neighbourhood's RMS spread, as `S` more invariant scalars after the others (rep
    /// `(S+C+S)x0n+Sx1n`). Where a neighbourhood straddles both faces of a thin wall, the
    /// fitted plane runs through the wall's middle and the sign says which face the point is
    /// on, and so which way its outside lies; on a convex patch it is positive along the
    /// outward normal, in a concave one negative. It is measured at the whole cloud's density,
    /// which the model's subsets do not resolve.
    ///
    /// With `visibility`, one more invariant scalar after all the others: the
    /// [`visibility_scores`] score of the final first estimate, in `[-1, 1]`, positive
    /// where the side it points to sees out of the cloud more than the other side. The sign
    /// stays the winding vote's; where rays and winding disagree, the model decides.
    PcaNormal {
        /// Neighbours per fit at the first scale.
        k: usize,
        /// Number of scales (1 = the classical single estimate).
        #[serde(default = "one")]
        scales: usize,
        /// How the first scale's normal is signed.
        #[serde(default, skip_serializing_if = "PcaOrientation::is_centroid")]
        orient: PcaOrientation,
        /// Add the winding agreement of the final signs as scalars (see above).
        #[serde(default, skip_serializing_if = "is_false")]
        confidence: bool,
        /// Add each scale's signed offset of the point from its neighbourhood (see above).
        #[serde(default, skip_serializing_if = "is_false")]
        offset: bool,
        /// Add the rays' verdict on the final first estimate (see above).
        #[serde(default, skip_serializing_if = "is_false")]
        visibility: bool,
    },
}

/// How [`InputFeatures::PcaNormal`] signs its first normal estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PcaOrientation {
    /// Away from the cloud's centroid (wrong in concave regions and on inner walls).
    #[default]
    Centroid,
    /// Away from the centroid, then repaired by the cloud's winding number
    /// ([`orient_by_winding`] with its defaults): right on closed, densely sampled
    /// surfaces, unchanged where the vote abstains (thin sheets).
    Winding,
    /// As `Winding`, but the repair runs twice: first with a hole of
    /// [`PcaOrientation::COARSE_HOLE`] spacings, then with the default hole of one. The wide
    /// hole silences the nearby, possibly wrong, neighbours, so a wrong patch a few spacings
    /// across (a concave pocket, an inner wall) is outvoted by the distant surface; the second
    /// pass then repairs the small errors the coarse one leaves near edges and thin parts.
    WindingCoarse,
    /// As `WindingCoarse`, then signed by the rays the cloud lets out
    /// ([`orient_by_visibility`] with its defaults) wherever the two sides of the
    /// surface see out differently: right on thin walls and in cavities open to the outside,
    /// where the winding vote abstains or errs in patches.
    Visibility,
    /// As `Visibility`, but the rays overrule the winding vote only where their score's
    /// magnitude exceeds [`PcaOrientation::VISIBILITY_MARGIN`]. On an open surface (a sheet, a
    /// cone) both sides see out in part, so the rays are less decisive there, and the outside
    /// is a convention of the mesh, which the winding sign tends to match better. The bundled
    /// normal estimator's input; how it was chosen is in its model card.
    VisibilityConfident,
}

impl PcaOrientation {
    /// Hole radius, in median spacings, of `WindingCoarse`'s first pass: wide enough to outvote
    /// a wrong patch a few spacings across, small enough not to swallow thin parts.
    pub const COARSE_HOLE: f64 = 4.0;

    /// Score magnitude above which `VisibilityConfident` lets the rays overrule the winding
    /// vote, chosen on validation shapes (never the test split): larger margins favour dense
    /// smooth scans and cost thin parts.
    pub const VISIBILITY_MARGIN: f64 = 0.2;

    /// The rays' settings after the winding passes, if the rays sign the estimate at all.
    fn rays(&self) -> Option<VisibilityOrientation> {
        match self {
            Self::Visibility => Some(VisibilityOrientation::default()),
            Self::VisibilityConfident => Some(VisibilityOrientation {
                margin: Self::VISIBILITY_MARGIN,
                ..Default::default()
            }),
            _ => None,
        }
    }

    fn is_centroid(&self) -> bool {
        *self == Self::Centroid
    }
}

fn one() -> usize {
    1
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl PcaOrientation {
    /// The winding passes that sign the first estimate, in order.
    fn passes(&self) -> Vec<WindingOrientation> {
        let fine = WindingOrientation::default();
        match self {
            Self::Centroid => vec![],
            Self::Winding => vec![fine],
            Self::WindingCoarse | Self::Visibility | Self::VisibilityConfident => vec![
                WindingOrientation {
                    hole: Self::COARSE_HOLE,
                    ..fine
                },
                fine,
            ],
        }
    }

    /// The fields whose agreement a `confidence` feature reports: each pass's, or the default
    /// field when there is no pass.
    fn confidence_fields(&self) -> Vec<WindingOrientation> {
        let p = self.passes();
        if p.is_empty() {
            vec![WindingOrientation::default()]
        } else {
            p
        }
    }
}

impl InputFeatures {
    /// Most PCA scales a feature may ask for (`k << 5` neighbours at the last).
    pub const MAX_PCA_SCALES: usize = 6;

    /// PCA normals over `k` neighbours at a single scale.
    pub fn pca(k: usize) -> Self {
        Self::PcaNormal {
            k,
            scales: 1,
            orient: PcaOrientation::Centroid,
            confidence: false,
            offset: false,
            visibility: false,
        }
    }

    /// PCA normals and variations over 8, 16 and 32 neighbours, the first normal signed by
    /// `orient` and the others to agree with it, no extra scalars: the bundled normal
    /// estimator's input family.
    pub fn multiscale(orient: PcaOrientation) -> Self {
        Self::PcaNormal {
            k: 8,
            scales: 3,
            orient,
            confidence: false,
            offset: false,
            visibility: false,
        }
    }

    /// The same features with the optional invariant scalars switched (see
    /// [`InputFeatures::PcaNormal`]); no change to [`InputFeatures::None`].
    pub fn with_scalars(self, confidence: bool, offset: bool, visibility: bool) -> Self {
        match self {
            Self::None => Self::None,
            Self::PcaNormal {
                k, scales, orient, ..
            } => Self::PcaNormal {
                k,
                scales,
                orient,
                confidence,
                offset,
                visibility,
            },
        }
    }

    /// The same features with `k` neighbours at the first PCA scale (`2k, 4k, ...` at the
    /// others); `None` when there are no neighbourhood features to change.
    pub fn with_k(self, k: usize) -> Option<Self> {
        match self {
            Self::None => None,
            Self::PcaNormal {
                scales,
                orient,
                confidence,
                offset,
                visibility,
                ..
            } => Some(Self::PcaNormal {
                k,
                scales,
                orient,
                confidence,
                offset,
                visibility,
            }),
        }
    }

    /// Invariant scalars per point after the variations: the confidences (without
    /// `confidence`: none), then the offsets (without `offset`: none), then the visibility
    /// score (without `visibility`: none).
    fn extra_scalars(&self) -> usize {
        match self {
            Self::PcaNormal {
                orient,
                confidence,
                offset,
                visibility,
                scales,
                ..
            } => {
                let c = if *confidence {
                    orient.confidence_fields().len()
                } else {
                    0
                };
                c + if *offset { *scales } else { 0 } + usize::from(*visibility)
            }
            _ => 0,
        }
    }

    /// The rep of the features (empty for none): the invariant scalars, then one `1n` normal
    /// estimate per scale.
    pub fn reps(&self) -> TensorReps {
        let term = |mul, order| RepTerm {
            mul,
            order,
            parity: Parity::Normal,
        };
        match *self {
            Self::None => TensorReps::empty(),
            Self::PcaNormal { scales, .. } => TensorReps::from_terms(vec![
                term(scales + self.extra_scalars(), 0),
                term(scales, 1),
            ]),
        }
    }

    /// True when there is something to compute.
    pub fn is_some(&self) -> bool {
        !matches!(self, Self::None)
    }

    /// The normal estimates within a feature row, if any: the column of the first `1n` vector
    /// and how many `1n` vectors follow it contiguously (a normal head can refine them).
    pub fn estimates(&self) -> Option<(usize, usize)> {
        match *self {
            Self::None => None,
            Self::PcaNormal { scales, .. } => Some((scales + self.extra_scalars(), scales)),
        }
    }

    /// Width of a feature row in dimension `d`.
    pub fn dim(&self, d: usize) -> usize {
        match *self {
            Self::None => 0,
            Self::PcaNormal { scales, .. } => scales * (1 + d) + self.extra_scalars(),
        }
    }

    /// Clouds larger than this cast their rays (and take their winding votes) on a fixed-seed
    /// subsample of this many points, and every other point takes the sign of a nearby sample
    /// on its own surface: the votes stay linear in the number of points (see
    /// [`compute_with`](Self::compute_with)).
    pub const VOTE_POINTS: usize = 50_000;

    /// The features of `points (n * d)`, row-major `(n, dim(d))`, votes capped at
    /// [`VOTE_POINTS`](Self::VOTE_POINTS).
    pub fn compute(&self, points: &[f64], d: usize) -> Result<Vec<f64>> {
        self.compute_with(points, d, Self::VOTE_POINTS)
    }

    /// The same features with at most `vote_points` points casting rays and taking winding
    /// votes. A ray walks the cloud's grid until it leaves, a number of cells that grows with
    /// the density, so on dense clouds the rays alone grow faster than linearly; above the cap
    /// the orientation votes run on a subsample (its indices drawn with a fixed seed, so the
    /// choice does not depend on the pose) at the subsample's density, and each other point
    /// then signs its estimate to agree with the sample among its 8 nearest that lies most
    /// nearly in its own tangent plane (so a point on one face of a thin wall follows its
    /// own face, not the other). The PCA fits always use every point. Clouds at or below the
    /// cap are computed exactly as without it.
    pub fn compute_with(&self, points: &[f64], d: usize, vote_points: usize) -> Result<Vec<f64>> {
        match *self {
            Self::None => Ok(Vec::new()),
            Self::PcaNormal {
                k,
                scales,
                orient,
                confidence,
                offset,
                visibility,
            } => {
                if scales == 0 || scales > Self::MAX_PCA_SCALES {
                    candle_core::bail!(
                        "PCA features need 1 to {} scales, got {scales}",
                        Self::MAX_PCA_SCALES
                    );
                }
                let n = points.len() / d.max(1);
                // Small clouds cap the larger neighbourhoods at the whole cloud. One neighbour
                // search serves every scale (the smaller neighbourhoods are its prefixes).
                let ks: Vec<usize> = (0..scales)
                    .map(|s| {
                        if s == 0 {
                            k
                        } else {
                            (k << s).min(n.saturating_sub(1)).max(k)
                        }
                    })
                    .collect();
                let mut clock = Stages::start(n);
                let mut fits = pca_fit_scales(points, d, &ks, offset)?;
                clock.done("pca");
                let sample = VoteSample::new(points, &fits[0].normals, d, vote_points)?;
                sample.sign(points, &mut fits[0].normals, d, orient)?;
                clock.done("winding and rays");
                // Measured on the final signs, so every field judges the same orientation.
                let agreement = if confidence {
                    orient
                        .confidence_fields()
                        .iter()
                        .map(|opts| winding_agreement(points, &fits[0].normals, d, opts))
                        .collect::<Result<Vec<_>>>()?
                } else {
                    Vec::new()
                };
                clock.done("agreement");
                let (first, rest) = fits.split_at_mut(1);
                for fit in rest {
                    align(&mut fit.normals, &first[0].normals, d);
                }
                let side = |fit: &ScaleFit, i: usize| -> f64 {
                    let r = i * d..(i + 1) * d;
                    fit.offset[r.clone()]
                        .iter()
                        .zip(&fit.normals[r])
                        .map(|(a, b)| a * b)
                        .sum()
                };
                // Measured on the final signs too, so the score is odd in the estimate's sign.
                let seen = if visibility {
                    sample.scores(points, &first[0].normals, d)?
                } else {
                    Vec::new()
                };
                clock.done("visibility score");
                let mut out = Vec::with_capacity(n * self.dim(d));
                for i in 0..n {
                    out.extend(fits.iter().map(|f| f.variation[i]));
                    out.extend(agreement.iter().map(|a| a[i]));
                    if offset {
                        out.extend(fits.iter().map(|f| side(f, i)));
                    }
                    out.extend(seen.get(i));
                    for f in &fits {
                        out.extend_from_slice(&f.normals[i * d..(i + 1) * d]);
                    }
                }
                Ok(out)
            }
        }
    }
}

/// Where the orientation votes of a cloud are taken: every point, or a subsample of at most
/// `cap` points that every other point follows.
struct VoteSample {
    /// Sorted sample indices, and for every point the sample (an index into them) it follows;
    /// `None` when every point votes.
    sample: Option<(Vec<usize>, Vec<usize>)>,
}

impl VoteSample {
    /// Seed of the subsample: a fixed choice of indices, the same in every pose.
    const SEED: u64 = 0x766f_7465;
    /// Nearest samples among which each point chooses the one to follow.
    const CANDIDATES: usize = 8;

    /// The subsample of a cloud whose PCA normals (directions; their signs do not matter)
    /// are `normals`. Each point follows, among its [`CANDIDATES`](Self::CANDIDATES) nearest
    /// samples, the one nearest in the metric `|delta|^2 + 4 (delta . n)^2`, which prefers
    /// samples in the point's tangent plane (its own face of a thin wall); a sample follows
    /// itself. Invariant: distances and dot products only.
    fn new(points: &[f64], normals: &[f64], d: usize, cap: usize) -> Result<Self> {
        use rand::seq::index::sample;
        use rand::SeedableRng;
        use rayon::prelude::*;
        let k = Self::CANDIDATES;
        let n = points.len() / d.max(1);
        if n <= cap.max(k) {
            return Ok(Self { sample: None });
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(Self::SEED);
        let mut idx = sample(&mut rng, n, cap.max(k)).into_vec();
        idx.sort_unstable();
        let dev = candle_core::Device::Cpu;
        let src = candle_core::Tensor::from_vec(rows(points, &idx, d), (idx.len(), d), &dev)?;
        let all = candle_core::Tensor::from_slice(points, (n, d), &dev)?;
        let edges = tf_graphs::knn_neighbors(&src, None, &all, None, k)?
            .to_dtype(candle_core::DType::U32)?;
        let (s, q) = (
            edges.get(0)?.to_vec1::<u32>()?,
            edges.get(1)?.to_vec1::<u32>()?,
        );
        // The edges come grouped by query: each query's candidates are one contiguous run.
        let mut starts = vec![0usize; n + 1];
        q.iter().for_each(|&q| starts[q as usize + 1] += 1);
        for i in 0..n {
            starts[i + 1] += starts[i];
        }
        let mut follow: Vec<usize> = (0..n)
            .into_par_iter()
            .map(|i| {
                let (p, nrm) = (&points[i * d..(i + 1) * d], &normals[i * d..(i + 1) * d]);
                let cost = |c: usize| {
                    let x = &points[idx[c] * d..(idx[c] + 1) * d];
                    let (mut r2, mut along) = (0.0, 0.0);
                    for a in 0..d {
                        let delta = x[a] - p[a];
                        r2 += delta * delta;
                        along += delta * nrm[a];
                    }
                    r2 + 4.0 * along * along
                };
                s[starts[i]..starts[i + 1]]
                    .iter()
                    .map(|&c| c as usize)
                    .min_by(|&a, &b| cost(a).total_cmp(&cost(b)).then(a.cmp(&b)))
                    .unwrap_or(0)
            })
            .collect();
        for (pos, &i) in idx.iter().enumerate() {
            follow[i] = pos;
        }
        Ok(Self {
            sample: Some((idx, follow)),
        })
    }

    /// Signs `normals` by the winding passes and rays of `orient`, on the sample if there is
    /// one: every point then agrees in sign with the sample it follows.
    fn sign(
        &self,
        points: &[f64],
        normals: &mut [f64],
        d: usize,
        orient: PcaOrientation,
    ) -> Result<()> {
        let passes = orient.passes();
        let rays = orient.rays();
        if passes.is_empty() && rays.is_none() {
            return Ok(());
        }
        let vote = |p: &[f64], n: &mut [f64]| -> Result<()> {
            for opts in &passes {
                orient_by_winding(p, n, d, opts)?;
            }
            if let Some(r) = &rays {
                orient_by_visibility(p, n, d, r)?;
            }
            Ok(())
        };
        let Some((idx, follow)) = &self.sample else {
            return vote(points, normals);
        };
        let mut voted = rows(normals, idx, d);
        vote(&rows(points, idx, d), &mut voted)?;
        align(normals, &rows(&voted, follow, d), d);
        Ok(())
    }

    /// The rays' scores of the (final) `normals`, taken on the sample if there is one: a point
    /// gets its followed sample's score, times the sign of their normals' agreement (the
    /// score is odd in the normal's sign).
    fn scores(&self, points: &[f64], normals: &[f64], d: usize) -> Result<Vec<f64>> {
        let rays = VisibilityOrientation::default();
        let Some((idx, follow)) = &self.sample else {
            return visibility_scores(points, normals, d, &rays);
        };
        let sampled = rows(normals, idx, d);
        let seen = visibility_scores(&rows(points, idx, d), &sampled, d, &rays)?;
        Ok(follow
            .iter()
            .zip(normals.chunks(d))
            .map(|(&c, n)| {
                let dot: f64 = n
                    .iter()
                    .zip(&sampled[c * d..(c + 1) * d])
                    .map(|(a, b)| a * b)
                    .sum();
                if dot < 0.0 {
                    -seen[c]
                } else {
                    seen[c]
                }
            })
            .collect())
    }
}

/// Rows `idx` of the row-major `(_, d)` array `v`, in that order.
fn rows(v: &[f64], idx: &[usize], d: usize) -> Vec<f64> {
    idx.iter()
        .flat_map(|&i| v[i * d..(i + 1) * d].iter().copied())
        .collect()
}

/// Debug-level timings of the feature stages (`RUST_LOG=tf_normals=debug`): where a dense
/// cloud's time goes.
struct Stages {
    n: usize,
    last: std::time::Instant,
}

impl Stages {
    fn start(n: usize) -> Self {
        Self {
            n,
            last: std::time::Instant::now(),
        }
    }

    fn done(&mut self, stage: &str) {
        let now = std::time::Instant::now();
        tracing::debug!(
            stage,
            points = self.n,
            seconds = (now - self.last).as_secs_f64(),
            "input features"
        );
        self.last = now;
    }
}

/// Signs each normal to agree with the reference normal of the same point (an invariant
/// choice: the sign of a dot product), so multi-scale estimates share one orientation.
fn align(normals: &mut [f64], reference: &[f64], d: usize) {
    for (n, r) in normals.chunks_mut(d).zip(reference.chunks(d)) {
        if n.iter().zip(r).map(|(a, b)| a * b).sum::<f64>() < 0.0 {
            n.iter_mut().for_each(|v| *v = -*v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use tf_group::orthogonal::haar_orthogonal_host;

    #[test]
    fn pca_features_are_equivariant_and_translation_invariant() {
        // An ellipsoid, moved by a random reflection/rotation and offset.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let n = 500;
        // The unit sphere's lattice with axes scaled by 2, 1 and 0.5.
        let pts: Vec<f64> = tf_testing::strategies::PointCloud::sphere(n)
            .coords
            .chunks(3)
            .flat_map(|p| [2.0 * p[0], p[1], 0.5 * p[2]])
            .collect();
        let q = loop {
            let q = haar_orthogonal_host(3, &mut rng);
            let det = q[0] * (q[4] * q[8] - q[5] * q[7]) - q[1] * (q[3] * q[8] - q[5] * q[6])
                + q[2] * (q[3] * q[7] - q[4] * q[6]);
            if det < 0.0 {
                break q; // a reflection: the harder case
            }
        };
        let t = [3.0, -1.0, 0.25];
        let mut moved = Vec::with_capacity(pts.len());
        for p in pts.chunks(3) {
            for r in 0..3 {
                moved.push((0..3).map(|c| q[r * 3 + c] * p[c]).sum::<f64>() + t[r]);
            }
        }
        for spec in [
            InputFeatures::pca(12),
            InputFeatures::PcaNormal {
                k: 6,
                scales: 3,
                orient: PcaOrientation::Centroid,
                confidence: false,
                offset: false,
                visibility: false,
            },
            InputFeatures::PcaNormal {
                k: 6,
                scales: 3,
                orient: PcaOrientation::Winding,
                confidence: false,
                offset: false,
                visibility: false,
            },
            InputFeatures::PcaNormal {
                k: 6,
                scales: 3,
                orient: PcaOrientation::WindingCoarse,
                confidence: false,
                offset: false,
                visibility: false,
            },
            InputFeatures::PcaNormal {
                k: 6,
                scales: 2,
                orient: PcaOrientation::Centroid,
                confidence: true,
                offset: false,
                visibility: false,
            },
            InputFeatures::PcaNormal {
                k: 6,
                scales: 3,
                orient: PcaOrientation::WindingCoarse,
                confidence: true,
                offset: false,
                visibility: false,
            },
            InputFeatures::PcaNormal {
                k: 6,
                scales: 2,
                orient: PcaOrientation::Centroid,
                confidence: false,
                offset: true,
                visibility: false,
            },
            InputFeatures::PcaNormal {
                k: 6,
                scales: 3,
                orient: PcaOrientation::WindingCoarse,
                confidence: true,
                offset: true,
                visibility: false,
            },
            InputFeatures::PcaNormal {
                k: 6,
                scales: 3,
                orient: PcaOrientation::Visibility,
                confidence: false,
                offset: false,
                visibility: false,
            },
            InputFeatures::PcaNormal {
                k: 6,
                scales: 2,
                orient: PcaOrientation::Visibility,
                confidence: true,
                offset: true,
                visibility: false,
            },
            InputFeatures::PcaNormal {
                k: 6,
                scales: 2,
                orient: PcaOrientation::VisibilityConfident,
                confidence: false,
                offset: false,
                visibility: true,
            },
            InputFeatures::PcaNormal {
                k: 6,
                scales: 3,
                orient: PcaOrientation::WindingCoarse,
                confidence: true,
                offset: true,
                visibility: true,
            },
        ] {
            // Every point voting, and the votes on a subsample of 200 that the rest follow.
            for cap in [InputFeatures::VOTE_POINTS, 200] {
                let f = spec.compute_with(&pts, 3, cap).unwrap();
                let w = spec.dim(3);
                assert_eq!(f.len(), n * w);
                let (offset, count) = spec.estimates().unwrap();
                assert_eq!(offset + 3 * count, w);
                let g = spec.compute_with(&moved, 3, cap).unwrap();
                let mut err: f64 = 0.0;
                for (a, b) in f.chunks(w).zip(g.chunks(w)) {
                    // Variations are invariant, normals rotate with Q.
                    for c in 0..offset {
                        err = err.max((a[c] - b[c]).abs());
                    }
                    for (va, vb) in a[offset..].chunks(3).zip(b[offset..].chunks(3)) {
                        for r in 0..3 {
                            let qa: f64 = (0..3).map(|c| q[r * 3 + c] * va[c]).sum();
                            err = err.max((qa - vb[r]).abs());
                        }
                    }
                    // Every scale's normal agrees in sign with the first one.
                    for v in a[offset + 3..].chunks(3) {
                        let dot: f64 = (0..3).map(|c| v[c] * a[offset + c]).sum();
                        assert!(dot >= 0.0, "scales disagree in sign: {dot}");
                    }
                }
                assert!(err < 1e-9, "equivariance error {err}");
                // Coincident points: finite features with zero normals.
                let same = vec![1.0; 30];
                let h = spec.compute(&same, 3).unwrap();
                assert!(h.iter().all(|v| v.is_finite()));
                assert!(h.chunks(w).all(|r| r[offset..].iter().all(|v| *v == 0.0)));
            }
        }
        let bad = InputFeatures::PcaNormal {
            k: 6,
            scales: 0,
            orient: PcaOrientation::Centroid,
            confidence: false,
            offset: false,
            visibility: false,
        };
        assert!(bad.compute(&pts, 3).is_err());
    }

    /// Votes on a subsample: the same signs as every point voting nearly everywhere on a
    /// densely sampled closed surface, and exactly the same features at or below the cap.
    #[test]
    fn capped_votes_follow_the_full_votes() {
        let mut pts = Vec::new();
        for a in 0..120 {
            for b in 0..40 {
                let (u, v) = (
                    std::f64::consts::TAU * a as f64 / 120.0,
                    std::f64::consts::TAU * (b as f64 + 0.5 * (a % 2) as f64) / 40.0,
                );
                let ring = 1.0 + 0.4 * v.cos();
                pts.extend([ring * u.cos(), ring * u.sin(), 0.4 * v.sin()]);
            }
        }
        let n = pts.len() / 3;
        let spec = InputFeatures::multiscale(PcaOrientation::VisibilityConfident);
        let full = spec.compute_with(&pts, 3, n).unwrap();
        assert_eq!(full, spec.compute_with(&pts, 3, n + 1).unwrap());
        let capped = spec.compute_with(&pts, 3, n / 4).unwrap();
        let (offset, _) = spec.estimates().unwrap();
        let w = spec.dim(3);
        let agree = full
            .chunks(w)
            .zip(capped.chunks(w))
            .filter(|(a, b)| (0..3).map(|c| a[offset + c] * b[offset + c]).sum::<f64>() > 0.0)
            .count();
        assert!(
            agree as f64 >= 0.99 * n as f64,
            "{agree} of {n} signs agree"
        );
        // And the signs are right (outward on the torus) for nearly all points.
        let outward = capped
            .chunks(w)
            .zip(pts.chunks(3))
            .filter(|(f, p)| {
                let ring = (p[0] * p[0] + p[1] * p[1]).sqrt();
                let c = [p[0] / ring, p[1] / ring, 0.0];
                (0..3).map(|k| f[offset + k] * (p[k] - c[k])).sum::<f64>() > 0.0
            })
            .count();
        assert!(
            outward as f64 >= 0.99 * n as f64,
            "{outward} of {n} outward"
        );
    }

    #[test]
    fn winding_orientation_signs_the_first_estimate_and_the_rest_follow() {
        // The winding repair's own behaviour is tested in `orientation`; here: the feature is
        // exactly that repair applied to the first scale, and the other scales follow it.
        // A noisy torus (radii 1 and 0.4).
        let mut pts = Vec::new();
        for a in 0..60 {
            for b in 0..30 {
                let (u, v) = (
                    std::f64::consts::TAU * a as f64 / 60.0,
                    std::f64::consts::TAU * (b as f64 + 0.5 * (a % 2) as f64) / 30.0,
                );
                let ring = 1.0 + 0.4 * v.cos();
                let jitter = 0.01 * (((a * 31 + b * 17) % 7) as f64 - 3.0);
                pts.extend([ring * u.cos(), ring * u.sin() + jitter, 0.4 * v.sin()]);
            }
        }
        let spec = |orient| InputFeatures::PcaNormal {
            k: 8,
            scales: 2,
            orient,
            confidence: false,
            offset: false,
            visibility: false,
        };
        let (w, n) = (spec(PcaOrientation::Centroid).dim(3), 1800);
        let plain = spec(PcaOrientation::Centroid).compute(&pts, 3).unwrap();
        let signed = spec(PcaOrientation::Winding).compute(&pts, 3).unwrap();
        let first =
            |f: &[f64]| -> Vec<f64> { f.chunks(w).flat_map(|r| r[2..5].to_vec()).collect() };
        let mut expected = first(&plain);
        orient_by_winding(&pts, &mut expected, 3, &Default::default()).unwrap();
        assert_eq!(first(&signed), expected);
        // Coarse to fine: the same repair with a wide hole first.
        let coarse = spec(PcaOrientation::WindingCoarse)
            .compute(&pts, 3)
            .unwrap();
        let mut expected = first(&plain);
        let wide = WindingOrientation {
            hole: PcaOrientation::COARSE_HOLE,
            ..Default::default()
        };
        orient_by_winding(&pts, &mut expected, 3, &wide).unwrap();
        orient_by_winding(&pts, &mut expected, 3, &Default::default()).unwrap();
        assert_eq!(first(&coarse), expected);
        // Visibility: the coarse-to-fine repair, then the ray vote.
        let seen = spec(PcaOrientation::Visibility).compute(&pts, 3).unwrap();
        let mut rays = expected.clone();
        orient_by_visibility(&pts, &mut rays, 3, &Default::default()).unwrap();
        assert_eq!(first(&seen), rays);
        for (a, b) in coarse.chunks(w).zip(seen.chunks(w)) {
            assert_eq!(a[..2], b[..2]);
            assert!((0..3).map(|c| b[2 + c] * b[5 + c]).sum::<f64>() >= 0.0);
        }
        // Confident visibility: the same rays overrule the winding sign only beyond the
        // margin, and here they do somewhere (the inner third, see below).
        let sure = spec(PcaOrientation::VisibilityConfident)
            .compute(&pts, 3)
            .unwrap();
        // The rays' score of the winding signs, also checked as a feature column below.
        let score = visibility_scores(&pts, &expected, 3, &Default::default()).unwrap();
        let mut flipped = expected.clone();
        for (v, s) in flipped.chunks_mut(3).zip(&score) {
            if *s < -PcaOrientation::VISIBILITY_MARGIN {
                v.iter_mut().for_each(|x| *x = -*x);
            }
        }
        assert_ne!(flipped, expected);
        assert_eq!(first(&sure), flipped);
        // The visibility score: one more scalar after the variations, measured on the final
        // (winding) signs, which it leaves alone.
        let scored = InputFeatures::PcaNormal {
            k: 8,
            scales: 2,
            orient: PcaOrientation::WindingCoarse,
            confidence: false,
            offset: false,
            visibility: true,
        };
        assert_eq!(scored.reps().to_string(), "3x0n+2x1n");
        assert_eq!(scored.estimates(), Some((3, 2)));
        let f = scored.compute(&pts, 3).unwrap();
        for ((a, b), s) in coarse.chunks(w).zip(f.chunks(w + 1)).zip(&score) {
            assert_eq!(a[..2], b[..2]);
            assert_eq!(a[2..], b[3..]);
            assert_eq!(b[2], *s);
        }
        // The score is positive exactly where the winding sign is outward: here the winding
        // vote leaves the inner third of the torus inside out (centroid-signed PCA points in
        // there, and the region is too large for the vote to repair), and the rays say so.
        let outward = |i: usize| -> bool {
            let (x, y) = (pts[3 * i], pts[3 * i + 1]);
            let r = x.hypot(y);
            let centre_out = [x - x / r, y - y / r, pts[3 * i + 2]];
            (0..3)
                .map(|a| centre_out[a] * expected[3 * i + a])
                .sum::<f64>()
                > 0.0
        };
        let inside_out = (0..n).filter(|&i| !outward(i)).count();
        assert!(inside_out > n / 4, "{inside_out} winding signs wrong");
        let right = (0..n).filter(|&i| (score[i] > 0.0) == outward(i)).count();
        assert_eq!(right, n, "the score is right at {right} of {n} points");
        for (a, b) in plain.chunks(w).zip(signed.chunks(w)) {
            // Variations are unchanged; the second scale agrees in sign with the first.
            assert_eq!(a[..2], b[..2]);
            assert!((0..3).map(|c| b[2 + c] * b[5 + c]).sum::<f64>() >= 0.0);
        }
        assert_eq!(signed.len(), n * w);
        // With confidence: the same columns, plus each pass's agreement with the final signs
        // after the variations.
        let scored = InputFeatures::PcaNormal {
            k: 8,
            scales: 2,
            orient: PcaOrientation::WindingCoarse,
            confidence: true,
            offset: false,
            visibility: false,
        };
        assert_eq!(scored.reps().to_string(), "4x0n+2x1n");
        assert_eq!(scored.estimates(), Some((4, 2)));
        let f = scored.compute(&pts, 3).unwrap();
        let ws = scored.dim(3);
        assert_eq!(f.len(), n * ws);
        let signs: Vec<f64> = f.chunks(ws).flat_map(|r| r[4..7].to_vec()).collect();
        assert_eq!(signs, expected);
        for (pass, opts) in [wide, Default::default()].iter().enumerate() {
            let a = winding_agreement(&pts, &expected, 3, opts).unwrap();
            let got: Vec<f64> = f.chunks(ws).map(|r| r[2 + pass]).collect();
            assert_eq!(got, a);
            // A closed torus after the repair: the field agrees with most signs (tangential
            // terms cancel, so agreement stays well below 1; the jitter leaves some doubt).
            let mean = a.iter().sum::<f64>() / n as f64;
            let agree = a.iter().filter(|v| **v > 0.0).count();
            assert!(mean > 0.4, "pass {pass}: mean agreement {mean}");
            assert!(agree > n * 85 / 100, "pass {pass}: {agree} of {n} agree");
        }
        for (a, b) in coarse.chunks(w).zip(f.chunks(ws)) {
            assert_eq!(a[..2], b[..2]);
            assert_eq!(a[2..], b[4..]);
        }
    }

    #[test]
    fn offsets_tell_the_faces_of_a_thin_wall_apart() {
        // Two parallel unit squares 0.02 apart (a wall whose faces are closer than the
        // neighbourhoods are wide), the lower face sampled with a half-cell shift.
        let (m, gap) = (30, 0.02);
        let mut pts = Vec::new();
        for face in 0..2 {
            let shift = 0.5 * face as f64 / m as f64;
            for a in 0..m {
                for b in 0..m {
                    let (x, y) = (a as f64 / m as f64 + shift, b as f64 / m as f64 + shift);
                    pts.extend([x, y, if face == 0 { gap } else { 0.0 }]);
                }
            }
        }
        let spec = InputFeatures::PcaNormal {
            k: 8,
            scales: 2,
            orient: PcaOrientation::Centroid,
            confidence: false,
            offset: true,
            visibility: false,
        };
        assert_eq!(spec.reps().to_string(), "4x0n+2x1n");
        assert_eq!(spec.estimates(), Some((4, 2)));
        let w = spec.dim(3);
        assert_eq!(w, 10);
        let f = spec.compute(&pts, 3).unwrap();
        let plain = InputFeatures::PcaNormal {
            k: 8,
            scales: 2,
            orient: PcaOrientation::Centroid,
            confidence: false,
            offset: false,
            visibility: false,
        };
        let g = plain.compute(&pts, 3).unwrap();
        let n = 2 * m * m;
        let mut sides = 0;
        for (i, (r, q)) in f.chunks(w).zip(g.chunks(plain.dim(3))).enumerate() {
            // The other columns are those of the features without offsets.
            assert_eq!(r[..2], q[..2]);
            assert_eq!(r[4..], q[2..]);
            for s in 0..2 {
                // The offset is the point's distance from its neighbourhood's mean along
                // this scale's normal, in units of the neighbourhood's spread.
                let nrm = &r[4 + 3 * s..7 + 3 * s];
                let o = r[2 + s];
                assert!(o.is_finite() && o.abs() < 3.0, "offset {o}");
                // Pointing the normal away from the wall's middle makes the offset positive:
                // the offset's sign names the face. Upper face: +z outward, lower: -z.
                let outward = if i < m * m { nrm[2] } else { -nrm[2] };
                if nrm[2].abs() > 0.99 && o.abs() > 0.05 {
                    assert_eq!(o > 0.0, outward > 0.0, "point {i}, scale {s}: {o}");
                    sides += 1;
                }
            }
        }
        // Most neighbourhoods straddle both faces (edges of the squares excepted).
        assert!(
            sides > n,
            "only {sides} of {} fits straddle the wall",
            2 * n
        );
    }
}
