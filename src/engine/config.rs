//! What the engine needs to train a run: a plain config, built at the edge from a session
//! file's run (`session::RunSpec::train_config`), so nothing under `engine/` reads session
//! files. The settings mean what the README's *Session files* says of the keys of the same
//! names.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::device::DeviceSpec;
use super::model::ModelKind;
use super::precision::Precision;

/// How to train one run.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub model: ModelKind,
    /// `demo:NAME` or an ImageFolder directory.
    pub data: String,
    pub image_size: usize,
    pub in_channels: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub optimizer: OptimizerKind,
    pub momentum: f64,
    pub weight_decay: Option<f64>,
    /// Gradients scaled down to this global L2 norm before each update (PyTorch's
    /// `clip_grad_norm_`).
    pub grad_clip_norm: Option<f64>,
    pub lr_schedule: LrSchedule,
    pub lr_step_epochs: Option<usize>,
    pub lr_step_gamma: f64,
    pub device: DeviceSpec,
    pub precision: Precision,
    pub seed: u64,
    pub val_split: f64,
    pub augment: bool,
    /// Groups frozen from the start.
    pub freeze: Vec<String>,
    pub unfreeze_at_epoch: Option<usize>,
    pub gradual_unfreeze: Option<GradualUnfreeze>,
    /// Multipliers of `lr` by group.
    pub group_lr: BTreeMap<String, f64>,
    pub warmup_steps: usize,
    pub checkpoint_every_steps: usize,
    pub keep_checkpoints: usize,
    pub log_every_steps: usize,
    /// Finish after this many validations without a better validation loss.
    pub early_stop_patience: Option<usize>,
    /// How much lower than the last loss that counted a validation loss must be to count as
    /// better for `early_stop_patience`.
    pub early_stop_min_delta: Option<f64>,
    /// The starting weights: `none`, a file, or `run:RUN/best`.
    pub weights: String,
    /// `[[regex, replacement], ...]` applied to the weights file's tensor names.
    pub weights_remap: Vec<[String; 2]>,
    /// Tensor names of the weights file (after remapping) that must not be loaded.
    pub weights_exclude: Vec<String>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model: ModelKind::RESNET_MINI,
            data: "demo:shapes-small".into(),
            image_size: 32,
            in_channels: 3,
            epochs: 5,
            batch_size: 32,
            lr: 1e-3,
            optimizer: OptimizerKind::Adam,
            momentum: 0.9,
            weight_decay: None,
            grad_clip_norm: None,
            lr_schedule: LrSchedule::Constant,
            lr_step_epochs: None,
            lr_step_gamma: 0.1,
            device: DeviceSpec::Auto,
            precision: Precision::F32,
            seed: 0,
            val_split: 0.2,
            augment: true,
            freeze: Vec::new(),
            unfreeze_at_epoch: None,
            gradual_unfreeze: None,
            group_lr: BTreeMap::new(),
            warmup_steps: 0,
            checkpoint_every_steps: 500,
            keep_checkpoints: 3,
            log_every_steps: 10,
            early_stop_patience: None,
            early_stop_min_delta: None,
            weights: "none".into(),
            weights_remap: Vec::new(),
            weights_exclude: Vec::new(),
        }
    }
}

impl TrainConfig {
    /// The groups frozen when the run starts (see [`initially_frozen`]).
    pub fn initially_frozen(&self) -> Vec<String> {
        initially_frozen(self.model, &self.freeze, self.gradual_unfreeze)
    }
}

/// The groups frozen when a run starts: `freeze`, or for gradual unfreezing with no `freeze`
/// list, every group but the head.
pub fn initially_frozen(
    model: ModelKind,
    freeze: &[String],
    gradual: Option<GradualUnfreeze>,
) -> Vec<String> {
    if freeze.is_empty() && gradual.is_some() {
        let names = model.group_names();
        return names[..names.len() - 1]
            .iter()
            .map(|s| s.to_string())
            .collect();
    }
    freeze.to_vec()
}

/// The optimizers thaw trains with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerKind {
    Sgd,
    Adam,
    AdamW,
}

/// Learning-rate schedules over the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LrSchedule {
    Constant,
    Cosine,
    Step,
}

/// `gradual_unfreeze = { every_epochs = k }`: thaw one group every k epochs, from the head down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradualUnfreeze {
    pub every_epochs: usize,
}

impl FromStr for OptimizerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sgd" => Ok(Self::Sgd),
            "adam" => Ok(Self::Adam),
            "adamw" => Ok(Self::AdamW),
            other => Err(format!(
                "unknown optimizer {other:?}: expected one of sgd, adam, adamw"
            )),
        }
    }
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sgd => "sgd",
            Self::Adam => "adam",
            Self::AdamW => "adamw",
        })
    }
}

impl FromStr for LrSchedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "constant" => Ok(Self::Constant),
            "cosine" => Ok(Self::Cosine),
            "step" => Ok(Self::Step),
            other => Err(format!(
                "unknown lr_schedule {other:?}: expected one of constant, cosine, step"
            )),
        }
    }
}

impl fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Constant => "constant",
            Self::Cosine => "cosine",
            Self::Step => "step",
        })
    }
}
