//! Group theory for tensor frames: elements of O(d) and Cartesian tensor representations.
//!
//! - [`TensorReps`]: feature types as direct sums of Cartesian tensors with parity, parsed from
//!   strings like `"16x0n+8x1n+2x1p+4x2n"` (see [`reps`] for the grammar and layout).
//! - [`RepAction`]: applies `rho(U)` to batched features `(N, rep_dim)` with one `U` per row,
//!   contracting one tensor axis at a time (cost `sum_k m_k k d^(k+1)` per row), differentiable
//!   in the features and in `U`.
//! - [`orthogonal`]: Haar sampling of O(d) and SO(d), reflections, determinants, composition, on
//!   batched `(N, d, d)` tensors.
//! - [`reference`]: the slow explicit-Kronecker-power path, used by tests and benches only.
//!
//! The dimension `d >= 2` is a runtime value everywhere. Conventions (docs/method.md): `U` acts on
//! column vectors, frames have their axes as rows, pseudo terms pick up `det U`.
//!
//! # Example
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use rand::SeedableRng;
//! use tf_group::{orthogonal, RepAction, TensorReps};
//!
//! # fn main() -> candle_core::Result<()> {
//! let reps: TensorReps = "2x0n+1x1n+1x2p".parse().expect("valid rep string");
//! let d = 3;
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let u = orthogonal::haar_orthogonal(4, d, false, &mut rng, DType::F64, &Device::Cpu)?;
//! let x = Tensor::randn(0f64, 1.0, (4, reps.dim(d)), &Device::Cpu)?;
//!
//! let rho = RepAction::new(&reps, d)?;
//! let y = rho.apply(&x, &u)?;
//! // rho(U^T) = rho(U)^-1: going back recovers the input.
//! let back = rho.apply(&y, &orthogonal::inverse(&u)?.contiguous()?)?;
//! let err = (back - &x)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
//! assert!(err < 1e-12);
//! # Ok(())
//! # }
//! ```

pub mod orthogonal;
pub mod portable;
pub mod reference;
pub mod reps;
mod rho;
pub mod small_matmul;

pub use reps::{Parity, RepTerm, RepsError, TensorReps, MAX_ORDER};
pub use rho::RepAction;
