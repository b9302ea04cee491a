//! One EdgeConv forward + backward on 16 graphs x 1024 points (k = 16) in 3D: tensor frames
//! (learned frames, tensorial messages) against the plain layer (identity frames, scalar
//! messages), for the overhead ratio. Graph construction is outside the timed region; frame
//! prediction is inside (it is part of the method's cost).

// Large candle buffers: keep freed memory instead of page-faulting it back every step.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tf_frames::{FrameBuilder, FrameInput, IdentityFrames, LearnedFrames, LearnedFramesConfig};
use tf_graphs::knn_graph;
use tf_group::TensorReps;
use tf_mp::{EdgeConv, EdgeConvConfig, Embed, GraphContext, Layer, Messages};
use tf_testing::strategies::{features, PointCloud};

fn bench_edgeconv(c: &mut Criterion) {
    let (graphs, points, d) = (16usize, 1024usize, 3usize);
    let n = graphs * points;
    let dev = Device::Cpu;
    let pos = PointCloud::uniform(d, n, 1)
        .tensor(DType::F32, &dev)
        .expect("pos");
    let ids: Vec<u32> = (0..n as u32).map(|i| i / points as u32).collect();
    let batch = Tensor::new(ids.as_slice(), &dev).expect("batch");
    let edges = knn_graph(&pos, Some(&batch), 16, false).expect("edges");
    let in_reps = TensorReps::parse("1x0n+1x1n").expect("reps");
    let hidden = TensorReps::parse("16x0n+8x1n+4x2n").expect("reps");
    let x = features(n, in_reps.dim(d), 2, DType::F32, &dev).expect("x");
    let mut group = c.benchmark_group("edgeconv_fwd_bwd_16x1024_k16");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    for (name, tf) in [("tensor_frames", true), ("plain_identity_scalar", false)] {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let frames: Box<dyn FrameBuilder> = if tf {
            Box::new(
                LearnedFrames::new(LearnedFramesConfig::new(d, 0.3), vb.pp("frames"))
                    .expect("frames"),
            )
        } else {
            Box::new(IdentityFrames)
        };
        let messages = if tf {
            Messages::Tensorial
        } else {
            Messages::Scalar
        };
        let embed = Embed::new(d, &in_reps, &hidden, vb.pp("embed")).expect("embed");
        let conv = EdgeConv::new(
            EdgeConvConfig {
                d,
                in_reps: hidden.clone(),
                out_reps: hidden.clone(),
                hidden: 64,
                messages,
            },
            vb.pp("conv"),
        )
        .expect("conv");
        group.bench_function(name, |b| {
            b.iter(|| {
                let fr = frames
                    .build(&FrameInput {
                        pos: &pos,
                        edge_index: &edges,
                        batch: Some(&batch),
                        scalars: None,
                    })
                    .expect("frames");
                let ctx = GraphContext::new(&pos, &edges, fr).expect("ctx");
                let h = embed.forward(&ctx, &x).expect("embed");
                let y = conv.forward(&ctx, &h).expect("conv");
                y.sqr()
                    .expect("sqr")
                    .mean_all()
                    .expect("mean")
                    .backward()
                    .expect("backward")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_edgeconv);
criterion_main!(benches);
