//! `control`: freeze, unfreeze, pause, resume, stop, checkpoint, learning rate. The daemon
//! writes the run's `desired.json`; the worker reads it before every step (every 100 ms while
//! paused) and applies the difference, so the reply acknowledges the request and the worker's
//! event shows the effect.

use crate::daemon::registry::Run;
use crate::daemon::{Daemon, scheduler, slurm};
use crate::protocol::{Control, Response};
use crate::run::RunStatus;

pub fn handle(daemon: &mut Daemon, name: &str, control: Control) -> Response {
    if daemon.shutting_down {
        return Response::error("the daemon is shutting down");
    }
    let run = match daemon.registry.find(name) {
        Ok(run) => run,
        Err(why) => return Response::error(why),
    };
    let result = apply(run, control);
    // A stopped or requeued run changes what may start.
    daemon.tick();
    match result {
        Ok(message) => Response::done(message),
        Err(message) => Response::error(message),
    }
}

pub fn apply(run: &mut Run, control: Control) -> Result<String, String> {
    let full = run.full_name();
    let failed = |e: anyhow::Error| format!("{e:#}");
    if !run.is_live() {
        return match control {
            Control::Stop if scheduler::pending(run) => {
                run.queued_reason = None;
                run.set_status(RunStatus::Stopped, Some("stopped before it started".into()))
                    .map_err(failed)?;
                Ok(format!("{full}: stopped before it started"))
            }
            Control::Resume if run.state.status.is_resumable() => {
                let from = scheduler::requeue(run, true).map_err(failed)?;
                Ok(format!("{full}: resuming {from}"))
            }
            _ => Err(not_running(run)),
        };
    }
    let message = match control {
        Control::Freeze { groups } | Control::Unfreeze { groups } if groups.is_empty() => {
            return Err(format!(
                "name one or more groups of {full}: {}",
                run.group_names().join(", ")
            ));
        }
        Control::Freeze { groups } => {
            let target = frozen_after(run, &groups, true)?;
            run.change_desired(|d| d.frozen = Some(target))
                .map_err(failed)?;
            format!(
                "{full}: freezing {} before the next step",
                groups.join(", ")
            )
        }
        Control::Unfreeze { groups } => {
            let target = frozen_after(run, &groups, false)?;
            run.change_desired(|d| d.frozen = Some(target))
                .map_err(failed)?;
            format!("{full}: thawing {} before the next step", groups.join(", "))
        }
        Control::Pause => {
            run.change_desired(|d| d.paused = true).map_err(failed)?;
            format!("{full}: pausing before the next step")
        }
        Control::Resume => {
            run.change_desired(|d| {
                d.paused = false;
                d.resume += 1;
            })
            .map_err(failed)?;
            format!("{full}: resuming")
        }
        Control::Stop if run.execution.slurm().is_some_and(|s| s.not_started()) => {
            // No worker runs yet to checkpoint: the job is simply withdrawn.
            run.change_desired(|d| d.stop = true).map_err(failed)?;
            let cancelled = slurm::cancel(run).map_err(failed)?;
            format!("{full}: stopping before it started ({cancelled})")
        }
        Control::Stop if run.execution.submitting().is_some() => {
            run.change_desired(|d| d.stop = true).map_err(failed)?;
            format!("{full}: stopping; its Slurm job is cancelled as soon as sbatch answers")
        }
        Control::Stop => {
            run.change_desired(|d| d.stop = true).map_err(failed)?;
            format!("{full}: checkpointing and stopping")
        }
        Control::Checkpoint => {
            run.change_desired(|d| d.checkpoint += 1).map_err(failed)?;
            format!("{full}: checkpoint requested")
        }
        Control::LrScale(factor) => {
            let value = run.desired.lr_multiplier * factor;
            set_lr(run, value)?
        }
        Control::LrSet(value) => set_lr(run, value)?,
    };
    Ok(match run.execution.slurm() {
        Some(job) if job.not_started() && !run.desired.stop => format!(
            "{message} (Slurm job {} has not started: its worker applies this when it does)",
            job.job_id()
        ),
        Some(job) if run.desired.paused => format!(
            "{message}; Slurm job {} keeps its allocation while paused",
            job.job_id()
        ),
        _ => message,
    })
}

fn set_lr(run: &mut Run, value: f64) -> Result<String, String> {
    if !(value.is_finite() && value > 0.0) {
        return Err(format!(
            "the learning-rate multiplier must be a positive number, not {}",
            crate::number::plain(value)
        ));
    }
    run.change_desired(|d| d.lr_multiplier = value)
        .map_err(|e| format!("{e:#}"))?;
    Ok(format!(
        "{}: learning-rate multiplier {}",
        run.full_name(),
        crate::number::plain(value)
    ))
}

/// The frozen groups after freezing (or thawing) `groups`: starting from what the user last
/// asked, else what the worker has frozen now; in model order.
fn frozen_after(run: &Run, groups: &[String], freeze: bool) -> Result<Vec<String>, String> {
    let names = run.group_names();
    if let Some(bad) = groups.iter().find(|g| !names.contains(g)) {
        return Err(format!(
            "no group {bad:?} in {} ({}): its groups are {}",
            run.full_name(),
            run.spec.model,
            names.join(", ")
        ));
    }
    let current = run
        .desired
        .frozen
        .clone()
        .unwrap_or_else(|| run.state.frozen.clone());
    Ok(names
        .into_iter()
        .filter(|g| match groups.contains(g) {
            true => freeze,
            false => current.contains(g),
        })
        .collect())
}

fn not_running(run: &Run) -> String {
    let full = run.full_name();
    match run.state.status {
        RunStatus::Queued | RunStatus::Waiting => format!(
            "{full} has not started yet ({}): only `stop` applies to it now",
            run.queued_reason
                .as_deref()
                .or(run.state.message.as_deref())
                .unwrap_or("queued")
        ),
        RunStatus::Finished => format!("{full} has finished"),
        RunStatus::Interrupted => format!(
            "{full} was interrupted: `thaw resume {full}` restarts it from its last checkpoint"
        ),
        RunStatus::Failed => format!(
            "{full} failed ({}): `thaw resume {full}` tries again from its last checkpoint",
            run.state.message.as_deref().unwrap_or("no reason recorded")
        ),
        RunStatus::Stopped => format!("{full} was stopped: `thaw resume {full}` continues it"),
        _ => format!("{full} has no worker"),
    }
}
