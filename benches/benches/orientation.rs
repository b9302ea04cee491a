//! Orientation repair by the winding number (`tf_frames::orient_by_winding`): a 100k-point
//! sphere with every third normal flipped, the default 4,096 sources and up to 4 rounds.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tf_frames::{orient_by_winding, WindingOrientation};
use tf_testing::strategies::PointCloud;

fn bench_winding(c: &mut Criterion) {
    let n = 100_000;
    let points = PointCloud::sphere(n).coords;
    // On the unit sphere the outward normal is the position; a third of the signs are wrong.
    let flipped: Vec<f64> = points
        .chunks(3)
        .enumerate()
        .flat_map(|(i, p)| {
            let s = if i % 3 == 0 { -1.0 } else { 1.0 };
            p.iter().map(move |v| s * v).collect::<Vec<_>>()
        })
        .collect();
    let mut group = c.benchmark_group("winding_orientation");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("sphere_100k_third_flipped", |b| {
        b.iter(|| {
            let mut normals = flipped.clone();
            orient_by_winding(&points, &mut normals, 3, &WindingOrientation::default())
                .expect("winding")
        })
    });
    group.finish();
}

criterion_group!(benches, bench_winding);
criterion_main!(benches);
