//! Differentiable segment reductions of edge messages onto nodes.
//!
//! # Shapes
//! - `src`: `(E, C)` messages, one row per edge
//! - `index`: `(E,)` u32 receiver of each message, `< n`
//! - output: `(n, C)` (softmax: `(E, C)`)
//!
//! All are deterministic on the CPU (a fixed accumulation order) and give zeros, never NaN, for
//! nodes that receive nothing. Sum uses `zeros.index_add` (candle's `scatter_add` backward breaks
//! when E != n). Max and softmax find the per-segment maxima on the host; max then gathers the
//! winning entries (ties: the first edge), so gradients flow to the winners only.

use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, WithDType};

fn check(src: &Tensor, index: &Tensor, n: usize) -> Result<(usize, usize, Vec<u32>)> {
    let (e, c) = src.dims2()?;
    let idx = index.to_dtype(DType::U32)?.to_vec1::<u32>()?;
    if idx.len() != e {
        bail!("index has {} entries but src has {e} rows", idx.len());
    }
    if let Some(bad) = idx.iter().position(|&i| i as usize >= n) {
        bail!("index[{bad}] = {} is out of range for {n} nodes", idx[bad]);
    }
    Ok((e, c, idx))
}

/// `out[i] = sum_{e: index[e] = i} src[e]`.
pub fn scatter_sum(src: &Tensor, index: &Tensor, n: usize) -> Result<Tensor> {
    let (_, c, _) = check(src, index, n)?;
    let index = index.to_dtype(DType::U32)?;
    Tensor::zeros((n, c), src.dtype(), src.device())?.index_add(&index, &src.contiguous()?, 0)
}

/// Number of messages each node receives, `(n,)` as f64 on the host.
fn counts(idx: &[u32], n: usize) -> Vec<f64> {
    let mut cnt = vec![0.0; n];
    for &i in idx {
        cnt[i as usize] += 1.0;
    }
    cnt
}

/// `out[i] = mean_{e: index[e] = i} src[e]`, zero for nodes without messages.
pub fn scatter_mean(src: &Tensor, index: &Tensor, n: usize) -> Result<Tensor> {
    let (_, _, idx) = check(src, index, n)?;
    let inv: Vec<f64> = counts(&idx, n)
        .into_iter()
        .map(|c| 1.0 / c.max(1.0))
        .collect();
    let inv = Tensor::from_vec(inv, (n, 1), src.device())?.to_dtype(src.dtype())?;
    scatter_sum(src, index, n)?.broadcast_mul(&inv)
}

/// Segment max as one CPU kernel: `(src (E, C), index (E,)) -> (n, C)`. The backward sends
/// each output's gradient to the first edge attaining the maximum (so ties are deterministic).
struct SegmentMax {
    n: usize,
}

fn segment_max_fwd<T: WithDType>(src: &[T], idx: &[u32], n: usize, c: usize) -> Vec<T> {
    let mut out = vec![T::zero(); n * c];
    let mut seen = vec![false; n];
    for (row, &i) in src.chunks_exact(c).zip(idx) {
        let i = i as usize;
        let o = &mut out[i * c..(i + 1) * c];
        if seen[i] {
            for (a, &v) in o.iter_mut().zip(row) {
                if v > *a {
                    *a = v;
                }
            }
        } else {
            o.copy_from_slice(row);
            seen[i] = true;
        }
    }
    out
}

fn segment_max_bwd<T: WithDType>(
    src: &[T],
    idx: &[u32],
    res: &[T],
    grad: &[T],
    c: usize,
) -> Vec<T> {
    let mut out = vec![T::zero(); src.len()];
    let mut claimed = vec![false; res.len()];
    for (e, &i) in idx.iter().enumerate() {
        let i = i as usize;
        for ch in 0..c {
            let k = i * c + ch;
            if !claimed[k] && src[e * c + ch] == res[k] {
                claimed[k] = true;
                out[e * c + ch] = grad[k];
            }
        }
    }
    out
}

fn storage_slice<'a, T>(s: &'a [T], l: &Layout) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s[a..b]),
        None => bail!("segment max: inputs must be contiguous"),
    }
}

impl CustomOp2 for SegmentMax {
    fn name(&self) -> &'static str {
        "tf-segment-max"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, c) = l1.shape().dims2()?;
        let idx = match s2 {
            CpuStorage::U32(v) => storage_slice(v, l2)?,
            _ => bail!("segment max: index must be u32"),
        };
        let out = match s1 {
            CpuStorage::F32(v) => {
                CpuStorage::F32(segment_max_fwd(storage_slice(v, l1)?, idx, self.n, c))
            }
            CpuStorage::F64(v) => {
                CpuStorage::F64(segment_max_fwd(storage_slice(v, l1)?, idx, self.n, c))
            }
            _ => bail!("segment max: src must be f32 or f64"),
        };
        Ok((out, (self.n, c).into()))
    }

    fn bwd(
        &self,
        src: &Tensor,
        index: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (e, c) = src.dims2()?;
        let idx = index.to_vec1::<u32>()?;
        let g = match src.dtype() {
            DType::F32 => Tensor::from_vec(
                segment_max_bwd(
                    &src.flatten_all()?.to_vec1::<f32>()?,
                    &idx,
                    &res.flatten_all()?.to_vec1::<f32>()?,
                    &grad.flatten_all()?.to_vec1::<f32>()?,
                    c,
                ),
                (e, c),
                src.device(),
            )?,
            _ => Tensor::from_vec(
                segment_max_bwd(
                    &src.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?,
                    &idx,
                    &res.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?,
                    &grad.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?,
                    c,
                ),
                (e, c),
                src.device(),
            )?
            .to_dtype(src.dtype())?,
        };
        Ok((Some(g), None))
    }
}

/// `out[i] = max_{e: index[e] = i} src[e]` per channel, zero for nodes without messages.
pub fn scatter_max(src: &Tensor, index: &Tensor, n: usize) -> Result<Tensor> {
    let (e, c, idx) = check(src, index, n)?;
    if e == 0 || c == 0 {
        return Tensor::zeros((n, c), src.dtype(), src.device());
    }
    if !tf_group::portable::use_kernels(src) {
        return scatter_max_portable(src, &idx, n);
    }
    let index = index.to_dtype(DType::U32)?.contiguous()?;
    src.contiguous()?.apply_op2(&index, SegmentMax { n })
}

/// The portable path of [`scatter_max`]: each node's messages gathered into a padded
/// `(n, K, C)` block (K the largest in-degree, padding `-inf`), reduced by candle's `max`.
/// Its gradient goes to every message that ties for a maximum (the kernel's to the first).
fn scatter_max_portable(src: &Tensor, idx: &[u32], n: usize) -> Result<Tensor> {
    let (e, c) = src.dims2()?;
    let mut degree = vec![0usize; n];
    for &i in idx {
        degree[i as usize] += 1;
    }
    let k = degree.iter().copied().max().unwrap_or(0).max(1);
    let mut slots = vec![e as u32; n * k];
    let mut filled = vec![0usize; n];
    for (edge, &i) in idx.iter().enumerate() {
        let i = i as usize;
        slots[i * k + filled[i]] = edge as u32;
        filled[i] += 1;
    }
    let dev = src.device();
    let pad = Tensor::full(f64::NEG_INFINITY, (1, c), dev)?.to_dtype(src.dtype())?;
    let rows = Tensor::cat(&[src, &pad], 0)?;
    let slots = Tensor::from_vec(slots, n * k, dev)?;
    let max = rows.index_select(&slots, 0)?.reshape((n, k, c))?.max(1)?;
    let received: Vec<u8> = degree.iter().map(|&d| u8::from(d > 0)).collect();
    let received = Tensor::from_vec(received, (n, 1), dev)?.broadcast_as((n, c))?;
    received.where_cond(&max, &max.zeros_like()?)
}

/// Softmax of `src` over the messages of each receiver, per channel: `(E, C)`; the weights of
/// each node's messages sum to one. Used for attention.
pub fn scatter_softmax(src: &Tensor, index: &Tensor, n: usize) -> Result<Tensor> {
    let (e, c, _) = check(src, index, n)?;
    if e == 0 || c == 0 {
        return Ok(src.clone());
    }
    let index = index.to_dtype(DType::U32)?.contiguous()?;
    // Subtracting the segment max (a constant for autograd) keeps exp finite and leaves the
    // softmax and its gradient unchanged.
    let shift = scatter_max(&src.detach(), &index, n)?.index_select(&index, 0)?;
    let ex = (src - shift)?.exp()?;
    let denom = scatter_sum(&ex, &index, n)?.index_select(&index, 0)?;
    ex / denom
}
