//! The experiment file: a paper's claim, the arms that test it, the seeds and the metrics.
//!
//! ```toml
//! claim = "DCGAN learns MNIST: low classifier-FID, every class generated"
//! source = "Radford, Metz, Chintala, ICLR 2016, Sec. 4"
//! data = "mnist"
//! steps = 5000
//! batch_size = 64          # default 64
//! seeds = 3                # 0, 1, 2; or a list: [0, 7, 9]
//! set = { log_every = 50 } # overrides for every arm (method keys, then [train] keys)
//!
//! [eval]
//! samples = 5000
//! metrics = ["fid.fid", { key = "precision_recall.recall", label = "recall" }]
//!
//! [x_axis]                 # optional: curve-shaped claims, each arm gives its `x`
//! label = "d"
//!
//! [[arm]]
//! label = "DCGAN"
//! method = "dcgan"
//! set = { lr_g = 2e-4 }
//!
//! [[prepare]]              # optional: a run trained once, before the arms, that arms build on
//! name = "stages"          # an arm names its directory as "{prepare.stages}" in a string value
//! method = "lccgan"
//! steps = 3021
//! set = { ae_steps = 3000 }
//! quick_set = { ae_steps = 2, lcc_rounds = 1 }  # what makes it fit `--quick`'s 4 steps
//! ```
//!
//! A metric key is a dotted path into the run's `eval.json` (what `ganfold eval` prints), or
//! into its `summary.json` when it starts with `summary.` (`summary.evaluation.test_error`).

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// An experiment file as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The claim under test, in words.
    pub claim: String,
    /// Paper and section, table or figure the claim comes from.
    pub source: String,
    /// Anything a reader of the table should know (budget, deviations).
    #[serde(default)]
    pub notes: String,
    /// Dataset of every arm (`ganfold list --datasets`).
    pub data: String,
    /// Training steps of every run.
    pub steps: usize,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default)]
    pub seeds: Seeds,
    /// Config overrides applied to every arm before its own.
    #[serde(default)]
    pub set: toml::Table,
    pub eval: EvalSpec,
    #[serde(default)]
    pub x_axis: Option<XAxis>,
    #[serde(rename = "arm")]
    pub arms: Vec<Arm>,
    #[serde(default, rename = "prepare")]
    pub prepares: Vec<Prepare>,
}

/// A run trained once before the arms (stages every arm shares, such as LCC-GAN's autoencoder
/// and bases); it is not evaluated. Arms name its directory as `{prepare.NAME}` inside a string
/// value. It takes the file's `data`, `batch_size` and `set`, then its own `set`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prepare {
    pub name: String,
    pub method: String,
    pub steps: usize,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub set: toml::Table,
    /// Applied over `set` under `--quick`, whose runs take at most 4 steps.
    #[serde(default)]
    pub quick_set: toml::Table,
}

impl Prepare {
    /// The text an arm's string value uses for this run's directory.
    pub fn placeholder(&self) -> String {
        format!("{{prepare.{}}}", self.name)
    }
}

fn default_batch_size() -> usize {
    64
}

/// Seeds: a count (`3` means 0, 1, 2) or an explicit list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Seeds {
    Count(usize),
    List(Vec<u64>),
}

impl Default for Seeds {
    fn default() -> Self {
        Seeds::Count(3)
    }
}

impl Seeds {
    pub fn list(&self) -> Vec<u64> {
        match self {
            Seeds::Count(n) => (0..*n as u64).collect(),
            Seeds::List(v) => v.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    /// Samples per set (generated and real), as `ganfold eval --samples`.
    #[serde(default = "default_samples")]
    pub samples: usize,
    /// Seed of the evaluation's own random choices, as `ganfold eval --seed`.
    #[serde(default)]
    pub seed: u64,
    /// Add a row for real data against itself (the test split against the training split, or two
    /// halves): the floor of distances and the ceiling of scores on the same metric code.
    #[serde(default)]
    pub reference: bool,
    /// Real points of the `local.*` chart metrics (default 1000).
    #[serde(default)]
    pub local_points: Option<usize>,
    /// Dataset of those points (default: the run's test split), e.g. `mnist-val` to choose
    /// settings without the test set.
    #[serde(default)]
    pub local_data: Option<String>,
    /// The columns of the table.
    pub metrics: Vec<MetricSpec>,
}

fn default_samples() -> usize {
    5000
}

/// A metric: its key alone, or a table with a label and which direction is better.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetricSpec {
    Key(String),
    Full {
        key: String,
        #[serde(default)]
        label: Option<String>,
        #[serde(default)]
        better: Option<Better>,
        /// The methods that report this metric (empty: every arm's); other arms' cells read
        /// "n/a" instead of failing, e.g. an encoder's reconstruction beside a plain GAN.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        methods: Vec<String>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Lower,
    Higher,
}

/// A metric with its label and direction resolved.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metric {
    pub key: String,
    pub label: String,
    pub better: Option<Better>,
    /// Empty: every arm reports it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
}

impl Metric {
    /// Whether arms of `method` report this metric.
    pub fn applies_to(&self, method: &str) -> bool {
        self.methods.is_empty() || self.methods.iter().any(|m| m == method)
    }
}

impl MetricSpec {
    pub fn resolve(&self) -> Metric {
        let (key, label, better, methods) = match self {
            MetricSpec::Key(k) => (k.clone(), None, None, vec![]),
            MetricSpec::Full { key, label, better, methods } => (key.clone(), label.clone(), *better, methods.clone()),
        };
        let (known_label, known_better) = known_metric(&key);
        Metric {
            label: label.or(known_label.map(str::to_string)).unwrap_or_else(|| key.clone()),
            better: better.or(known_better),
            methods,
            key,
        }
    }
}

/// Labels and directions of the metrics `ganfold eval` reports.
fn known_metric(key: &str) -> (Option<&'static str>, Option<Better>) {
    use Better::*;
    match key {
        "fid.fid" => (Some("FID"), Some(Lower)),
        "inception_score.mean" => (Some("IS"), Some(Higher)),
        "kid.mean" => (Some("KID"), Some(Lower)),
        "precision_recall.precision" => (Some("precision"), Some(Higher)),
        "precision_recall.recall" => (Some("recall"), Some(Higher)),
        "classes_covered" => (Some("classes covered"), Some(Higher)),
        "class_kl" => (Some("class KL"), Some(Lower)),
        "stacked_mnist.modes_covered" => (Some("modes (of 1000)"), Some(Higher)),
        "stacked_mnist.kl_to_uniform" => (Some("KL to uniform"), Some(Lower)),
        "modes.modes_covered" => (Some("modes covered"), Some(Higher)),
        "modes.high_quality_fraction" => (Some("high quality"), Some(Higher)),
        "modes.kl_to_uniform" => (Some("KL to uniform"), Some(Lower)),
        "local.class_agreement" => (Some("G(x,0) class agreement"), Some(Higher)),
        "local.locality_rmse" => (Some("locality RMSE"), Some(Lower)),
        "local.median_min_eig" => (Some("median min eig JᵀJ"), None),
        "local.median_condition" => (Some("median cond JᵀJ"), Some(Lower)),
        "local.tangent_overlap" => (Some("tangent overlap"), Some(Lower)),
        "summary.images_per_second" => (Some("images/s"), Some(Higher)),
        "summary.wall_seconds" => (Some("train s"), Some(Lower)),
        _ => (None, None),
    }
}

/// The x-axis of a curve-shaped claim: every arm gives its `x`; arms with the same `group` form
/// one curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XAxis {
    pub label: String,
    #[serde(default)]
    pub log: bool,
    /// Metric keys (of `eval.metrics`) whose mean over all runs is an x position: each is drawn
    /// as a labelled vertical line (a measured dimension on a curve against dimension).
    #[serde(default)]
    pub marks: Vec<String>,
}

/// One arm: a method and its config overrides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    pub label: String,
    pub method: String,
    #[serde(default)]
    pub set: toml::Table,
    /// Position on the x-axis (required when the file has one).
    #[serde(default)]
    pub x: Option<f64>,
    /// Curve this arm belongs to (default: its method).
    #[serde(default)]
    pub group: Option<String>,
}

impl Arm {
    /// Directory name of the arm: its label in lower case, runs of other characters as `-`.
    pub fn slug(&self) -> String {
        slug(&self.label)
    }

    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or(&self.method)
    }
}

pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

impl Spec {
    /// Parses and checks an experiment file's text (`what` names it in errors).
    pub fn parse(text: &str, what: &str) -> Result<Spec> {
        let spec: Spec = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let at = line.map(|l| format!(" at line {l}")).unwrap_or_default();
            anyhow::anyhow!("{what}: invalid experiment file{at}: {}", e.message().trim())
        })?;
        spec.check().with_context(|| what.to_string())?;
        Ok(spec)
    }

    pub fn read(path: &Path) -> Result<Spec> {
        let text = ganfold_core::limits::read_text(path, "experiment file")?;
        Spec::parse(&text, &path.display().to_string())
    }

    /// What can be checked without the registry or the data.
    fn check(&self) -> Result<()> {
        ensure!(!self.claim.trim().is_empty(), "`claim` is empty: say what the experiment tests");
        ensure!(self.steps > 0, "`steps` must be at least 1");
        ensure!(self.batch_size > 0, "`batch_size` must be at least 1");
        let seeds = self.seeds.list();
        ensure!(!seeds.is_empty(), "`seeds` is empty");
        for (i, s) in seeds.iter().enumerate() {
            ensure!(!seeds[..i].contains(s), "seed {s} is listed twice");
        }
        ensure!(self.eval.samples >= 10, "`eval.samples` must be at least 10");
        ensure!(!self.eval.metrics.is_empty(), "`eval.metrics` is empty: name the metrics that form the table");
        let metrics: Vec<Metric> = self.eval.metrics.iter().map(MetricSpec::resolve).collect();
        for (i, m) in metrics.iter().enumerate() {
            ensure!(
                !m.key.is_empty() && !m.key.split('.').any(str::is_empty),
                "metric key `{}` is not a dotted path",
                m.key
            );
            ensure!(!metrics[..i].iter().any(|o| o.key == m.key), "metric `{}` is listed twice", m.key);
        }
        if let Some(ax) = &self.x_axis {
            for k in &ax.marks {
                ensure!(metrics.iter().any(|m| &m.key == k), "x_axis mark `{k}` is not one of `eval.metrics`");
            }
        }
        for (i, p) in self.prepares.iter().enumerate() {
            ensure!(
                !p.name.is_empty() && p.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "[[prepare]] name `{}`: use letters, digits, `-` and `_` only",
                p.name
            );
            ensure!(!self.prepares[..i].iter().any(|o| o.name == p.name), "[[prepare]] `{}` is named twice", p.name);
            ensure!(p.steps > 0, "[[prepare]] `{}`: `steps` must be at least 1", p.name);
        }
        ensure!(!self.arms.is_empty(), "the file has no [[arm]]");
        for (i, a) in self.arms.iter().enumerate() {
            ensure!(!a.label.trim().is_empty(), "arm {} has an empty label", i + 1);
            if let Some(o) = self.arms[..i].iter().find(|o| o.label == a.label) {
                bail!("arm label `{}` is used twice", o.label);
            }
            ensure!(!a.slug().is_empty(), "arm label `{}` has no letter or digit to name its directory", a.label);
            if let Some(o) = self.arms[..i].iter().find(|o| o.slug() == a.slug()) {
                bail!("arm labels `{}` and `{}` name the same directory `{}`", o.label, a.label, a.slug());
            }
            match (&self.x_axis, a.x) {
                (Some(ax), None) => bail!("arm `{}` has no `x`, but the file has an x-axis ({})", a.label, ax.label),
                (None, Some(_)) => bail!("arm `{}` has an `x`, but the file has no [x_axis]", a.label),
                (Some(ax), Some(x)) => {
                    ensure!(
                        x.is_finite() && (!ax.log || x > 0.0),
                        "arm `{}`: x = {x} cannot be drawn on this axis",
                        a.label
                    )
                }
                (None, None) => {}
            }
        }
        for m in self.metrics() {
            if let Some(name) = m.methods.iter().find(|n| !self.arms.iter().any(|a| &a.method == *n)) {
                bail!("metric `{}` names method `{name}`, which no [[arm]] runs", m.key);
            }
        }
        Ok(())
    }

    pub fn metrics(&self) -> Vec<Metric> {
        self.eval.metrics.iter().map(MetricSpec::resolve).collect()
    }
}

/// `table` as `key=value` assignments for [`ganfold_core::RunConfig::set`], nested tables as
/// dotted keys (`loss.kind="hinge"`).
pub fn assignments(table: &toml::Table) -> Vec<String> {
    let mut out = vec![];
    flatten("", table, &mut out);
    out
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
    for (k, v) in table {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            v => out.push(format!("{key}={v}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
claim = "c"
source = "s"
data = "ring8"
steps = 10
[eval]
metrics = ["modes.modes_covered", { key = "summary.images_per_second", label = "speed" }]
[[arm]]
label = "A b"
method = "dcgan"
set = { hidden = 16, loss = { kind = "x" } }
"#;

    #[test]
    fn parses_with_defaults() -> Result<()> {
        let s = Spec::parse(OK, "t")?;
        assert_eq!((s.batch_size, s.seeds.list(), s.eval.samples), (64, vec![0, 1, 2], 5000));
        assert_eq!(s.arms[0].slug(), "a-b");
        let m = s.metrics();
        assert_eq!((m[0].label.as_str(), m[0].better), ("modes covered", Some(Better::Higher)));
        assert_eq!(m[1].label, "speed");
        assert_eq!(assignments(&s.arms[0].set), vec!["hidden=16", "loss.kind=\"x\""]);
        Ok(())
    }

    #[test]
    fn a_metric_can_belong_to_some_methods() -> Result<()> {
        let text = OK.replace("label = \"speed\" }", "label = \"speed\", methods = [\"dcgan\"] }");
        let m = Spec::parse(&text, "t")?.metrics();
        assert!(m[0].applies_to("lsal") && m[0].applies_to("dcgan"), "no list: every method");
        assert!(m[1].applies_to("dcgan") && !m[1].applies_to("lsal"));
        Ok(())
    }

    #[test]
    fn bad_files_name_the_problem() {
        let cases = [
            (OK.replace("label = \"A b\"", "label = \"A b\"\nlr = 1"), "unknown field `lr`"),
            (OK.to_string() + "[[arm]]\nlabel = \"A b\"\nmethod = \"dcgan\"\n", "`A b` is used twice"),
            (OK.to_string() + "[[arm]]\nlabel = \"a-b\"\nmethod = \"dcgan\"\n", "same directory `a-b`"),
            (OK.replace("steps = 10", "steps = 0"), "`steps`"),
            (OK.replace("steps = 10", "steps = 10\nseeds = [1, 1]"), "seed 1 is listed twice"),
            (OK.replace("\"modes.modes_covered\"", "\"a..b\""), "not a dotted path"),
            (OK.to_string() + "[x_axis]\nlabel = \"d\"\n", "has no `x`"),
            (OK.replace("claim = \"c\"\n", ""), "missing field `claim`"),
            (OK.to_string() + "[[prepare]]\nname = \"a b\"\nmethod = \"dcgan\"\nsteps = 1\n", "name `a b`"),
            (OK.replace("[[arm]]", "[x_axis]\nlabel = \"d\"\nmarks = [\"fid.fid\"]\n[[arm]]"), "mark `fid.fid`"),
            (
                OK.replace("label = \"speed\" }", "label = \"speed\", methods = [\"lsa\"] }"),
                "names method `lsa`, which no [[arm]] runs",
            ),
        ];
        for (text, want) in cases {
            let e = format!("{:#}", Spec::parse(&text, "f.toml").unwrap_err());
            assert!(e.contains(want) && e.contains("f.toml"), "{e}\nwanted: {want}");
        }
    }
}
