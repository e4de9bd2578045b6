//! Runs as the daemon shows them to clients: `status`, the dashboard's board, `status --json`.

use serde::{Deserialize, Serialize};

use crate::run::{Event, GradNorm, RunStatus};
use crate::series::Point;

/// A layer group of a run's model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub name: String,
    pub frozen: bool,
    /// Trainable parameters; 0 until the run's classes are known.
    pub params: usize,
    /// The group's learning rate at the last logged step.
    #[serde(default)]
    pub lr: Option<f64>,
    /// Parameters that came from the run's weights file; `None` when the run loaded none.
    #[serde(default)]
    pub pretrained: Option<usize>,
}

/// One run as `status` shows it; the `status --json` format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub session: String,
    pub name: String,
    pub status: RunStatus,
    pub step: usize,
    pub epoch: usize,
    pub epochs: usize,
    pub total_steps: usize,
    /// Samples per step (with `samples_per_sec`, the time left).
    #[serde(default)]
    pub batch_size: usize,
    pub model: String,
    pub device: String,
    pub last_loss: Option<f64>,
    pub groups: Vec<GroupInfo>,
    /// Why the run failed, paused itself or waits.
    pub message: Option<String>,
    pub best_val_loss: Option<f64>,
    pub best_val_accuracy: Option<f64>,
    pub samples_per_sec: Option<f64>,
    /// The global gradient norm over its last logged interval (mean before clipping) and the
    /// share of those steps clipped: runs with `grad_clip_norm` only.
    #[serde(default)]
    pub grad_norm: Option<GradNorm>,
    /// Seconds to the end of its last epoch at its current speed, validation and checkpoints
    /// included (from the worker; `None` before its first logged steps).
    #[serde(default)]
    pub secs_left: Option<f64>,
    /// The freeze schedule thaws groups before the end (slower steps after): `secs_left` is a
    /// floor.
    #[serde(default)]
    pub secs_left_grows: bool,
    pub lr_multiplier: f64,
    /// The worker's pid while it runs.
    pub pid: Option<u32>,
    /// What a queued or waiting run waits for.
    pub queued_reason: Option<String>,
    /// GPU memory its worker holds, in bytes (from NVML; `None` off the GPU).
    #[serde(default)]
    pub gpu_memory: Option<u64>,
    /// The run's Slurm job, for runs on the Slurm executor.
    #[serde(default)]
    pub slurm: Option<Box<SlurmInfo>>,
}

/// A Slurm run's job as the daemon last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmInfo {
    pub job_id: u64,
    /// Slurm's state (`PENDING`, `RUNNING`, `COMPLETED`, ...); `SUBMITTED` until squeue has
    /// listed it.
    pub state: String,
    /// Why it is pending, when Slurm says.
    pub reason: Option<String>,
    /// The node its worker runs on, once it runs.
    pub node: Option<String>,
    /// How many times Slurm requeued it (preemption, time limit).
    pub restarts: u64,
}

impl SlurmInfo {
    /// `Slurm job 42 RUNNING on n1, requeued 2x`, as `status` and the run view show it.
    pub fn line(&self) -> String {
        let node = self
            .node
            .as_ref()
            .map_or(String::new(), |n| format!(" on {n}"));
        let restarts = match self.restarts {
            0 => String::new(),
            n => format!(", requeued {n}x"),
        };
        format!("Slurm job {} {}{node}{restarts}", self.job_id, self.state)
    }
}

impl RunInfo {
    /// `session/run`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.session, self.name)
    }

    /// Where it trains, short, for tables: `cuda:1` (its backend left out, so that GPUs are
    /// told apart in a narrow column), `tch:cpu`, `flex`; a Slurm run's job, which is what a
    /// user looks up (its device is on a node).
    pub fn device_said(&self) -> String {
        match &self.slurm {
            Some(job) => format!("job {}", job.job_id),
            None => self
                .device
                .strip_prefix("tch:cuda")
                .map_or_else(|| self.device.clone(), |n| format!("cuda{n}")),
        }
    }

    /// Its Slurm job's line (`Slurm job 42 RUNNING on n1`), saying so where the job ended
    /// otherwise than the run: a job killed at its time limit after the run had finished in
    /// the grace its warning gave.
    pub fn slurm_line(&self) -> Option<String> {
        let job = self.slurm.as_ref()?;
        let line = job.line();
        Some(match self.status {
            RunStatus::Finished if job.state != "COMPLETED" => {
                format!("{line} (after the run had finished)")
            }
            _ => line,
        })
    }

    /// The epoch it trains (1 in its first), or its last once finished: as `status`, `thaw
    /// train` and the dashboard say it.
    pub fn epoch_in_progress(&self) -> usize {
        crate::run::epoch_said(self.status, self.epoch, self.epochs)
    }

    /// Seconds to the end of its last epoch while it trains: the worker's reckoning, which
    /// counts validation and checkpoints, or the steps left alone from a worker that does not
    /// give one.
    pub fn time_left(&self) -> Option<f64> {
        let speed = self.samples_per_sec.filter(|&s| s > 0.0)?;
        // Checkpointing is a moment of a running run: the estimate does not blink out for it.
        if !self.status.is_stepping() || self.batch_size == 0 {
            return None;
        }
        let samples = self.total_steps.saturating_sub(self.step) * self.batch_size;
        Some(self.secs_left.unwrap_or(samples as f64 / speed))
    }

    /// The time left as the views say it: `5m01s`, `5m01s+` when it is a floor (groups thaw
    /// later), `-` when the run is not training.
    pub fn time_left_said(&self) -> String {
        self.time_left().map_or("-".into(), |secs| {
            crate::number::time_left(secs, self.secs_left_grows)
        })
    }
}

/// A run's metric history, downsampled where it is long (see [`crate::series`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub train_loss: Vec<Point>,
    pub train_accuracy: Vec<Point>,
    pub val_loss: Vec<Point>,
    pub val_accuracy: Vec<Point>,
    /// Empty for runs without `grad_clip_norm`.
    #[serde(default)]
    pub grad_norm: Vec<Point>,
}

/// A run with its history and its latest events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSnapshot {
    pub info: RunInfo,
    pub history: History,
    pub events: Vec<Event>,
}

/// One row of a run's `metrics.csv`, as sent live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    pub step: u64,
    /// `train` or `val`.
    pub split: String,
    pub loss: f64,
    pub accuracy: f64,
    /// The interval's mean gradient norm (training rows of runs with `grad_clip_norm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
}
