//! `events.jsonl`: what happened to a run, one JSON object a line, appended by its worker (and
//! by the daemon for what it saw while no worker ran).

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::dir::{RunDir, append};

/// One line of `events.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub time: f64,
    pub step: usize,
    /// The epoch being trained, 1 in the first.
    pub epoch: usize,
    pub kind: EventKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// What an event says happened; spelled in the file as its [`EventKind::word`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum EventKind {
    /// The starting weights were loaded (what transferred).
    Weights,
    Freeze,
    Unfreeze,
    Pause,
    Resume,
    Stop,
    Checkpoint,
    /// A worker carried on from a checkpoint.
    Resumed,
    Validation,
    /// A new best validation loss (`best.bpk` written).
    Best,
    Lr,
    Warning,
    Error,
    Finished,
    /// A loss that was not finite.
    Nan,
    /// Back to an earlier checkpoint after a loss that was not finite.
    Rollback,
    /// The worker checkpointed on a signal, or the daemon found its worker gone.
    Interrupted,
    /// What the daemon saw of a run's Slurm job.
    Slurm,
    /// A Slurm run's job was cancelled as the user asked (its worker's own `stop` came first,
    /// or never came).
    Stopped,
    /// Slurm requeued the run's job.
    Requeued,
    /// A kind this thaw does not know (written by a newer one), kept as it was spelled.
    Other(String),
}

impl EventKind {
    const NAMED: [EventKind; 20] = [
        EventKind::Weights,
        EventKind::Freeze,
        EventKind::Unfreeze,
        EventKind::Pause,
        EventKind::Resume,
        EventKind::Stop,
        EventKind::Checkpoint,
        EventKind::Resumed,
        EventKind::Validation,
        EventKind::Best,
        EventKind::Lr,
        EventKind::Warning,
        EventKind::Error,
        EventKind::Finished,
        EventKind::Nan,
        EventKind::Rollback,
        EventKind::Interrupted,
        EventKind::Slurm,
        EventKind::Stopped,
        EventKind::Requeued,
    ];

    /// The kind as `events.jsonl`, `thaw logs` and the dashboard spell it.
    pub fn word(&self) -> &str {
        match self {
            EventKind::Weights => "weights",
            EventKind::Freeze => "freeze",
            EventKind::Unfreeze => "unfreeze",
            EventKind::Pause => "pause",
            EventKind::Resume => "resume",
            EventKind::Stop => "stop",
            EventKind::Checkpoint => "checkpoint",
            EventKind::Resumed => "resumed",
            EventKind::Validation => "validation",
            EventKind::Best => "best",
            EventKind::Lr => "lr",
            EventKind::Warning => "warning",
            EventKind::Error => "error",
            EventKind::Finished => "finished",
            EventKind::Nan => "nan",
            EventKind::Rollback => "rollback",
            EventKind::Interrupted => "interrupted",
            EventKind::Slurm => "slurm",
            EventKind::Stopped => "stopped",
            EventKind::Requeued => "requeued",
            EventKind::Other(word) => word,
        }
    }

    /// Something went wrong that the user should look at (the dashboard says it unasked).
    pub fn is_trouble(&self) -> bool {
        matches!(self, EventKind::Nan | EventKind::Warning | EventKind::Error)
    }
}

impl From<String> for EventKind {
    fn from(word: String) -> Self {
        Self::NAMED
            .into_iter()
            .find(|kind| kind.word() == word)
            .unwrap_or(EventKind::Other(word))
    }
}

impl From<EventKind> for String {
    fn from(kind: EventKind) -> Self {
        kind.word().to_string()
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

impl RunDir {
    pub fn append_event(&self, event: &Event) -> Result<()> {
        let mut line = serde_json::to_string(event)?;
        line.push('\n');
        append(&self.events_path(), line.as_bytes())
    }

    /// The events in the first `len` bytes of `events.jsonl` (as far as a follower has read).
    pub fn read_events_upto(&self, len: u64) -> Vec<Event> {
        let Ok(file) = File::open(self.events_path()) else {
            return Vec::new();
        };
        let mut text = Vec::new();
        if file.take(len).read_to_end(&mut text).is_err() {
            return Vec::new();
        }
        String::from_utf8_lossy(&text)
            .lines()
            .filter_map(parse_event)
            .collect()
    }

    /// Every event that reads; a line that does not (half written, damaged) is skipped.
    pub fn read_events(&self) -> Vec<Event> {
        let Ok(file) = File::open(self.events_path()) else {
            return Vec::new();
        };
        BufReader::new(file)
            .lines()
            .map_while(|l| l.ok())
            .filter_map(|l| parse_event(&l))
            .collect()
    }
}

/// One line of `events.jsonl`; `None` for a line that is not an event.
pub fn parse_event(line: &str) -> Option<Event> {
    serde_json::from_str(line).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_and_write_as_the_words_files_already_hold() {
        for kind in EventKind::NAMED {
            let word = kind.word().to_string();
            assert_eq!(EventKind::from(word.clone()), kind);
            assert_eq!(String::from(kind), word);
        }
        // The kinds a release before the enum wrote, exactly as they stand in its files.
        let line = r#"{"time":1.5,"step":3,"epoch":1,"kind":"freeze","message":"froze stem","groups":["stem"]}"#;
        let event = parse_event(line).expect("an event");
        assert_eq!(event.kind, EventKind::Freeze);
        assert_eq!(serde_json::to_string(&event).unwrap(), line);
        // A kind from a newer thaw is kept, and written back as it came.
        let newer = r#"{"time":1.5,"step":3,"epoch":1,"kind":"distilled","message":"m"}"#;
        let event = parse_event(newer).expect("an event");
        assert_eq!(event.kind, EventKind::Other("distilled".into()));
        assert_eq!(serde_json::to_string(&event).unwrap(), newer);
        assert_eq!(parse_event("{\"time\":"), None);
    }
}
