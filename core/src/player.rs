//! Players: a named network's parameters with the optimizer that trains them.
//!
//! A method declares its players ([`crate::Method::players`]) and any state beyond them
//! ([`crate::Method::extra_state`]); [`save`] and [`load`] turn that into the checkpoint's
//! [`MethodState`], so no plugin writes save/load by hand. The layout, for a player `g`:
//! weights under `g.<param>`, Adam moments under `opt_g.m.<param>` / `opt_g.v.<param>`, and
//! Adam's step count as the meta entry `opt_g_t`.

use crate::method::{Method, MethodState};
use crate::nn::VarStore;
use crate::optim::{Adam, AdamConfig};
use anyhow::{Context, bail};
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};

/// One network's variables and its optimizer.
pub struct Player {
    name: String,
    vs: VarStore,
    opt: Adam,
}

impl Player {
    /// A player named `name` (the checkpoint prefix) training all of `vs`'s trainable variables
    /// with Adam. Build the network into `vs` first.
    pub fn new(name: &str, vs: VarStore, adam: AdamConfig) -> Result<Self> {
        let opt = Adam::new(vs.trainable_vars(), adam)?;
        Ok(Self { name: name.to_string(), vs, opt })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The player's variables.
    pub fn vs(&self) -> &VarStore {
        &self.vs
    }

    pub fn optimizer(&self) -> &Adam {
        &self.opt
    }

    /// Backward pass of `loss` and one update of this player's variables only.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        self.opt.backward_step(loss)
    }

    /// One update of this player's variables from gradients already computed.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.opt.step(grads)
    }

    /// Sets the learning rate (a schedule's step).
    pub fn set_lr(&mut self, lr: f64) {
        self.opt.set_lr(lr);
    }

    pub fn lr(&self) -> f64 {
        self.opt.cfg.lr
    }

    fn steps_key(&self) -> String {
        format!("opt_{}_t", self.name)
    }
}

/// Adam's step count of player `name`. Older checkpoints kept it as `adam_t.<name>` (LSAL)
/// or `t_<name>` (MMGAN); both still load.
fn saved_steps(meta: &serde_json::Value, name: &str) -> Option<u64> {
    meta.get(format!("opt_{name}_t"))
        .or_else(|| meta.get("adam_t").and_then(|a| a.get(name)))
        .or_else(|| meta.get(format!("t_{name}")))
        .and_then(|v| v.as_u64())
}

/// The whole state of `method`: every player's weights and moments, then its extra state.
/// Tensors are deep copies: a variable's tensor shares storage that Adam updates in place, so
/// a state kept in memory would otherwise follow training.
pub fn save<M: Method + ?Sized>(method: &M) -> anyhow::Result<MethodState> {
    let mut st = method.extra_state()?;
    let mut meta = match st.meta {
        serde_json::Value::Object(m) => m,
        serde_json::Value::Null => serde_json::Map::new(),
        other => bail!("a method's extra meta must be a JSON object, got {other}"),
    };
    for p in method.players() {
        let opt = p.opt.state();
        let parts = [(format!("{}.", p.name), p.vs.tensors()), (format!("opt_{}.", p.name), opt.tensors)];
        for (prefix, tensors) in parts {
            for (k, t) in tensors {
                let key = format!("{prefix}{k}");
                if st.tensors.insert(key.clone(), t.copy()?).is_some() {
                    bail!("tensor `{key}` is saved twice (player `{}` and the extra state)", p.name);
                }
            }
        }
        meta.insert(p.steps_key(), opt.t.into());
    }
    st.meta = serde_json::Value::Object(meta);
    Ok(st)
}

/// Restores a state written by [`save`]: every player's weights and moments (a missing or
/// mis-shaped tensor is an error naming it), then the extra state.
pub fn load<M: Method + ?Sized>(method: &mut M, state: &MethodState) -> anyhow::Result<()> {
    for p in method.players_mut() {
        let t =
            saved_steps(&state.meta, &p.name).with_context(|| format!("checkpoint meta lacks `{}`", p.steps_key()))?;
        p.vs.load(&state.tensors, &format!("{}.", p.name))?;
        p.opt.load(t, &state.tensors, &format!("opt_{}.", p.name))?;
    }
    method.load_extra_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use candle_core::{DType, Device};

    #[test]
    fn step_counts_of_every_layout_load() {
        let new = serde_json::json!({ "opt_g_t": 3 });
        let lsal = serde_json::json!({ "adam_t": { "g": 4 } });
        let mmgan = serde_json::json!({ "t_g": 5 });
        assert_eq!(saved_steps(&new, "g"), Some(3));
        assert_eq!(saved_steps(&lsal, "g"), Some(4));
        assert_eq!(saved_steps(&mmgan, "g"), Some(5));
        assert_eq!(saved_steps(&mmgan, "d"), None);
    }

    #[test]
    fn a_player_updates_only_its_own_variables() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let vs = VarStore::new(DType::F32, &dev, Rng::new(0));
        let w = crate::nn::linear(3, 1, vs.root().pp("l"))?;
        let mut p = Player::new("g", vs, AdamConfig::dcgan(0.1))?;
        let x = Tensor::ones((2, 3), DType::F32, &dev)?;
        let before = p.vs().tensors()["l.weight"].copy()?;
        use candle_core::Module;
        p.backward_step(&w.forward(&x)?.sum_all()?)?;
        let after = &p.vs().tensors()["l.weight"];
        assert!((after - &before)?.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
        assert_eq!(p.optimizer().steps(), 1);
        Ok(())
    }
}
