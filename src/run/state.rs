//! `state.json`: the worker's account of the run, rewritten atomically as it changes.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::dir::{RunDir, now, write_atomic};
use super::event::{Event, EventKind};
use super::metrics::GradNorm;
use super::process;
use super::status::RunStatus;

/// The worker's account of the run, rewritten atomically as it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub status: RunStatus,
    pub step: usize,
    pub epoch: usize,
    pub epochs: usize,
    pub total_steps: usize,
    pub frozen: Vec<String>,
    pub device: String,
    pub pid: u32,
    /// The process start time (clock ticks since boot), so a reused pid is not mistaken for it.
    pub pid_start: u64,
    pub host: String,
    pub last_loss: Option<f64>,
    /// The lowest validation loss so far (the epoch `best.bpk` comes from).
    pub best_val_loss: Option<f64>,
    /// The highest validation accuracy so far.
    pub best_val_accuracy: Option<f64>,
    /// The latest validation pass of this worker process.
    #[serde(default)]
    pub val_loss: Option<f64>,
    #[serde(default)]
    pub val_accuracy: Option<f64>,
    pub samples_per_sec: Option<f64>,
    /// The gradient norm of the last logged interval (runs with `grad_clip_norm`).
    #[serde(default)]
    pub grad_norm: Option<GradNorm>,
    /// Seconds to the end of the last epoch at the current speed, validation and checkpoints
    /// included.
    #[serde(default)]
    pub secs_left: Option<f64>,
    /// The freeze schedule thaws groups before the end, and steps are slower after that: the
    /// time left is a floor.
    #[serde(default)]
    pub secs_left_grows: bool,
    /// Why the run failed or was paused, when it did.
    pub message: Option<String>,
    pub updated: f64,
}

impl RunState {
    /// The epoch being trained, 1 in the first (the last once all are done), as events and
    /// every view say it.
    pub fn epoch_said(&self) -> usize {
        epoch_said(self.status, self.epoch, self.epochs)
    }

    /// The state of a run that has not trained yet (or failed before it could), as written
    /// by whoever started it.
    pub fn before_training(status: RunStatus, message: Option<String>) -> Self {
        let mut state = Self {
            status,
            step: 0,
            epoch: 0,
            epochs: 0,
            total_steps: 0,
            frozen: Vec::new(),
            device: String::new(),
            pid: 0,
            pid_start: 0,
            host: String::new(),
            last_loss: None,
            best_val_loss: None,
            best_val_accuracy: None,
            val_loss: None,
            val_accuracy: None,
            samples_per_sec: None,
            grad_norm: None,
            secs_left: None,
            secs_left_grows: false,
            message,
            updated: now(),
        };
        state.owned_by_this_process();
        state
    }

    /// An event now, at this state's step and epoch.
    pub fn event(&self, kind: EventKind, message: impl Into<String>) -> Event {
        Event {
            time: now(),
            step: self.step,
            epoch: self.epoch_said(),
            kind,
            message: message.into(),
            groups: Vec::new(),
        }
    }

    /// The status (and message) whoever watches the worker decided on, said by this process:
    /// what the worker wrote about steps and figures stays.
    pub fn decided(&mut self, status: RunStatus, message: Option<String>) {
        self.status = status;
        self.message = message;
        self.owned_by_this_process();
    }

    /// Says that this process (its pid, start time and host) now speaks for the run.
    pub fn owned_by_this_process(&mut self) {
        self.pid = std::process::id();
        self.pid_start = process::start_time(self.pid);
        self.host = process::hostname();
        self.updated = now();
    }
}

/// The epoch being trained, 1 in the first (the last once all `epochs` are done), from the
/// count of epochs begun (`epoch`, 0 in the first), as events, `status` and every view say it.
pub fn epoch_said(status: RunStatus, epoch: usize, epochs: usize) -> usize {
    match (status, epochs) {
        // Not known before the worker has read the data.
        (_, 0) => epoch + 1,
        // The epochs it did: all, or fewer when it stopped early.
        (RunStatus::Finished, epochs) => epoch.min(epochs),
        (_, epochs) => (epoch + 1).min(epochs),
    }
}

impl RunDir {
    pub fn write_state(&self, state: &RunState) -> Result<()> {
        write_atomic(&self.state_path(), &serde_json::to_vec_pretty(state)?)
    }

    /// `state.json` as the worker last wrote it, or a queued run's where none can be read yet
    /// (a run launched and not started).
    pub fn state_or_queued(&self) -> RunState {
        self.read_state()
            .unwrap_or_else(|_| RunState::before_training(RunStatus::Queued, Some("queued".into())))
    }

    pub fn read_state(&self) -> Result<RunState> {
        let raw = std::fs::read(self.state_path())
            .with_context(|| format!("cannot read {}", self.state_path().display()))?;
        serde_json::from_slice(&raw)
            .with_context(|| format!("{} is not a run state", self.state_path().display()))
    }
}
