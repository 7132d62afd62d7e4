//! Plugin registries (methods and regularizers), filled by `inventory::submit!` in the plugin
//! crates. A crate registers only if it is linked: binaries, tests and notebooks name the facade,
//! `use ganfold_plugins as _;`.
//!
//! Lookups validate the whole registry, as torch-fidelity's registry does: names are lowercase
//! ASCII letters, digits and '-', unique; a clash is an error naming both papers, never a silent
//! shadowing. Listings are sorted by name.

use crate::method::{BuildContext, Method, Regularizer};
use anyhow::{Context, bail};

/// A training method (one paper).
pub struct MethodEntry {
    pub name: &'static str,
    /// Short citation, e.g. "Qi, Zhang, Hu. Global versus Localized GANs. CVPR 2018".
    pub paper: &'static str,
    pub summary: &'static str,
    /// The configuration with every default, as a TOML table.
    pub default_config: fn() -> toml::Table,
    /// Old key names still accepted in config files and `--set`, as `(old, new)`: `new` may be
    /// a dotted path into a nested table, and one old key may feed several new ones (a shared
    /// `beta1` that became `opt_g.beta1` and `opt_d.beta1`). Run directories and published
    /// models written with the old names keep loading.
    pub renamed_keys: &'static [(&'static str, &'static str)],
    pub build: fn(&BuildContext<'_>) -> anyhow::Result<Box<dyn Method>>,
}
inventory::collect!(MethodEntry);

/// A penalty any method can attach by name.
pub struct RegularizerEntry {
    pub name: &'static str,
    pub paper: &'static str,
    pub summary: &'static str,
    pub default_config: fn() -> toml::Table,
    pub build: fn(&toml::Table) -> anyhow::Result<Box<dyn Regularizer>>,
}
inventory::collect!(RegularizerEntry);

/// Checks a registry name: non-empty, lowercase ASCII letters, digits and '-', starting with a letter.
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!("invalid plugin name {name:?}: use lowercase letters, digits and '-', starting with a letter");
    }
    Ok(())
}

fn checked<T>(
    items: Vec<&'static T>,
    name: fn(&T) -> &'static str,
    paper: fn(&T) -> &'static str,
    kind: &str,
) -> anyhow::Result<Vec<&'static T>> {
    let mut items = items;
    items.sort_by_key(|e| name(e));
    for e in &items {
        validate_name(name(e)).map_err(|err| anyhow::anyhow!("{kind} registry: {err} ({})", paper(e)))?;
    }
    for w in items.windows(2) {
        if name(w[0]) == name(w[1]) {
            bail!(
                "{kind} registry: the name `{}` is registered twice ({} / {}); rename one plugin",
                name(w[0]),
                paper(w[0]),
                paper(w[1])
            );
        }
    }
    Ok(items)
}

/// Every registered method, sorted by name; an error if the registry is inconsistent.
pub fn methods() -> anyhow::Result<Vec<&'static MethodEntry>> {
    checked(inventory::iter::<MethodEntry>.into_iter().collect(), |e| e.name, |e| e.paper, "method")
}

/// Every registered regularizer, sorted by name.
pub fn regularizers() -> anyhow::Result<Vec<&'static RegularizerEntry>> {
    checked(inventory::iter::<RegularizerEntry>.into_iter().collect(), |e| e.name, |e| e.paper, "regularizer")
}

fn find<T>(all: Vec<&'static T>, name: &str, key: fn(&T) -> &'static str, kind: &str) -> anyhow::Result<&'static T> {
    if let Some(e) = all.iter().find(|e| key(e) == name) {
        return Ok(e);
    }
    let names: Vec<&str> = all.iter().map(|e| key(e)).collect();
    if names.is_empty() {
        bail!("unknown {kind} `{name}`: none are registered (is the plugin crate linked? `use ganfold_plugins as _;`)")
    }
    bail!(
        "unknown {kind} `{name}` (available: {}); a third-party {kind} is registered only in a binary that links \
         its crate: `use my_plugin as _; fn main() -> std::process::ExitCode {{ ganfold_cli::main() }}` \
         (templates/plugin is such a crate with its binary; docs/DEVELOPING.md)",
        names.join(", ")
    )
}

pub fn method(name: &str) -> anyhow::Result<&'static MethodEntry> {
    find(methods()?, name, |e| e.name, "method")
}

pub fn regularizer(name: &str) -> anyhow::Result<&'static RegularizerEntry> {
    find(regularizers()?, name, |e| e.name, "regularizer")
}

/// Builds the regularizers a method's config lists (`regularizers = [{ name = "...", weight = 1.0, ... }]`).
/// Returns (weight, regularizer) pairs.
pub fn build_regularizers(specs: &[toml::Table]) -> anyhow::Result<Vec<(f64, Box<dyn Regularizer>)>> {
    let mut out = Vec::new();
    for spec in specs {
        let Some(name) = spec.get("name").and_then(|v| v.as_str()) else {
            bail!("each entry of `regularizers` needs a `name` (e.g. {{ name = \"mmgan-correlation\", weight = 1.0 }})")
        };
        let entry = regularizer(name)?;
        let weight = match spec.get("weight") {
            None => 1.0,
            Some(v) => v
                .as_float()
                .or(v.as_integer().map(|i| i as f64))
                .filter(|w| w.is_finite() && *w >= 0.0)
                .ok_or_else(|| anyhow::anyhow!("regularizer `{name}`: weight must be a non-negative number"))?,
        };
        let mut params = spec.clone();
        params.remove("name");
        params.remove("weight");
        let resolved =
            crate::config::merge_checked(&(entry.default_config)(), &params, &format!("regularizer {name}"))?;
        out.push((weight, (entry.build)(&resolved)?));
    }
    Ok(out)
}

/// The weighted sum of `regs` (from [`build_regularizers`]) at `cx`, `None` when there are
/// none; each penalty's value is pushed to `st` under its name.
pub fn weighted_penalties(
    regs: &[(f64, Box<dyn Regularizer>)],
    cx: &mut crate::RegContext<'_>,
    st: &mut crate::StepStats,
) -> anyhow::Result<Option<candle_core::Tensor>> {
    let mut sum: Option<candle_core::Tensor> = None;
    for (w, r) in regs {
        let p = r.penalty(cx).with_context(|| format!("regularizer {}", r.name()))?;
        st.push_t(r.name(), &p)?;
        let term = (p * *w)?;
        sum = Some(match sum {
            Some(s) => (s + term)?,
            None => term,
        });
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(validate_name("lgan").is_ok());
        assert!(validate_name("mmgan-correlation").is_ok());
        for bad in ["", "LGAN", "l gan", "-x", "1gan", "a_b", "é"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[derive(Debug)]
    struct E(&'static str, &'static str);
    #[test]
    fn duplicates_are_an_error_naming_both() {
        static A: E = E("dup", "paper A");
        static B: E = E("dup", "paper B");
        static C: E = E("ok", "paper C");
        let err = checked(vec![&C, &A, &B], |e| e.0, |e| e.1, "method").unwrap_err().to_string();
        assert!(
            err.contains("`dup` is registered twice") && err.contains("paper A") && err.contains("paper B"),
            "{err}"
        );
        let sorted = checked(vec![&C, &A], |e| e.0, |e| e.1, "method").unwrap();
        assert_eq!(sorted.iter().map(|e| e.0).collect::<Vec<_>>(), ["dup", "ok"]);
    }
}
