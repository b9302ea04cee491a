//! Helpers shared by the criterion benches and the `step_memory` example.

use candle_core::{DType, Device, Result, Tensor};
use tf_models::{Batch, Model};
use tf_testing::strategies::PointCloud;

/// `graphs` shapes of `points` uniform points in `[-0.5, 0.5]^3` and their batch vector (f32).
pub fn shapes(graphs: usize, points: usize, seed: u64) -> (Tensor, Tensor) {
    let n = graphs * points;
    let pos = PointCloud::uniform(3, n, seed)
        .tensor(DType::F32, &Device::Cpu)
        .and_then(|p| p * 0.5)
        .expect("positions");
    let ids: Vec<u32> = (0..n as u32).map(|i| i / points as u32).collect();
    let batch = Tensor::new(ids.as_slice(), &Device::Cpu).expect("batch");
    (pos, batch)
}

/// One training step's compute: forward, a squared loss, backward.
pub fn step(model: &Model, pos: &Tensor, batch: &Tensor) -> Result<()> {
    let out = model.forward(&Batch {
        pos,
        batch: Some(batch),
        features: None,
    })?;
    out.values.sqr()?.mean_all()?.backward()?;
    Ok(())
}
