//! The step loop: before every step it applies the run's desired state (freeze, pause, stop,
//! learning-rate multiplier, checkpoint), then trains, logs, validates and checkpoints.

mod control;
mod left;
mod restore;
mod start;
pub mod step;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::ParamGroup;
use burn::optim::ModuleOptimizer;
use burn::prelude::*;

use super::checkpoint::{OpenLog, TrainState};
use super::data::{DataSource, DataSpec, Dataset, Split};
use super::model::{Classifier, LayerGroup, ModelShape, ModelTask, layer_groups, with_model};
use super::schedule::{FreezeSchedule, LrPlan};
use crate::engine::config::TrainConfig;
use crate::run::EventKind;
use crate::run::{Desired, GradNorm, MetricRow, MetricsLayout, RunDir, RunStatus};
use restore::{Good, Rollback};
use start::{fresh_state, starting_weights};

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    /// Stopped at the user's request, after a checkpoint.
    Stopped,
    /// Interrupted by a signal, after a checkpoint: resumable.
    Interrupted,
}

/// Set in a worker's environment (by `thaw train`, where nothing can resume a paused run), a
/// loss that is not finite fails the run instead of pausing it.
pub const FAIL_ON_NAN_ENV: &str = "THAW_FAIL_ON_NAN";

/// Trains the run in `run` to completion (or stop, or signal), resuming from its latest
/// checkpoint if it has one. `data_dir` holds the demo data sets; `interrupt` is raised by
/// signal handlers.
pub fn train(
    run: &RunDir,
    spec: &TrainConfig,
    data_dir: &Path,
    interrupt: &AtomicBool,
) -> Result<Outcome> {
    let mut device = spec.device.to_device()?;
    spec.precision.apply(&mut device, spec.device)?;
    let data = DataSpec {
        source: DataSource::parse(&spec.data)?,
        image_size: spec.image_size,
        in_channels: spec.in_channels,
        val_split: spec.val_split,
        augment: spec.augment,
        seed: spec.seed,
    };
    let dataset = Arc::new(Dataset::open(&data, data_dir)?);
    let shape = ModelShape {
        classes: dataset.classes.len(),
        in_channels: spec.in_channels,
        image_size: spec.image_size,
    };
    run.write_classes(&dataset.classes)?;
    let ad = device.clone().autodiff();
    // Each run is its own process, so seeding the backend here gives this run its own
    // initialisation without touching any other run's.
    ad.seed(spec.seed);
    let task = Train {
        run,
        spec,
        dataset,
        device,
        interrupt,
    };
    with_model(spec.model, shape, &ad, task)
}

/// Training, for whichever model the run names (see [`with_model`]).
struct Train<'a> {
    run: &'a RunDir,
    spec: &'a TrainConfig,
    dataset: Arc<Dataset>,
    device: Device,
    interrupt: &'a AtomicBool,
}

impl ModelTask for Train<'_> {
    type Output = Result<Outcome>;

    fn run<M: Classifier>(self, model: M) -> Result<Outcome> {
        let model = starting_weights(self.run, self.spec, model)?;
        Trainer::new(
            self.run,
            self.spec,
            self.dataset,
            model,
            self.device,
            self.interrupt,
        )?
        .run()
    }
}

/// One run's training loop and everything it carries between steps.
pub struct Trainer<'a, M: Classifier> {
    run: &'a RunDir,
    spec: &'a TrainConfig,
    dataset: Arc<Dataset>,
    /// The autodiff device training runs on; `plain` is the same device without autodiff.
    device: Device,
    plain: Device,
    model: Option<M>,
    optim: ModuleOptimizer,
    groups: Vec<LayerGroup>,
    param_groups: Vec<ParamGroup>,
    schedule: FreezeSchedule,
    lr: LrPlan,
    state: TrainState,
    /// The starting weights, until the first checkpoint: what a loss that is not finite
    /// before then rolls back to.
    start: Option<M>,
    /// Set when the run went back to earlier weights: the data loader starts again from the
    /// state's position.
    rolled_back: bool,
    /// The step of the checkpoint last rolled back to, until a newer checkpoint is written: a
    /// loss that is not finite again before then rolls back further, as that checkpoint's
    /// weights may already have been on their way up (finite, but spoiled).
    rollback_floor: Option<usize>,
    /// The step of the latest loss that was not finite: checkpoints written before the run
    /// has gone past it may hold the weights on their way there.
    nan_at: Option<usize>,
    desired: Desired,
    /// The last unusable `desired.json`, so it is reported once, not at every step.
    bad_desired: Option<Vec<u8>>,
    /// Paused by the worker itself (NaN loss) until `desired.resume` goes up.
    self_paused: Option<u64>,
    status: RunStatus,
    interrupt: &'a AtomicBool,
    started: Instant,
    steps_per_epoch: usize,
    log: LogWindow,
    /// The columns of this run's `metrics.csv`.
    metrics: MetricsLayout,
    last_loss: Option<f64>,
    last_speed: Option<f64>,
    last_grad_norm: Option<GradNorm>,
    /// How long the latest validation pass and checkpoint took, for the time left.
    validate_secs: Option<f64>,
    checkpoint_secs: Option<f64>,
    /// The latest validation loss and accuracy.
    last_val: Option<(f64, f64)>,
    /// Why the run is paused or failed, for `state.json`.
    message: Option<String>,
}

/// The current logging interval: its sums (what a checkpoint keeps) and its clock.
#[derive(Default)]
struct LogWindow {
    sums: OpenLog,
    since: Option<Instant>,
    /// Time since `since` spent checkpointing, which is not the steps' time.
    excluded: f64,
}

impl<'a, M: Classifier> Trainer<'a, M> {
    /// Prepares a run: the model freshly built, or restored from the latest checkpoint.
    pub fn new(
        run: &'a RunDir,
        spec: &'a TrainConfig,
        dataset: Arc<Dataset>,
        model: M,
        plain: Device,
        interrupt: &'a AtomicBool,
    ) -> Result<Self> {
        let groups = layer_groups(spec.model, &model);
        let param_groups = groups.iter().map(LayerGroup::param_group).collect();
        let steps_per_epoch = dataset.batches_per_epoch(Split::Train, spec.batch_size);
        if steps_per_epoch == 0 {
            bail!(
                "data {}: {} training images are fewer than one batch of {}: lower batch_size",
                spec.data,
                dataset.len(Split::Train),
                spec.batch_size
            );
        }
        let device = plain.clone().autodiff();
        let mut trainer = Self {
            run,
            spec,
            dataset,
            device,
            plain,
            model: Some(model),
            optim: step::optimizer(spec),
            groups,
            param_groups,
            schedule: FreezeSchedule::new(spec),
            lr: LrPlan::new(spec, steps_per_epoch),
            state: fresh_state(spec),
            start: None,
            rolled_back: false,
            rollback_floor: None,
            nan_at: None,
            desired: Desired::default(),
            bad_desired: None,
            self_paused: None,
            status: RunStatus::Running,
            interrupt,
            started: Instant::now(),
            steps_per_epoch,
            log: LogWindow::default(),
            metrics: MetricsLayout::Current,
            last_loss: None,
            last_speed: None,
            last_grad_norm: None,
            validate_secs: None,
            checkpoint_secs: None,
            last_val: None,
            message: None,
        };
        trainer.restore()?;
        Ok(trainer)
    }

    /// The layer groups' names, in model order (the `lr_` columns of `metrics.csv`).
    fn group_names(&self) -> Vec<String> {
        self.groups.iter().map(|g| g.name.clone()).collect()
    }

    /// The loop, to the end of the last epoch or until stopped.
    pub fn run(mut self) -> Result<Outcome> {
        self.write_state()?;
        let mut early = None;
        'epochs: while self.state.epoch < self.spec.epochs {
            if self.state.batch_in_epoch == 0 {
                early = self.stops_early();
                if early.is_some() {
                    break;
                }
            }
            let loader = self.dataset.loader(
                Split::Train,
                self.state.epoch,
                self.state.batch_in_epoch,
                self.spec.batch_size,
            );
            for batch in loader {
                if let Some(outcome) = self.before_step()? {
                    return Ok(outcome);
                }
                if std::mem::take(&mut self.rolled_back) {
                    // A loader for the rolled-back position.
                    continue 'epochs;
                }
                self.train_step(batch?)?;
                self.state.batch_in_epoch += 1;
                if self.state.batch_in_epoch >= self.steps_per_epoch {
                    break;
                }
                let every = self.spec.checkpoint_every_steps;
                if every > 0 && self.state.step.is_multiple_of(every) {
                    self.checkpoint("periodic")?;
                }
            }
            self.flush_log()?;
            self.validate()?;
            self.state.epoch += 1;
            self.state.batch_in_epoch = 0;
            self.checkpoint("epoch end")?;
        }
        self.status = RunStatus::Finished;
        let said = early.clone().unwrap_or_else(|| {
            format!(
                "finished {} epochs at step {}",
                self.spec.epochs, self.state.step
            )
        });
        self.event(EventKind::Finished, said, vec![])?;
        // Why it finished before its epochs stays in view (status, the dashboard).
        self.message = early;
        self.write_state()?;
        Ok(Outcome::Finished)
    }

    fn model(&self) -> &M {
        self.model
            .as_ref()
            .expect("the model is only taken during a step")
    }

    fn train_step(&mut self, batch: super::data::Batch) -> Result<()> {
        // The logging window's clock starts before its first step, or that step is not timed.
        self.log.since.get_or_insert_with(Instant::now);
        let n = batch.labels.len();
        let (images, labels) = step::tensors(batch, &self.device);
        let model = self.model.take().context("model present")?;
        let (loss, correct) = step::loss_and_correct(model.forward(images), labels);
        let value = f64::from(loss.clone().into_scalar::<f32>());
        if !value.is_finite() {
            self.model = Some(model);
            return self.pause_on_nan(value);
        }
        let model = if self.state.frozen.len() == self.groups.len() {
            // Everything frozen: nothing to differentiate or update.
            model
        } else {
            let mut grads = step::gradients(&loss, &model);
            if let Some(max_norm) = self.spec.grad_clip_norm {
                let clip = step::clip_grad_norm(&mut grads, &model, max_norm);
                // A norm that is not finite is the NaN handling's, and would say nothing of
                // the others in the interval.
                if clip.norm.is_finite() {
                    let sums = &mut self.log.sums;
                    sums.grad_norms += clip.norm;
                    sums.measured += 1;
                    sums.clipped += usize::from(clip.scaled);
                }
            }
            let rates = self.rates();
            self.optim.step(rates, model, grads)
        };
        self.model = Some(model);
        self.state.step += 1;
        let sums = &mut self.log.sums;
        sums.loss += value * n as f64;
        sums.correct += correct;
        sums.samples += n;
        sums.steps += 1;
        if sums.steps >= self.spec.log_every_steps {
            self.flush_log()?;
        }
        Ok(())
    }

    /// Every group's rate at the current step, in group order.
    fn group_rates(&self) -> Vec<f64> {
        self.groups
            .iter()
            .map(|g| {
                let thawed = self.state.thawed_at.get(&g.name).copied();
                self.lr
                    .group_rate(&g.name, self.state.step, self.state.lr_multiplier, thawed)
            })
            .collect()
    }

    fn rates(&self) -> burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate {
        let rates = self.group_rates();
        let groups: Vec<(ParamGroup, f64)> = self.param_groups.iter().cloned().zip(rates).collect();
        step::module_rates(
            &groups,
            self.lr.scheduled(self.state.step) * self.state.lr_multiplier,
        )
    }

    fn flush_log(&mut self) -> Result<()> {
        let log = std::mem::take(&mut self.log);
        let sums = log.sums;
        if sums.samples == 0 {
            return Ok(());
        }
        let secs = log
            .since
            .map_or(0.0, |s| s.elapsed().as_secs_f64() - log.excluded);
        let loss = sums.loss / sums.samples as f64;
        let row = MetricRow {
            step: self.state.step,
            epoch: self.state.epoch,
            split: crate::run::Split::Train,
            loss,
            accuracy: sums.correct as f64 / sums.samples as f64,
            lrs: self.group_rates(),
            samples_per_sec: if secs > 0.0 {
                sums.samples as f64 / secs
            } else {
                0.0
            },
            wall_time: self.started.elapsed().as_secs_f64(),
            grad_norm: sums.grad_norm(),
        };
        self.run.append_metric(&row, self.metrics)?;
        self.last_loss = Some(loss);
        self.last_speed = Some(row.samples_per_sec);
        self.last_grad_norm = row.grad_norm;
        self.write_state()
    }
}

#[cfg(test)]
mod family_tests;
#[cfg(test)]
mod tests;
