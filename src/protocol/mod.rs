//! The messages between the daemon and its clients (the CLI verbs, the dashboard), and how they
//! travel ([`frame`]): a handshake that carries the protocol version, then JSON frames. What
//! the messages carry of runs is in [`view`] and [`comparison`]: plain data, so a client needs
//! nothing of the engine to read them.

mod comparison;
mod control;
mod frame;
mod view;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::gpu::GpuStats;
use crate::run::Event;
pub use comparison::{Comparison, RunSummary};
pub use control::{Control, Controlled};
pub use frame::{
    FrameError, MAX_FRAME, encode, read_frame, read_frame_async, write_frame, write_frame_async,
};
pub use view::{GroupInfo, History, MetricPoint, RunInfo, RunSnapshot, SlurmInfo};

/// Raised whenever a message changes in a way an older peer cannot read.
pub const PROTOCOL_VERSION: u32 = 4;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lr_control_has_a_stable_form() {
        let json = serde_json::to_string(&Control::LrScale(2.0)).unwrap();
        assert_eq!(json, r#"{"lr_scale":2.0}"#);
    }
}
