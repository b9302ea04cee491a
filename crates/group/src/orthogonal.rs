//! Elements of O(d) as batched candle tensors of shape `(N, d, d)`.
//!
//! Sampling happens in f64 on the host with a caller-supplied seeded RNG (candle's CPU RNG cannot
//! be seeded), then the result is moved to the requested dtype and device.

use candle_core::{bail, DType, Device, Result, Tensor};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// A d x d matrix in row-major order, f64, the host-side currency of this module.
pub type HostMatrix = Vec<f64>;

/// Haar-distributed element of O(d): QR of a Gaussian matrix with the sign fix `diag(R) > 0`
/// (Mezzadri 2007), done by modified Gram-Schmidt with one re-orthogonalisation pass.
/// Both determinant signs occur with probability 1/2.
pub fn haar_orthogonal_host<R: Rng + ?Sized>(d: usize, rng: &mut R) -> HostMatrix {
    loop {
        let g: Vec<f64> = (0..d * d).map(|_| StandardNormal.sample(rng)).collect();
        if let Some(q) = gram_schmidt_columns(&g, d) {
            return q;
        }
        // A Gaussian matrix is singular with probability zero; redraw if rounding says otherwise.
    }
}

/// Haar-distributed element of SO(d): an O(d) draw with its first row negated when det = -1.
pub fn haar_special_orthogonal_host<R: Rng + ?Sized>(d: usize, rng: &mut R) -> HostMatrix {
    let mut q = haar_orthogonal_host(d, rng);
    if det_host(&q, d) < 0.0 {
        q[..d].iter_mut().for_each(|v| *v = -*v);
    }
    q
}

/// Householder reflection `I - 2 n n^T / |n|^2` across the hyperplane orthogonal to `normal`.
pub fn reflection_host(normal: &[f64]) -> Result<HostMatrix> {
    let d = normal.len();
    let nn: f64 = normal.iter().map(|v| v * v).sum();
    if !(nn.is_finite() && nn > 0.0) {
        bail!("reflection needs a finite non-zero normal vector, got {normal:?}");
    }
    let mut m = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            m[i * d + j] = f64::from(u8::from(i == j)) - 2.0 * normal[i] * normal[j] / nn;
        }
    }
    Ok(m)
}

/// Orthonormalises the columns of a row-major d x d matrix, returning `None` when they are
/// (numerically) dependent. Each column is made to have positive projection on the original
/// column, which is exactly the `diag(R) > 0` convention.
fn gram_schmidt_columns(a: &[f64], d: usize) -> Option<HostMatrix> {
    let mut q = a.to_vec();
    for c in 0..d {
        // Two passes of MGS ("twice is enough") keep orthogonality at machine precision.
        for _ in 0..2 {
            for p in 0..c {
                let dot: f64 = (0..d).map(|r| q[r * d + c] * q[r * d + p]).sum();
                for r in 0..d {
                    q[r * d + c] -= dot * q[r * d + p];
                }
            }
        }
        let norm = (0..d).map(|r| q[r * d + c].powi(2)).sum::<f64>().sqrt();
        if norm.is_nan() || norm <= 1e-10 {
            return None;
        }
        for r in 0..d {
            q[r * d + c] /= norm;
        }
    }
    Some(q)
}

/// Determinant of a row-major d x d matrix by LU with partial pivoting.
pub fn det_host(a: &[f64], d: usize) -> f64 {
    let mut m = a.to_vec();
    let mut det = 1.0;
    for c in 0..d {
        let pivot = (c..d)
            .max_by(|&x, &y| m[x * d + c].abs().total_cmp(&m[y * d + c].abs()))
            .unwrap_or(c);
        if m[pivot * d + c] == 0.0 {
            return 0.0;
        }
        if pivot != c {
            for k in 0..d {
                m.swap(c * d + k, pivot * d + k);
            }
            det = -det;
        }
        let p = m[c * d + c];
        det *= p;
        for r in c + 1..d {
            let f = m[r * d + c] / p;
            for k in c..d {
                m[r * d + k] -= f * m[c * d + k];
            }
        }
    }
    det
}

/// Row-major product of two d x d host matrices.
pub fn matmul_host(a: &[f64], b: &[f64], d: usize) -> HostMatrix {
    let mut out = vec![0.0; d * d];
    for i in 0..d {
        for k in 0..d {
            let aik = a[i * d + k];
            for j in 0..d {
                out[i * d + j] += aik * b[k * d + j];
            }
        }
    }
    out
}

/// Transpose of a row-major d x d host matrix.
pub fn transpose_host(a: &[f64], d: usize) -> HostMatrix {
    let mut out = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            out[j * d + i] = a[i * d + j];
        }
    }
    out
}

/// `N` independent Haar draws from O(d) (or SO(d) when `special`), shape `(N, d, d)`.
pub fn haar_orthogonal<R: Rng + ?Sized>(
    n: usize,
    d: usize,
    special: bool,
    rng: &mut R,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    check_dim(d)?;
    let mut data = Vec::with_capacity(n * d * d);
    for _ in 0..n {
        let q = if special {
            haar_special_orthogonal_host(d, rng)
        } else {
            haar_orthogonal_host(d, rng)
        };
        data.extend_from_slice(&q);
    }
    Tensor::from_vec(data, (n, d, d), device)?.to_dtype(dtype)
}

/// `N` copies of the d x d identity, shape `(N, d, d)`.
pub fn identity(n: usize, d: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    check_dim(d)?;
    Tensor::eye(d, dtype, device)?
        .unsqueeze(0)?
        .broadcast_as((n, d, d))?
        .contiguous()
}

/// Inverse of orthogonal matrices: the transpose of the last two axes (works for `(d, d)` and
/// `(N, d, d)`).
pub fn inverse(r: &Tensor) -> Result<Tensor> {
    let rank = r.rank();
    if rank < 2 {
        bail!(
            "inverse expects (d, d) or (N, d, d), got shape {:?}",
            r.dims()
        );
    }
    r.transpose(rank - 2, rank - 1)
}

/// Composition `A B` of batched elements `(N, d, d)`; either side may also be a single `(d, d)`.
pub fn compose(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    match (a.rank(), b.rank()) {
        (3, 3) | (2, 2) => a.matmul(b),
        (2, 3) | (3, 2) => a.broadcast_matmul(b),
        _ => bail!(
            "compose expects (d, d) or (N, d, d) operands, got {:?} and {:?}",
            a.dims(),
            b.dims()
        ),
    }
}

/// Determinants of orthogonal matrices `(N, d, d)` as an `(N,)` tensor of exactly +-1, in the
/// input dtype.
///
/// On O(d) the determinant is locally constant, so it carries no gradient; this function
/// treats it as a constant (computed on the host). A matrix whose determinant is not close to
/// +-1 is not orthogonal and is rejected with an error naming the row.
pub fn det_sign(r: &Tensor) -> Result<Tensor> {
    let (n, d, d2) = r.dims3()?;
    if d != d2 {
        bail!("det_sign expects square matrices, got {:?}", r.dims());
    }
    let host = r.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let mut signs = Vec::with_capacity(n);
    for (row, m) in host.chunks_exact(d * d).enumerate() {
        let det = det_host(m, d);
        if !(det.is_finite() && (det.abs() - 1.0).abs() < 0.1) {
            bail!("matrix {row} is not orthogonal (determinant {det})");
        }
        signs.push(det.signum());
    }
    Tensor::from_vec(signs, n, r.device())?.to_dtype(r.dtype())
}

/// Largest entry of `|R R^T - I|` over a batch `(N, d, d)`, in f64; 0 for an empty batch.
pub fn orthogonality_error(r: &Tensor) -> Result<f64> {
    let (n, d, _) = r.dims3()?;
    if n == 0 {
        return Ok(0.0);
    }
    let r = r.to_dtype(DType::F64)?;
    let rrt = r.matmul(&r.transpose(1, 2)?)?;
    let eye = identity(n, d, DType::F64, r.device())?;
    (rrt - eye)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f64>()
}

/// Host matrix -> `(d, d)` tensor of the given dtype.
pub fn host_to_tensor(m: &[f64], d: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    Tensor::from_slice(m, (d, d), device)?.to_dtype(dtype)
}

pub(crate) fn check_dim(d: usize) -> Result<()> {
    if d < 2 {
        bail!("dimension d must be at least 2, got {d}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn det_and_reflection() {
        let r = reflection_host(&[1.0, 2.0, -0.5]).unwrap();
        assert!((det_host(&r, 3) + 1.0).abs() < 1e-12);
        assert!(reflection_host(&[0.0, 0.0]).is_err());
        assert!(reflection_host(&[f64::NAN, 1.0]).is_err());
        let eye = matmul_host(&r, &transpose_host(&r, 3), 3);
        for i in 0..3 {
            for j in 0..3 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((eye[i * 3 + j] - want).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn special_draws_have_det_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for d in 2..7 {
            for _ in 0..20 {
                let q = haar_special_orthogonal_host(d, &mut rng);
                assert!((det_host(&q, d) - 1.0).abs() < 1e-10);
            }
        }
    }

    #[test]
    fn det_sign_rejects_non_orthogonal() {
        let m = Tensor::from_vec(vec![2.0f64, 0.0, 0.0, 2.0], (1, 2, 2), &Device::Cpu).unwrap();
        let err = det_sign(&m).unwrap_err().to_string();
        assert!(err.contains("not orthogonal"), "{err}");
        assert!(identity(3, 1, DType::F32, &Device::Cpu).is_err());
    }
}
