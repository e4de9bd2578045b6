//! Between steps: the desired state applied, pauses, checkpoints, validation, events, state.

use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::{Good, Outcome, Rollback, Trainer, step};
use crate::engine::checkpoint;
use crate::engine::data::Split;
use crate::engine::model::Classifier;
use crate::run::{DesiredRead, Event, EventKind, MetricRow, RunState, RunStatus, hostname, now};

/// How often a paused run looks at `desired.json` and signals.
const PAUSE_POLL: Duration = Duration::from_millis(100);

impl<M: Classifier> Trainer<'_, M> {
    /// Reads `desired.json` and applies the difference; returns an outcome when the run must
    /// end before the next step.
    pub(super) fn before_step(&mut self) -> Result<Option<Outcome>> {
        loop {
            self.read_desired()?;
            if self.interrupt.load(std::sync::atomic::Ordering::SeqCst) {
                let message = match self.self_paused {
                    // Nothing worth a checkpoint: the run resumes from its last good one.
                    Some(_) => format!(
                        "interrupted by {} while paused on a loss that was not finite at step {}: resumable from {}",
                        crate::signals::received(),
                        self.state.step + 1,
                        self.last_good_said()
                    ),
                    None => format!(
                        "interrupted by {}: checkpointed at step {}, resumable",
                        crate::signals::received(),
                        self.state.step
                    ),
                };
                self.checkpoint("signal")?;
                self.status = RunStatus::Interrupted;
                self.event(EventKind::Interrupted, message, vec![])?;
                self.write_state()?;
                return Ok(Some(Outcome::Interrupted));
            }
            self.apply_desired()?;
            if self.desired.stop {
                // A pause's advice ("lower the learning rate and resume, or stop") is done with,
                // and the weights that gave the loss are not kept: resumed, the run goes on
                // from its last good checkpoint.
                self.message = self.self_paused.is_some().then(|| {
                    format!(
                        "stopped while paused on a loss that was not finite at step {}; `thaw resume` goes on from {}",
                        self.state.step + 1,
                        self.last_good_said()
                    )
                });
                self.checkpoint("stop")?;
                self.self_paused = None;
                self.status = RunStatus::Stopped;
                self.event(
                    EventKind::Stop,
                    format!("stopped at step {}", self.state.step),
                    vec![],
                )?;
                self.write_state()?;
                return Ok(Some(Outcome::Stopped));
            }
            if self.self_paused.is_some_and(|at| self.desired.resume > at) {
                self.self_paused = None;
                self.message = None;
                self.roll_back(Rollback::Resume)?;
                // The desired state again, on the rolled-back run.
                continue;
            }
            let paused = self.desired.paused || self.self_paused.is_some();
            if !paused {
                if self.status == RunStatus::Paused {
                    self.status = RunStatus::Running;
                    self.event(
                        EventKind::Resume,
                        format!("resumed at step {}", self.state.step),
                        vec![],
                    )?;
                    self.write_state()?;
                }
                return Ok(None);
            }
            if self.status != RunStatus::Paused {
                self.flush_log()?;
                self.status = RunStatus::Paused;
                if self.self_paused.is_none() {
                    self.event(
                        EventKind::Pause,
                        format!("paused at step {}", self.state.step),
                        vec![],
                    )?;
                }
                self.write_state()?;
            }
            std::thread::sleep(PAUSE_POLL);
        }
    }

    fn read_desired(&mut self) -> Result<()> {
        match self.run.read_desired() {
            DesiredRead::Missing => Ok(()),
            DesiredRead::Good(desired) => {
                let names: Vec<&str> = self.groups.iter().map(|g| g.name.as_str()).collect();
                if let Some(bad) = desired
                    .frozen
                    .iter()
                    .flatten()
                    .find(|g| !names.contains(&g.as_str()))
                {
                    let reason = format!("no group {bad:?} (groups: {})", names.join(", "));
                    let raw = serde_json::to_vec(&desired)?;
                    return self.ignore_desired(reason, raw);
                }
                self.bad_desired = None;
                self.desired = desired;
                Ok(())
            }
            DesiredRead::Bad { reason, raw } => self.ignore_desired(reason, raw),
        }
    }

    fn ignore_desired(&mut self, reason: String, raw: Vec<u8>) -> Result<()> {
        if self.bad_desired.as_ref() != Some(&raw) {
            self.bad_desired = Some(raw);
            let message = format!("desired.json ignored ({reason}): keeping the last good state");
            self.event(EventKind::Warning, message, vec![])?;
        }
        Ok(())
    }

    fn apply_desired(&mut self) -> Result<()> {
        let (target, cause) = match &self.desired.frozen {
            Some(frozen) => (frozen.clone(), "request"),
            None => (self.schedule.frozen_at(self.state.epoch), "schedule"),
        };
        self.set_frozen(target, Some(cause))?;
        if self.desired.lr_multiplier != self.state.lr_multiplier {
            let message = format!(
                "learning-rate multiplier {} -> {}",
                crate::number::plain(self.state.lr_multiplier),
                crate::number::plain(self.desired.lr_multiplier)
            );
            self.state.lr_multiplier = self.desired.lr_multiplier;
            self.event(EventKind::Lr, message, vec![])?;
        }
        if self.desired.checkpoint > self.state.checkpoint_requests {
            self.state.checkpoint_requests = self.desired.checkpoint;
            self.checkpoint("request")?;
        }
        Ok(())
    }

    /// Freezes and thaws groups so that exactly `target` is frozen; `cause` names who asked,
    /// for the event (none when restoring a checkpoint).
    pub(super) fn set_frozen(&mut self, target: Vec<String>, cause: Option<&str>) -> Result<()> {
        let order = self.group_names();
        let target: Vec<String> = order
            .iter()
            .filter(|g| target.contains(g))
            .cloned()
            .collect();
        if target == self.state.frozen {
            return Ok(());
        }
        let freeze: Vec<usize> = (0..order.len())
            .filter(|&i| target.contains(&order[i]) && !self.state.frozen.contains(&order[i]))
            .collect();
        let thaw: Vec<usize> = (0..order.len())
            .filter(|&i| !target.contains(&order[i]) && self.state.frozen.contains(&order[i]))
            .collect();
        let mut model = self.model.take().context("model present")?;
        for &i in &freeze {
            model = model.freeze_group(self.param_groups[i].clone());
        }
        for &i in &thaw {
            model = model.unfreeze_group(self.param_groups[i].clone());
            self.state
                .thawed_at
                .insert(order[i].clone(), self.state.step);
        }
        if cause.is_some() && !thaw.is_empty() {
            // More to train is a new chance to improve: early stopping's patience restarts.
            self.state.stale_epochs = 0;
        }
        self.model = Some(model);
        self.state.frozen = target;
        if let Some(cause) = cause {
            for (kind, idx) in [(EventKind::Freeze, &freeze), (EventKind::Unfreeze, &thaw)] {
                if idx.is_empty() {
                    continue;
                }
                let names: Vec<String> = idx.iter().map(|&i| order[i].clone()).collect();
                let params: usize = idx.iter().map(|&i| self.groups[i].params).sum();
                let verb = match kind {
                    EventKind::Freeze => "froze",
                    _ => "thawed",
                };
                let message = format!("{verb} {} ({params} params, by {cause})", names.join(", "));
                self.event(kind, message, names)?;
            }
            self.write_state()?;
        }
        Ok(())
    }

    pub(super) fn pause_on_nan(&mut self, value: f64) -> Result<()> {
        self.nan_at = Some(self.state.step + 1);
        // Kept on disk: a worker that ends before going back leaves it to the next one.
        self.record_nan(true)?;
        if std::env::var_os(super::FAIL_ON_NAN_ENV).is_some() {
            // Under `thaw train` no one can lower the rate and resume: waiting would hang it.
            let message = format!(
                "loss is {value} at step {} (epoch {}): not applied, and the run ends here; lower its lr in the session file and run `thaw train` again to resume it from {} (launched in the daemon, it pauses for `thaw lr` and `thaw resume`)",
                self.state.step + 1,
                self.epoch_said(),
                self.last_good_said()
            );
            self.event(EventKind::Nan, message.clone(), vec![])?;
            bail!(message);
        }
        self.self_paused = Some(self.desired.resume);
        let at = format!(
            "loss is {value} at step {} (epoch {}): paused without applying it",
            self.state.step + 1,
            self.epoch_said()
        );
        let message = match self.last_good() {
            Some(_) => format!(
                "{at}; these weights would give it again, so resuming goes back to {}: lower the learning rate first (`thaw lr RUN /10`), or stop",
                self.last_good_said()
            ),
            None => format!(
                "{at}; these weights would give it again and no earlier checkpoint is kept to go back to: stop the run and launch it anew with a lower learning rate"
            ),
        };
        self.event(EventKind::Nan, message.clone(), vec![])?;
        self.message = Some(message);
        Ok(())
    }

    /// Where a rollback goes, in words.
    fn last_good_said(&self) -> String {
        match self.last_good() {
            Some(Good::Checkpoint(_, saved)) => format!("its checkpoint at step {}", saved.step),
            Some(Good::Start) => "its starting weights (no checkpoint yet)".into(),
            None => "the weights that gave it (no earlier checkpoint is kept)".into(),
        }
    }

    /// Writes a checkpoint of the current step; none while paused on a loss that was not
    /// finite, whose weights are not worth keeping (the latest checkpoint stays the last good
    /// one, for a rollback or a resume after a signal).
    pub(super) fn checkpoint(&mut self, why: &str) -> Result<()> {
        if self.self_paused.is_some() {
            let message = format!(
                "no checkpoint ({why}): the weights at step {} gave a loss that was not finite",
                self.state.step + 1
            );
            return self.event(EventKind::Checkpoint, message, vec![]);
        }
        let start = std::time::Instant::now();
        let previous = self.status;
        self.status = RunStatus::Checkpointing;
        self.write_state()?;
        self.state.open_log = self.log.sums;
        // Past the last loss that was not finite, a rollback goes to this checkpoint, not to
        // the start or an older one. Before it, these weights may be on their way there: the
        // older checkpoints are all kept until the run is past it.
        let trusted = self.nan_at.is_none_or(|at| self.state.step > at);
        let keep = match trusted {
            true => self.spec.keep_checkpoints,
            false => usize::MAX,
        };
        let dir = checkpoint::save(self.run, self.model(), &self.optim, &self.state, keep)?;
        self.status = previous;
        if trusted {
            self.start = None;
            self.rollback_floor = None;
            if self.nan_at.take().is_some() {
                self.record_nan(false)?;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        self.checkpoint_secs = Some(secs);
        if self.log.since.is_some() {
            self.log.excluded += secs;
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        self.event(
            EventKind::Checkpoint,
            format!("checkpoint {name} ({why})"),
            vec![],
        )?;
        self.write_state()
    }

    /// Validation loss and top-1 accuracy over the whole validation split; keeps `best.bpk`.
    pub(super) fn validate(&mut self) -> Result<()> {
        let valid = self.model().valid();
        let (mut loss, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let start = std::time::Instant::now();
        for batch in self.dataset.loader(Split::Val, 0, 0, self.spec.batch_size) {
            let batch = batch?;
            let n = batch.labels.len();
            let (images, labels) = step::tensors(batch, &self.plain);
            let (l, c) = step::loss_and_correct(valid.forward(images), labels);
            loss += f64::from(l.into_scalar::<f32>()) * n as f64;
            correct += c;
            seen += n;
        }
        if seen == 0 {
            return Ok(());
        }
        let (loss, accuracy) = (loss / seen as f64, correct as f64 / seen as f64);
        let secs = start.elapsed().as_secs_f64();
        self.validate_secs = Some(secs);
        self.run.append_metric(
            &MetricRow {
                step: self.state.step,
                epoch: self.state.epoch,
                split: crate::run::Split::Val,
                loss,
                accuracy,
                lrs: self.group_rates(),
                samples_per_sec: if secs > 0.0 { seen as f64 / secs } else { 0.0 },
                wall_time: self.started.elapsed().as_secs_f64(),
                grad_norm: None,
            },
            self.metrics,
        )?;
        let message = format!(
            "epoch {}: val loss {loss:.4}, accuracy {:.1}%",
            self.epoch_said(),
            accuracy * 100.0
        );
        self.event(EventKind::Validation, message, vec![])?;
        // The best weights are those of the lowest validation loss; the best accuracy is the
        // highest seen, whichever epoch it came from.
        self.state.best_val_accuracy = Some(
            self.state
                .best_val_accuracy
                .map_or(accuracy, |a| a.max(accuracy)),
        );
        self.last_val = Some((loss, accuracy));
        // Patience counts validations since one lower than the last that counted by more than
        // `early_stop_min_delta` (Keras' and Lightning's rule); the best weights follow any
        // lower loss.
        self.state.stale_epochs += 1;
        let delta = self.spec.early_stop_min_delta.unwrap_or(0.0);
        let counted = self.state.patience_loss.or(self.state.best_val_loss);
        if counted.is_none_or(|counted| loss < counted - delta) {
            self.state.stale_epochs = 0;
            self.state.patience_loss = Some(loss);
        }
        if self.state.best_val_loss.is_none_or(|best| loss < best) {
            self.state.best_val_loss = Some(loss);
            valid
                .save_file(self.run.best())
                .with_context(|| format!("cannot write {}", self.run.best().display()))?;
            self.event(
                EventKind::Best,
                format!("new best val loss {loss:.4}: saved best.bpk"),
                vec![],
            )?;
        }
        self.write_state()
    }

    /// Why the run ends before its last epoch: `early_stop_patience` validations in a row
    /// without a better validation loss (lower by more than `early_stop_min_delta`), counted
    /// from the freeze schedule's last thaw (a run with groups still to thaw by the schedule
    /// goes on to them).
    pub(super) fn stops_early(&self) -> Option<String> {
        let patience = self.spec.early_stop_patience?;
        if self.state.stale_epochs < patience || self.thaws_later() {
            return None;
        }
        let better = match (self.spec.early_stop_min_delta, self.state.patience_loss) {
            (Some(delta), Some(counted)) if delta > 0.0 => format!(
                "validation loss more than {} below {counted:.4}",
                crate::number::plain(delta)
            ),
            _ => "better validation loss".into(),
        };
        Some(format!(
            "stopped early after epoch {} of {}: no {better} in its last {} epochs (best {}, in best.bpk)",
            self.state.epoch,
            self.spec.epochs,
            self.state.stale_epochs,
            self.state
                .best_val_loss
                .map_or("-".into(), |l| format!("{l:.4}"))
        ))
    }

    /// Whether the freeze schedule (not overridden by hand) thaws groups before the last
    /// epoch: steps after that are slower than the current speed says.
    fn thaws_later(&self) -> bool {
        self.desired.frozen.is_none()
            && self
                .schedule
                .frozen_at(self.spec.epochs.saturating_sub(1))
                .len()
                < self.state.frozen.len()
    }

    /// Seconds to the end of the last epoch; `None` before a speed is known.
    fn secs_left(&self) -> Option<f64> {
        let left = super::left::Left {
            steps_per_epoch: self.steps_per_epoch,
            epochs: self.spec.epochs,
            step: self.state.step,
            epoch: self.state.epoch,
            batch_size: self.spec.batch_size,
            checkpoint_every: self.spec.checkpoint_every_steps,
            val_samples: self.dataset.len(Split::Val),
            validate_secs: self.validate_secs,
            checkpoint_secs: self.checkpoint_secs,
        };
        left.secs(self.last_speed?)
    }

    /// The epoch being trained, 1 in the first (the last once all are done), as every view
    /// says it: events carry it, and their messages say it.
    pub(super) fn epoch_said(&self) -> usize {
        crate::run::epoch_said(self.status, self.state.epoch, self.spec.epochs)
    }

    pub(super) fn event(
        &self,
        kind: EventKind,
        message: String,
        groups: Vec<String>,
    ) -> Result<()> {
        self.run.append_event(&Event {
            time: now(),
            step: self.state.step,
            epoch: self.epoch_said(),
            kind,
            message,
            groups,
        })
    }

    pub(super) fn write_state(&self) -> Result<()> {
        let pid = std::process::id();
        self.run.write_state(&RunState {
            status: self.status,
            step: self.state.step,
            epoch: self.state.epoch,
            epochs: self.spec.epochs,
            total_steps: self.steps_per_epoch * self.spec.epochs,
            frozen: self.state.frozen.clone(),
            device: self.spec.device.resolve().to_string(),
            pid,
            pid_start: crate::run::process::start_time(pid),
            host: hostname(),
            last_loss: self.last_loss,
            best_val_loss: self.state.best_val_loss,
            best_val_accuracy: self.state.best_val_accuracy,
            val_loss: self.last_val.map(|(loss, _)| loss),
            val_accuracy: self.last_val.map(|(_, accuracy)| accuracy),
            samples_per_sec: self.last_speed,
            grad_norm: self.last_grad_norm,
            secs_left: self.secs_left(),
            secs_left_grows: self.thaws_later(),
            message: self.message.clone(),
            updated: now(),
        })
    }
}
