//! The daemon's side of its local workers (`executor::local`): how a run of the registry
//! records that its worker ended.

use anyhow::Result;

use super::registry::Run;
use crate::executor::local;
pub use crate::executor::local::{Exit, Worker, adoptable, in_own_session, spawn};
use crate::run::{EventKind, RunStatus};

/// Records how a run's worker ended (see [`local::settle`]).
pub fn settle(run: &mut Run, pid: u32, exit: Exit) -> Result<()> {
    local::settle(&mut run.watched(), pid, exit)
}

/// Marks a run whose worker is gone as interrupted, resumable from its last checkpoint.
pub fn interrupted(run: &mut Run, why: &str) -> Result<()> {
    local::interrupted(&mut run.watched(), why)
}

/// Says why the run ended (or stopped for now) in `events.jsonl`, and its status in
/// `state.json`.
pub fn record(run: &mut Run, status: RunStatus, kind: EventKind, message: String) -> Result<()> {
    local::record(&mut run.watched(), status, kind, message)
}
