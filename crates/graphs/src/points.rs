//! Validation of the inputs every graph routine shares: positions `(N, d)` and the `batch`
//! vector of graph ids.

use std::ops::Range;

use candle_core::{bail, DType, Result, Tensor};

/// Positions `(N, d)` copied to the host as f64, rejecting NaN/inf coordinates and d < 1 with an
/// error that names the first bad row.
pub fn host_positions(pos: &Tensor) -> Result<(Vec<f64>, usize, usize)> {
    let (n, d) = pos.dims2()?;
    if d == 0 {
        bail!(
            "positions must have at least one coordinate, got shape {:?}",
            pos.dims()
        );
    }
    let flat = pos.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    if let Some(bad) = flat.iter().position(|v| !v.is_finite()) {
        bail!(
            "position of point {} is not finite: {:?}",
            bad / d,
            &flat[(bad / d) * d..(bad / d + 1) * d]
        );
    }
    Ok((flat, n, d))
}

/// Contiguous node ranges of each graph of a batch.
///
/// `batch` is an `(N,)` integer tensor of graph ids, sorted ascending (the PyG convention: the
/// graphs of a batch are stacked one after the other). `None` means one graph. Ids may skip
/// values (an empty graph); the result has `max_id + 1` ranges, empty for missing ids.
pub fn segments(batch: Option<&Tensor>, n: usize) -> Result<Vec<Range<usize>>> {
    let Some(batch) = batch else {
        return Ok(std::iter::once(0..n).collect());
    };
    let ids = batch.to_dtype(DType::I64)?.to_vec1::<i64>()?;
    if ids.len() != n {
        bail!("batch has {} entries but there are {n} nodes", ids.len());
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(i) = ids.iter().position(|&v| v < 0) {
        bail!("batch id of node {i} is negative ({})", ids[i]);
    }
    if let Some(i) = ids.windows(2).position(|w| w[1] < w[0]) {
        bail!(
            "batch must be sorted ascending (graphs stacked one after another): node {} has id {} after {}",
            i + 1,
            ids[i + 1],
            ids[i]
        );
    }
    let n_graphs = ids[n - 1] as usize + 1;
    let mut ranges = vec![0..0; n_graphs];
    let mut start = 0;
    for i in 1..=n {
        if i == n || ids[i] != ids[start] {
            ranges[ids[start] as usize] = start..i;
            start = i;
        }
    }
    // Empty graphs: give them an empty range at the right position.
    let mut last_end = 0;
    for r in ranges.iter_mut() {
        if r.start == r.end {
            *r = last_end..last_end;
        } else {
            last_end = r.end;
        }
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn rejects_non_finite_and_unsorted() {
        let p = Tensor::new(&[[0.0f32, 1.0], [f32::NAN, 0.0]], &Device::Cpu).unwrap();
        let e = host_positions(&p).unwrap_err().to_string();
        assert!(e.contains("point 1"), "{e}");
        let b = Tensor::new(&[0u32, 1, 0], &Device::Cpu).unwrap();
        assert!(segments(Some(&b), 3)
            .unwrap_err()
            .to_string()
            .contains("sorted"));
        let b = Tensor::new(&[0u32, 0, 2, 2], &Device::Cpu).unwrap();
        assert_eq!(segments(Some(&b), 4).unwrap(), vec![0..2, 2..2, 2..4]);
        assert!(segments(Some(&b), 3).is_err());
    }
}
