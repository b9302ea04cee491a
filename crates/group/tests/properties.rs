//! Property tests of the O(d) representations, in d = 2..=6 with improper elements.
#![allow(clippy::unwrap_used)]

use candle_core::{DType, Device, Tensor};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tf_group::orthogonal::{self, det_host, host_to_tensor};
use tf_group::reference::apply_reference;
use tf_group::{Parity, RepAction, RepTerm, TensorReps};
use tf_testing::strategies::{self, features};
use tf_testing::{config, max_rel_diff, Transform};

const TOL64: f64 = 1e-10;
const TOL32: f64 = 1e-5;

/// `n` copies of the transform's Q, `(n, d, d)`.
fn batch_of(g: &Transform, n: usize, dtype: DType) -> Tensor {
    host_to_tensor(&g.q, g.d, dtype, &Device::Cpu)
        .and_then(|q| q.unsqueeze(0)?.broadcast_as((n, g.d, g.d))?.contiguous())
        .expect("batch of Q")
}

/// Per-row independent Haar draws with row `i` of determinant sign `signs[i % 2]`.
fn mixed_sign_batch(n: usize, d: usize, seed: u64) -> Tensor {
    let data: Vec<f64> = (0..n)
        .flat_map(|i| {
            Transform::random(
                d,
                seed.wrapping_add(i as u64),
                if i % 2 == 0 { 1.0 } else { -1.0 },
            )
            .q
        })
        .collect();
    Tensor::from_vec(data, (n, d, d), &Device::Cpu).expect("batch")
}

#[derive(Debug, Clone)]
struct Case {
    d: usize,
    reps: TensorReps,
    n: usize,
    seed: u64,
}

fn case(max_order: usize) -> impl Strategy<Value = Case> {
    (
        strategies::dim(),
        strategies::reps(max_order, 4, 3),
        1usize..=5,
        strategies::seed(),
    )
        .prop_map(|(d, reps, n, seed)| Case { d, reps, n, seed })
}

/// `L = sum(w * rho(U) x)`: `dL/dx` and `dL/dU` against central differences in f64, on up to
/// two rows (the second one improper).
fn check_gradients(c: &Case) -> Result<(), TestCaseError> {
    let rows = c.n.min(2);
    let rho = RepAction::new(&c.reps, c.d).unwrap();
    let u = candle_core::Var::from_tensor(&mixed_sign_batch(rows, c.d, c.seed)).unwrap();
    let x = candle_core::Var::from_tensor(
        &features(rows, c.reps.dim(c.d), c.seed, DType::F64, &Device::Cpu).unwrap(),
    )
    .unwrap();
    let w = features(rows, c.reps.dim(c.d), c.seed ^ 1, DType::F64, &Device::Cpu).unwrap();
    let loss = |x: &Tensor, u: &Tensor| -> f64 {
        (rho.apply(x, u).unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let l = (rho.apply(x.as_tensor(), u.as_tensor()).unwrap() * &w)
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = l.backward().unwrap();
    for (var, other, is_x) in [(&x, &u, true), (&u, &x, false)] {
        // Scalar-only reps never touch U: its gradient is then absent, i.e. zero, and the
        // finite differences below check exactly that.
        let g = match grads.get(var.as_tensor()) {
            Some(g) => g.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            None => vec![0.0; var.as_tensor().elem_count()],
        };
        let base = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        for (i, &gi) in g.iter().enumerate() {
            let h = 1e-6;
            let bump = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                Tensor::from_vec(v, var.as_tensor().dims(), &Device::Cpu).unwrap()
            };
            let (plus, minus) = if is_x {
                (
                    loss(&bump(h), other.as_tensor()),
                    loss(&bump(-h), other.as_tensor()),
                )
            } else {
                (
                    loss(other.as_tensor(), &bump(h)),
                    loss(other.as_tensor(), &bump(-h)),
                )
            };
            let fd = (plus - minus) / (2.0 * h);
            prop_assert!(
                (fd - gi).abs() <= 1e-6 * (1.0 + fd.abs()),
                "grad {i}: autograd {gi} vs fd {fd}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn fast_path_equals_reference(c in case(3)) {
        let u = mixed_sign_batch(c.n, c.d, c.seed);
        let x = features(c.n, c.reps.dim(c.d), c.seed, DType::F64, &Device::Cpu).unwrap();
        let fast = RepAction::new(&c.reps, c.d).unwrap().apply(&x, &u).unwrap();
        let slow = apply_reference(&c.reps, &x, &u).unwrap();
        let err = max_rel_diff(&fast, &slow).unwrap();
        prop_assert!(err <= TOL64, "rel error {err:e} for {c:?}");
    }

    #[test]
    fn f32_fast_path_matches_f64_reference(c in case(3)) {
        let u = mixed_sign_batch(c.n, c.d, c.seed);
        let x = features(c.n, c.reps.dim(c.d), c.seed, DType::F64, &Device::Cpu).unwrap();
        let fast = RepAction::new(&c.reps, c.d).unwrap()
            .apply(&x.to_dtype(DType::F32).unwrap(), &u.to_dtype(DType::F32).unwrap()).unwrap();
        prop_assert_eq!(fast.dtype(), DType::F32);
        let slow = apply_reference(&c.reps, &x, &u).unwrap();
        let err = max_rel_diff(&fast, &slow).unwrap();
        prop_assert!(err <= TOL32, "rel error {err:e} for {c:?}");
    }

    #[test]
    fn homomorphism_with_improper_elements(c in case(3)) {
        let rho = RepAction::new(&c.reps, c.d).unwrap();
        let x = features(c.n, c.reps.dim(c.d), c.seed, DType::F64, &Device::Cpu).unwrap();
        // All four determinant-sign combinations of (A, B), deterministically.
        let [a_pos, a_neg] = Transform::pair(c.d, c.seed);
        let [b_pos, b_neg] = Transform::pair(c.d, c.seed ^ 0x9e37_79b9);
        for a in [&a_pos, &a_neg] {
            for b in [&b_pos, &b_neg] {
                let (ua, ub) = (batch_of(a, c.n, DType::F64), batch_of(b, c.n, DType::F64));
                let uab = orthogonal::compose(&ua, &ub).unwrap();
                let lhs = rho.apply(&x, &uab).unwrap();
                let rhs = rho.apply(&rho.apply(&x, &ub).unwrap(), &ua).unwrap();
                let err = max_rel_diff(&lhs, &rhs).unwrap();
                prop_assert!(err <= TOL64, "rho(AB) != rho(A)rho(B): {err:e}, det A {} det B {}", a.det(), b.det());
            }
        }
    }

    #[test]
    fn identity_acts_trivially(c in case(3)) {
        let x = features(c.n, c.reps.dim(c.d), c.seed, DType::F64, &Device::Cpu).unwrap();
        let eye = orthogonal::identity(c.n, c.d, DType::F64, &Device::Cpu).unwrap();
        let y = RepAction::new(&c.reps, c.d).unwrap().apply(&x, &eye).unwrap();
        prop_assert!(max_rel_diff(&y, &x).unwrap() == 0.0);
    }

    #[test]
    fn transpose_gives_transposed_matrix(d in strategies::dim(), reps in strategies::reps(3, 3, 2), seed in strategies::seed()) {
        // Applying rho(U) to the basis vectors e_c (rows of I) yields rho(U)^T row by row.
        let rho = RepAction::new(&reps, d).unwrap();
        let dim = reps.dim(d);
        for g in Transform::pair(d, seed) {
            let eye = Tensor::eye(dim, DType::F64, &Device::Cpu).unwrap();
            let u = batch_of(&g, dim, DType::F64);
            let ut = orthogonal::inverse(&u).unwrap().contiguous().unwrap();
            let rho_u_t = rho.apply(&eye, &u).unwrap(); // rows: columns of rho(U)
            let rho_ut_t = rho.apply(&eye, &ut).unwrap(); // rows: columns of rho(U^T)
            let err = max_rel_diff(&rho_u_t.t().unwrap(), &rho_ut_t).unwrap();
            prop_assert!(err <= TOL64, "rho(U^T) != rho(U)^T: {err:e}");
        }
    }

    #[test]
    fn pseudo_terms_pick_up_the_determinant(c in case(3)) {
        // Same rep with every parity normal: pseudo columns must differ exactly by det U.
        let normal = TensorReps::from_terms(c.reps.terms().iter().map(|t| RepTerm { parity: Parity::Normal, ..*t }).collect());
        let u = mixed_sign_batch(c.n, c.d, c.seed);
        let x = features(c.n, c.reps.dim(c.d), c.seed, DType::F64, &Device::Cpu).unwrap();
        let with = RepAction::new(&c.reps, c.d).unwrap().apply(&x, &u).unwrap().to_vec2::<f64>().unwrap();
        let without = RepAction::new(&normal, c.d).unwrap().apply(&x, &u).unwrap().to_vec2::<f64>().unwrap();
        let us = u.flatten_from(1).unwrap().to_vec2::<f64>().unwrap();
        for (row, m) in us.iter().enumerate() {
            let det = det_host(m, c.d);
            let mut col = 0;
            for t in c.reps.terms() {
                let s = if t.parity == Parity::Pseudo { det } else { 1.0 };
                for _ in 0..t.dim(c.d) {
                    prop_assert!((with[row][col] - s * without[row][col]).abs() <= 1e-12);
                    col += 1;
                }
            }
        }
    }

    #[test]
    fn haar_sampler_is_orthogonal_with_requested_group(d in strategies::dim(), seed in strategies::seed(), special in any::<bool>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let q = orthogonal::haar_orthogonal(16, d, special, &mut rng, DType::F64, &Device::Cpu).unwrap();
        prop_assert!(orthogonal::orthogonality_error(&q).unwrap() <= 1e-12);
        let dets = orthogonal::det_sign(&q).unwrap().to_vec1::<f64>().unwrap();
        if special {
            prop_assert!(dets.iter().all(|&s| s == 1.0));
        }
    }

    #[test]
    fn gradients_match_finite_differences(c in case(3)) {
        check_gradients(&c)?;
    }
}

#[test]
fn haar_sampler_moments_and_both_signs() {
    // For Haar measure on O(d): E[Q_ij] = 0, E[Q_ij^2] = 1/d, and P(det = -1) = 1/2.
    let d = 3;
    let n = 4000;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let q = orthogonal::haar_orthogonal(n, d, false, &mut rng, DType::F64, &Device::Cpu).unwrap();
    let flat = q.flatten_from(1).unwrap().to_vec2::<f64>().unwrap();
    for e in 0..d * d {
        let mean = flat.iter().map(|m| m[e]).sum::<f64>() / n as f64;
        let second = flat.iter().map(|m| m[e] * m[e]).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.05, "entry {e} mean {mean}");
        assert!(
            (second - 1.0 / d as f64).abs() < 0.03,
            "entry {e} second moment {second}"
        );
    }
    let dets = orthogonal::det_sign(&q).unwrap().to_vec1::<f64>().unwrap();
    let neg = dets.iter().filter(|&&s| s < 0.0).count() as f64 / n as f64;
    assert!((neg - 0.5).abs() < 0.05, "fraction with det -1: {neg}");
}

#[test]
fn spot_check_in_eight_dimensions() {
    let d = 8;
    let reps = TensorReps::parse("2x0p+2x1n+1x1p+1x2n+1x2p").unwrap();
    for seed in 0..3 {
        let u = mixed_sign_batch(4, d, seed);
        let x = features(4, reps.dim(d), seed, DType::F64, &Device::Cpu).unwrap();
        let fast = RepAction::new(&reps, d).unwrap().apply(&x, &u).unwrap();
        let slow = apply_reference(&reps, &x, &u).unwrap();
        assert!(max_rel_diff(&fast, &slow).unwrap() <= TOL64);
    }
    // one order-3 term in d = 8: 512 components per channel
    let reps = TensorReps::parse("1x3p").unwrap();
    let u = mixed_sign_batch(2, d, 5);
    let x = features(2, reps.dim(d), 5, DType::F64, &Device::Cpu).unwrap();
    let fast = RepAction::new(&reps, d).unwrap().apply(&x, &u).unwrap();
    let slow = apply_reference(&reps, &x, &u).unwrap();
    assert!(max_rel_diff(&fast, &slow).unwrap() <= TOL64);
}

#[test]
fn empty_batch_and_empty_rep() {
    let reps = TensorReps::parse("1x1n+1x0p").unwrap();
    let rho = RepAction::new(&reps, 3).unwrap();
    let x = Tensor::zeros((0, 4), DType::F64, &Device::Cpu).unwrap();
    let u = Tensor::zeros((0, 3, 3), DType::F64, &Device::Cpu).unwrap();
    assert_eq!(rho.apply(&x, &u).unwrap().dims(), &[0, 4]);
    let empty = RepAction::new(&TensorReps::empty(), 3).unwrap();
    let x = Tensor::zeros((2, 0), DType::F64, &Device::Cpu).unwrap();
    let u = orthogonal::identity(2, 3, DType::F64, &Device::Cpu).unwrap();
    assert_eq!(empty.apply(&x, &u).unwrap().dims(), &[2, 0]);
}

/// `d = 3` has its own kernels for order-1 and order-2 terms (forward, and the gradient in
/// `U`): always exercised here, whatever dimensions the properties draw. Forward against the
/// Kronecker-power reference in f64 and f32, both gradients against central differences, with
/// both determinant signs, pseudo terms and an order-3 term on the generic path beside them.
#[test]
fn three_dimensional_kernels_match_reference_and_finite_differences() {
    let d = 3;
    for (i, reps) in [
        "2x0n+3x1n+2x1p+2x2n+1x2p+1x3n",
        "1x1n",
        "2x2p",
        "1x0p+1x1p+1x2n",
    ]
    .iter()
    .enumerate()
    {
        let reps = TensorReps::parse(reps).unwrap();
        for seed in 0..3u64 {
            let seed = seed + 10 * i as u64;
            let u = mixed_sign_batch(6, d, seed);
            let x = features(6, reps.dim(d), seed, DType::F64, &Device::Cpu).unwrap();
            let rho = RepAction::new(&reps, d).unwrap();
            let slow = apply_reference(&reps, &x, &u).unwrap();
            let err = max_rel_diff(&rho.apply(&x, &u).unwrap(), &slow).unwrap();
            assert!(err <= TOL64, "{reps}: rel error {err:e}");
            let fast32 = rho
                .apply(
                    &x.to_dtype(DType::F32).unwrap(),
                    &u.to_dtype(DType::F32).unwrap(),
                )
                .unwrap();
            let err = max_rel_diff(&fast32, &slow).unwrap();
            assert!(err <= TOL32, "{reps}: f32 rel error {err:e}");
            let case = Case {
                d,
                reps: reps.clone(),
                n: 2,
                seed,
            };
            check_gradients(&case).unwrap();
        }
    }
}
