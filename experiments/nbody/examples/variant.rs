//! Trains one variant of the N-body network on the standard protocol's data (d = 3, 3,000 /
//! 2,000 / 2,000 systems, Adam at the published learning rate, batches of 100) for a short
//! budget and prints its validation curve: how the variants tried against the table's default
//! row were compared (the table's notes give the figures).
//!
//! `cargo run --release -p nbody --example variant -- --jitter --epochs 60`

use std::path::PathBuf;

use anyhow::{bail, Result};
use candle_core::{DType, Device};
use nbody::fit::{fit_for, FitConfig};
use nbody::{data, BATCH, LR};
use tf_models::{FrameChoice, Messages, NBodyConfig};

fn main() -> Result<()> {
    tf_experiments::init_logs();
    let mut model = NBodyConfig::new(3);
    let (mut epochs, mut seed, mut out) = (60usize, 0u64, PathBuf::from("runs/nbody-variants"));
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))
        };
        match a.as_str() {
            "--jitter" => model.frame_jitter = true,
            "--frame-velocity" => model.frame_velocity = true,
            "--pairwise-head" => model.pairwise_head = true,
            "--scalar" => model.messages = Messages::Scalar,
            "--frames" => {
                let v = value()?;
                model.frames.kind = FrameChoice::ALL
                    .into_iter()
                    .find(|c| c.name() == v)
                    .ok_or_else(|| anyhow::anyhow!("unknown frames {v}"))?;
            }
            "--epochs" => epochs = value()?.parse()?,
            "--seed" => seed = value()?.parse()?,
            "--out" => out = value()?.into(),
            other => bail!("unknown argument {other}"),
        }
    }
    let splits = data::simulated(3, [3000, 2000, 2000])?;
    let cfg = FitConfig {
        model,
        lr: LR,
        batch: BATCH,
        max_epochs: epochs,
        eval_every: 10,
        patience: epochs,
        seed,
        data: splits.id.clone(),
    };
    let dir = out.join(cfg.hash());
    let o = fit_for(&cfg, &splits, &dir, DType::F32, &Device::Cpu, usize::MAX)?;
    for p in &o.state.history {
        println!(
            "epoch {:>5}  train {:.5}  valid {:.5}",
            p.epoch, p.train, p.valid
        );
    }
    println!(
        "best valid {:.5} at epoch {} (test there {:.5}), {:.0} s, {}",
        o.state.best_valid,
        o.state.best_epoch,
        o.state.test_at_best,
        o.state.seconds,
        dir.display()
    );
    Ok(())
}
