//! Orientation of normal fields: repair by the winding number (`tf_normals::orient_by_winding`)
//! and signing by visibility (`tf_normals::orient_by_visibility`), on a 100k-point sphere with
//! every third normal flipped (defaults: 4,096 sources and up to 4 rounds for the winding
//! vote; 26 rays per point for the rays), and visibility on a 2,048-point sphere (a KiCad
//! part's size).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tf_normals::{
    orient_by_visibility, orient_by_winding, VisibilityOrientation, WindingOrientation,
};
use tf_testing::strategies::PointCloud;

/// `n` points on the unit sphere and their normals with every third sign wrong (on the unit
/// sphere the outward normal is the position).
fn flipped_sphere(n: usize) -> (Vec<f64>, Vec<f64>) {
    let points = PointCloud::sphere(n).coords;
    let flipped = points
        .chunks(3)
        .enumerate()
        .flat_map(|(i, p)| {
            let s = if i % 3 == 0 { -1.0 } else { 1.0 };
            p.iter().map(move |v| s * v).collect::<Vec<_>>()
        })
        .collect();
    (points, flipped)
}

fn bench_winding(c: &mut Criterion) {
    let n = 100_000;
    let (points, flipped) = flipped_sphere(n);
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

fn bench_visibility(c: &mut Criterion) {
    let mut group = c.benchmark_group("visibility_orientation");
    group.sample_size(10);
    for n in [2_048, 100_000] {
        let (points, flipped) = flipped_sphere(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("sphere_{n}_third_flipped"), |b| {
            b.iter(|| {
                let mut normals = flipped.clone();
                orient_by_visibility(&points, &mut normals, 3, &VisibilityOrientation::default())
                    .expect("visibility")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_winding, bench_visibility);
criterion_main!(benches);
