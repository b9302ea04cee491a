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

use candle_core::{bail, DType, Result, Tensor};

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

/// Per-segment, per-channel maxima on the host: winning edge per `(node, channel)` (u32, the
/// first edge on ties) and whether the node has any message.
fn argmax(src: &Tensor, idx: &[u32], n: usize, c: usize) -> Result<(Vec<u32>, Vec<f64>)> {
    let vals = src.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let mut best = vec![f64::NEG_INFINITY; n * c];
    let mut arg = vec![u32::MAX; n * c];
    for (e, &i) in idx.iter().enumerate() {
        let row = &vals[e * c..(e + 1) * c];
        let i = i as usize;
        for (ch, &v) in row.iter().enumerate() {
            // `>` keeps the first edge on ties; NaN never wins, so a NaN input cannot hide.
            if v > best[i * c + ch] || arg[i * c + ch] == u32::MAX {
                best[i * c + ch] = v;
                arg[i * c + ch] = e as u32;
            }
        }
    }
    let has: Vec<f64> = (0..n)
        .map(|i| f64::from(u8::from(arg[i * c] != u32::MAX || c == 0)))
        .collect();
    for a in arg.iter_mut() {
        if *a == u32::MAX {
            *a = 0;
        }
    }
    Ok((arg, has))
}

/// `out[i] = max_{e: index[e] = i} src[e]` per channel, zero for nodes without messages.
pub fn scatter_max(src: &Tensor, index: &Tensor, n: usize) -> Result<Tensor> {
    let (e, c, idx) = check(src, index, n)?;
    if e == 0 || c == 0 {
        return Tensor::zeros((n, c), src.dtype(), src.device());
    }
    let (arg, has) = argmax(src, &idx, n, c)?;
    let arg = Tensor::from_vec(arg, (n, c), src.device())?;
    let has = Tensor::from_vec(has, (n, 1), src.device())?.to_dtype(src.dtype())?;
    src.contiguous()?.gather(&arg, 0)?.broadcast_mul(&has)
}

/// Softmax of `src` over the messages of each receiver, per channel: `(E, C)`; the weights of
/// each node's messages sum to one. Used for attention.
pub fn scatter_softmax(src: &Tensor, index: &Tensor, n: usize) -> Result<Tensor> {
    let (e, c, idx) = check(src, index, n)?;
    if e == 0 || c == 0 {
        return Ok(src.clone());
    }
    let (arg, _) = argmax(src, &idx, n, c)?;
    // Subtracting the segment max (a constant for autograd) keeps exp finite and leaves the
    // softmax and its gradient unchanged.
    let vals = src.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let shift: Vec<f64> = idx
        .iter()
        .flat_map(|&i| (0..c).map(move |ch| (i as usize, ch)))
        .map(|(i, ch)| vals[arg[i * c + ch] as usize * c + ch])
        .collect();
    let shift = Tensor::from_vec(shift, (e, c), src.device())?.to_dtype(src.dtype())?;
    let ex = (src - shift)?.exp()?;
    let index = index.to_dtype(DType::U32)?;
    let denom = scatter_sum(&ex, &index, n)?.index_select(&index, 0)?;
    ex / denom
}
