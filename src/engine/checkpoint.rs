//! Checkpoint directories, written atomically, and exact resume from the latest complete one.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};

use super::rundir::{GradNorm, RunDir, write_atomic};

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

const MODEL: &str = "model.bpk";
const OPTIMIZER: &str = "optimizer.bpk";
const STATE: &str = "state.json";
const LATEST: &str = "latest";

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
    let name = format!("step-{}", state.step);
    let tmp = root.join(format!("{name}.tmp"));
    let done = root.join(&name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    // `valid` folds the BatchNorm statistics' pending update into their value (a record
    // taken straight from the training model is one update behind).
    model
        .valid()
        .save_file(tmp.join(MODEL))
        .with_context(|| format!("cannot save the model into {}", tmp.display()))?;
    optim
        .save(tmp.join(OPTIMIZER))
        .with_context(|| format!("cannot save the optimizer into {}", tmp.display()))?;
    write_atomic(&tmp.join(STATE), &serde_json::to_vec_pretty(state)?)?;
    File::open(&tmp)?.sync_all()?;
    if done.exists() {
        std::fs::remove_dir_all(&done)?;
    }
    std::fs::rename(&tmp, &done)?;
    File::open(&root)?.sync_all()?;
    write_atomic(&root.join(LATEST), name.as_bytes())?;
    prune(&root, keep)?;
    Ok(done)
}

/// The complete checkpoints, oldest first.
fn complete(root: &Path) -> Vec<(usize, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<(usize, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let step = name.strip_prefix("step-")?.parse::<usize>().ok()?;
            e.path().join(STATE).is_file().then(|| (step, e.path()))
        })
        .collect();
    found.sort();
    found
}

fn prune(root: &Path, keep: usize) -> Result<()> {
    let all = complete(root);
    let excess = all.len().saturating_sub(keep.max(1));
    for (_, path) in &all[..excess] {
        std::fs::remove_dir_all(path)
            .with_context(|| format!("cannot remove old checkpoint {}", path.display()))?;
    }
    Ok(())
}

/// The latest complete checkpoint and its state: the one `latest` names, or, if that pointer
/// is missing or damaged, the newest directory whose state reads back.
pub fn latest(run: &RunDir) -> Option<(PathBuf, TrainState)> {
    let root = run.checkpoints();
    let pointed = std::fs::read_to_string(root.join(LATEST))
        .ok()
        .map(|name| root.join(name.trim()));
    let mut candidates = pointed
        .into_iter()
        .chain(complete(&root).into_iter().rev().map(|(_, p)| p));
    candidates.find_map(|dir| read_state(&dir).map(|state| (dir, state)))
}

/// The newest complete checkpoint from before `step`, and its state.
pub fn newest_before(run: &RunDir, step: usize) -> Option<(PathBuf, TrainState)> {
    complete(&run.checkpoints())
        .into_iter()
        .rev()
        .filter(|(s, _)| *s < step)
        .find_map(|(_, dir)| read_state(&dir).map(|state| (dir, state)))
}

fn read_state(dir: &Path) -> Option<TrainState> {
    let state = std::fs::read(dir.join(STATE)).ok()?;
    let state: TrainState = serde_json::from_slice(&state).ok()?;
    (dir.join(MODEL).is_file() && dir.join(OPTIMIZER).is_file()).then_some(state)
}

/// Removes the checkpoints after `step` and points `latest` at `step`'s (`None`: removes them
/// all, for a run gone back to its starting weights): a run rolled back does not resume, after
/// a crash, from weights it turned away from.
pub fn discard_after(run: &RunDir, step: Option<usize>) -> Result<()> {
    let root = run.checkpoints();
    for (_, dir) in complete(&root)
        .into_iter()
        .filter(|(s, _)| step.is_none_or(|step| *s > step))
    {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove checkpoint {}", dir.display()))?;
    }
    match step {
        Some(step) => write_atomic(&root.join(LATEST), format!("step-{step}").as_bytes()),
        None => match std::fs::remove_file(root.join(LATEST)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", root.join(LATEST).display()))
            }
            _ => Ok(()),
        },
    }
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
    let model = model
        .try_load_file(dir.join(MODEL))
        .with_context(|| format!("cannot load the model from checkpoint {}", dir.display()))?;
    let optim = optim.load(dir.join(OPTIMIZER)).with_context(|| {
        format!(
            "cannot load the optimizer from checkpoint {}",
            dir.display()
        )
    })?;
    Ok((model, optim))
}
