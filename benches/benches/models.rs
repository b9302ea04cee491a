//! TF-PointNet++ (normal head) forward + backward on 16 shapes x 1024 points in 3D: the paper's
//! model (learned frames, tensorial messages) against plain PointNet++ (identity frames, scalar
//! messages), same architecture. Peak memory: `cargo run --release -p tf-benches --example
//! step_memory -- <preset>`.

// Large candle buffers: keep freed memory instead of page-faulting it back every step.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use candle_core::{DType, Device};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tf_benches::{shapes, step};
use tf_models::{Model, ModelConfig};

fn bench_pointnet2(c: &mut Criterion) {
    let (pos, batch) = shapes(16, 1024, 3);
    let mut group = c.benchmark_group("pointnet2_normals_fwd_bwd_16x1024");
    group.sample_size(10);
    group.throughput(Throughput::Elements(16 * 1024));
    for preset in ["pointnet2-normals", "pointnet2-normals-plain"] {
        let model = Model::new(
            ModelConfig::preset(preset, 3).expect("preset"),
            DType::F32,
            &Device::Cpu,
        )
        .expect("model");
        group.bench_function(preset, |b| {
            b.iter(|| step(&model, &pos, &batch).expect("step"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_pointnet2);
criterion_main!(benches);
