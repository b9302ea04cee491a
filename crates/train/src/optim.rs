//! AdamW with a warm-up + cosine schedule, global-norm clipping and exposed state.
//!
//! candle-nn's `AdamW` keeps its moments private, so a checkpoint could not hold them and a
//! resumed run would restart the moments from zero (and diverge from an uninterrupted run).
//! This one is the same algorithm (Loshchilov & Hutter) with its state named per variable.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var};
use candle_nn::VarMap;

/// AdamW over the variables of a `VarMap`, visited in sorted name order.
#[derive(Debug)]
pub struct AdamW {
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: usize,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
}

impl AdamW {
    /// Zero moments for every variable of `varmap`.
    pub fn new(varmap: &VarMap, weight_decay: f64) -> Result<Self> {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("VarMap poisoned".into()))?;
        let mut vars: Vec<(String, Var)> =
            data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let m = vars
            .iter()
            .map(|(_, v)| v.as_tensor().zeros_like())
            .collect::<Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(Self {
            vars,
            m,
            v,
            step: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        })
    }

    /// Steps taken so far.
    pub fn step_count(&self) -> usize {
        self.step
    }

    /// Global L2 norm of the gradients present in `grads`.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut sq = 0.0;
        for (_, var) in &self.vars {
            if let Some(g) = grads.get(var.as_tensor()) {
                sq += g
                    .to_dtype(DType::F64)?
                    .sqr()?
                    .sum_all()?
                    .to_scalar::<f64>()?;
            }
        }
        Ok(sq.sqrt())
    }

    /// One update with learning rate `lr`; gradients are scaled by `grad_scale` first (for
    /// clipping). Variables without a gradient keep their value and moments.
    pub fn step(&mut self, grads: &GradStore, lr: f64, grad_scale: f64) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let c1 = 1.0 - self.beta1.powi(t);
        let c2 = 1.0 - self.beta2.powi(t);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let g = (g * grad_scale)?;
            let m = ((&self.m[i] * self.beta1)? + (&g * (1.0 - self.beta1))?)?;
            let v = ((&self.v[i] * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let update = ((&m / c1)? / ((&v / c2)?.sqrt()? + self.eps)?)?;
            let theta = var.as_tensor();
            let new = ((theta * (1.0 - lr * self.weight_decay))? - (update * lr)?)?;
            var.set(&new)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// The moments as named tensors (`m.<var>`, `v.<var>`) for a checkpoint.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.insert(format!("m.{name}"), self.m[i].clone());
            out.insert(format!("v.{name}"), self.v[i].clone());
        }
        out
    }

    /// Restores moments saved by [`state`](Self::state) and the step counter.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>, step: usize) -> Result<()> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            for (prefix, slot) in [("m", &mut self.m[i]), ("v", &mut self.v[i])] {
                let key = format!("{prefix}.{name}");
                let Some(t) = state.get(&key) else {
                    candle_core::bail!("optimizer state lacks {key}");
                };
                if t.dims() != var.dims() {
                    candle_core::bail!("optimizer state {key} has shape {:?}", t.dims());
                }
                *slot = t.to_dtype(var.dtype())?.to_device(var.device())?;
            }
        }
        self.step = step;
        Ok(())
    }
}

/// Linear warm-up to `peak`, then cosine decay to `peak * final_fraction` at `total` steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Peak learning rate.
    pub peak: f64,
    /// Warm-up steps.
    pub warmup: usize,
    /// Total steps of the run.
    pub total: usize,
    /// Final learning rate as a fraction of the peak.
    pub final_fraction: f64,
}

impl Schedule {
    /// Learning rate of step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let progress = ((step - self.warmup) as f64 / span).min(1.0);
        let floor = self.peak * self.final_fraction;
        floor + (self.peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let s = Schedule {
            peak: 1.0,
            warmup: 10,
            total: 110,
            final_fraction: 0.1,
        };
        assert!((s.lr(0) - 0.1).abs() < 1e-12);
        assert!((s.lr(9) - 1.0).abs() < 1e-12);
        assert!((s.lr(10) - 1.0).abs() < 1e-12);
        assert!((s.lr(60) - 0.55).abs() < 1e-12);
        assert!((s.lr(110) - 0.1).abs() < 1e-12);
        assert!((s.lr(500) - 0.1).abs() < 1e-12);
        for k in 10..110 {
            assert!(s.lr(k + 1) <= s.lr(k));
        }
    }

    #[test]
    fn adamw_minimises_a_quadratic_and_its_state_round_trips() -> Result<()> {
        let vm = VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
        let w = vb.get_with_hints(3, "w", candle_nn::Init::Const(2.0))?;
        let target = Tensor::new(&[1.0f64, -1.0, 0.5], &Device::Cpu)?;
        let mut opt = AdamW::new(&vm, 0.0)?;
        let loss = |w: &Tensor| (w - &target)?.sqr()?.sum_all();
        let first = loss(&w)?.to_scalar::<f64>()?;
        for _ in 0..300 {
            let grads = loss(&w)?.backward()?;
            opt.step(&grads, 0.05, 1.0)?;
        }
        let last = loss(&w)?.to_scalar::<f64>()?;
        assert!(last < 1e-3 * first, "{first} -> {last}");
        // State round trip: a copy continued from the saved state matches the original.
        let state = opt.state();
        let mut other = AdamW::new(&vm, 0.0)?;
        other.load_state(&state, opt.step_count())?;
        assert_eq!(other.step_count(), 300);
        for (k, t) in other.state() {
            let diff = (&t - &state[&k])?.abs()?.max_all()?.to_scalar::<f64>()?;
            assert_eq!(diff, 0.0, "{k}");
        }
        assert!(other.load_state(&HashMap::new(), 0).is_err());
        Ok(())
    }
}
