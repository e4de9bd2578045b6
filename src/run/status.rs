//! Where a run is in its life, and the questions every caller asks of it.

use serde::{Deserialize, Serialize};

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

    /// A worker has the run: training, paused between steps, or writing a checkpoint.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            RunStatus::Running | RunStatus::Paused | RunStatus::Checkpointing
        )
    }

    /// Steps are being taken (or a checkpoint written between them): what `pause` can pause.
    pub fn is_stepping(self) -> bool {
        matches!(self, RunStatus::Running | RunStatus::Checkpointing)
    }

    /// It has not started: queued for a device or waiting for another run's weights.
    pub fn is_pending(self) -> bool {
        matches!(self, RunStatus::Queued | RunStatus::Waiting)
    }

    /// No worker will take another step unless someone starts one: finished, failed, stopped,
    /// or interrupted (a crash, a reboot, a signal).
    pub fn has_ended(self) -> bool {
        self.is_settled() || self == RunStatus::Interrupted
    }

    /// It ended by a decision, its own or the user's (finished, failed, stopped): unlike an
    /// interrupted run, nothing resumes it unless the user asks.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            RunStatus::Finished | RunStatus::Failed | RunStatus::Stopped
        )
    }

    /// It ended before its last epoch and `thaw resume` starts it again: interrupted, failed
    /// or stopped.
    pub fn is_resumable(self) -> bool {
        self.has_ended() && self != RunStatus::Finished
    }

    /// Its worker ended as it was meant to: finished, or stopped when asked.
    pub fn ended_as_meant(self) -> bool {
        matches!(self, RunStatus::Finished | RunStatus::Stopped)
    }

    /// It ended badly (failed, or stopped before its end): a run that depends on its weights
    /// cannot start.
    pub fn is_given_up(self) -> bool {
        matches!(self, RunStatus::Failed | RunStatus::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::RunStatus::{self, *};

    const ALL: [RunStatus; 9] = [
        Queued,
        Waiting,
        Running,
        Paused,
        Checkpointing,
        Finished,
        Failed,
        Stopped,
        Interrupted,
    ];

    fn with(test: fn(RunStatus) -> bool) -> Vec<RunStatus> {
        ALL.into_iter().filter(|s| test(*s)).collect()
    }

    #[test]
    fn every_status_is_one_of_pending_live_or_ended() {
        for status in ALL {
            let said = [status.is_pending(), status.is_live(), status.has_ended()];
            assert_eq!(said.iter().filter(|s| **s).count(), 1, "{status:?}");
        }
        assert_eq!(with(RunStatus::is_pending), [Queued, Waiting]);
        assert_eq!(with(RunStatus::is_live), [Running, Paused, Checkpointing]);
        assert_eq!(with(RunStatus::is_stepping), [Running, Checkpointing]);
    }

    #[test]
    fn an_interrupted_run_has_ended_and_resumes_but_is_not_settled() {
        assert_eq!(
            with(RunStatus::has_ended),
            [Finished, Failed, Stopped, Interrupted]
        );
        assert_eq!(with(RunStatus::is_settled), [Finished, Failed, Stopped]);
        assert_eq!(
            with(RunStatus::is_resumable),
            [Failed, Stopped, Interrupted]
        );
        assert_eq!(with(RunStatus::is_given_up), [Failed, Stopped]);
        assert_eq!(with(RunStatus::ended_as_meant), [Finished, Stopped]);
    }

    #[test]
    fn statuses_are_spelled_as_their_words_in_files() {
        for status in ALL {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.word()));
            assert_eq!(serde_json::from_str::<RunStatus>(&json).unwrap(), status);
        }
    }
}
