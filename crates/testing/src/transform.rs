//! A global transformation `x -> Q x + t` and how it acts on each kind of declared tensor.

use std::fmt;

use candle_core::{bail, DType, Result, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Uniform};
use tf_group::orthogonal::{det_host, haar_special_orthogonal_host, host_to_tensor, HostMatrix};
use tf_group::{RepAction, TensorReps};

/// How a tensor transforms under `x -> Q x + t`.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Unchanged (invariant scalars, labels, graph structure).
    Invariant,
    /// Points `(N, d)`: `x -> Q x + t`.
    Positions,
    /// Displacements `(N, d)`: `v -> Q v` (no translation).
    Displacements,
    /// Global features `(N, rep_dim)`: `F -> rho(Q) F` row by row.
    Features(TensorReps),
    /// Local frames `(N, d, d)`, axes as rows: `R -> R Q^T`.
    Frames,
}

/// One element `(Q, t)` of the Euclidean group E(d) = O(d) x R^d, kept in f64 on the host.
#[derive(Clone, PartialEq)]
pub struct Transform {
    /// Dimension.
    pub d: usize,
    /// Row-major d x d orthogonal matrix.
    pub q: HostMatrix,
    /// Translation.
    pub t: Vec<f64>,
}

impl Transform {
    /// A Haar-random `Q` with the requested determinant sign (`+1` or `-1`) and a translation
    /// with entries in `[-2, 2]`, both determined by `seed`.
    pub fn random(d: usize, seed: u64, det_sign: f64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut q = haar_special_orthogonal_host(d, &mut rng);
        if det_sign < 0.0 {
            // Negating one row maps SO(d) onto the other coset: Haar on O(d) \ SO(d).
            q[..d].iter_mut().for_each(|v| *v = -*v);
        }
        let uni = Uniform::new_inclusive(-2.0, 2.0).expect("valid range");
        let t = (0..d).map(|_| uni.sample(&mut rng)).collect();
        Self { d, q, t }
    }

    /// The proper and the improper transform derived from one seed: checking both covers both
    /// determinant signs deterministically, whatever proptest draws.
    pub fn pair(d: usize, seed: u64) -> [Self; 2] {
        [Self::random(d, seed, 1.0), Self::random(d, seed, -1.0)]
    }

    /// `det Q` (+-1).
    pub fn det(&self) -> f64 {
        det_host(&self.q, self.d)
    }

    /// Applies the transformation to a tensor of the given kind, keeping its dtype. The
    /// arithmetic is done in f64.
    pub fn apply(&self, kind: &Kind, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let dev = x.device();
        let x64 = x.to_dtype(DType::F64)?;
        let q = host_to_tensor(&self.q, self.d, DType::F64, dev)?;
        let out = match kind {
            Kind::Invariant => return Ok(x.clone()),
            Kind::Positions | Kind::Displacements => {
                let (_, d) = x64.dims2()?;
                if d != self.d {
                    bail!(
                        "expected points of dimension {}, got {:?}",
                        self.d,
                        x.dims()
                    );
                }
                // rows are points: x Q^T (+ t)
                let moved = x64.matmul(&q.t()?)?;
                if *kind == Kind::Positions {
                    let t = Tensor::from_slice(&self.t, (1, self.d), dev)?;
                    moved.broadcast_add(&t)?
                } else {
                    moved
                }
            }
            Kind::Features(reps) => RepAction::new(reps, self.d)?.apply_shared(&x64, &q)?,
            Kind::Frames => x64.broadcast_matmul(&q.t()?)?,
        };
        out.to_dtype(dtype)
    }
}

impl fmt::Debug for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Transform {{ d: {}, det: {:+.0}, q: {:?}, t: {:?} }}",
            self.d,
            self.det(),
            self.q,
            self.t
        )
    }
}
