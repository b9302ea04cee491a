//! The portable segment max (candle ops, any device) against the CPU kernel, forward and
//! gradients, f32 and f64, with nodes that receive nothing; and the softmax built on it.

use candle_core::{DType, Device, Tensor};
use tf_graphs::{scatter_max, scatter_softmax};
use tf_testing::compare_paths;

#[test]
fn segment_max_and_softmax_match_the_kernel() {
    for dtype in [DType::F64, DType::F32] {
        let (e, c, n) = (40, 6, 11);
        let v: Vec<f64> = (0..e * c).map(|i| ((i as f64) * 1.37).sin()).collect();
        let src = Tensor::from_vec(v, (e, c), &Device::Cpu)
            .and_then(|t| t.to_dtype(dtype))
            .expect("src");
        // Node 10 receives nothing; the others receive up to 8 messages.
        let idx: Vec<u32> = (0..e as u32).map(|k| (k * 7) % 10).collect();
        let idx = Tensor::from_vec(idx, e, &Device::Cpu).expect("index");
        let tol = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
        let diff = compare_paths(&[src.clone(), idx.clone()], &[0], |t| {
            scatter_max(&t[0], &t[1], n)
        })
        .expect("max");
        assert!(
            diff.forward <= tol && diff.gradient <= tol,
            "max {dtype:?}: {diff:?}"
        );
        let diff = compare_paths(&[src, idx], &[0], |t| scatter_softmax(&t[0], &t[1], n))
            .expect("softmax");
        assert!(
            diff.forward <= tol && diff.gradient <= tol,
            "softmax {dtype:?}: {diff:?}"
        );
    }
}
