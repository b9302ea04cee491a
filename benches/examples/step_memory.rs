//! Peak resident memory and step time of one model preset on 16 shapes x 1024 points:
//! `cargo run --release -p tf-benches --example step_memory -- pointnet2-normals`
//! (`TF_MODEL_*` environment variables override the preset, e.g. `TF_MODEL_FRAMES__KIND=identity`).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use candle_core::{DType, Device};
use tf_benches::{shapes, step};
use tf_models::{Model, ModelConfig};

fn main() -> candle_core::Result<()> {
    let preset = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "pointnet2-normals".into());
    let model = Model::new(
        ModelConfig::load(&preset, 3, None).map_err(|e| candle_core::Error::Msg(e.to_string()))?,
        DType::F32,
        &Device::Cpu,
    )?;
    // `TF_STEP_GRAPHS` / `TF_STEP_POINTS` change the batch (default 16 x 1024), `TF_STEP_STEPS`
    // the number of timed steps after the warm-up (default 3).
    let env = |k: &str, default: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (pos, batch) = shapes(env("TF_STEP_GRAPHS", 16), env("TF_STEP_POINTS", 1024), 3);
    step(&model, &pos, &batch)?; // warm-up
    let start = std::time::Instant::now();
    let steps = env("TF_STEP_STEPS", 3).max(1);
    for _ in 0..steps {
        step(&model, &pos, &batch)?;
    }
    let per_step = start.elapsed().as_secs_f64() / steps as f64;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("VmHWM: unknown");
    println!(
        "{preset}: {per_step:.3} s/step, params {} (frame network {:.2}%), peak {}",
        model.params(),
        100.0 * model.frame_overhead(),
        peak.trim_start_matches("VmHWM:").trim()
    );
    Ok(())
}
