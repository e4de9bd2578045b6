//! `desired.json`: what the user asked for, written (atomically) by the daemon and compared by
//! the worker with its own state before every step.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::dir::{RunDir, write_atomic};

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

    /// What the user last asked for; the default where `desired.json` is missing or bad (the
    /// worker reports a bad one and keeps its last good state).
    pub fn desired_or_default(&self) -> Desired {
        match self.read_desired() {
            DesiredRead::Good(desired) => desired,
            _ => Desired::default(),
        }
    }

    pub fn write_desired(&self, desired: &Desired) -> Result<()> {
        write_atomic(&self.desired_path(), &serde_json::to_vec_pretty(desired)?)
    }
}
