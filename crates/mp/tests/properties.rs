//! Every shipped layer, end to end (global in -> global out) with learned frames, is
//! O(d)-equivariant in d = 2..=6 for both determinant signs, in f64, with tensorial and scalar
//! messages; with identity frames the same test detects the broken equivariance.
#![allow(clippy::unwrap_used)]

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use proptest::prelude::*;
use tf_frames::{FrameBuilder, IdentityFrames, LearnedFrames, LearnedFramesConfig};
use tf_group::TensorReps;
use tf_mp::{LayerNet, LAYER_NAMES};
use tf_testing::strategies::{self, features, PointCloud};
use tf_testing::{
    config, equivariance_error, prop_assert_equivariant, reseed_varmap, Declared, Kind, Transform,
};

const TOL: f64 = 1e-9;

fn net(
    d: usize,
    layer: &str,
    in_reps: &TensorReps,
    out_reps: &TensorReps,
    learned: bool,
    seed: u64,
) -> LayerNet {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    let frames: Box<dyn FrameBuilder> = if learned {
        Box::new(LearnedFrames::new(LearnedFramesConfig::new(d, 1.5), vb.pp("frames")).unwrap())
    } else {
        Box::new(IdentityFrames)
    };
    let hidden = TensorReps::parse("4x0n+2x1n+1x1p+1x2n").unwrap();
    let n = LayerNet::new(d, frames, layer, in_reps, &hidden, out_reps, d + 3, vb).unwrap();
    reseed_varmap(&vm, seed, 0.4).unwrap();
    n
}

#[derive(Debug, Clone)]
struct Case {
    d: usize,
    cloud: PointCloud,
    in_reps: TensorReps,
    out_reps: TensorReps,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        strategies::dim(),
        strategies::reps(2, 3, 2),
        strategies::reps(2, 3, 2),
        strategies::seed(),
    )
        .prop_flat_map(|(d, i, o, s)| {
            (
                Just(d),
                strategies::point_cloud(d, 2 * d + 4..=24),
                Just(i),
                Just(o),
                Just(s),
            )
        })
        .prop_map(|(d, cloud, in_reps, out_reps, seed)| Case {
            d,
            cloud,
            in_reps,
            out_reps,
            seed,
        })
}

proptest! {
    #![proptest_config(config(16))]

    #[test]
    fn every_layer_is_equivariant_end_to_end(c in case()) {
        let pos = c.cloud.tensor(DType::F64, &Device::Cpu).unwrap();
        let x = features(c.cloud.len(), c.in_reps.dim(c.d), c.seed, DType::F64, &Device::Cpu).unwrap();
        for &name in LAYER_NAMES {
            let m = net(c.d, name, &c.in_reps, &c.out_reps, true, c.seed);
            prop_assert_equivariant(
                &[(Kind::Positions, pos.clone()), (Kind::Features(c.in_reps.clone()), x.clone())],
                &[Declared::new(name, Kind::Features(c.out_reps.clone()))],
                |xs| Ok(vec![m.forward(&xs[0], &xs[1])?.0]),
                c.d, c.seed, TOL,
            )?;
        }
    }

    #[test]
    fn identity_frames_break_equivariance(c in case()) {
        // Output must carry some non-scalar part for rotations to matter at all.
        let out = c.out_reps.concat(&TensorReps::vectors(1));
        let pos = c.cloud.tensor(DType::F64, &Device::Cpu).unwrap();
        let x = features(c.cloud.len(), c.in_reps.dim(c.d), c.seed, DType::F64, &Device::Cpu).unwrap();
        for &name in LAYER_NAMES {
            let m = net(c.d, name, &c.in_reps, &out, false, c.seed);
            let g = Transform::random(c.d, c.seed, -1.0);
            let r = equivariance_error(
                &[(Kind::Positions, pos.clone()), (Kind::Features(c.in_reps.clone()), x.clone())],
                &[Declared::new(name, Kind::Features(out.clone()))],
                |xs| Ok(vec![m.forward(&xs[0], &xs[1])?.0]),
                &g,
            ).unwrap();
            prop_assert!(r.max_rel_error() > 1e-3, "identity frames passed: {}", r);
        }
    }
}

#[test]
fn spot_check_in_seven_dimensions() {
    let d = 7;
    let reps = TensorReps::parse("2x0n+1x1n+1x1p").unwrap();
    let pos = PointCloud::uniform(d, 30, 1)
        .tensor(DType::F64, &Device::Cpu)
        .unwrap();
    let x = features(30, reps.dim(d), 2, DType::F64, &Device::Cpu).unwrap();
    for &name in LAYER_NAMES {
        let m = net(d, name, &reps, &reps, true, 3);
        for g in Transform::pair(d, 4) {
            let r = equivariance_error(
                &[
                    (Kind::Positions, pos.clone()),
                    (Kind::Features(reps.clone()), x.clone()),
                ],
                &[Declared::new(name, Kind::Features(reps.clone()))],
                |xs| Ok(vec![m.forward(&xs[0], &xs[1])?.0]),
                &g,
            )
            .unwrap();
            assert!(r.max_rel_error() <= TOL, "{r}");
        }
    }
}

#[test]
fn gradients_are_finite_on_degenerate_input_and_reach_every_weight() {
    let d = 3;
    let reps = TensorReps::parse("2x0n+1x1n").unwrap();
    // duplicates plus a collinear tail
    let pts = [
        0.0f64, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.3, 0.2, 0.9,
    ];
    let pos = Var::from_tensor(&Tensor::from_slice(&pts, (6, 3), &Device::Cpu).unwrap()).unwrap();
    let x = features(6, reps.dim(d), 1, DType::F64, &Device::Cpu).unwrap();
    for &name in LAYER_NAMES {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
        let frames = Box::new(
            LearnedFrames::new(LearnedFramesConfig::new(d, 1.5), vb.pp("frames")).unwrap(),
        );
        let m = LayerNet::new(d, frames, name, &reps, &reps, &reps, 3, vb).unwrap();
        reseed_varmap(&vm, 5, 0.4).unwrap();
        let (y, degenerate) = m.forward(pos.as_tensor(), &x).unwrap();
        assert!(degenerate > 0, "{name}: degenerate frames not reported");
        let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let gp = grads
            .get(pos.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        assert!(gp.iter().all(|v| v.is_finite()), "{name}: {gp:?}");
        for (vname, var) in vm.data().lock().unwrap().iter() {
            let g = grads.get(var.as_tensor());
            let g = g.unwrap_or_else(|| panic!("{name}: no gradient for {vname}"));
            let vals = g.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            assert!(vals.iter().all(|v| v.is_finite()), "{name}/{vname}");
            assert!(
                vals.iter().any(|v| *v != 0.0),
                "{name}/{vname}: zero gradient"
            );
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let d = 3;
    let reps = TensorReps::parse("1x0n+1x1n").unwrap();
    let m = net(d, "edgeconv", &reps, &reps, true, 1);
    let pos = PointCloud::uniform(d, 10, 1)
        .tensor(DType::F64, &Device::Cpu)
        .unwrap();
    let wrong_width = features(10, 5, 1, DType::F64, &Device::Cpu).unwrap();
    assert!(m.forward(&pos, &wrong_width).is_err());
    let nan = Tensor::full(f64::NAN, (10, 3), &Device::Cpu).unwrap();
    let x = features(10, reps.dim(d), 1, DType::F64, &Device::Cpu).unwrap();
    assert!(m
        .forward(&nan, &x)
        .unwrap_err()
        .to_string()
        .contains("not finite"));
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    assert!(tf_mp::builtin_layer("nope", d, &reps, vb)
        .unwrap_err()
        .to_string()
        .contains("unknown layer"));
}
