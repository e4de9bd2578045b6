//! A run as `status` shows it (`protocol::RunInfo`), from its session spec and what its
//! directory holds, with what a watcher knows live laid over it: the daemon adds its worker,
//! its Slurm job, its counted groups and rates; the verbs without a daemon, what `/proc` and
//! NVML say.

use crate::engine::model::LayerGroup;
use crate::engine::weights::GroupTransfer;
use crate::protocol::{GroupInfo, RunInfo, SlurmInfo};
use crate::run::{Desired, RunState, RunStatus};
use crate::session::RunSpec;

/// What a watcher knows of a run beyond its files; `Default` knows nothing.
#[derive(Debug, Default)]
pub struct Live<'a> {
    /// The model's groups with their parameter counts, once counted.
    pub groups: Option<&'a [LayerGroup]>,
    /// Each group's learning rate in the last training row.
    pub lrs: &'a [f64],
    /// How much of each group came from the starting weights (`transfer.json`).
    pub transfer: Option<&'a [GroupTransfer]>,
    /// The pid of a worker known to train it now.
    pub pid: Option<u32>,
    /// The status and message that stand in for `state.json`'s (a Slurm job's).
    pub overlay: Option<(RunStatus, String)>,
    /// What a queued or waiting run waits for.
    pub queued_reason: Option<String>,
    /// GPU memory its worker holds, in bytes.
    pub gpu_memory: Option<u64>,
    pub slurm: Option<SlurmInfo>,
}

/// The run `name` of `session` as `status` shows it.
pub fn run_info(
    session: &str,
    spec: &RunSpec,
    state: &RunState,
    desired: &Desired,
    live: Live,
) -> RunInfo {
    let groups: Vec<(String, usize)> = match live.groups {
        Some(groups) => groups.iter().map(|g| (g.name.clone(), g.params)).collect(),
        None => spec
            .model
            .group_names()
            .into_iter()
            .map(|g| (g.to_string(), 0))
            .collect(),
    };
    let frozen = match (live.pid, state.status) {
        // Before the worker has said anything, the session file's freeze list applies.
        (None, status) if status.is_pending() && state.step == 0 => spec.initially_frozen(),
        _ => state.frozen.clone(),
    };
    let (status, message) = match live.overlay {
        Some((status, message)) => (status, Some(message)),
        None => (state.status, state.message.clone()),
    };
    let device = match state.device.is_empty() {
        true => spec.device.to_string(),
        false => state.device.clone(),
    };
    let pretrained = |name: &str| {
        let groups = live.transfer?;
        Some(
            groups
                .iter()
                .find(|g| g.name == name)
                .map_or(0, |g| g.pretrained),
        )
    };
    RunInfo {
        session: session.to_string(),
        name: spec.name.clone(),
        status,
        step: state.step,
        epoch: state.epoch,
        epochs: spec.epochs,
        total_steps: state.total_steps,
        batch_size: spec.batch_size,
        model: spec.model.to_string(),
        device,
        last_loss: state.last_loss,
        groups: groups
            .into_iter()
            .enumerate()
            .map(|(i, (name, params))| GroupInfo {
                frozen: frozen.contains(&name),
                lr: live.lrs.get(i).copied(),
                pretrained: pretrained(&name),
                name,
                params,
            })
            .collect(),
        message,
        best_val_loss: state.best_val_loss,
        best_val_accuracy: state.best_val_accuracy,
        samples_per_sec: state.samples_per_sec,
        grad_norm: state.grad_norm,
        secs_left: state.secs_left,
        secs_left_grows: state.secs_left_grows,
        lr_multiplier: desired.lr_multiplier,
        pid: live.pid,
        queued_reason: live.queued_reason,
        gpu_memory: live.gpu_memory,
        slurm: live.slurm.map(Box::new),
    }
}
