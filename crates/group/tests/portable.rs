//! The portable paths (candle ops, any device) against the CPU kernels, forward and gradients,
//! in d = 2, 3, 4, with both determinant signs, in f32 and f64.

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use tf_group::orthogonal::haar_orthogonal;
use tf_group::small_matmul::{outer_sum, rotate_last_axis, unrotate_first_axis};
use tf_group::{RepAction, TensorReps};
use tf_testing::compare_paths;

fn tolerance(dtype: DType) -> f64 {
    if dtype == DType::F64 {
        1e-12
    } else {
        1e-5
    }
}

fn data(shape: &[usize], seed: f64, dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|i| ((i as f64 + seed) * 1.37).sin()).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
        .and_then(|t| t.to_dtype(dtype))
        .expect("tensor")
}

#[test]
fn rho_matches_the_kernel_in_values_and_gradients() {
    let reps = TensorReps::parse("3x0n+2x1n+1x1p+2x2n+1x2p+1x3n").expect("reps");
    for dtype in [DType::F64, DType::F32] {
        for d in [2usize, 3, 4] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(d as u64);
            // Proper draws, then every other row reflected: both determinant signs.
            let u = haar_orthogonal(12, d, true, &mut rng, DType::F64, &Device::Cpu).expect("u");
            let flip: Vec<f64> = (0..12)
                .flat_map(|r| (0..d).map(move |a| if r % 2 == 1 && a == 0 { -1.0 } else { 1.0 }))
                .collect();
            let flip = Tensor::from_vec(flip, (12, d, 1), &Device::Cpu).expect("flip");
            let u = u
                .broadcast_mul(&flip)
                .and_then(|u| u.to_dtype(dtype))
                .expect("u");
            let x = data(&[12, reps.dim(d)], 0.3, dtype);
            let rho = RepAction::new(&reps, d).expect("rho");
            let diff = compare_paths(&[x, u], &[0, 1], |t| rho.apply(&t[0], &t[1])).expect("paths");
            let tol = tolerance(dtype);
            assert!(
                diff.forward <= tol && diff.gradient <= tol,
                "{dtype:?} d = {d}: {diff:?}"
            );
        }
    }
}

#[test]
fn small_products_match_the_kernels() {
    for dtype in [DType::F64, DType::F32] {
        for d in [2usize, 3, 4] {
            let (n, m) = (9, 5);
            let u = data(&[n, d, d], 0.1, dtype);
            let z = data(&[n, m, d], 0.2, dtype);
            let g = data(&[n, d, m], 0.3, dtype);
            let tol = tolerance(dtype);
            for diff in [
                compare_paths(&[u.clone(), z.clone()], &[0, 1], |t| {
                    rotate_last_axis(&t[0], &t[1])
                }),
                compare_paths(&[u.clone(), g.clone()], &[0, 1], |t| {
                    unrotate_first_axis(&t[0], &t[1])
                }),
                compare_paths(&[g.clone(), z.clone()], &[0, 1], |t| {
                    outer_sum(&t[0], &t[1])
                }),
            ] {
                let diff = diff.expect("paths");
                assert!(
                    diff.forward <= tol && diff.gradient <= tol,
                    "{dtype:?} d = {d}: {diff:?}"
                );
            }
        }
    }
}
