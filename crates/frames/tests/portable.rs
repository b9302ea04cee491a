//! The portable learned frames (candle ops, any device) against the CPU kernels: frames and
//! the gradients of positions and of the frame network's weights, in d = 2, 3, 4 (both
//! determinant signs occur among the frames), f32 and f64, with and without node scalars. (A
//! duplicate point makes position gradients of order 1e12, where the two paths' roundings
//! differ by more than 1e-12 relative; the kernels' own tests cover that case.)

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use tf_frames::{FrameBuilder, FrameInput, LearnedFrames, LearnedFramesConfig};
use tf_graphs::knn_graph;
use tf_testing::compare_paths_with_weights;

fn pos_f64(n: usize, d: usize) -> Tensor {
    let v: Vec<f64> = (0..n * d).map(|i| ((i as f64) * 0.731).sin()).collect();
    Tensor::from_vec(v, (n, d), &Device::Cpu).expect("pos")
}

fn pos32(t: &Tensor) -> Tensor {
    t.to_dtype(DType::F32).expect("f32")
}

#[test]
fn learned_frames_match_the_kernels() {
    for dtype in [DType::F64, DType::F32] {
        for d in [2usize, 3, 4] {
            for scalars in [0usize, 2] {
                let n = 40;
                let pos = pos_f64(n, d).to_dtype(dtype).expect("pos");
                let edges = knn_graph(&pos, None, 12, false).expect("edges");
                let s: Vec<f64> = (0..n * scalars.max(1))
                    .map(|i| (i as f64 * 0.3).cos())
                    .collect();
                let s = Tensor::from_vec(s, (n, scalars.max(1)), &Device::Cpu)
                    .and_then(|t| t.to_dtype(dtype))
                    .expect("scalars");
                let vm = VarMap::new();
                let vb = VarBuilder::from_varmap(&vm, dtype, &Device::Cpu);
                let mut cfg = LearnedFramesConfig::new(d, 1.5);
                cfg.n_scalars = scalars;
                let frames = LearnedFrames::new(cfg, vb).expect("frames");
                // Seeded weights: candle's initialisers are not, and a random draw can leave a
                // node at a candidate's acceptance threshold, where the two paths' roundings
                // pick different (equally valid) frames.
                tf_testing::reseed_varmap(&vm, 11, 0.5).expect("reseed");
                let weights: Vec<Tensor> = vm
                    .all_vars()
                    .iter()
                    .map(|v| v.as_tensor().clone())
                    .collect();
                let diff = compare_paths_with_weights(&[pos, s], &[0], &weights, |t| {
                    let scalars = (scalars > 0).then_some(&t[1]);
                    Ok(frames
                        .build(&FrameInput {
                            pos: &t[0],
                            edge_index: &edges,
                            batch: None,
                            scalars,
                        })?
                        .matrices()
                        .clone())
                })
                .expect("paths");
                if dtype == DType::F64 {
                    assert!(
                        diff.forward <= 1e-12 && diff.gradient <= 1e-12,
                        "d = {d} scalars {scalars}: {diff:?}"
                    );
                } else {
                    // In f32 the paths' roundings can flip a node's discrete choice of
                    // candidate (a different, equally valid frame), so only orthogonality
                    // of the portable frames is checked.
                    let f = tf_group::portable::portable(|| {
                        frames.build(&FrameInput {
                            pos: &pos32(&pos_f64(n, d)),
                            edge_index: &edges,
                            batch: None,
                            scalars: None,
                        })
                    });
                    if scalars == 0 {
                        let f = f.expect("portable f32 frames");
                        let err = tf_group::orthogonal::orthogonality_error(f.matrices())
                            .expect("orthogonality");
                        assert!(err < 1e-5, "d = {d}: {err}");
                    }
                }
            }
        }
    }
}
