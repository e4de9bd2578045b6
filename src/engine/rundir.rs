//! A run directory, the only channel between a worker and whoever watches it:
//! `desired.json` (read), `state.json` (written atomically), `metrics.csv` and `events.jsonl`
//! (appended), `checkpoints/` and `best.bpk`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// What the user asked for; written by the daemon, compared by the worker before every step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Desired {
    /// Groups to keep frozen; `None` follows the session file's freeze schedule.
    pub frozen: Option<Vec<String>>,
    pub paused: bool,
    /// Multiplies every group's learning rate.
    pub lr_multiplier: f64,
    /// Checkpoint and stop.
    pub stop: bool,
    /// A checkpoint is written each time this counter goes up.
    pub checkpoint: u64,
    /// Continues a run the worker paused itself (a NaN loss) each time this counter goes up.
    pub resume: u64,
}

impl Default for Desired {
    fn default() -> Self {
        Self {
            frozen: None,
            paused: false,
            lr_multiplier: 1.0,
            stop: false,
            checkpoint: 0,
            resume: 0,
        }
    }
}

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Queued,
    Waiting,
    Running,
    Paused,
    Checkpointing,
    Finished,
    Failed,
    Stopped,
    Interrupted,
}

impl RunStatus {
    /// The status as files, `status --json` and the dashboard spell it (`interrupted`).
    pub fn word(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Waiting => "waiting",
            RunStatus::Running => "running",
            RunStatus::Paused => "paused",
            RunStatus::Checkpointing => "checkpointing",
            RunStatus::Finished => "finished",
            RunStatus::Failed => "failed",
            RunStatus::Stopped => "stopped",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

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
        match (self.status, self.epochs) {
            // Not known before the worker has read the data.
            (_, 0) => self.epoch + 1,
            // The epochs it did: all, or fewer when it stopped early.
            (RunStatus::Finished, epochs) => self.epoch.min(epochs),
            (_, epochs) => (self.epoch + 1).min(epochs),
        }
    }

    /// The state of a run that has not trained yet (or failed before it could), as written
    /// by whoever started it.
    pub fn before_training(status: RunStatus, message: Option<String>) -> Self {
        let pid = std::process::id();
        Self {
            status,
            step: 0,
            epoch: 0,
            epochs: 0,
            total_steps: 0,
            frozen: Vec::new(),
            device: String::new(),
            pid,
            pid_start: process_start_time(pid),
            host: hostname(),
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
        }
    }
}

/// One line of `events.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub time: f64,
    pub step: usize,
    /// The epoch being trained, 1 in the first.
    pub epoch: usize,
    /// freeze, unfreeze, pause, resume, stop, checkpoint, resumed, validation, best, lr,
    /// warning, error, finished, nan, rollback.
    pub kind: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// One row of `metrics.csv`: a logged training interval or a validation pass.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    pub step: usize,
    pub epoch: usize,
    pub split: &'static str,
    pub loss: f64,
    pub accuracy: f64,
    pub lrs: Vec<f64>,
    pub samples_per_sec: f64,
    pub wall_time: f64,
    /// The gradient norm over a training interval of a run with `grad_clip_norm`.
    pub grad_norm: Option<GradNorm>,
}

/// The global gradient norm over a logging interval: its mean before clipping, and the share
/// of the interval's steps that `grad_clip_norm` scaled down.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GradNorm {
    pub mean: f64,
    pub clipped: f64,
}

/// The columns a `metrics.csv` has: one an older thaw began ends at `wall_time`, and the rows
/// appended to it keep to that, so that every row has its header's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsLayout {
    /// `...,wall_time,grad_norm,clipped`.
    Current,
    /// `...,wall_time`.
    WithoutGradNorm,
}

/// The columns after `wall_time` in a `metrics.csv` thaw begins now.
const GRAD_COLUMNS: &str = "grad_norm,clipped";

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Writes `bytes` to `path` through a temporary file, fsync and rename, so readers never see
/// half a file; a failed write leaves `path` as it was and no temporary file behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let done = written
        .with_context(|| format!("cannot write {}", path.display()))
        .and_then(|()| {
            std::fs::rename(&tmp, path)
                .with_context(|| format!("cannot replace {}", path.display()))
        });
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

/// A loss that was not finite, kept in `nan.json` until a checkpoint is written past it, so a
/// new worker (after a restart, a stop, or `thaw train` run again) goes back as far as the one
/// that saw it would have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NanRecord {
    /// The step whose loss was not finite (the latest such).
    pub step: usize,
    /// The step of the checkpoint last rolled back to since (0: the starting weights).
    pub floor: Option<usize>,
    /// The run has not yet gone back from the weights that gave it.
    pub pending: bool,
}

/// A run's directory and the files in it.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub root: PathBuf,
}

/// The outcome of reading `desired.json`.
#[derive(Debug, PartialEq)]
pub enum DesiredRead {
    Missing,
    Good(Desired),
    /// Unreadable or invalid: the reason, and the raw text so the same bad file is reported once.
    Bad {
        reason: String,
        raw: Vec<u8>,
    },
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn spec(&self) -> PathBuf {
        self.root.join("spec.toml")
    }
    pub fn desired_path(&self) -> PathBuf {
        self.root.join("desired.json")
    }
    pub fn state_path(&self) -> PathBuf {
        self.root.join("state.json")
    }
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.csv")
    }
    pub fn events_path(&self) -> PathBuf {
        self.root.join("events.jsonl")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    pub fn best(&self) -> PathBuf {
        self.root.join("best.bpk")
    }
    pub fn nan_path(&self) -> PathBuf {
        self.root.join("nan.json")
    }

    /// The record of the latest loss that was not finite, if the run has not checkpointed past
    /// it; an unreadable record is an error naming the file.
    pub fn read_nan(&self) -> Result<Option<NanRecord>> {
        let path = self.nan_path();
        let raw = match std::fs::read(&path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        serde_json::from_slice(&raw).map(Some).with_context(|| {
            format!(
                "{} is not a record of a loss that was not finite ({{\"step\": N, \"floor\": N or null, \"pending\": true or false}}): remove it to trust the latest checkpoint",
                path.display()
            )
        })
    }

    /// Writes the record, or removes it (`None`: the run has checkpointed past the loss).
    pub fn write_nan(&self, record: Option<&NanRecord>) -> Result<()> {
        let path = self.nan_path();
        match record {
            Some(record) => write_atomic(&path, &serde_json::to_vec_pretty(record)?),
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("cannot remove {}", path.display()))
                }
                _ => Ok(()),
            },
        }
    }

    /// Reads `desired.json`; a half-written or invalid file is reported, never trusted.
    pub fn read_desired(&self) -> DesiredRead {
        let raw = match std::fs::read(self.desired_path()) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return DesiredRead::Missing,
            Err(e) => {
                return DesiredRead::Bad {
                    reason: e.to_string(),
                    raw: Vec::new(),
                };
            }
        };
        match serde_json::from_slice::<Desired>(&raw) {
            Ok(d) if d.lr_multiplier.is_finite() && d.lr_multiplier > 0.0 => DesiredRead::Good(d),
            Ok(d) => DesiredRead::Bad {
                reason: format!(
                    "lr_multiplier {} must be a positive number",
                    d.lr_multiplier
                ),
                raw,
            },
            Err(e) => DesiredRead::Bad {
                reason: e.to_string(),
                raw,
            },
        }
    }

    pub fn write_desired(&self, desired: &Desired) -> Result<()> {
        write_atomic(&self.desired_path(), &serde_json::to_vec_pretty(desired)?)
    }

    pub fn write_state(&self, state: &RunState) -> Result<()> {
        write_atomic(&self.state_path(), &serde_json::to_vec_pretty(state)?)
    }

    pub fn read_state(&self) -> Result<RunState> {
        let raw = std::fs::read(self.state_path())
            .with_context(|| format!("cannot read {}", self.state_path().display()))?;
        serde_json::from_slice(&raw)
            .with_context(|| format!("{} is not a run state", self.state_path().display()))
    }

    pub fn append_event(&self, event: &Event) -> Result<()> {
        let mut line = serde_json::to_string(event)?;
        line.push('\n');
        append(&self.events_path(), line.as_bytes())
    }

    pub fn read_events(&self) -> Vec<Event> {
        let Ok(file) = File::open(self.events_path()) else {
            return Vec::new();
        };
        BufReader::new(file)
            .lines()
            .map_while(|l| l.ok())
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect()
    }

    /// Starts `metrics.csv` with its header unless it exists; the columns its rows are to have.
    pub fn init_metrics(&self, groups: &[String]) -> Result<MetricsLayout> {
        let Ok(file) = File::open(self.metrics_path()) else {
            return self.reset_metrics(groups);
        };
        let mut header = String::new();
        BufReader::new(file)
            .read_line(&mut header)
            .with_context(|| format!("cannot read {}", self.metrics_path().display()))?;
        Ok(match header.trim_end().ends_with(GRAD_COLUMNS) {
            true => MetricsLayout::Current,
            false => MetricsLayout::WithoutGradNorm,
        })
    }

    /// Starts `metrics.csv` afresh, for a run that starts from its first step: the rows of an
    /// earlier attempt that left no checkpoint go, and the header names these groups.
    pub fn reset_metrics(&self, groups: &[String]) -> Result<MetricsLayout> {
        let lrs: Vec<String> = groups.iter().map(|g| format!("lr_{g}")).collect();
        let header = format!(
            "step,epoch,split,loss,accuracy,{},samples_per_sec,wall_time,{GRAD_COLUMNS}\n",
            lrs.join(",")
        );
        write_atomic(&self.metrics_path(), header.as_bytes())?;
        Ok(MetricsLayout::Current)
    }

    /// Appends `row` with the columns of `layout` (what [`RunDir::init_metrics`] said); a row
    /// with no gradient norm leaves those columns empty.
    pub fn append_metric(&self, row: &MetricRow, layout: MetricsLayout) -> Result<()> {
        let lrs: Vec<String> = row.lrs.iter().map(|lr| format!("{lr:e}")).collect();
        let grad = match (layout, row.grad_norm) {
            (MetricsLayout::WithoutGradNorm, _) => String::new(),
            (MetricsLayout::Current, None) => ",,".into(),
            (MetricsLayout::Current, Some(g)) => format!(",{:.4e},{:.4}", g.mean, g.clipped),
        };
        let line = format!(
            "{},{},{},{},{},{},{:.2},{:.3}{grad}\n",
            row.step,
            row.epoch,
            row.split,
            row.loss,
            row.accuracy,
            lrs.join(","),
            row.samples_per_sec,
            row.wall_time
        );
        append(&self.metrics_path(), line.as_bytes())
    }

    /// Drops metric rows logged after `step`: a run resumed from a checkpoint at `step` logs
    /// them again, and the history must not hold them twice.
    pub fn truncate_metrics_after(&self, step: usize) -> Result<()> {
        let Ok(text) = std::fs::read_to_string(self.metrics_path()) else {
            return Ok(());
        };
        let mut kept = String::with_capacity(text.len());
        for (i, line) in text.lines().enumerate() {
            let row_step = line.split(',').next().and_then(|s| s.parse::<usize>().ok());
            if i == 0 || row_step.is_some_and(|s| s <= step) {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        write_atomic(&self.metrics_path(), kept.as_bytes())
    }
}

fn append(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot append to {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}

/// This process's start time in clock ticks since boot (field 22 of /proc/self/stat), 0 where
/// unknown.
pub fn process_start_time(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The command name may hold spaces and parentheses: count fields after the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(19))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nan_record_round_trips_goes_away_and_a_damaged_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        assert_eq!(run.read_nan().unwrap(), None);
        let record = NanRecord {
            step: 9,
            floor: Some(4),
            pending: true,
        };
        run.write_nan(Some(&record)).unwrap();
        assert_eq!(run.read_nan().unwrap(), Some(record));
        run.write_nan(None).unwrap();
        assert_eq!(run.read_nan().unwrap(), None);
        // Removing what is not there is no error.
        run.write_nan(None).unwrap();

        std::fs::write(run.nan_path(), "{\"step\": 9}").unwrap();
        let error = format!("{:#}", run.read_nan().unwrap_err());
        assert!(
            error.contains("nan.json is not a record") && error.contains("remove it"),
            "{error}"
        );
    }

    #[test]
    fn rows_keep_to_the_columns_of_the_metrics_file_they_join() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let groups = ["body".to_string(), "head".to_string()];
        let row = MetricRow {
            step: 10,
            epoch: 0,
            split: "train",
            loss: 0.5,
            accuracy: 0.25,
            lrs: vec![1e-4, 1e-3],
            samples_per_sec: 10.0,
            wall_time: 0.1,
            grad_norm: Some(GradNorm {
                mean: 3.25,
                clipped: 0.5,
            }),
        };
        let lines = || {
            let text = std::fs::read_to_string(run.metrics_path()).unwrap();
            text.lines().map(String::from).collect::<Vec<_>>()
        };

        let layout = run.init_metrics(&groups).unwrap();
        assert_eq!(layout, MetricsLayout::Current);
        run.append_metric(&row, layout).unwrap();
        let no_norm = MetricRow {
            grad_norm: None,
            ..row.clone()
        };
        run.append_metric(&no_norm, layout).unwrap();
        assert_eq!(
            lines(),
            [
                "step,epoch,split,loss,accuracy,lr_body,lr_head,samples_per_sec,wall_time,grad_norm,clipped",
                "10,0,train,0.5,0.25,1e-4,1e-3,10.00,0.100,3.2500e0,0.5000",
                "10,0,train,0.5,0.25,1e-4,1e-3,10.00,0.100,,",
            ]
        );
        assert_eq!(run.init_metrics(&groups).unwrap(), MetricsLayout::Current);

        // A run an older thaw began goes on in the columns its file has.
        let old = "step,epoch,split,loss,accuracy,lr_body,lr_head,samples_per_sec,wall_time";
        std::fs::write(run.metrics_path(), format!("{old}\n")).unwrap();
        let layout = run.init_metrics(&groups).unwrap();
        assert_eq!(layout, MetricsLayout::WithoutGradNorm);
        run.append_metric(&row, layout).unwrap();
        assert_eq!(lines(), [old, "10,0,train,0.5,0.25,1e-4,1e-3,10.00,0.100"]);
        // Started afresh, it has them.
        assert_eq!(run.reset_metrics(&groups).unwrap(), MetricsLayout::Current);
    }
}
