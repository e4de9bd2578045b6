//! Where a run starts again: its latest checkpoint (or, after a loss that was not finite, the
//! last good one), with the controls it had; and going back after such a loss.

use std::path::Path;

use anyhow::{Context, Result};

use super::start::fresh_state;
use super::{LogWindow, Trainer, step};
use crate::engine::checkpoint::{self, TrainState};
use crate::engine::model::Classifier;
use crate::run::{EventKind, NanRecord};

/// The last weights known good, for a rollback.
pub(super) enum Good {
    Checkpoint(std::path::PathBuf, Box<TrainState>),
    /// The weights the run started from.
    Start,
}

/// Who goes back after a loss that was not finite.
pub(super) enum Rollback {
    /// The worker that saw it, when the run is resumed.
    Resume,
    /// A new worker, when the one that saw it ended first.
    Restart,
}

impl<M: Classifier> Trainer<'_, M> {
    pub(super) fn restore(&mut self) -> Result<()> {
        if let Some(nan) = self.run.read_nan()? {
            self.nan_at = Some(nan.step);
            self.rollback_floor = nan.floor;
            // Until a checkpoint past the loss, the starting weights stay something to go
            // back to, as in the worker that saw it.
            self.start = self.model.clone();
            if nan.pending {
                // That worker is gone before going back: this one starts where it would have.
                self.metrics = self.run.init_metrics(&self.group_names())?;
                return self.roll_back(Rollback::Restart);
            }
        }
        let Some((dir, saved)) = checkpoint::latest(self.run) else {
            // A fresh run: what the data left out (unreadable images, other files, a lone
            // image) is said once, where the user reads the run: its events.
            for warning in self.dataset.warnings.clone() {
                self.event(EventKind::Warning, format!("data: {warning}"), vec![])?;
            }
            self.metrics = self.run.reset_metrics(&self.group_names())?;
            self.start = self.model.clone();
            return Ok(());
        };
        self.metrics = self.run.init_metrics(&self.group_names())?;
        self.load(&dir, saved.clone())?;
        self.restored_controls();
        self.event(
            EventKind::Resumed,
            format!("resumed from checkpoint {}", dir.display()),
            saved.frozen,
        )
    }

    /// A new worker takes the checkpoint's rate multiplier and served checkpoint requests as
    /// the desired ones until it reads `desired.json`.
    pub(super) fn restored_controls(&mut self) {
        self.desired.checkpoint = self.state.checkpoint_requests;
        self.desired.lr_multiplier = self.state.lr_multiplier;
    }

    /// The model, optimizer, position and logging interval of the checkpoint in `dir`.
    pub(super) fn load(&mut self, dir: &Path, saved: TrainState) -> Result<()> {
        let model = self.model.take().context("model present")?;
        let optim = std::mem::replace(&mut self.optim, step::optimizer(self.spec));
        let (model, optim) = checkpoint::load(dir, model, optim)?;
        self.model = Some(model);
        self.optim = optim;
        // Freeze state is not part of the records: apply it again to the fresh model.
        self.state = TrainState {
            frozen: Vec::new(),
            ..saved.clone()
        };
        self.set_frozen(saved.frozen, None)?;
        self.run.truncate_metrics_after(saved.step)?;
        self.log = LogWindow {
            sums: saved.open_log,
            ..LogWindow::default()
        };
        Ok(())
    }

    /// Where a loss that was not finite rolls back to: the latest checkpoint (one from before
    /// the last rollback's, when no checkpoint has been written since past the step of the
    /// last such loss), else the starting weights while they are kept; `None` when there is
    /// nothing to go back to.
    pub(super) fn last_good(&self) -> Option<Good> {
        match checkpoint::good(self.run, self.rollback_floor) {
            Some((dir, saved)) => Some(Good::Checkpoint(dir, Box::new(saved))),
            None => self.start.is_some().then_some(Good::Start),
        }
    }

    /// After a loss that was not finite, back to the last weights known good (see
    /// [`Self::last_good`]): the weights that gave the loss would give it again at any rate.
    pub(super) fn roll_back(&mut self, how: Rollback) -> Result<()> {
        let (lr, requests) = (self.state.lr_multiplier, self.state.checkpoint_requests);
        let from = match how {
            Rollback::Resume => self.state.step,
            Rollback::Restart => self.nan_at.map_or(0, |at| at.saturating_sub(1)),
        };
        let to = match self.last_good() {
            Some(Good::Checkpoint(dir, saved)) => {
                checkpoint::discard_after(self.run, Some(saved.step))?;
                self.rollback_floor = Some(saved.step);
                // The checkpoint's frozen groups apply to a model with none frozen, as at start.
                self.set_frozen(Vec::new(), None)?;
                self.load(&dir, *saved)?;
                format!("checkpoint {}", dir.display())
            }
            Some(Good::Start) => {
                let start = self
                    .start
                    .clone()
                    .context("the starting weights are kept")?;
                checkpoint::discard_after(self.run, None)?;
                self.model = Some(start);
                self.optim = step::optimizer(self.spec);
                self.state = fresh_state(self.spec);
                self.metrics = self.run.reset_metrics(&self.group_names())?;
                self.log = LogWindow::default();
                // Before the first checkpoint past the loss, the start stays what to go back to.
                self.rollback_floor = Some(0);
                "the starting weights (no checkpoint yet)".into()
            }
            None => {
                self.record_nan(false)?;
                return self.event(
                    EventKind::Rollback,
                    format!("nothing to roll back to from step {from}: going on from the weights that gave a loss that was not finite"),
                    vec![],
                );
            }
        };
        match how {
            // The rate multiplier and the checkpoint requests served stay as they are now
            // (the user may have lowered the rate to go on).
            Rollback::Resume => {
                self.state.lr_multiplier = lr;
                self.state.checkpoint_requests = requests;
                self.rolled_back = true;
            }
            Rollback::Restart => self.restored_controls(),
        }
        self.record_nan(false)?;
        let who = match how {
            Rollback::Resume => "",
            Rollback::Restart => " (by a new worker: the one that saw the loss ended first)",
        };
        self.event(
            EventKind::Rollback,
            format!(
                "rolled back from step {from} to step {} ({to}){who}: the weights at step {from} gave a loss that was not finite",
                self.state.step
            ),
            vec![],
        )
    }

    /// Keeps the latest loss that was not finite and the rollback floor in `nan.json`, for a
    /// new worker; none once the run has checkpointed past it.
    pub(super) fn record_nan(&self, pending: bool) -> Result<()> {
        let record = self.nan_at.map(|step| NanRecord {
            step,
            floor: self.rollback_floor,
            pending,
        });
        self.run.write_nan(record.as_ref())
    }
}
