//! The messages between the daemon and its clients (the CLI verbs, the dashboard), and how they
//! travel: a handshake that carries the protocol version, then JSON frames, each preceded by
//! its length as a big-endian u32. A frame over [`MAX_FRAME`] bytes is refused from its length
//! alone, before its body is read.

use std::io::{Read, Write};
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::compare::Comparison;
use crate::engine::rundir::{Event, GradNorm, RunStatus};
use crate::gpu::GpuStats;
use crate::series::Point;

/// Raised whenever a message changes in a way an older peer cannot read.
pub const PROTOCOL_VERSION: u32 = 4;

/// The largest frame either side accepts.
pub const MAX_FRAME: u32 = 8 << 20;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the connection was closed")]
    Closed,
    #[error("a frame of {0} bytes is over the limit of {MAX_FRAME} bytes")]
    TooLarge(u64),
    #[error("malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error(transparent)]
    Io(std::io::Error),
}

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Self::Closed,
            _ => Self::Io(e),
        }
    }
}

/// The first message of a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Always "thaw": something else connected to the socket is told so.
    pub program: String,
    pub protocol: u32,
    /// The client's thaw version, for messages.
    pub version: String,
}

impl Hello {
    /// This build's hello.
    pub fn ours() -> Self {
        Self {
            program: "thaw".into(),
            protocol: PROTOCOL_VERSION,
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// The daemon's answer to [`Hello`]: its own versions, and why it refuses, if it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub protocol: u32,
    pub version: String,
    pub pid: u32,
    pub refused: Option<String>,
}

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Launch a session file; `file` is where it is (relative paths in it are resolved from
    /// there), `text` what it holds. `replace` discards a session of the same name.
    Launch {
        file: PathBuf,
        text: String,
        replace: bool,
    },
    /// Change what a run does (`run` is `session/run`, or `run` where unambiguous).
    Control { run: String, control: Control },
    /// Every run, once.
    Status,
    /// A snapshot of one session (or all), then live updates until the client goes.
    Subscribe { session: Option<String> },
    /// A run's events; with `follow`, then each new one until the run ends.
    Logs { run: String, follow: bool },
    /// Restart the workers of every interrupted run from its last checkpoint.
    ResumeAll,
    /// A session's runs compared, as `thaw compare` does; `target` is the validation accuracy
    /// to reach (default: 90% of the best run's best).
    Compare {
        session: String,
        target: Option<f64>,
    },
    /// Checkpoint and stop every worker, then stop the daemon.
    Shutdown,
    /// Delete runs (`session/run`, or `run` where unambiguous) and whole sessions, with their
    /// directories, from the daemon and the disk; none while a worker trains them.
    Remove {
        runs: Vec<String>,
        sessions: Vec<String>,
    },
}

/// A change to one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    Freeze {
        groups: Vec<String>,
    },
    Unfreeze {
        groups: Vec<String>,
    },
    Pause,
    /// Continues a paused run; restarts an interrupted, failed or stopped one from its last
    /// checkpoint.
    Resume,
    /// Checkpoint and stop (a run not started yet is just marked stopped).
    Stop,
    Checkpoint,
    /// Multiplies the learning-rate multiplier.
    LrScale(f64),
    /// Sets the learning-rate multiplier.
    LrSet(f64),
}

/// What the daemon answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    /// The request was carried out.
    Done { message: String },
    /// It was not, and why.
    Error { message: String },
    /// Every run (see README: `status --json`), and the GPUs' figures where there are GPUs.
    Status {
        runs: Vec<RunInfo>,
        #[serde(default)]
        gpus: Vec<GpuStats>,
    },
    /// One run of a subscription's snapshot; a snapshot is sent run by run to keep frames small.
    Snapshot { run: Box<RunSnapshot> },
    /// The end of a snapshot: `runs` runs were sent.
    SnapshotDone { runs: usize },
    /// A live change, after the snapshot.
    Update { update: Box<Update> },
    /// Events of a run (`logs`).
    Events { run: String, events: Vec<Event> },
    /// The answer to [`Request::Compare`].
    Compare {
        session: String,
        comparison: Comparison,
    },
}

impl Response {
    pub fn error(message: impl Into<String>) -> Self {
        Self::Error {
            message: message.into(),
        }
    }

    pub fn done(message: impl Into<String>) -> Self {
        Self::Done {
            message: message.into(),
        }
    }
}

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
        match self.status {
            // The epochs it did: all, or fewer when it stopped early.
            RunStatus::Finished => self.epoch.min(self.epochs),
            _ => (self.epoch + 1).min(self.epochs),
        }
    }

    /// Seconds to the end of its last epoch while it trains: the worker's reckoning, which
    /// counts validation and checkpoints, or the steps left alone from a worker that does not
    /// give one.
    pub fn time_left(&self) -> Option<f64> {
        let speed = self.samples_per_sec.filter(|&s| s > 0.0)?;
        // Checkpointing is a moment of a running run: the estimate does not blink out for it.
        if !matches!(self.status, RunStatus::Running | RunStatus::Checkpointing)
            || self.batch_size == 0
        {
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

/// A live change to a subscribed session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Update {
    /// A run's status, step or figures changed (or the run is new).
    Run { info: Box<RunInfo> },
    /// New metric rows.
    Metrics {
        session: String,
        run: String,
        rows: Vec<MetricPoint>,
    },
    /// A new event.
    Event {
        session: String,
        run: String,
        event: Event,
    },
    /// A run's history was rebuilt (a resumed worker dropped rows logged after its checkpoint).
    History { run: Box<RunSnapshot> },
    /// A session was discarded (launched again with `--replace`, or removed), or only its
    /// run `run` (removed).
    Removed {
        session: String,
        #[serde(default)]
        run: Option<String>,
    },
    /// The GPUs' figures changed (sent only where there are GPUs).
    Gpus { gpus: Vec<GpuStats> },
}

impl Update {
    /// The session the update is about; `None` for the machine's.
    pub fn session(&self) -> Option<&str> {
        match self {
            Self::Run { info } => Some(&info.session),
            Self::History { run } => Some(&run.info.session),
            Self::Metrics { session, .. }
            | Self::Event { session, .. }
            | Self::Removed { session, .. } => Some(session),
            Self::Gpus { .. } => None,
        }
    }
}

/// A message as a frame: length, then JSON.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(message)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&n| n <= MAX_FRAME)
        .ok_or(FrameError::TooLarge(body.len() as u64))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

fn body_len(header: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header);
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(u64::from(len)));
    }
    Ok(len as usize)
}

/// Writes one frame.
pub fn write_frame<T: Serialize>(w: &mut impl Write, message: &T) -> Result<(), FrameError> {
    w.write_all(&encode(message)?)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame.
pub fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> Result<T, FrameError> {
    let mut header = [0u8; 4];
    r.read_exact(&mut header)?;
    let mut body = vec![0u8; body_len(header)?];
    r.read_exact(&mut body)?;
    Ok(serde_json::from_slice(&body)?)
}

/// Writes one frame to an async stream.
pub async fn write_frame_async<T: Serialize>(
    w: &mut (impl AsyncWrite + Unpin),
    message: &T,
) -> Result<(), FrameError> {
    w.write_all(&encode(message)?).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame from an async stream.
pub async fn read_frame_async<T: DeserializeOwned>(
    r: &mut (impl AsyncRead + Unpin),
) -> Result<T, FrameError> {
    let mut header = [0u8; 4];
    r.read_exact(&mut header).await?;
    let mut body = vec![0u8; body_len(header)?];
    r.read_exact(&mut body).await?;
    Ok(serde_json::from_slice(&body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let request = Request::Control {
            run: "s/a".into(),
            control: Control::Freeze {
                groups: vec!["stem".into()],
            },
        };
        let frame = encode(&request).unwrap();
        assert_eq!(&frame[..4], &((frame.len() - 4) as u32).to_be_bytes());
        let back: Request = read_frame(&mut frame.as_slice()).unwrap();
        assert_eq!(back, request);
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_length() {
        // Only the header: the body is never read.
        let header = (MAX_FRAME + 1).to_be_bytes();
        let err = read_frame::<Request>(&mut header.as_slice()).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge(n) if n == u64::from(MAX_FRAME) + 1));
    }

    #[test]
    fn garbage_is_malformed_and_a_short_read_is_closed() {
        let mut frame = 5u32.to_be_bytes().to_vec();
        frame.extend_from_slice(b"\x00\x01xyz");
        assert!(matches!(
            read_frame::<Request>(&mut frame.as_slice()),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            read_frame::<Request>(&mut [0u8, 0].as_slice()),
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn the_lr_control_has_a_stable_form() {
        let json = serde_json::to_string(&Control::LrScale(2.0)).unwrap();
        assert_eq!(json, r#"{"lr_scale":2.0}"#);
    }
}
