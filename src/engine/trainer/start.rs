//! What a run starts from when it has no checkpoint: the weights its session file names,
//! transferred into the model with a report, and a training state at step 0.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::engine::checkpoint::{self, OpenLog, TrainState};
use crate::engine::config::TrainConfig;
use crate::engine::model::{Classifier, layer_groups};
use crate::engine::weights::{TransferRules, WeightsFile, WeightsSource, transfer};
use crate::run::RunDir;

/// The model with the run's `weights` transferred into it, reported in `transfer.json` and
/// the events. A run resuming from a checkpoint takes its weights from there instead.
pub(super) fn starting_weights<M: Classifier>(
    run: &RunDir,
    spec: &TrainConfig,
    model: M,
) -> Result<M> {
    let source = WeightsSource::parse(&spec.weights).map_err(anyhow::Error::msg)?;
    let Some(path) = source.path(run) else {
        return Ok(model);
    };
    if checkpoint::resume_point(run).is_some() {
        return Ok(model);
    }
    let file = WeightsFile::read(&path)?;
    let rules = TransferRules {
        remap: spec
            .weights_remap
            .iter()
            .map(|[p, r]| Ok((regex::Regex::new(p)?, r.clone())))
            .collect::<Result<_>>()?,
        exclude: spec
            .weights_exclude
            .iter()
            .map(|p| Ok(regex::Regex::new(p)?))
            .collect::<Result<_>>()?,
        ..TransferRules::for_model(spec.model)
    };
    let groups = layer_groups(spec.model, &model);
    let (model, report) = transfer(model, &groups, &file, &rules)?;
    crate::run::write_atomic(&run.transfer_path(), &serde_json::to_vec_pretty(&report)?)?;
    run.append_event(&crate::run::Event {
        time: crate::run::now(),
        step: 0,
        epoch: 1,
        kind: crate::run::EventKind::Weights,
        message: format!("weights from {source}: {}", report.lines().join("; ")),
        groups: Vec::new(),
    })?;
    Ok(model)
}

/// The state of a run that has not taken a step.
pub(super) fn fresh_state(spec: &TrainConfig) -> TrainState {
    TrainState {
        step: 0,
        epoch: 0,
        batch_in_epoch: 0,
        frozen: Vec::new(),
        thawed_at: BTreeMap::new(),
        lr_multiplier: 1.0,
        best_val_loss: None,
        best_val_accuracy: None,
        seed: spec.seed,
        checkpoint_requests: 0,
        open_log: OpenLog::default(),
        stale_epochs: 0,
        patience_loss: None,
    }
}
