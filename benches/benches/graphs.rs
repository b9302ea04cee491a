//! Graph substrate hot paths: radius graphs of 10k and 100k points in 3D, the kNN graph that
//! learned frames are predicted from (16 shapes x 1024 points, k = 16, as in a TF-PointNet++
//! training step), farthest point sampling of a quarter of those points (TF-PointNet++'s first
//! set abstraction level), and segment sum/max of 1M edge messages x 64 channels.

// Large candle buffers: keep freed memory instead of page-faulting it back every step.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tf_benches::shapes;
use tf_graphs::{
    farthest_point_sampling, knn_graph, radius_graph, scatter_max, scatter_sum, FpsStart,
    RadiusGraph,
};
use tf_testing::strategies::{features, PointCloud};

fn bench_radius(c: &mut Criterion) {
    let mut group = c.benchmark_group("radius_graph_3d");
    group.sample_size(10);
    for n in [10_000usize, 100_000] {
        let pos = PointCloud::uniform(3, n, 1)
            .tensor(DType::F32, &Device::Cpu)
            .expect("pos");
        // radius chosen for ~16 neighbours on average at this density: (16 / n * 8 * 3/(4 pi))^(1/3)
        let radius = (16.0 / n as f64 * 8.0 * 3.0 / (4.0 * std::f64::consts::PI)).cbrt();
        let opts = RadiusGraph {
            radius,
            max_neighbors: 32,
            self_loops: false,
        };
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| radius_graph(&pos, None, opts).expect("graph"))
        });
    }
    group.finish();
}

fn bench_knn(c: &mut Criterion) {
    let (pos, batch) = shapes(16, 1024, 3);
    let mut group = c.benchmark_group("knn_graph_16x1024_k16");
    group.sample_size(20);
    group.throughput(Throughput::Elements(pos.dims()[0] as u64));
    group.bench_function("batched", |b| {
        b.iter(|| knn_graph(&pos, Some(&batch), 16, false).expect("graph"))
    });
    group.finish();
}

fn bench_fps(c: &mut Criterion) {
    let (pos, batch) = shapes(16, 1024, 3);
    let mut group = c.benchmark_group("fps_16x1024_quarter");
    group.sample_size(20);
    group.throughput(Throughput::Elements(pos.dims()[0] as u64));
    group.bench_function("batched", |b| {
        b.iter(|| {
            farthest_point_sampling(&pos, Some(&batch), 0.25, FpsStart::FarthestFromCentroid)
                .expect("samples")
        })
    });
    group.finish();
}

fn bench_scatter(c: &mut Criterion) {
    let (e, ch, n) = (1_000_000usize, 64usize, 62_500usize);
    let src = features(e, ch, 2, DType::F32, &Device::Cpu).expect("src");
    let idx: Vec<u32> = (0..e as u32).map(|k| k / 16).collect(); // 16 messages per node
    let index = Tensor::new(idx.as_slice(), &Device::Cpu).expect("index");
    let mut group = c.benchmark_group("segment_1M_edges_x64");
    group.sample_size(10);
    group.throughput(Throughput::Elements(e as u64));
    group.bench_function("sum", |b| {
        b.iter(|| scatter_sum(&src, &index, n).expect("sum"))
    });
    group.bench_function("max", |b| {
        b.iter(|| scatter_max(&src, &index, n).expect("max"))
    });
    group.finish();
}

criterion_group!(benches, bench_radius, bench_knn, bench_fps, bench_scatter);
criterion_main!(benches);
