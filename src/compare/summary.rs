//! One line of the comparison: what a run reached, how fast, with how many trainable parameters.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::history::History;
use super::params::{self, ParamCounts};
use crate::engine::rundir::{Event, RunDir};
use crate::session::RunSpec;

/// Everything `thaw compare` reads from one run directory; what could not be read is `None`.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub name: String,
    pub dir: RunDir,
    /// `state.json`'s status, as written there.
    pub status: Option<String>,
    /// `state.json`'s epochs done and epochs to train.
    pub epochs: Option<(usize, usize)>,
    pub spec: Option<RunSpec>,
    pub history: History,
    /// Freeze and unfreeze events, in order.
    pub freezes: Vec<Event>,
    pub params: Option<ParamCounts>,
}

impl RunRecord {
    /// Reads the run in `dir`; missing or damaged files leave their parts empty.
    pub fn read(name: &str, dir: &Path) -> Self {
        let run = RunDir::new(dir);
        let state = run.read_state().ok();
        let status = state
            .as_ref()
            .and_then(|state| serde_json::to_value(state.status).ok())
            .and_then(|v| v.as_str().map(str::to_string));
        let epochs = state.map(|s| (s.epoch, s.epochs));
        let spec = RunSpec::load(&run.spec()).ok();
        let params = spec
            .as_ref()
            .and_then(|spec| params::count(spec, &dir.join("classes.json")));
        let freezes = run
            .read_events()
            .into_iter()
            .filter(|e| e.kind == "freeze" || e.kind == "unfreeze")
            .collect();
        Self {
            name: name.to_string(),
            history: History::read(&run.metrics_path()),
            dir: run,
            status,
            epochs,
            spec,
            freezes,
            params,
        }
    }

    /// The highest validation accuracy the run reached.
    pub fn best_accuracy(&self) -> Option<f64> {
        self.history.best_accuracy()
    }
}

/// One run compared: the objects of `thaw compare --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run: String,
    pub status: Option<String>,
    /// The run's `weights` setting: `none` (from scratch), a file or `run:RUN/best`.
    pub weights: Option<String>,
    pub best_val_accuracy: Option<f64>,
    pub best_val_loss: Option<f64>,
    pub target_accuracy: Option<f64>,
    pub steps_to_target: Option<usize>,
    pub seconds_to_target: Option<f64>,
    pub trainable_params: Option<usize>,
    pub total_params: Option<usize>,
    pub mean_step_ms: Option<f64>,
    /// Epochs done, of `epochs`: fewer, once finished, when it stopped early.
    #[serde(default)]
    pub epochs_trained: Option<usize>,
    #[serde(default)]
    pub epochs: Option<usize>,
}

impl RunSummary {
    /// Summarises `record` against the validation accuracy `target` (a fraction).
    pub fn new(record: &RunRecord, target: Option<f64>) -> Self {
        let reached = target.and_then(|t| record.history.first_reaching(t));
        Self {
            run: record.name.clone(),
            status: record.status.clone(),
            weights: record.spec.as_ref().map(|s| s.weights.clone()),
            best_val_accuracy: record.best_accuracy(),
            best_val_loss: record.history.best_loss(),
            target_accuracy: target,
            steps_to_target: reached.map(|p| p.step),
            seconds_to_target: reached.map(|p| p.seconds),
            trainable_params: record.params.map(|p| p.trainable),
            total_params: record.params.map(|p| p.total),
            mean_step_ms: record
                .spec
                .as_ref()
                .and_then(|s| record.history.mean_step_ms(s.batch_size)),
            epochs_trained: record.epochs.map(|(done, _)| done),
            epochs: record.epochs.map(|(_, of)| of),
        }
    }

    /// Whether it finished with fewer epochs than it was to train (`early_stop_patience`).
    pub fn stopped_early(&self) -> bool {
        self.status.as_deref() == Some("finished")
            && matches!((self.epochs_trained, self.epochs), (Some(done), Some(of)) if done < of)
    }
}

/// The target when none is given: 90% of the best validation accuracy any run reached.
pub fn default_target(records: &[RunRecord]) -> Option<f64> {
    records
        .iter()
        .filter_map(RunRecord::best_accuracy)
        .reduce(f64::max)
        .map(|best| 0.9 * best)
}
