//! One line of the comparison: what a run reached, how fast, with how many trainable parameters.

use super::history::History;
use super::params::{self, ParamCounts};
use crate::protocol::RunSummary;
use crate::run::{Event, EventKind, RunDir};
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
    pub fn read(name: &str, run: &RunDir) -> Self {
        let state = run.read_state().ok();
        let status = state.as_ref().map(|state| state.status.word().to_string());
        let epochs = state.map(|s| (s.epoch, s.epochs));
        let spec = RunSpec::load(&run.spec()).ok();
        let classes = run.read_classes();
        let params = spec
            .as_ref()
            .zip(classes)
            .and_then(|(spec, classes)| params::count(spec, classes.len()));
        let freezes = run
            .read_events()
            .into_iter()
            .filter(|e| matches!(e.kind, EventKind::Freeze | EventKind::Unfreeze))
            .collect();
        Self {
            name: name.to_string(),
            history: History::read(run),
            dir: run.clone(),
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

/// Summarises `record` against the validation accuracy `target` (a fraction).
pub fn summarise(record: &RunRecord, target: Option<f64>) -> RunSummary {
    let reached = target.and_then(|t| record.history.first_reaching(t));
    RunSummary {
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

/// The target when none is given: 90% of the best validation accuracy any run reached.
pub fn default_target(records: &[RunRecord]) -> Option<f64> {
    records
        .iter()
        .filter_map(RunRecord::best_accuracy)
        .reduce(f64::max)
        .map(|best| 0.9 * best)
}
