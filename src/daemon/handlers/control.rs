//! `control`: freeze, unfreeze, pause, resume, stop, checkpoint, learning rate. The daemon
//! writes the run's `desired.json`; the worker reads it before every step (every 100 ms while
//! paused) and applies the difference, so the reply acknowledges the request and the worker's
//! event shows the effect.

use crate::daemon::registry::Run;
use crate::daemon::{Daemon, scheduler, slurm};
use crate::protocol::{Control, Controlled, Response};
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
        control => {
            let mut desired = run.desired.clone();
            let (groups, model) = (run.group_names(), run.spec.model.to_string());
            let controlled = Controlled {
                name: &full,
                model: &model,
                groups: &groups,
                frozen: &run.state.frozen,
            };
            let message = control.ask(&controlled, &mut desired)?;
            run.change_desired(|d| *d = desired).map_err(failed)?;
            message
        }
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
