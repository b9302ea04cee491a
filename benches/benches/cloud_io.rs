//! Reading and writing a 1M-point cloud with normals in the binary formats `predict` uses
//! (PLY, PCD, NPY): each must stay well under a second, beside the model's own time.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tf_datasets::{read_npy_points, read_pcd, read_ply_points, write_cloud, CloudFormat, CloudRef};

fn bench_cloud_io(c: &mut Criterion) {
    let n = 1_000_000;
    let points: Vec<f64> = (0..3 * n)
        .map(|i| ((i as f64) * 0.618).sin() * 10.0)
        .collect();
    let normals: Vec<f64> = (0..n)
        .flat_map(|i| {
            let t = i as f64 * 0.001;
            [t.cos(), t.sin(), 0.0]
        })
        .collect();
    let cloud = CloudRef {
        points: &points,
        d: 3,
        normals: Some(&normals),
        extras: &[],
    };
    let dir = std::env::temp_dir().join(format!("tf-cloud-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut group = c.benchmark_group("cloud_io_1m");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    for (format, ext) in [
        (CloudFormat::Ply, "ply"),
        (CloudFormat::Pcd, "pcd"),
        (CloudFormat::Npy, "npy"),
    ] {
        let path = dir.join(format!("c.{ext}"));
        group.bench_function(format!("write_{ext}"), |b| {
            b.iter(|| {
                let mut bytes = Vec::with_capacity(n * 40);
                write_cloud(&mut bytes, format, cloud).expect("write");
                std::fs::write(&path, &bytes).expect("file");
            })
        });
        group.bench_function(format!("read_{ext}"), |b| {
            b.iter(|| match format {
                CloudFormat::Ply => read_ply_points(&path).expect("ply"),
                CloudFormat::Pcd => read_pcd(&path).expect("pcd"),
                _ => read_npy_points(&path).expect("npy"),
            })
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench_cloud_io);
criterion_main!(benches);
