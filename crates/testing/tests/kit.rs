//! The kit itself: transforms act as declared, and the check detects non-equivariant functions.
#![allow(clippy::unwrap_used)]

use candle_core::{DType, Device, Tensor};
use tf_group::TensorReps;
use tf_testing::strategies::{features, PointCloud};
use tf_testing::{equivariance_error, max_abs_diff, Declared, Kind, Transform};

#[test]
fn pair_covers_both_determinant_signs() {
    for d in 2..=6 {
        let [p, m] = Transform::pair(d, 42);
        assert!((p.det() - 1.0).abs() < 1e-12);
        assert!((m.det() + 1.0).abs() < 1e-12);
    }
}

#[test]
fn detects_a_function_that_is_not_equivariant() {
    // Adding a fixed vector breaks rotation equivariance of positions; the check must say so.
    let x = PointCloud::uniform(3, 10, 1)
        .tensor(DType::F64, &Device::Cpu)
        .unwrap();
    let shift = Tensor::new(&[[1.0f64, 0.0, 0.0]], &Device::Cpu).unwrap();
    for g in Transform::pair(3, 5) {
        let report = equivariance_error(
            &[(Kind::Positions, x.clone())],
            &[Declared::new("shifted", Kind::Positions)],
            |xs| Ok(vec![xs[0].broadcast_add(&shift)?]),
            &g,
        )
        .unwrap();
        assert!(report.max_rel_error() > 1e-2, "{report}");
        assert!(report.to_string().contains("shifted"));
    }
}

#[test]
fn detects_a_wrong_parity_declaration() {
    // A pseudovector declared as an ordinary vector passes rotations but fails reflections.
    let reps = TensorReps::parse("1x1n").unwrap();
    let v = features(4, 3, 2, DType::F64, &Device::Cpu).unwrap();
    let [proper, improper] = Transform::pair(3, 9);
    let pseudo = |xs: &[Tensor]| -> candle_core::Result<Vec<Tensor>> {
        // x -> det-sensitive output: the cross product of the first two rows, per row repeated
        let a = xs[0].narrow(0, 0, 1)?.flatten_all()?.to_vec1::<f64>()?;
        let b = xs[0].narrow(0, 1, 1)?.flatten_all()?.to_vec1::<f64>()?;
        let c = [
            a[1] * b[2] - a[2] * b[1],
            a[2] * b[0] - a[0] * b[2],
            a[0] * b[1] - a[1] * b[0],
        ];
        Ok(vec![Tensor::new(&[c], &Device::Cpu)?])
    };
    let inputs = [(Kind::Features(reps.clone()), v)];
    let outputs = [Declared::new("cross", Kind::Features(reps))];
    let ok = equivariance_error(&inputs, &outputs, pseudo, &proper).unwrap();
    assert!(ok.max_rel_error() < 1e-12, "{ok}");
    let bad = equivariance_error(&inputs, &outputs, pseudo, &improper).unwrap();
    assert!(bad.max_rel_error() > 0.5, "{bad}");
}

#[test]
fn frames_transform_by_right_multiplication() {
    let g = Transform::random(4, 3, -1.0);
    let eye = Tensor::eye(4, DType::F64, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let moved = g.apply(&Kind::Frames, &eye).unwrap();
    let q = Tensor::from_slice(&g.q, (1, 4, 4), &Device::Cpu).unwrap();
    // I Q^T = Q^T
    assert!(max_abs_diff(&moved, &q.transpose(1, 2).unwrap()).unwrap() < 1e-15);
}
