//! Session files: TOML with `[defaults]` and `[[runs]]`; every key of `[defaults]` can be set
//! per run and the run's value wins.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::config::{
    GradualUnfreeze, LrSchedule, OptimizerKind, TrainConfig, initially_frozen,
};
use crate::engine::device::DeviceSpec;
use crate::engine::model::ModelKind;
use crate::engine::precision::Precision;
use crate::engine::weights::WeightsSource;
use crate::session::executor::ExecutorSpec;

/// A session file that could not be used; the message names the file, the line and the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SessionError(pub String);

/// One run, with `[defaults]` applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSpec {
    pub name: String,
    #[serde(with = "as_string")]
    pub model: ModelKind,
    pub data: String,
    pub image_size: usize,
    pub in_channels: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    #[serde(with = "as_string")]
    pub optimizer: OptimizerKind,
    pub momentum: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// Gradients scaled down to this global L2 norm before each update (PyTorch's
    /// `clip_grad_norm_`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grad_clip_norm: Option<f64>,
    #[serde(with = "as_string")]
    pub lr_schedule: LrSchedule,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr_step_epochs: Option<usize>,
    pub lr_step_gamma: f64,
    #[serde(with = "as_string")]
    pub device: DeviceSpec,
    #[serde(with = "as_string")]
    pub precision: Precision,
    pub seed: u64,
    pub val_split: f64,
    pub augment: bool,
    pub freeze: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unfreeze_at_epoch: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gradual_unfreeze: Option<GradualUnfreeze>,
    pub group_lr: BTreeMap<String, f64>,
    pub warmup_steps: usize,
    pub checkpoint_every_steps: usize,
    pub keep_checkpoints: usize,
    pub log_every_steps: usize,
    /// Finish after this many validations without a better validation loss.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_stop_patience: Option<usize>,
    /// How much lower than the last loss that counted a validation loss must be to count as
    /// better for `early_stop_patience`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_stop_min_delta: Option<f64>,
    pub weights: String,
    /// `[[regex, replacement], ...]` applied to the weights file's tensor names.
    pub weights_remap: Vec<[String; 2]>,
    /// Tensor names of the weights file (after remapping) that must not be loaded.
    pub weights_exclude: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    pub executor: ExecutorSpec,
}

impl Default for RunSpec {
    fn default() -> Self {
        let TrainConfig {
            model,
            data,
            image_size,
            in_channels,
            epochs,
            batch_size,
            lr,
            optimizer,
            momentum,
            weight_decay,
            grad_clip_norm,
            lr_schedule,
            lr_step_epochs,
            lr_step_gamma,
            device,
            precision,
            seed,
            val_split,
            augment,
            freeze,
            unfreeze_at_epoch,
            gradual_unfreeze,
            group_lr,
            warmup_steps,
            checkpoint_every_steps,
            keep_checkpoints,
            log_every_steps,
            early_stop_patience,
            early_stop_min_delta,
            weights,
            weights_remap,
            weights_exclude,
        } = TrainConfig::default();
        Self {
            name: String::new(),
            model,
            data,
            image_size,
            in_channels,
            epochs,
            batch_size,
            lr,
            optimizer,
            momentum,
            weight_decay,
            grad_clip_norm,
            lr_schedule,
            lr_step_epochs,
            lr_step_gamma,
            device,
            precision,
            seed,
            val_split,
            augment,
            freeze,
            unfreeze_at_epoch,
            gradual_unfreeze,
            group_lr,
            warmup_steps,
            checkpoint_every_steps,
            keep_checkpoints,
            log_every_steps,
            early_stop_patience,
            early_stop_min_delta,
            weights,
            weights_remap,
            weights_exclude,
            threads: None,
            executor: ExecutorSpec::Local,
        }
    }
}

/// A whole session file.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSpec {
    pub name: String,
    pub runs: Vec<RunSpec>,
    /// The file as written, kept as the session's record of what was launched.
    pub source: String,
}

/// The file's shape, used to check every table with line numbers before merging.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionFile {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    defaults: RunSpec,
    #[serde(default)]
    runs: Vec<RunSpec>,
}

impl SessionSpec {
    /// Reads and checks a session file.
    pub fn load(path: &Path) -> Result<Self, SessionError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SessionError(format!("cannot read session file {}: {e}", path.display()))
        })?;
        Self::parse(&text, path)
    }

    /// Checks a session file's text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, SessionError> {
        let file = path.display();
        let checked: SessionFile = toml::from_str(text)
            .map_err(|e| SessionError(format!("{file}: {}", in_words(e.to_string().trim_end()))))?;
        if checked.runs.is_empty() {
            return Err(SessionError(format!(
                "{file}: no runs: add at least one [[runs]] table with a name"
            )));
        }
        check_name(&checked.name, "session name")
            .map_err(|m| SessionError(format!("{file}: {m}")))?;
        let raw: toml::Table =
            toml::from_str(text).map_err(|e| SessionError(format!("{file}: {e}")))?;
        let defaults = raw
            .get("defaults")
            .and_then(|d| d.as_table())
            .cloned()
            .unwrap_or_default();
        let run_tables = raw
            .get("runs")
            .and_then(|r| r.as_array())
            .cloned()
            .unwrap_or_default();
        let mut runs = Vec::new();
        let mut seen = HashSet::new();
        for (index, table) in run_tables.iter().enumerate() {
            let mut merged = defaults.clone();
            if let Some(table) = table.as_table() {
                merged.extend(table.clone());
            }
            let run: RunSpec = merged.try_into().map_err(|e| {
                SessionError(format!(
                    "{file}: run {}: {}",
                    index + 1,
                    in_words(&e.to_string())
                ))
            })?;
            let at = |key: &str| Location {
                path,
                text,
                run: index,
                key: key.to_string(),
            };
            if run.name.is_empty() {
                return Err(SessionError(format!(
                    "{}: run {} has no name: add name = \"...\"",
                    at("name"),
                    index + 1
                )));
            }
            check_name(&run.name, "run name")
                .map_err(|m| SessionError(format!("{}: {m}", at("name"))))?;
            if !seen.insert(run.name.clone()) {
                return Err(SessionError(format!(
                    "{}: two runs are named {:?}: run names must be unique in a session",
                    at("name"),
                    run.name
                )));
            }
            let mut run = run;
            run.check().map_err(|(key, msg)| {
                SessionError(format!("{}: run {:?}: `{key}`: {msg}", at(key), run.name))
            })?;
            run.resolve_paths(path).map_err(|(key, msg)| {
                SessionError(format!("{}: run {:?}: `{key}`: {msg}", at(key), run.name))
            })?;
            runs.push(run);
        }
        check_references(&runs).map_err(|(index, msg)| {
            let at = Location {
                path,
                text,
                run: index,
                key: "weights".to_string(),
            };
            SessionError(format!(
                "{at}: run {:?}: `weights`: {msg}",
                runs[index].name
            ))
        })?;
        Ok(Self {
            name: checked.name,
            runs,
            source: text.to_string(),
        })
    }

    /// Only the named run, or an error listing the runs there are.
    pub fn select(mut self, run: &str) -> Result<Self, SessionError> {
        let names: Vec<String> = self.runs.iter().map(|r| r.name.clone()).collect();
        self.runs.retain(|r| r.name == run);
        if self.runs.is_empty() {
            return Err(SessionError(format!(
                "session {:?} has no run {run:?}: its runs are {}",
                self.name,
                names.join(", ")
            )));
        }
        Ok(self)
    }
}

/// Runs that start from another run of the session must name one that exists, not
/// themselves, and not in a cycle. On failure: the run's index and why.
fn check_references(runs: &[RunSpec]) -> Result<(), (usize, String)> {
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    for (index, run) in runs.iter().enumerate() {
        let mut seen = vec![run.name.as_str()];
        let mut current = run;
        while let Some(source) = current.waits_for() {
            let Some(next) = runs.iter().find(|r| r.name == source) else {
                return Err((
                    index,
                    format!(
                        "run:{source}/best names no run of this session: its runs are {}",
                        names.join(", ")
                    ),
                ));
            };
            if seen.contains(&next.name.as_str()) {
                seen.push(next.name.as_str());
                return Err((
                    index,
                    format!(
                        "runs wait for each other in a circle: {}",
                        seen.join(" -> ")
                    ),
                ));
            }
            seen.push(next.name.as_str());
            current = next;
        }
    }
    Ok(())
}

/// serde's type names as a user would say them: `expected usize` is Rust, not TOML.
fn in_words(message: &str) -> String {
    [
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ]
    .iter()
    .fold(message.to_string(), |m, (rust, words)| {
        m.replace(rust, words)
    })
}

fn check_name(name: &str, what: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {name:?} is not usable: use 1-64 letters, digits, '-', '_' or '.', not starting with '.'"
        ))
    }
}

impl RunSpec {
    /// Checks the values serde cannot: ranges, and group names against the model.
    /// On failure returns the key and what would be accepted.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let groups = self.model.group_names();
        let known = |g: &str| groups.contains(&g);
        let list = groups.join(", ");
        let positive = |key, v: usize| {
            if v == 0 {
                Err((key, "must be at least 1".to_string()))
            } else {
                Ok(())
            }
        };
        positive("epochs", self.epochs)?;
        positive("batch_size", self.batch_size)?;
        positive("image_size", self.image_size)?;
        positive("keep_checkpoints", self.keep_checkpoints)?;
        positive("log_every_steps", self.log_every_steps)?;
        if let Some(patience) = self.early_stop_patience {
            positive("early_stop_patience", patience)?;
        }
        if let Some(delta) = self.early_stop_min_delta {
            if !(delta.is_finite() && delta >= 0.0) {
                return Err((
                    "early_stop_min_delta",
                    format!("{delta} is not a loss difference: use a number >= 0 such as 0.001"),
                ));
            }
            if self.early_stop_patience.is_none() {
                return Err((
                    "early_stop_min_delta",
                    "says what counts as better for early_stop_patience, which is not set: set it too (such as early_stop_patience = 3), or leave this key out".to_string(),
                ));
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err((
                "lr",
                format!(
                    "{} is not a learning rate: use a positive number such as 1e-3",
                    self.lr
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err((
                "momentum",
                format!(
                    "{} is outside [0, 1): use a fraction such as 0.9 (0 turns it off)",
                    self.momentum
                ),
            ));
        }
        if let Some(decay) = self.weight_decay
            && !(decay.is_finite() && decay >= 0.0)
        {
            return Err((
                "weight_decay",
                format!("{decay} is not a decay: use a number >= 0 such as 0.01"),
            ));
        }
        if let Some(norm) = self.grad_clip_norm
            && !(norm.is_finite() && norm > 0.0)
        {
            return Err((
                "grad_clip_norm",
                format!(
                    "{norm} is not a gradient norm: use a positive number such as 1.0 (leave the key out not to clip)"
                ),
            ));
        }
        if !(self.lr_step_gamma > 0.0 && self.lr_step_gamma <= 1.0) {
            return Err((
                "lr_step_gamma",
                format!(
                    "{} is outside (0, 1]: use the factor each step multiplies the rate by, such as 0.1",
                    self.lr_step_gamma
                ),
            ));
        }
        if self.image_size > crate::engine::data::MAX_IMAGE_SIZE {
            return Err((
                "image_size",
                format!(
                    "{} is more than {} pixels a side",
                    self.image_size,
                    crate::engine::data::MAX_IMAGE_SIZE
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.val_split) {
            return Err((
                "val_split",
                format!(
                    "{} is outside [0, 1): use a fraction such as 0.2",
                    self.val_split
                ),
            ));
        }
        if !matches!(self.in_channels, 1 | 3) {
            return Err((
                "in_channels",
                format!(
                    "{}: image data has 1 (grayscale) or 3 (RGB) channels",
                    self.in_channels
                ),
            ));
        }
        if let Err(why) = self.model.check_image_size(self.image_size) {
            return Err(("image_size", why));
        }
        if let Some(g) = self.freeze.iter().find(|g| !known(g)) {
            return Err((
                "freeze",
                format!("{} has no group {g:?}: its groups are {list}", self.model),
            ));
        }
        if let Some(g) = self.group_lr.keys().find(|g| !known(g)) {
            return Err((
                "group_lr",
                format!("{} has no group {g:?}: its groups are {list}", self.model),
            ));
        }
        if let Some((g, m)) = self
            .group_lr
            .iter()
            .find(|(_, m)| !(m.is_finite() && **m >= 0.0))
        {
            return Err((
                "group_lr",
                format!("multiplier {m} for {g} must be a number >= 0"),
            ));
        }
        if self.unfreeze_at_epoch.is_some() && self.freeze.is_empty() {
            return Err((
                "unfreeze_at_epoch",
                "nothing to unfreeze: set freeze = [...] too".into(),
            ));
        }
        if self.unfreeze_at_epoch.is_some() && self.gradual_unfreeze.is_some() {
            return Err((
                "gradual_unfreeze",
                "use either unfreeze_at_epoch or gradual_unfreeze, not both".into(),
            ));
        }
        if self.gradual_unfreeze.is_some_and(|g| g.every_epochs == 0) {
            return Err(("gradual_unfreeze", "every_epochs must be at least 1".into()));
        }
        if self.lr_step_epochs == Some(0) {
            return Err(("lr_step_epochs", "must be at least 1".into()));
        }
        WeightsSource::parse(&self.weights).map_err(|e| ("weights", e))?;
        for [pattern, _] in &self.weights_remap {
            regex::Regex::new(pattern)
                .map_err(|e| ("weights_remap", format!("{pattern:?} is not a regex: {e}")))?;
        }
        for pattern in &self.weights_exclude {
            regex::Regex::new(pattern).map_err(|e| {
                (
                    "weights_exclude",
                    format!("{pattern:?} is not a regex: {e}"),
                )
            })?;
        }
        self.executor.check().map_err(|e| ("executor", e))?;
        self.check_device_on_slurm()?;
        if self.threads == Some(0) {
            return Err(("threads", "must be at least 1".into()));
        }
        self.device
            .check_compiled()
            .map_err(|e| ("device", e.to_string()))?;
        crate::engine::data::DataSource::parse(&self.data).map_err(|e| ("data", e.to_string()))?;
        Ok(())
    }

    /// On a Slurm node the job's GPU is CUDA device 0 (Slurm sets `CUDA_VISIBLE_DEVICES`), and
    /// a GPU device needs a GPU from Slurm.
    fn check_device_on_slurm(&self) -> Result<(), (&'static str, String)> {
        let Some(slurm) = self.executor.slurm() else {
            return Ok(());
        };
        match self.device {
            DeviceSpec::TchCuda(n) if n > 0 => Err((
                "device",
                format!(
                    "tch:cuda:{n} on a Slurm node: the job's GPU is tch:cuda:0 (Slurm sets CUDA_VISIBLE_DEVICES); use device = \"gpu\""
                ),
            )),
            DeviceSpec::TchCuda(_) | DeviceSpec::Gpu if !slurm.wants_gpu() => Err((
                "device",
                format!(
                    "device = \"{}\" needs a GPU from Slurm: add gres = \"gpu:1\" to the executor",
                    self.device
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The run of the same session whose best weights this run starts from, if any.
    pub fn waits_for(&self) -> Option<&str> {
        let rest = self.weights.strip_prefix("run:")?.strip_suffix("/best")?;
        (!rest.contains('/')).then_some(rest)
    }

    /// Makes `data` and a weights file absolute, relative to the session file's folder, so
    /// workers started anywhere find them; a weights file must exist.
    fn resolve_paths(&mut self, session_file: &Path) -> Result<(), (&'static str, String)> {
        let base = session_file.parent().unwrap_or(Path::new("."));
        let absolute = |p: &str| std::path::absolute(base.join(p)).unwrap_or_else(|_| base.join(p));
        if !self.data.starts_with("demo:") {
            self.data = absolute(&self.data).display().to_string();
        }
        if let Ok(WeightsSource::File(file)) = WeightsSource::parse(&self.weights) {
            let file = absolute(&file.display().to_string());
            let wrong = match () {
                _ if file.is_dir() => Some("is a directory"),
                _ if !file.is_file() => Some("does not exist"),
                _ if crate::engine::weights::format_of(&file).is_err() => {
                    Some("has an extension thaw does not read")
                }
                _ => None,
            };
            if let Some(wrong) = wrong {
                return Err((
                    "weights",
                    format!(
                        "{} {wrong}: expected a .bpk, .safetensors, .pt or .pth file, run:RUN/best, or \"none\"",
                        file.display()
                    ),
                ));
            }
            self.weights = file.display().to_string();
        }
        Ok(())
    }

    /// The groups frozen when the run starts: `freeze`, or for gradual unfreezing with no
    /// `freeze` list, every group but the head.
    pub fn initially_frozen(&self) -> Vec<String> {
        initially_frozen(self.model, &self.freeze, self.gradual_unfreeze)
    }

    /// What the engine needs of the run to train it.
    pub fn train_config(&self) -> TrainConfig {
        TrainConfig {
            model: self.model,
            data: self.data.clone(),
            image_size: self.image_size,
            in_channels: self.in_channels,
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            optimizer: self.optimizer,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            grad_clip_norm: self.grad_clip_norm,
            lr_schedule: self.lr_schedule,
            lr_step_epochs: self.lr_step_epochs,
            lr_step_gamma: self.lr_step_gamma,
            device: self.device,
            precision: self.precision,
            seed: self.seed,
            val_split: self.val_split,
            augment: self.augment,
            freeze: self.freeze.clone(),
            unfreeze_at_epoch: self.unfreeze_at_epoch,
            gradual_unfreeze: self.gradual_unfreeze,
            group_lr: self.group_lr.clone(),
            warmup_steps: self.warmup_steps,
            checkpoint_every_steps: self.checkpoint_every_steps,
            keep_checkpoints: self.keep_checkpoints,
            log_every_steps: self.log_every_steps,
            early_stop_patience: self.early_stop_patience,
            early_stop_min_delta: self.early_stop_min_delta,
            weights: self.weights.clone(),
            weights_remap: self.weights_remap.clone(),
            weights_exclude: self.weights_exclude.clone(),
        }
    }

    /// The spec as TOML, as written into the run directory.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a run spec always serialises")
    }

    /// Reads a run directory's `spec.toml`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read run spec {}", path.display()))?;
        let spec: Self = toml::from_str(&text)
            .with_context(|| format!("run spec {} is not valid", path.display()))?;
        spec.check()
            .map_err(|(key, msg)| anyhow::anyhow!("{}: `{key}`: {msg}", path.display()))?;
        Ok(spec)
    }

    /// The data directory a `demo:` set is generated into, or the folder path itself.
    pub fn data_path(&self) -> Option<PathBuf> {
        (!self.data.starts_with("demo:")).then(|| PathBuf::from(&self.data))
    }
}

/// Where a key of a run is written in the file: `path:line` (the run's own table, else
/// `[defaults]`, else the run's header).
struct Location<'a> {
    path: &'a Path,
    text: &'a str,
    run: usize,
    key: String,
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut section: Option<String> = None;
        let mut runs_seen = 0usize;
        let (mut in_run, mut in_defaults, mut run_header) = (None, None, None);
        for (i, line) in self.text.lines().enumerate() {
            let t = line.trim();
            if t.starts_with('[') {
                section = Some(t.to_string());
                if t.starts_with("[[runs]]") {
                    if runs_seen == self.run {
                        run_header = Some(i + 1);
                    }
                    runs_seen += 1;
                }
                continue;
            }
            let is_key = t
                .strip_prefix(self.key.as_str())
                .is_some_and(|rest| rest.trim_start().starts_with('='));
            if !is_key {
                continue;
            }
            match section.as_deref() {
                Some(s) if s.starts_with("[[runs]]") && runs_seen == self.run + 1 => {
                    in_run.get_or_insert(i + 1);
                }
                Some("[defaults]") => {
                    in_defaults.get_or_insert(i + 1);
                }
                _ => {}
            }
        }
        match in_run.or(in_defaults).or(run_header) {
            Some(line) => write!(f, "{}:{line}", self.path.display()),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

/// Serialises a value through its `Display` and `FromStr`, so session files hold plain strings
/// and a bad one is reported by toml with its line.
mod as_string {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
