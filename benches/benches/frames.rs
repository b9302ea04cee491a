//! Learned frames (the frame network TF-PointNet++ runs first) on 16 shapes x 1024 points in 3D
//! with the model's kNN graph (k = 16, 262k edges): forward alone, and forward + backward of a
//! loss on the frames. This is the whole difference between the paper's model and plain
//! PointNet++ beyond transport, so it is benched on its own. Graph construction is outside the
//! timed region.

// Large candle buffers: keep freed memory instead of page-faulting it back every step.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tf_benches::shapes;
use tf_frames::{FrameBuilder, FrameInput, LearnedFrames, LearnedFramesConfig};
use tf_graphs::knn_graph;

fn bench_learned_frames(c: &mut Criterion) {
    let (pos, batch) = shapes(16, 1024, 3);
    let n = pos.dims()[0];
    let edges = knn_graph(&pos, Some(&batch), 16, false).expect("edges");
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    // The models' defaults: cutoff 0.3, hidden 32.
    let frames = LearnedFrames::new(LearnedFramesConfig::new(3, 0.3), vb).expect("frames");
    // A fixed random weighting of the frame entries: a loss whose gradient is not zero (the
    // frames' squared norm is constant).
    let weight = Tensor::randn(0f32, 1.0, (n, 3, 3), &Device::Cpu).expect("weight");
    let input = FrameInput {
        pos: &pos,
        edge_index: &edges,
        batch: Some(&batch),
        scalars: None,
    };
    let mut group = c.benchmark_group("learned_frames_16x1024_k16");
    group.sample_size(20);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("forward", |b| {
        b.iter(|| frames.build(&input).expect("frames"))
    });
    group.bench_function("forward_backward", |b| {
        b.iter(|| {
            let fr = frames.build(&input).expect("frames");
            let loss = (fr.matrices() * &weight)
                .and_then(|t| t.sum_all())
                .expect("loss");
            loss.backward().expect("backward")
        })
    });
    group.finish();
}

criterion_group!(benches, bench_learned_frames);
criterion_main!(benches);
