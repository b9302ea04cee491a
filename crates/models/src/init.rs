//! Seeded weight initialisation: candle's initialisers draw from an RNG that cannot be seeded,
//! so every model's initial weights come from here instead.

use candle_core::{bail, DType, Device, Result, Tensor};
use candle_nn::{Init, VarMap};

/// A `VarMap` backend that initialises each new variable from a ChaCha stream keyed by the
/// model seed and the variable's name, following candle's `Init` hints exactly.
pub(crate) struct SeededInit {
    pub(crate) map: VarMap,
    pub(crate) seed: u64,
}

impl SeededInit {
    fn draw(&self, shape: &candle_core::Shape, name: &str, init: Init) -> Vec<f64> {
        use rand::{Rng, SeedableRng};
        use rand_distr::{Distribution, StandardNormal};
        // FNV-1a of the name: stable across runs and platforms.
        let key = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed ^ key);
        let n = shape.elem_count();
        let normal = |rng: &mut rand_chacha::ChaCha8Rng, mean: f64, std: f64| -> Vec<f64> {
            (0..n)
                .map(|_| {
                    let e: f64 = StandardNormal.sample(rng);
                    mean + std * e
                })
                .collect()
        };
        let uniform = |rng: &mut rand_chacha::ChaCha8Rng, lo: f64, up: f64| -> Vec<f64> {
            (0..n)
                .map(|_| lo + (up - lo) * rng.random::<f64>())
                .collect()
        };
        match init {
            Init::Const(c) => vec![c; n],
            Init::Randn { mean, stdev } => normal(&mut rng, mean, stdev),
            Init::Uniform { lo, up } => uniform(&mut rng, lo, up),
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
                match dist {
                    candle_nn::init::NormalOrUniform::Uniform => {
                        let b = 3f64.sqrt() * std;
                        uniform(&mut rng, -b, b)
                    }
                    candle_nn::init::NormalOrUniform::Normal => normal(&mut rng, 0.0, std),
                }
            }
        }
    }
}

impl candle_nn::var_builder::SimpleBackend for SeededInit {
    fn get(
        &self,
        s: candle_core::Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        let mut data = self
            .map
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("VarMap poisoned".into()))?;
        if let Some(var) = data.get(name) {
            if var.shape() != &s {
                bail!("shape mismatch on {name}: {s:?} <> {:?}", var.shape());
            }
            return Ok(var.as_tensor().clone());
        }
        let values = self.draw(&s, name, h);
        let t = Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?;
        let var = candle_core::Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        bail!("{name}: a model's weights are created with their shapes, not looked up")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map
            .data()
            .lock()
            .map(|d| d.contains_key(name))
            .unwrap_or(false)
    }
}

/// Sets every variable of `varmap` from `saved` (read from `path`, named in errors), or none
/// if a name or shape is off; dtypes and devices are converted to the variables'.
pub(crate) fn set_vars(
    varmap: &VarMap,
    saved: &std::collections::HashMap<String, Tensor>,
    path: &std::path::Path,
) -> Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("VarMap poisoned".into()))?;
    let mut updates = Vec::with_capacity(data.len());
    for (name, var) in data.iter() {
        let Some(t) = saved.get(name) else {
            bail!("{}: no weight named {name}", path.display());
        };
        if t.dims() != var.dims() {
            bail!(
                "{}: {name} has shape {:?}, the model expects {:?}",
                path.display(),
                t.dims(),
                var.dims()
            );
        }
        updates.push((var, t.to_dtype(var.dtype())?.to_device(var.device())?));
    }
    for (var, t) in updates {
        var.set(&t)?;
    }
    Ok(())
}
