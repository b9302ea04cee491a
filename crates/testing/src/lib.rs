//! The equivariance test kit used by every tensor-frames crate.
//!
//! - [`strategies`]: proptest strategy functions over small bounded domains (d in `2..=6`, reps,
//!   point clouds, graphs, seeds).
//! - [`Transform`]: an element `x -> Q x + t` of E(d), drawn with a chosen determinant sign;
//!   [`Transform::pair`] gives one proper and one improper element per seed, so both signs are
//!   covered deterministically.
//! - [`equivariance_error`] / [`prop_assert_equivariant`]: transform every declared input
//!   (positions by `Qx+t`, features by `rho(Q)`, frames by `R Q^T`), run the function, and
//!   report per output the f64 error against the transformed outputs.
//!
//! # Example
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use tf_testing::{equivariance_error, Declared, Kind, Transform};
//!
//! # fn main() -> candle_core::Result<()> {
//! // The centroid of a point cloud is equivariant: it moves as a position.
//! let x = Tensor::new(&[[0.0f64, 1.0], [2.0, 3.0], [4.0, -1.0]], &Device::Cpu)?;
//! let centroid = |xs: &[Tensor]| Ok(vec![xs[0].mean_keepdim(0)?]);
//! for g in Transform::pair(2, 7) {
//!     let report = equivariance_error(
//!         &[(Kind::Positions, x.clone())],
//!         &[Declared::new("centroid", Kind::Positions)],
//!         centroid,
//!         &g,
//!     )?;
//!     assert!(report.max_rel_error() < 1e-12, "{report}");
//! }
//! # Ok(())
//! # }
//! ```

mod equivariance;
mod paths;
pub mod strategies;
mod transform;

pub use equivariance::{
    equivariance_error, max_abs_diff, max_rel_diff, prop_assert_equivariant, Declared,
    EquivarianceReport, OutputError,
};
pub use paths::{compare_paths, compare_paths_with_weights, PathDifference};
pub use transform::{Kind, Transform};

/// Proptest configuration with `default_cases` cases, overridden by the `PROPTEST_CASES`
/// environment variable (`just proptest-long` sets thousands). Failing cases are persisted
/// next to the test file (`*.proptest-regressions`): commit them.
pub fn config(default_cases: u32) -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    proptest::test_runner::Config {
        cases,
        ..proptest::test_runner::Config::default()
    }
}

/// Overwrites every variable of `vm` with seeded uniform values in `[-scale, scale]`, in the
/// order of their names, so randomly-initialised models are reproducible (candle-nn's own
/// initialisers draw from an RNG that cannot be seeded).
pub fn reseed_varmap(vm: &candle_nn::VarMap, seed: u64, scale: f64) -> candle_core::Result<()> {
    use rand::SeedableRng;
    use rand_distr::{Distribution, Uniform};
    let data = vm
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("VarMap poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let uni = Uniform::new_inclusive(-scale, scale)
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    for name in names {
        let var = &data[name];
        let t = var.as_tensor();
        let vals: Vec<f64> = (0..t.elem_count()).map(|_| uni.sample(&mut rng)).collect();
        let new = candle_core::Tensor::from_vec(vals, t.dims(), t.device())?.to_dtype(t.dtype())?;
        var.set(&new)?;
    }
    Ok(())
}
