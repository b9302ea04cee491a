//! One training step of the N-body network on 100 systems of 5 charged particles (500 nodes,
//! 2,000 edges) in 3D, as the benchmark's protocol batches them: forward, MSE loss, backward
//! and an Adam update, for the plain GNN (identity frames) and TF-GNN (learned frames, scalar
//! and tensorial messages). Batch assembly is outside the timed region.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use candle_core::{DType, Device, Tensor};
use candle_nn::Optimizer;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use tf_models::{fully_connected, FrameChoice, Messages, NBodyConfig, NBodyGnn, NBodyInput};

fn bench_nbody_step(c: &mut Criterion) {
    let (systems, p, d) = (100, 5, 3);
    let n = systems * p;
    let dev = Device::Cpu;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut draw = |c: usize, s: f64| -> Tensor {
        let v: Vec<f32> = (0..n * c)
            .map(|_| (s * (2.0 * rng.random::<f64>() - 1.0)) as f32)
            .collect();
        Tensor::from_vec(v, (n, c), &dev).expect("tensor")
    };
    let (loc, vel, target) = (draw(d, 2.0), draw(d, 0.5), draw(d, 2.0));
    let charges = draw(1, 1.0).sign().expect("sign");
    let edges = fully_connected(systems, p, &dev).expect("edges");
    let batch = Tensor::from_vec(
        (0..n as u32).map(|i| i / p as u32).collect::<Vec<_>>(),
        n,
        &dev,
    )
    .expect("batch");
    let mut group = c.benchmark_group("nbody_train_step_100x5");
    group.sample_size(20);
    group.throughput(Throughput::Elements(systems as u64));
    for (name, frames, messages) in [
        ("gnn", FrameChoice::Identity, Messages::Tensorial),
        ("tf_gnn_scalar", FrameChoice::Learned, Messages::Scalar),
        (
            "tf_gnn_tensorial",
            FrameChoice::Learned,
            Messages::Tensorial,
        ),
    ] {
        let mut cfg = NBodyConfig::new(d);
        cfg.frames.kind = frames;
        cfg.messages = messages;
        let net = NBodyGnn::new(cfg, DType::F32, &dev, 0).expect("network");
        let mut opt = candle_nn::AdamW::new(
            net.varmap().all_vars(),
            candle_nn::ParamsAdamW {
                lr: 5e-4,
                weight_decay: 0.0,
                ..Default::default()
            },
        )
        .expect("adam");
        let input = NBodyInput {
            loc: &loc,
            vel: &vel,
            charges: &charges,
            edge_index: &edges,
            batch: Some(&batch),
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                let (pred, _) = net.forward(&input).expect("forward");
                let loss = (pred - &target)
                    .and_then(|e| e.sqr())
                    .and_then(|e| e.mean_all())
                    .expect("loss");
                opt.backward_step(&loss).expect("step");
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_nbody_step);
criterion_main!(benches);
