//! Checkpoint directories, written atomically, and exact resume from the latest complete one.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};

use crate::run::checkpoints::CheckpointDir;
use crate::run::{GradNorm, RunDir, write_atomic};

/// Where training stands: enough, with the model and optimizer files, to continue exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps taken.
    pub step: usize,
    /// The epoch being trained (0-based).
    pub epoch: usize,
    /// Batches of `epoch` already trained: the data position.
    pub batch_in_epoch: usize,
    pub frozen: Vec<String>,
    /// The step at which each group last thawed, for its learning-rate warmup.
    pub thawed_at: BTreeMap<String, usize>,
    pub lr_multiplier: f64,
    pub best_val_loss: Option<f64>,
    pub best_val_accuracy: Option<f64>,
    pub seed: u64,
    /// The `desired.json` checkpoint counter already served.
    pub checkpoint_requests: u64,
    /// The logging interval open at the checkpoint, so that a run resumed mid-interval logs
    /// the same `metrics.csv` row as one never interrupted.
    #[serde(default)]
    pub open_log: OpenLog,
    /// Validations since the best validation loss, or since groups last thawed: what
    /// `early_stop_patience` counts.
    #[serde(default)]
    pub stale_epochs: usize,
    /// The validation loss `stale_epochs` counts from: the last that was lower than the one
    /// before it by more than `early_stop_min_delta` (`None` in a checkpoint from before the
    /// key: the best loss stands for it).
    #[serde(default)]
    pub patience_loss: Option<f64>,
}

/// Sums over the steps of a logging interval not yet written to `metrics.csv`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenLog {
    pub loss: f64,
    pub correct: usize,
    pub samples: usize,
    pub steps: usize,
    /// The finite gradient norms' sum, how many there were and how many of those steps were
    /// clipped (`grad_clip_norm`).
    #[serde(default)]
    pub grad_norms: f64,
    #[serde(default)]
    pub measured: usize,
    #[serde(default)]
    pub clipped: usize,
}

impl OpenLog {
    /// The interval's mean gradient norm and the share clipped, when it measured any.
    pub fn grad_norm(&self) -> Option<GradNorm> {
        (self.measured > 0).then(|| GradNorm {
            mean: self.grad_norms / self.measured as f64,
            clipped: self.clipped as f64 / self.measured as f64,
        })
    }
}

/// Writes `checkpoints/step-N/` (model, optimizer, state) as one unit and points `latest` at
/// it; keeps the newest `keep` checkpoints.
pub fn save<M: Module>(
    run: &RunDir,
    model: &M,
    optim: &ModuleOptimizer,
    state: &TrainState,
    keep: usize,
) -> Result<PathBuf> {
    let root = run.checkpoints();
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let (done, tmp) = run.checkpoint_at(state.step);
    if tmp.root.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    // `valid` folds the BatchNorm statistics' pending update into their value (a record
    // taken straight from the training model is one update behind).
    model
        .valid()
        .save_file(tmp.model())
        .with_context(|| format!("cannot save the model into {}", tmp.root.display()))?;
    optim
        .save(tmp.optimizer())
        .with_context(|| format!("cannot save the optimizer into {}", tmp.root.display()))?;
    write_atomic(&tmp.state(), &serde_json::to_vec_pretty(state)?)?;
    File::open(&tmp)?.sync_all()?;
    if done.root.exists() {
        std::fs::remove_dir_all(&done)?;
    }
    std::fs::rename(&tmp, &done)?;
    File::open(&root)?.sync_all()?;
    run.point_latest(Some(state.step))?;
    prune(run, keep)?;
    Ok(done.root)
}

fn prune(run: &RunDir, keep: usize) -> Result<()> {
    let all = run.checkpoint_dirs();
    let excess = all.len().saturating_sub(keep.max(1));
    for (_, dir) in &all[..excess] {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot remove old checkpoint {}", dir.root.display()))?;
    }
    Ok(())
}

/// The latest complete checkpoint and its state: the one `latest` names, or, if that pointer
/// is missing or damaged, the newest directory whose state reads back.
pub fn latest(run: &RunDir) -> Option<(PathBuf, TrainState)> {
    let mut candidates = run
        .latest_checkpoint()
        .into_iter()
        .chain(run.checkpoint_dirs().into_iter().rev().map(|(_, d)| d));
    candidates.find_map(|dir| read_state(&dir).map(|state| (dir.root, state)))
}

/// The newest complete checkpoint from before `step`, and its state.
pub fn newest_before(run: &RunDir, step: usize) -> Option<(PathBuf, TrainState)> {
    run.checkpoint_dirs()
        .into_iter()
        .rev()
        .filter(|(s, _)| *s < step)
        .find_map(|(_, dir)| read_state(&dir).map(|state| (dir.root, state)))
}

fn read_state(dir: &CheckpointDir) -> Option<TrainState> {
    let state = std::fs::read(dir.state()).ok()?;
    let state: TrainState = serde_json::from_slice(&state).ok()?;
    dir.is_whole().then_some(state)
}

/// Removes the checkpoints after `step` and points `latest` at `step`'s (`None`: removes them
/// all, for a run gone back to its starting weights): a run rolled back does not resume, after
/// a crash, from weights it turned away from.
pub fn discard_after(run: &RunDir, step: Option<usize>) -> Result<()> {
    for (_, dir) in run
        .checkpoint_dirs()
        .into_iter()
        .filter(|(s, _)| step.is_none_or(|step| *s > step))
    {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove checkpoint {}", dir.root.display()))?;
    }
    run.point_latest(step)
}

/// The checkpoint whose weights are last known good: the latest, or, once a run has gone back
/// to the one at step `floor` after a loss that was not finite, the newest before it.
pub fn good(run: &RunDir, floor: Option<usize>) -> Option<(PathBuf, TrainState)> {
    match floor {
        None => latest(run),
        Some(floor) => newest_before(run, floor),
    }
}

/// Where a new worker starts the run: its latest checkpoint or, when the last worker left it
/// on a loss that was not finite without going back, the last good one; `None` is the
/// run's starting weights.
pub fn resume_point(run: &RunDir) -> Option<(PathBuf, TrainState)> {
    match run.read_nan() {
        Ok(Some(nan)) if nan.pending => good(run, nan.floor),
        _ => latest(run),
    }
}

/// Loads a checkpoint's model and optimizer state into freshly built ones.
pub fn load<M: Module>(
    dir: &Path,
    model: M,
    optim: ModuleOptimizer,
) -> Result<(M, ModuleOptimizer)> {
    let dir = CheckpointDir::new(dir);
    let model = model.try_load_file(dir.model()).with_context(|| {
        format!(
            "cannot load the model from checkpoint {}",
            dir.root.display()
        )
    })?;
    let optim = optim.load(dir.optimizer()).with_context(|| {
        format!(
            "cannot load the optimizer from checkpoint {}",
            dir.root.display()
        )
    })?;
    Ok((model, optim))
}
