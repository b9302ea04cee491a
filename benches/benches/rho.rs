//! `rho(U)` on N = 100k rows of "32x0n+16x1n+8x2n" in d = 3: the axis-by-axis fast path against
//! the explicit Kronecker-power reference. Throughput is in rows.

// Large candle buffers: keep freed memory instead of page-faulting it back every step.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use candle_core::{DType, Device};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::SeedableRng;
use tf_group::{orthogonal, reference, RepAction, TensorReps};
use tf_testing::strategies::features;

fn bench_rho(c: &mut Criterion) {
    let reps: TensorReps = "32x0n+16x1n+8x2n".parse().expect("valid reps");
    let d = 3;
    let n = 100_000;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut group = c.benchmark_group("rho_100k_32x0n+16x1n+8x2n_d3");
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(10);
    for dtype in [DType::F32, DType::F64] {
        let u = orthogonal::haar_orthogonal(n, d, false, &mut rng, dtype, &Device::Cpu).expect("u");
        let x = features(n, reps.dim(d), 1, dtype, &Device::Cpu).expect("x");
        let plan = RepAction::new(&reps, d).expect("plan");
        group.bench_function(BenchmarkId::new("fast", format!("{dtype:?}")), |b| {
            b.iter(|| plan.apply(&x, &u).expect("apply"))
        });
        if dtype == DType::F64 {
            group.bench_function(BenchmarkId::new("reference", "F64"), |b| {
                b.iter(|| reference::apply_reference(&reps, &x, &u).expect("reference"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_rho);
criterion_main!(benches);
