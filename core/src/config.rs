//! Run configuration: the trainer's settings (`[train]`) and the method's (`[method]`).
//!
//! Defaults come from each method's serde struct (citing the paper or code they come from);
//! a TOML file overrides them, then `--set key=value`. A key that the defaults do not have is
//! an error naming the key, and a value of the wrong type is an error naming the expected type.

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// What the shared trainer needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Registered method name (`ganfold list`).
    pub method: String,
    /// Dataset name (`mnist-5k`, `ring8`, ...) or a path to IDX files.
    pub data: String,
    /// Total number of training steps of the run (a resumed run continues up to it).
    pub steps: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Append a line to metrics.jsonl every this many steps.
    pub log_every: usize,
    /// Write a sample grid every this many steps (and at the end).
    pub sample_every: usize,
    /// Write a checkpoint every this many steps (and at the end).
    pub checkpoint_every: usize,
    /// Images in each sample grid (points in each 2-D scatter).
    pub sample_count: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            method: String::new(),
            data: "mnist-5k".into(),
            steps: 2000,
            batch_size: 64,
            seed: 0,
            device: "cpu".into(),
            log_every: 10,
            sample_every: 500,
            checkpoint_every: 500,
            sample_count: 64,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        for (k, v) in [
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("log_every", self.log_every),
            ("sample_every", self.sample_every),
            ("checkpoint_every", self.checkpoint_every),
            ("sample_count", self.sample_count),
        ] {
            if v == 0 {
                bail!("config key `train.{k}` must be at least 1");
            }
        }
        if self.sample_count > 10_000 {
            bail!("config key `train.sample_count` must be at most 10000");
        }
        Ok(())
    }
}

/// The whole configuration of a run, as written to `config.toml`.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    pub train: TrainConfig,
    /// The method's table, with every key present.
    pub method: toml::Table,
}

impl RunConfig {
    /// The defaults of `method` (a registered name).
    pub fn defaults(method: &str) -> anyhow::Result<Self> {
        let entry = crate::registry::method(method)?;
        let train = TrainConfig { method: method.to_string(), ..Default::default() };
        Ok(Self { train, method: (entry.default_config)() })
    }

    pub fn to_toml(&self) -> anyhow::Result<String> {
        let mut t = toml::Table::new();
        t.insert("train".into(), toml::Value::try_from(&self.train)?);
        t.insert("method".into(), toml::Value::Table(self.method.clone()));
        Ok(toml::to_string(&t)?)
    }

    /// Parses a full config (as written to a run directory) or a partial one (a user's file)
    /// over the defaults of the method it names (or `method` if given).
    pub fn from_toml(text: &str, method: Option<&str>) -> anyhow::Result<Self> {
        let mut t: toml::Table = toml::from_str(text).map_err(|e| {
            // One line, not toml's multi-line snippet.
            let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let at = line.map(|l| format!(" at line {l}")).unwrap_or_default();
            anyhow::anyhow!("invalid TOML{at}: {}", e.message().trim())
        })?;
        for k in t.keys() {
            if k != "train" && k != "method" {
                bail!("unknown config section `{k}` (expected [train] and [method])");
            }
        }
        let train_t = match t.remove("train") {
            Some(toml::Value::Table(x)) => x,
            Some(_) => bail!("`train` must be a table"),
            None => toml::Table::new(),
        };
        let named = train_t.get("method").and_then(|v| v.as_str()).map(str::to_string);
        let name = match (method, named.as_deref()) {
            (Some(m), Some(n)) if m != n => bail!("the config file is for method `{n}`, not `{m}`"),
            (Some(m), _) => m.to_string(),
            (None, Some(n)) => n.to_string(),
            (None, None) => bail!("the config names no method (set train.method)"),
        };
        let mut cfg = Self::defaults(&name)?;
        let defaults_train = toml::Table::try_from(&cfg.train)?;
        let merged_train = merge_checked(&defaults_train, &train_t, "train")?;
        cfg.train = toml::Value::Table(merged_train)
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("invalid [train] section: {}", one_line(&e.to_string())))?;
        if let Some(m) = t.remove("method") {
            let toml::Value::Table(mut m) = m else { bail!("`method` must be a table") };
            let ctx = format!("method {name}");
            rename_keys(&mut m, crate::registry::method(&name)?.renamed_keys, &ctx)?;
            cfg.method = merge_checked(&cfg.method, &m, &ctx)?;
        }
        Ok(cfg)
    }

    /// Applies `key=value`. A bare key is looked up in the method's table, then in `[train]`;
    /// `train.key` / `method.key` are explicit. Nested method keys use dots.
    pub fn set(&mut self, assignment: &str) -> anyhow::Result<()> {
        let Some((key, value)) = assignment.split_once('=') else {
            bail!("`--set {assignment}`: expected key=value");
        };
        let key = key.trim();
        let raw = value.trim();
        let digits = raw.strip_prefix(['-', '+']).unwrap_or(raw);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && raw.parse::<i64>().is_err() {
            bail!("config key `{key}`: {raw} is out of range (integers are at most {})", i64::MAX);
        }
        let value = parse_value(raw);
        let renamed = crate::registry::method(&self.train.method).map(|e| e.renamed_keys).unwrap_or(&[]);
        let old = key.strip_prefix("method.").unwrap_or(key);
        let news: Vec<&str> = renamed.iter().filter(|(o, _)| *o == old).map(|(_, n)| *n).collect();
        if !news.is_empty() && lookup(&self.method, old).is_none() {
            let ctx = format!("method {}", self.train.method);
            return news.iter().try_for_each(|n| set_checked(&mut self.method, n, value.clone(), &ctx));
        }
        let (section, path) = if let Some(k) = key.strip_prefix("train.") {
            ("train", k)
        } else if let Some(k) = key.strip_prefix("method.") {
            ("method", k)
        } else if lookup(&self.method, key).is_some() {
            ("method", key)
        } else {
            ("train", key)
        };
        if section == "method" {
            let name = self.train.method.clone();
            set_checked(&mut self.method, path, value, &format!("method {name}"))
        } else {
            if path == "method" {
                bail!("the method cannot be changed with --set; name it on the command line");
            }
            let mut t = toml::Table::try_from(&self.train)?;
            set_checked(&mut t, path, value, "train").map_err(|e| {
                if lookup(&t, path).is_none() {
                    let mk: Vec<String> = self.method.keys().cloned().collect();
                    let tk: Vec<String> = t.keys().cloned().collect();
                    anyhow::anyhow!(
                        "unknown config key `{key}` (method {} keys: {}; train keys: {})",
                        self.train.method,
                        mk.join(", "),
                        tk.join(", ")
                    )
                } else {
                    e
                }
            })?;
            self.train = toml::Value::Table(t).try_into().map_err(|e: toml::de::Error| {
                anyhow::anyhow!("invalid value for `{key}`: {}", one_line(&e.to_string()))
            })?;
            Ok(())
        }
    }
}

/// An error message on one line (serde's add `\nin `key``).
fn one_line(msg: &str) -> String {
    msg.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// A `--set` value: TOML if it parses as a TOML value, else a bare string (`mode=ssl`).
fn parse_value(s: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {s}")) {
        Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(s.into())),
        Err(_) => toml::Value::String(s.to_string()),
    }
}

fn lookup<'a>(t: &'a toml::Table, path: &str) -> Option<&'a toml::Value> {
    let mut parts = path.split('.');
    let mut cur = t.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_table()?.get(p)?;
    }
    Some(cur)
}

fn type_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a number",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    }
}

/// `value` coerced to the type of `default` (an integer where a float is expected is fine),
/// or an error naming the key.
fn coerce(default: &toml::Value, value: toml::Value, key: &str, ctx: &str) -> anyhow::Result<toml::Value> {
    use toml::Value as V;
    Ok(match (default, value) {
        (V::Float(_), V::Integer(i)) => V::Float(i as f64),
        (V::String(_), V::Integer(i)) => V::String(i.to_string()),
        (V::String(_), V::Float(f)) => V::String(f.to_string()),
        (V::String(_), V::Boolean(b)) => V::String(b.to_string()),
        (V::Table(d), V::Table(v)) => V::Table(merge_checked(d, &v, &format!("{ctx}.{key}"))?),
        (d, v) if std::mem::discriminant(d) == std::mem::discriminant(&v) => v,
        (d, v) => bail!("config key `{key}` ({ctx}) expects {}, got {} ({v})", type_name(d), type_name(&v)),
    })
}

fn set_checked(t: &mut toml::Table, path: &str, value: toml::Value, ctx: &str) -> anyhow::Result<()> {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let Some(slot) = t.get_mut(head) else {
        let known: Vec<&str> = t.keys().map(String::as_str).collect();
        bail!("unknown config key `{path}` for {ctx} (known keys: {})", known.join(", "));
    };
    match rest {
        None => {
            *slot = coerce(slot, value, path, ctx)?;
            Ok(())
        }
        Some(r) => match slot {
            toml::Value::Table(sub) => set_checked(sub, r, value, &format!("{ctx}.{head}")),
            _ => bail!("config key `{head}` ({ctx}) is not a table, so `{path}` does not exist"),
        },
    }
}

/// Moves each old key of `t` (a user's partial method table) to its new place(s); giving both
/// the old and the new name is an error.
fn rename_keys(t: &mut toml::Table, renamed: &[(&str, &str)], ctx: &str) -> anyhow::Result<()> {
    for (i, (old, _)) in renamed.iter().enumerate() {
        if renamed[..i].iter().any(|(o, _)| o == old) {
            continue;
        }
        let Some(value) = t.remove(*old) else { continue };
        for (_, new) in renamed.iter().filter(|(o, _)| o == old) {
            if lookup(t, new).is_some() {
                bail!("config key `{old}` ({ctx}) is the old name of `{new}`; give only `{new}`");
            }
            let mut parts: Vec<&str> = new.split('.').collect();
            let leaf = parts.pop().unwrap_or(new);
            let mut cur = &mut *t;
            for p in parts {
                let slot = cur.entry(p).or_insert_with(|| toml::Value::Table(toml::Table::new()));
                let toml::Value::Table(sub) = slot else {
                    bail!("config key `{p}` ({ctx}) must be a table");
                };
                cur = sub;
            }
            cur.insert(leaf.to_string(), value.clone());
        }
    }
    Ok(())
}

/// `overrides` laid over `defaults`; every override key must exist in the defaults (except
/// under tables the defaults leave empty, which are free-form), with a compatible type.
pub fn merge_checked(defaults: &toml::Table, overrides: &toml::Table, ctx: &str) -> anyhow::Result<toml::Table> {
    let mut out = defaults.clone();
    for (k, v) in overrides {
        match defaults.get(k) {
            Some(d) => {
                let new = coerce(d, v.clone(), k, ctx)?;
                out.insert(k.clone(), new);
            }
            None => {
                let known: Vec<&str> = defaults.keys().map(String::as_str).collect();
                bail!("unknown config key `{k}` for {ctx} (known keys: {})", known.join(", "));
            }
        }
    }
    Ok(out)
}

/// A method's typed configuration from its resolved table; unknown keys and bad types are
/// errors naming the method.
pub fn parse<T: serde::de::DeserializeOwned>(table: &toml::Table, method: &str) -> anyhow::Result<T> {
    check_integers(table, method, "")?;
    toml::Value::Table(table.clone())
        .try_into()
        .map_err(|e| anyhow::anyhow!("invalid configuration for {method}: {}", one_line(&e.to_string())))
}

/// Largest integer a method's configuration may hold. Widths, sizes and counts are multiplied
/// together when networks are built; below this bound those products cannot overflow, and the
/// memory they ask for is checked when the parameters are created (`nn::VarStore`).
pub const MAX_CONFIG_INT: i64 = i32::MAX as i64;

fn check_integers(table: &toml::Table, method: &str, prefix: &str) -> anyhow::Result<()> {
    for (k, v) in table {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        check_integer_value(v, method, &key)?;
    }
    Ok(())
}

fn check_integer_value(v: &toml::Value, method: &str, key: &str) -> anyhow::Result<()> {
    match v {
        toml::Value::Integer(i) if *i > MAX_CONFIG_INT => {
            bail!("{method}: `{key}` = {i} is larger than {MAX_CONFIG_INT}, the largest size ganfold accepts")
        }
        toml::Value::Table(t) => check_integers(t, method, key),
        toml::Value::Array(a) => {
            a.iter().enumerate().try_for_each(|(j, x)| check_integer_value(x, method, &format!("{key}[{j}]")))
        }
        _ => Ok(()),
    }
}

/// A method's default configuration as a TOML table (for `MethodEntry::default_config`).
pub fn table_of<T: Serialize + Default>() -> toml::Table {
    toml::Table::try_from(T::default()).expect("a config struct serialises to a TOML table")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RunConfig {
        let method: toml::Table =
            toml::from_str("lr = 0.0002\nngf = 64\nmode = \"gan\"\n[loss]\nkind = \"bce\"\n").unwrap();
        RunConfig { train: TrainConfig { method: "m".into(), ..Default::default() }, method }
    }

    #[test]
    fn set_resolves_method_then_train_keys_with_types() -> anyhow::Result<()> {
        let mut c = cfg();
        c.set("lr=1e-3")?;
        c.set("ngf=32")?;
        c.set("mode=ssl")?;
        c.set("loss.kind=hinge")?;
        c.set("steps=7")?;
        c.set("train.seed=3")?;
        c.set("method.lr=1")?; // an integer where a float is expected is fine
        assert_eq!(c.method["lr"].as_float(), Some(1.0));
        assert_eq!(c.method["ngf"].as_integer(), Some(32));
        assert_eq!(c.method["mode"].as_str(), Some("ssl"));
        assert_eq!(c.method["loss"]["kind"].as_str(), Some("hinge"));
        assert_eq!((c.train.steps, c.train.seed), (7, 3));
        Ok(())
    }

    #[test]
    fn unknown_keys_and_bad_types_name_the_key() {
        let mut c = cfg();
        let e = c.set("nope=1").unwrap_err().to_string();
        assert!(e.contains("unknown config key `nope`") && e.contains("lr") && e.contains("batch_size"), "{e}");
        let e = c.set("ngf=abc").unwrap_err().to_string();
        assert!(e.contains("`ngf`") && e.contains("expects an integer"), "{e}");
        let e = c.set("steps=-3").unwrap_err().to_string();
        assert!(e.contains("steps"), "{e}");
        let e = c.set("loss.nope=1").unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
        assert!(c.set("justakey").is_err());
    }

    #[test]
    fn old_key_names_move_to_their_new_places() -> anyhow::Result<()> {
        let renamed = [("nz", "latent_dim"), ("lr_g", "opt_g.lr"), ("beta1", "opt_g.beta1"), ("beta1", "opt_d.beta1")];
        let mut t: toml::Table = toml::from_str("nz = 8\nlr_g = 0.1\nbeta1 = 0.3\nngf = 4\n[opt_d]\nlr = 0.2")?;
        rename_keys(&mut t, &renamed, "method m")?;
        let want: toml::Table =
            toml::from_str("latent_dim = 8\nngf = 4\n[opt_g]\nlr = 0.1\nbeta1 = 0.3\n[opt_d]\nlr = 0.2\nbeta1 = 0.3")?;
        assert_eq!(t, want);
        let mut both: toml::Table = toml::from_str("nz = 8\nlatent_dim = 9")?;
        let e = rename_keys(&mut both, &renamed, "method m").unwrap_err().to_string();
        assert!(e.contains("`nz`") && e.contains("`latent_dim`"), "{e}");
        Ok(())
    }

    #[test]
    fn merge_rejects_unknown_keys() {
        let d: toml::Table = toml::from_str("a = 1\nb = \"x\"").unwrap();
        let o: toml::Table = toml::from_str("a = 2\nc = 3").unwrap();
        let e = merge_checked(&d, &o, "method m").unwrap_err().to_string();
        assert!(e.contains("`c`") && e.contains("method m"), "{e}");
    }

    /// Sizes too large to multiply safely are refused by name before any network is built.
    #[test]
    fn huge_integers_are_refused_by_key() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct C {
            ngf: usize,
            widths: Vec<usize>,
        }
        let ok: toml::Table = toml::from_str("ngf = 64\nwidths = [1000, 500]").unwrap();
        assert!(parse::<C>(&ok, "m").is_ok());
        let big: toml::Table = toml::from_str("ngf = 4611686018427387904\nwidths = [1]").unwrap();
        let e = parse::<C>(&big, "m").unwrap_err().to_string();
        assert!(e.contains("`ngf`") && e.contains("largest size"), "{e}");
        let big: toml::Table = toml::from_str("ngf = 1\nwidths = [1, 3000000000]").unwrap();
        assert!(parse::<C>(&big, "m").unwrap_err().to_string().contains("`widths[1]`"));
    }
}
