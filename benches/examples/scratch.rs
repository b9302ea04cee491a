use candle_core::{DType, Device};
use tf_models::{Batch, Model, ModelConfig};
fn main() -> anyhow::Result<()> {
    for preset in ["pointnet2-normals-plain", "pointnet2-normals-augmentation"] {
        let m = Model::new(
            ModelConfig::preset(preset, 3).map_err(|e| anyhow::anyhow!("{e}"))?,
            DType::F32,
            &Device::Cpu,
        )?;
        let (pos, batch) = tf_benches::shapes(4, 256, 3);
        let p = m.forward(&Batch {
            pos: &pos,
            batch: Some(&batch),
            features: None,
        })?;
        let v = p.values;
        let norms = v.sqr()?.sum(1)?.sqrt()?;
        println!(
            "{preset}: pred norm mean {} max {}",
            norms.mean_all()?,
            norms.max(0)?
        );
        let loss = v.sum_all()?;
        let g = loss.backward()?;
        let mut tot = 0.0f32;
        let mut cnt = 0;
        for var in m.varmap().all_vars() {
            if let Some(gr) = g.get(var.as_tensor()) {
                tot += gr.abs()?.sum_all()?.to_scalar::<f32>()?;
                cnt += 1;
            }
        }
        println!(
            "  grads on {cnt}/{} vars, sum |g| {tot}",
            m.varmap().all_vars().len()
        );
    }
    Ok(())
}
