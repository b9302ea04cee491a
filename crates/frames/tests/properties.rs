//! Frame equivariance `R(Qx + t) = R(x) Q^T` for every builder in d = 2..=6 with both
//! determinant signs, in f64; the controls must fail the same test; degenerate neighbourhoods
//! give orthogonal, finite, deterministic, counted frames.
#![allow(clippy::unwrap_used)]

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use proptest::prelude::*;
use tf_frames::*;
use tf_graphs::knn_graph;
use tf_group::orthogonal::orthogonality_error;
use tf_group::{RepAction, TensorReps};
use tf_testing::strategies::{self, features, PointCloud};
use tf_testing::{
    config, equivariance_error, prop_assert_equivariant, reseed_varmap, Declared, Kind, Transform,
};

const TOL: f64 = 1e-9;

fn learned(d: usize, n_scalars: usize, seed: u64, handedness: Handedness) -> LearnedFrames {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    let mut cfg = LearnedFramesConfig::new(d, 1.5);
    cfg.n_scalars = n_scalars;
    cfg.handedness = handedness;
    let b = LearnedFrames::new(cfg, vb).unwrap();
    reseed_varmap(&vm, seed, 0.5).unwrap();
    b
}

/// Frames of `builder` for positions `xs[0]` on their own kNN graph (rebuilt from the moved
/// positions too, so graph invariance is part of what is tested); `xs[1]`, if any, are scalars.
fn frames_of(
    builder: &dyn FrameBuilder,
    k: usize,
) -> impl Fn(&[Tensor]) -> candle_core::Result<Vec<Tensor>> + '_ {
    move |xs: &[Tensor]| {
        let edges = knn_graph(&xs[0], None, k, false)?;
        let f = builder.build(&FrameInput {
            pos: &xs[0],
            edge_index: &edges,
            batch: None,
            scalars: xs.get(1),
        })?;
        Ok(vec![f.matrices().clone()])
    }
}

#[derive(Debug, Clone)]
struct Case {
    d: usize,
    cloud: PointCloud,
    seed: u64,
}

fn xs_pos(c: &Case) -> Tensor {
    c.cloud.tensor(DType::F64, &Device::Cpu).unwrap()
}

fn case() -> impl Strategy<Value = Case> {
    (strategies::dim(), strategies::seed())
        .prop_flat_map(|(d, seed)| (Just(d), strategies::point_cloud(d, 3 * d..=30), Just(seed)))
        .prop_map(|(d, cloud, seed)| Case { d, cloud, seed })
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn equivariant_builders_are_equivariant(c in case()) {
        let pos = c.cloud.tensor(DType::F64, &Device::Cpu).unwrap();
        let k = c.d + 3;
        let builders: Vec<Box<dyn FrameBuilder>> = vec![
            Box::new(learned(c.d, 0, c.seed, Handedness::Orthogonal)),
            Box::new(PcaFrames::default()),
            Box::new(NearestFrames::default()),
        ];
        for b in &builders {
            prop_assert!(b.is_equivariant());
            let err = prop_assert_equivariant(&[(Kind::Positions, pos.clone())], &[Declared::new(b.name(), Kind::Frames)], frames_of(b.as_ref(), k), c.d, c.seed, TOL)?;
            prop_assert!(err <= TOL);
        }
    }

    #[test]
    fn learned_frames_with_invariant_scalars(c in case()) {
        let pos = c.cloud.tensor(DType::F64, &Device::Cpu).unwrap();
        let s = features(c.cloud.len(), 3, c.seed, DType::F64, &Device::Cpu).unwrap();
        let b = learned(c.d, 3, c.seed, Handedness::Orthogonal);
        prop_assert_equivariant(&[(Kind::Positions, pos), (Kind::Invariant, s)], &[Declared::new("frames", Kind::Frames)], frames_of(&b, c.d + 3), c.d, c.seed, TOL)?;
    }

    /// Node vectors (two per node, with scalars) among the candidates: still equivariant.
    #[test]
    fn learned_frames_with_node_vectors(c in case()) {
        let pos = c.cloud.tensor(DType::F64, &Device::Cpu).unwrap();
        let n = c.cloud.len();
        let s = features(n, 3, c.seed, DType::F64, &Device::Cpu).unwrap();
        let u = features(n, 2 * c.d, c.seed + 1, DType::F64, &Device::Cpu).unwrap();
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
        let mut cfg = LearnedFramesConfig::new(c.d, 1.5);
        cfg.n_scalars = 3;
        cfg.n_vectors = 2;
        let b = LearnedFrames::new(cfg, vb).unwrap();
        reseed_varmap(&vm, c.seed, 0.5).unwrap();
        let k = c.d + 3;
        let run = |xs: &[Tensor]| -> candle_core::Result<Vec<Tensor>> {
            let edges = knn_graph(&xs[0], None, k, false)?;
            let input = FrameInput { pos: &xs[0], edge_index: &edges, batch: None, scalars: Some(&xs[1]) };
            let vectors = xs[2].reshape((n, 2, c.d))?;
            Ok(vec![b.build_with_vectors(&input, Some(&vectors))?.matrices().clone()])
        };
        let inputs = [(Kind::Positions, pos.clone()), (Kind::Invariant, s.clone()), (Kind::Features(TensorReps::vectors(2)), u.clone())];
        let err = prop_assert_equivariant(&inputs, &[Declared::new("frames", Kind::Frames)], run, c.d, c.seed, TOL)?;
        prop_assert!(err <= TOL);
        // The vectors matter: other vectors, other frames.
        let with = run(&[pos.clone(), s.clone(), u.clone()]).unwrap().remove(0);
        let s0 = s.clone();
        let other = run(&[pos, s, (u * 3.0).unwrap()]).unwrap().remove(0);
        let change = (with - other).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
        prop_assert!(change > 1e-6, "frames ignore the node vectors ({change})");
        // Frames built with node vectors but none given: an error, not a silent omission.
        let edges = knn_graph(&xs_pos(&c), None, k, false).unwrap();
        let pos = xs_pos(&c);
        let missing = b.build(&FrameInput { pos: &pos, edge_index: &edges, batch: None, scalars: Some(&s0) });
        prop_assert!(missing.is_err(), "built without the node vectors it needs");
    }

    #[test]
    fn special_handedness_is_rotation_equivariant_only(c in case()) {
        let pos = c.cloud.tensor(DType::F64, &Device::Cpu).unwrap();
        let b = learned(c.d, 0, c.seed, Handedness::Special);
        let [proper, improper] = Transform::pair(c.d, c.seed);
        let inputs = [(Kind::Positions, pos)];
        let out = [Declared::new("frames", Kind::Frames)];
        let ok = equivariance_error(&inputs, &out, frames_of(&b, c.d + 3), &proper).unwrap();
        prop_assert!(ok.max_rel_error() <= TOL, "{}", ok);
        let bad = equivariance_error(&inputs, &out, frames_of(&b, c.d + 3), &improper).unwrap();
        prop_assert!(bad.max_rel_error() > 0.1, "SO(d) frames cannot follow a reflection: {}", bad);
    }

    #[test]
    fn controls_fail_the_equivariance_test(c in case()) {
        let pos = c.cloud.tensor(DType::F64, &Device::Cpu).unwrap();
        let builders: Vec<Box<dyn FrameBuilder>> = vec![
            Box::new(IdentityFrames),
            Box::new(RandomFrames::new(c.seed)),
            Box::new(RandomGlobalFrames::new(c.seed)),
        ];
        for b in &builders {
            prop_assert!(!b.is_equivariant());
            for g in Transform::pair(c.d, c.seed) {
                let r = equivariance_error(&[(Kind::Positions, pos.clone())], &[Declared::new(b.name(), Kind::Frames)], frames_of(b.as_ref(), 3), &g).unwrap();
                // Identity frames miss by about how far Q is from the identity, and a Haar draw
                // can land arbitrarily close to it (one draw in d = 2 rotated by 2.7e-4 rad):
                // the threshold scales with that distance.
                let off = (0..c.d * c.d).map(|i| (g.q[i] - if i % (c.d + 1) == 0 { 1.0 } else { 0.0 }).abs()).fold(0.0, f64::max);
                prop_assert!(r.max_rel_error() > 1e-3 * off.min(1.0), "{} passed the equivariance test: {}", b.name(), r);
            }
        }
    }

    #[test]
    fn local_quantities_are_invariant(c in case(), reps in strategies::reps(2, 3, 2)) {
        // f_i = rho(R_i) F_i, R_i R_j^T and R_i (x_j - x_i) do not change under the transform.
        let pos = c.cloud.tensor(DType::F64, &Device::Cpu).unwrap();
        let feats = features(c.cloud.len(), reps.dim(c.d), c.seed, DType::F64, &Device::Cpu).unwrap();
        let b = learned(c.d, 0, c.seed, Handedness::Orthogonal);
        let rho = RepAction::new(&reps, c.d).unwrap();
        let f = |xs: &[Tensor]| {
            let edges = knn_graph(&xs[0], None, c.d + 3, false)?;
            let fr = b.build(&FrameInput { pos: &xs[0], edge_index: &edges, batch: None, scalars: None })?;
            Ok(vec![fr.to_local(&rho, &xs[1])?, fr.transitions(&edges)?, fr.local_edge_vectors(&xs[0], &edges)?])
        };
        prop_assert_equivariant(
            &[(Kind::Positions, pos), (Kind::Features(reps.clone()), feats)],
            &[Declared::new("local features", Kind::Invariant), Declared::new("transitions", Kind::Invariant), Declared::new("edge vectors", Kind::Invariant)],
            f, c.d, c.seed, TOL)?;
    }

    #[test]
    fn refinement_keeps_equivariance(c in case()) {
        let reps = TensorReps::parse("4x0n+2x1n+1x1p").unwrap();
        let pos = c.cloud.tensor(DType::F64, &Device::Cpu).unwrap();
        let feats = features(c.cloud.len(), reps.dim(c.d), c.seed, DType::F64, &Device::Cpu).unwrap();
        let b = learned(c.d, 0, c.seed, Handedness::Orthogonal);
        let vm = VarMap::new();
        let refine = FrameRefinement::new(reps.dim(c.d), 16, c.d, VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu)).unwrap();
        reseed_varmap(&vm, c.seed ^ 7, 0.5).unwrap();
        let rho = RepAction::new(&reps, c.d).unwrap();
        let f = |xs: &[Tensor]| {
            let edges = knn_graph(&xs[0], None, c.d + 3, false)?;
            let fr = b.build(&FrameInput { pos: &xs[0], edge_index: &edges, batch: None, scalars: None })?;
            let local = fr.to_local(&rho, &xs[1])?;
            let (fr2, local2) = refine.forward(&fr, &local, &rho)?;
            // refined local features are still rho(R'_i) F_i
            let again = fr2.to_local(&rho, &xs[1])?;
            Ok(vec![fr2.matrices().clone(), local2, (again - fr2.to_local(&rho, &xs[1])?)?])
        };
        prop_assert_equivariant(
            &[(Kind::Positions, pos), (Kind::Features(reps.clone()), feats)],
            &[Declared::new("refined frames", Kind::Frames), Declared::new("refined features", Kind::Invariant), Declared::new("consistency", Kind::Invariant)],
            f, c.d, c.seed, TOL)?;
    }
}

/// High dimensions: learned frames stay equivariant to 1e-9 up to d = 32 (pivoted choice of
/// candidates), and taken in order they do not (what pivoting is for).
#[test]
fn learned_frames_stay_exact_in_high_dimensions() {
    for (d, seed) in [(12, 1u64), (20, 2), (32, 3)] {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let coords: Vec<f64> = (0..64 * d).map(|_| rng.random_range(-1.0..1.0)).collect();
        let pos = Tensor::from_vec(coords, (64, d), &Device::Cpu).unwrap();
        let run = |pivot: bool| {
            let vm = VarMap::new();
            let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
            // A cutoff that spans the cloud, so every neighbour weighs in.
            let mut cfg = LearnedFramesConfig::new(d, 2.0 * (d as f64).sqrt());
            assert!(cfg.pivot, "pivoting is the default above d = 8");
            cfg.pivot = pivot;
            let b = LearnedFrames::new(cfg, vb).unwrap();
            let mut worst: f64 = 0.0;
            for t in Transform::pair(d, seed) {
                let r = equivariance_error(
                    &[(Kind::Positions, pos.clone())],
                    &[Declared::new("frames", Kind::Frames)],
                    frames_of(&b, 2 * d),
                    &t,
                )
                .unwrap();
                worst = worst.max(r.max_rel_error());
            }
            worst
        };
        let pivoted = run(true);
        assert!(pivoted <= 1e-9, "d = {d}: relative error {pivoted:.2e}");
        if d >= 20 {
            let ordered = run(false);
            assert!(
                ordered > 1e-9,
                "d = {d}: in order the error is only {ordered:.2e}"
            );
        }
    }
}

#[test]
fn refinement_re_expresses_features_consistently() {
    // f' = rho(V) f must equal rho(V R) F: the refined features are the same global features.
    let d = 3;
    let reps = TensorReps::parse("2x0n+2x1n+1x2p").unwrap();
    let pos = PointCloud::uniform(d, 20, 3)
        .tensor(DType::F64, &Device::Cpu)
        .unwrap();
    let feats = features(20, reps.dim(d), 4, DType::F64, &Device::Cpu).unwrap();
    let edges = knn_graph(&pos, None, 6, false).unwrap();
    let fr = PcaFrames::default()
        .build(&FrameInput {
            pos: &pos,
            edge_index: &edges,
            batch: None,
            scalars: None,
        })
        .unwrap();
    let vm = VarMap::new();
    let refine = FrameRefinement::new(
        reps.dim(d),
        8,
        d,
        VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu),
    )
    .unwrap();
    reseed_varmap(&vm, 1, 0.5).unwrap();
    let rho = RepAction::new(&reps, d).unwrap();
    let (fr2, local2) = refine
        .forward(&fr, &fr.to_local(&rho, &feats).unwrap(), &rho)
        .unwrap();
    let direct = fr2.to_local(&rho, &feats).unwrap();
    assert!(tf_testing::max_abs_diff(&local2, &direct).unwrap() < 1e-12);
    // and the refinement really moved the frames
    assert!(tf_testing::max_abs_diff(fr2.matrices(), fr.matrices()).unwrap() > 1e-3);
}

fn build_all(pos: &Tensor, edges: &Tensor) -> Vec<(String, LocalFrames)> {
    let d = pos.dims()[1];
    let builders: Vec<Box<dyn FrameBuilder>> = vec![
        Box::new(learned(d, 0, 1, Handedness::Orthogonal)),
        Box::new(PcaFrames::default()),
        Box::new(NearestFrames::default()),
    ];
    builders
        .iter()
        .map(|b| {
            (
                b.name().to_string(),
                b.build(&FrameInput {
                    pos,
                    edge_index: edges,
                    batch: None,
                    scalars: None,
                })
                .unwrap(),
            )
        })
        .collect()
}

#[test]
fn degenerate_neighbourhoods_fall_back_deterministically() {
    let dev = Device::Cpu;
    let collinear: Vec<[f64; 3]> = (0..8)
        .map(|i| [i as f64 * 0.1, i as f64 * 0.2, -(i as f64) * 0.1])
        .collect();
    let coplanar: Vec<[f64; 3]> = (0..9)
        .map(|i| [(i % 3) as f64, (i / 3) as f64, 0.0])
        .collect();
    let duplicates = vec![[0.5f64, 0.5, 0.5]; 6];
    let two_points = vec![[0.0f64, 0.0, 0.0], [1.0, 0.0, 0.0]];
    for (name, pts) in [
        ("collinear", collinear),
        ("coplanar", coplanar),
        ("duplicates", duplicates),
        ("too few", two_points),
    ] {
        let n = pts.len();
        let pos = Tensor::from_vec(pts.concat(), (n, 3), &dev).unwrap();
        let edges = knn_graph(&pos, None, 4, false).unwrap();
        for ((b, f1), (_, f2)) in build_all(&pos, &edges)
            .into_iter()
            .zip(build_all(&pos, &edges))
        {
            let m = f1.matrices();
            assert!(
                orthogonality_error(m).unwrap() < 1e-10,
                "{name}/{b}: not orthogonal"
            );
            assert_eq!(
                m.to_vec3::<f64>().unwrap(),
                f2.matrices().to_vec3::<f64>().unwrap(),
                "{name}/{b}: not deterministic"
            );
            assert!(f1.degenerate() > 0, "{name}/{b}: fallback not counted");
            assert!(f1.degenerate() <= f1.len());
        }
    }
}

#[test]
fn learned_frames_have_finite_gradients_on_degenerate_input() {
    let dev = Device::Cpu;
    // duplicates and a collinear tail: every degenerate case at once
    let pts = [
        [0.0f64, 0.0, 0.0],
        [0.0, 0.0, 0.0],
        [1.0, 0.0, 0.0],
        [2.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 1.0, 0.0],
    ];
    let pos = Var::from_tensor(&Tensor::from_vec(pts.concat(), (6, 3), &dev).unwrap()).unwrap();
    let edges = knn_graph(pos.as_tensor(), None, 3, false).unwrap();
    let b = learned(3, 0, 2, Handedness::Orthogonal);
    let fr = b
        .build(&FrameInput {
            pos: pos.as_tensor(),
            edge_index: &edges,
            batch: None,
            scalars: None,
        })
        .unwrap();
    assert!(fr.degenerate() > 0);
    let w = features(6, 9, 3, DType::F64, &dev)
        .unwrap()
        .reshape((6, 3, 3))
        .unwrap();
    let loss = (fr.matrices() * w).unwrap().sum_all().unwrap();
    let g = loss.backward().unwrap();
    let g = g.get(pos.as_tensor()).expect("positions get a gradient");
    let vals = g.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    assert!(vals.iter().all(|v| v.is_finite()), "{vals:?}");
}

#[test]
fn bad_inputs_are_errors() {
    let dev = Device::Cpu;
    let pos = Tensor::new(&[[0.0f64, f64::NAN, 0.0]], &dev).unwrap();
    let edges = Tensor::zeros((2, 0), DType::U32, &dev).unwrap();
    let input = FrameInput {
        pos: &pos,
        edge_index: &edges,
        batch: None,
        scalars: None,
    };
    assert!(PcaFrames::default()
        .build(&input)
        .unwrap_err()
        .to_string()
        .contains("not finite"));
    let pos = Tensor::new(&[[0.0f64], [1.0]], &dev).unwrap();
    let input = FrameInput {
        pos: &pos,
        edge_index: &edges,
        batch: None,
        scalars: None,
    };
    assert!(NearestFrames::default().build(&input).is_err());
    let pos = Tensor::new(&[[0.0f64, 0.0, 0.0], [1.0, 0.0, 0.0]], &dev).unwrap();
    let bad_edges = Tensor::new(&[[0u32], [7]], &dev).unwrap();
    let input = FrameInput {
        pos: &pos,
        edge_index: &bad_edges,
        batch: None,
        scalars: None,
    };
    assert!(NearestFrames::default().build(&input).is_err());
    // learned frames of the wrong dimension, and missing scalars
    let b = learned(2, 0, 1, Handedness::Orthogonal);
    let edges = knn_graph(&pos, None, 1, false).unwrap();
    assert!(b
        .build(&FrameInput {
            pos: &pos,
            edge_index: &edges,
            batch: None,
            scalars: None
        })
        .is_err());
    let b = learned(3, 2, 1, Handedness::Orthogonal);
    assert!(b
        .build(&FrameInput {
            pos: &pos,
            edge_index: &edges,
            batch: None,
            scalars: None
        })
        .is_err());
}

/// Points on the faces of a box: every neighbourhood away from the edges is flat, so the local
/// vectors alone cannot orient the frames; the centroid offset must (no global axes, exact
/// equivariance including reflections).
#[test]
fn learned_frames_on_flat_faces_stay_equivariant() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let half = [0.9, 0.6, 0.4];
    let mut pts = Vec::new();
    for i in 0..180 {
        let axis = i % 3;
        let sign = if (i / 3) % 2 == 0 { 1.0 } else { -1.0 };
        let mut p = [0.0f64; 3];
        for (a, v) in p.iter_mut().enumerate() {
            *v = if a == axis {
                sign * half[a]
            } else {
                rng.random_range(-half[a]..half[a])
            };
        }
        pts.extend(p);
    }
    let pos = Tensor::from_vec(pts, (180, 3), &Device::Cpu).unwrap();
    for seed in 0..3u64 {
        let b = learned(3, 0, seed, Handedness::Orthogonal);
        let edges = knn_graph(&pos, None, 8, false).unwrap();
        let fr = b
            .build(&FrameInput {
                pos: &pos,
                edge_index: &edges,
                batch: None,
                scalars: None,
            })
            .unwrap();
        assert_eq!(fr.degenerate(), 0, "global axes used on a box");
        for g in Transform::pair(3, seed) {
            let r = equivariance_error(
                &[(Kind::Positions, pos.clone())],
                &[Declared::new("frames", Kind::Frames)],
                frames_of(&b, 8),
                &g,
            )
            .unwrap();
            assert!(r.max_rel_error() < TOL, "box frames: {r:?}");
        }
    }
}
