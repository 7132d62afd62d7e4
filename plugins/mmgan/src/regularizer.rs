//! `mmgan-correlation`: the correlation-matrix regularizer R_G = ||I - A_S||_F (Eq. 9) on the
//! discriminator embeddings of the generated batch, usable by any method that fills
//! `RegContext.fake_features`.

use anyhow::{Context, bail};
use candle_core::Tensor;
use ganfold_core::{RegContext, Regularizer};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrelationConfig {
    /// Pearson correlation (rows centred over their coordinates), since the paper says
    /// "correlation"; false = cosine.
    pub center: bool,
    /// eps inside the square roots (the paper gives none; 1e-6 suits f32).
    pub eps: f64,
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        Self { center: true, eps: 1e-6 }
    }
}

pub struct Correlation {
    pub cfg: CorrelationConfig,
}

impl Correlation {
    pub fn new(cfg: CorrelationConfig) -> anyhow::Result<Self> {
        if !cfg.eps.is_finite() || cfg.eps < 0.0 {
            bail!("mmgan-correlation: `eps` must be a finite number >= 0 (got {})", cfg.eps);
        }
        Ok(Self { cfg })
    }

    /// R_G of an (n, d) feature matrix.
    pub fn of(&self, features: &Tensor) -> anyhow::Result<Tensor> {
        let (n, _d) =
            features.dims2().context("mmgan-correlation: fake_features must be a (batch, features) matrix")?;
        if n < 2 {
            bail!("mmgan-correlation: needs at least 2 generated samples (got {n})");
        }
        Ok(crate::manifold::correlation_penalty(features, self.cfg.center, self.cfg.eps)?)
    }
}

impl Regularizer for Correlation {
    fn name(&self) -> &str {
        "mmgan-correlation"
    }
    fn penalty(&self, cx: &mut RegContext<'_>) -> anyhow::Result<Tensor> {
        let Some(f) = cx.fake_features else {
            bail!(
                "regularizer `mmgan-correlation` needs RegContext.fake_features (the discriminator's embeddings of the \
                 generated batch), but this method passes None"
            )
        };
        self.of(f)
    }
}

pub fn build(table: &toml::Table) -> anyhow::Result<Box<dyn Regularizer>> {
    let cfg: CorrelationConfig = ganfold_core::config::parse(table, "mmgan-correlation")?;
    Ok(Box::new(Correlation::new(cfg)?))
}
