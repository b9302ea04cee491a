//! Training-step time of several model presets, interleaved step by step in one process, on 16
//! shapes x 1024 points: `cargo run --release -p tf-benches --example step_pair --
//! pointnet2-normals-plain pointnet2-normals`.
//!
//! On a shared machine the speed drifts by 10% and more between runs, so a ratio of two
//! separate runs (`step_memory`) mixes the two models with the drift. Here every round runs one
//! step of each preset in turn, and the medians, their ratio to the first preset and the CPU
//! time per step (user + system, from `/proc/self/stat`, so time the hypervisor took is not
//! counted) come from the same stretch of time. `TF_STEP_ROUNDS` sets the rounds (default 10,
//! after one warm-up round); `TF_MODEL_*` variables override every preset alike.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

use candle_core::{DType, Device, Error, Result};
use tf_benches::shapes;
use tf_models::{Batch, Model, ModelConfig};

/// User + system CPU seconds of this process so far (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => 0.0,
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let presets: Vec<String> = std::env::args().skip(1).collect();
    if presets.is_empty() {
        return Err(Error::Msg(
            "usage: step_pair <preset> [<preset> ...]".into(),
        ));
    }
    let models = presets
        .iter()
        .map(|p| {
            let cfg = ModelConfig::load(p, 3, None).map_err(|e| Error::Msg(e.to_string()))?;
            Model::new(cfg, DType::F32, &Device::Cpu)
        })
        .collect::<Result<Vec<_>>>()?;
    let rounds = std::env::var("TF_STEP_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10usize)
        .max(1);
    let (pos, batch) = shapes(16, 1024, 3);
    let mut times = vec![(Vec::new(), Vec::new()); models.len()];
    let mut cpu = vec![0.0; models.len()];
    for round in 0..=rounds {
        for (m, model) in models.iter().enumerate() {
            let c0 = cpu_seconds();
            let t0 = Instant::now();
            let out = model.forward(&Batch {
                pos: &pos,
                batch: Some(&batch),
                features: None,
            })?;
            let loss = out.values.sqr()?.mean_all()?;
            let forward = t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            drop(loss.backward()?);
            let backward = t1.elapsed().as_secs_f64();
            if round > 0 {
                times[m].0.push(forward);
                times[m].1.push(backward);
                cpu[m] += cpu_seconds() - c0;
            }
        }
    }
    let mut first = None;
    for ((p, (f, b)), c) in presets.iter().zip(times.iter_mut()).zip(&cpu) {
        let (f, b) = (median(f), median(b));
        let base = *first.get_or_insert(f + b);
        println!(
            "{p}: forward {f:.3} s, backward {b:.3} s, step {:.3} s ({:.2}x), cpu {:.3} s/step (medians of {rounds} interleaved rounds)",
            f + b,
            (f + b) / base,
            c / rounds as f64
        );
    }
    Ok(())
}
