//! Which pending runs start now. CPU runs share the cores: at most `cpu_slots` at once, each
//! with a thread budget so that together they use the cores and no more. A GPU trains one run
//! at a time. A run that starts from another run's best weights waits until that run has
//! them; if it ends without them, the waiting run fails with that reason.

use std::collections::HashSet;

use anyhow::Result;

use super::registry::{Registry, Run};
use super::workers::{self, Worker};
use crate::engine::rundir::RunStatus;

/// What a pending run needs before it can start.
enum Dependency {
    Ready,
    Waiting(String),
    Failed(String),
}

/// Whether a run is the daemon's to start: launched or resumed, not started yet.
pub fn pending(run: &Run) -> bool {
    run.worker.is_none() && matches!(run.state.status, RunStatus::Queued | RunStatus::Waiting)
}

/// Starts what can start; marks the rest queued or waiting with the reason.
pub fn schedule(registry: &mut Registry, cpu_slots: usize, cores: usize) -> Result<()> {
    let mut cpu_busy = registry
        .runs()
        .filter(|r| r.is_live() && r.device.is_cpu())
        .count();
    let mut gpus_busy: HashSet<String> = registry
        .runs()
        .filter(|r| r.is_live() && !r.device.is_cpu())
        .map(|r| r.device.to_string())
        .collect();
    let mut ready_cpu = Vec::new();
    let mut ready_gpu = Vec::new();
    for si in 0..registry.sessions.len() {
        for ri in 0..registry.sessions[si].runs.len() {
            if !pending(&registry.sessions[si].runs[ri]) {
                continue;
            }
            match dependency(&registry.sessions[si].runs, ri) {
                Dependency::Ready if registry.sessions[si].runs[ri].device.is_cpu() => {
                    ready_cpu.push((si, ri))
                }
                Dependency::Ready => ready_gpu.push((si, ri)),
                Dependency::Waiting(why) => {
                    let run = &mut registry.sessions[si].runs[ri];
                    mark(run, RunStatus::Waiting, why)?;
                }
                Dependency::Failed(why) => {
                    let run = &mut registry.sessions[si].runs[ri];
                    run.queued_reason = None;
                    run.set_status(RunStatus::Failed, Some(why))?;
                }
            }
        }
    }
    // The cores are shared by the runs that will be training together.
    let starting = ready_cpu.len().min(cpu_slots.saturating_sub(cpu_busy));
    let threads = (cores / (cpu_busy + starting).clamp(1, cpu_slots.max(1))).max(1);
    for (si, ri) in ready_cpu {
        let run = &mut registry.sessions[si].runs[ri];
        if cpu_busy < cpu_slots {
            start(run, threads)?;
            cpu_busy += 1;
        } else {
            let why = format!("waiting for a CPU slot ({cpu_busy} of {cpu_slots} in use)");
            mark(run, RunStatus::Queued, why)?;
        }
    }
    for (si, ri) in ready_gpu {
        let device = registry.sessions[si].runs[ri].device.to_string();
        if gpus_busy.insert(device.clone()) {
            start(&mut registry.sessions[si].runs[ri], 1)?;
        } else {
            let user = registry
                .runs()
                .find(|r| r.is_live() && r.device.to_string() == device)
                .map(|r| format!(" (used by {})", r.full_name()))
                .unwrap_or_default();
            let run = &mut registry.sessions[si].runs[ri];
            mark(
                run,
                RunStatus::Queued,
                format!("waiting for {device}{user}"),
            )?;
        }
    }
    Ok(())
}

fn dependency(runs: &[Run], i: usize) -> Dependency {
    let Some(on) = runs[i].spec.waits_for() else {
        return Dependency::Ready;
    };
    let Some(source) = runs.iter().find(|r| r.name == on) else {
        // Not a run of this session: its best weights must already be there.
        return Dependency::Ready;
    };
    let has_best = source.dir.best().is_file();
    match source.state.status {
        RunStatus::Finished => Dependency::Ready,
        RunStatus::Stopped if has_best => Dependency::Ready,
        RunStatus::Failed | RunStatus::Stopped => Dependency::Failed(format!(
            "it starts from run {on}'s best weights, and {on} ended {} without them",
            format!("{:?}", source.state.status).to_lowercase()
        )),
        RunStatus::Interrupted => Dependency::Waiting(format!(
            "waiting for run {on}, which was interrupted: resume it (`thaw resume --all`)"
        )),
        _ => Dependency::Waiting(format!(
            "waiting for run {on} to finish: it starts from its best weights"
        )),
    }
}

/// Records that a run waits, writing `state.json` only when the status changes.
fn mark(run: &mut Run, status: RunStatus, why: String) -> Result<()> {
    if run.state.status != status {
        run.set_status(status, Some(why.clone()))?;
    }
    run.queued_reason = Some(why);
    Ok(())
}

/// Starts a run's worker and records its pid, so a daemon restarted before the worker has
/// written anything adopts it rather than starting a second one.
fn start(run: &mut Run, threads: usize) -> Result<()> {
    run.change_desired(|d| d.stop = false)?;
    let child = match workers::spawn(&run.dir, threads) {
        Ok(child) => child,
        Err(e) => {
            run.queued_reason = None;
            return run.set_status(RunStatus::Failed, Some(format!("{e:#}")));
        }
    };
    let pid = child.id();
    run.queued_reason = None;
    run.state.status = RunStatus::Running;
    run.state.message = None;
    run.state.pid = pid;
    run.state.pid_start = crate::engine::rundir::process_start_time(pid);
    run.state.host = crate::engine::rundir::hostname();
    run.worker = Some(Worker::Child(child));
    run.dir.write_state(&run.state)?;
    super::log(&format!(
        "{}: started worker pid {pid} with {threads} thread(s)",
        run.full_name()
    ));
    Ok(())
}

/// Queues an interrupted, failed or stopped run again: its worker resumes from the run's last
/// checkpoint, with its frozen groups and metric history. Returns where it resumes from.
pub fn requeue(run: &mut Run, unpause: bool) -> Result<String> {
    run.change_desired(|d| {
        d.stop = false;
        if unpause {
            d.paused = false;
        }
    })?;
    let from = match crate::engine::checkpoint::latest(&run.dir) {
        Some((dir, saved)) => format!(
            "from checkpoint {} (step {})",
            dir.file_name().unwrap_or_default().to_string_lossy(),
            saved.step
        ),
        None => "from the start (no checkpoint yet)".to_string(),
    };
    run.set_status(RunStatus::Queued, Some(format!("resuming {from}")))?;
    Ok(from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::registry::Session;
    use crate::paths::Paths;
    use crate::session::{SessionSpec, store};

    fn registry(dir: &std::path::Path) -> Registry {
        let text = r#"
name = "s"
[defaults]
model = "mlp"
device = "flex"
[[runs]]
name = "pre"
[[runs]]
name = "ft"
weights = "run:pre/best"
"#;
        let spec = SessionSpec::parse(text, &dir.join("s.toml")).unwrap();
        let paths = Paths {
            data: dir.join("data"),
            config: dir.join("config"),
            runtime: dir.join("run"),
        };
        let runs = store::prepare(&paths, &spec)
            .unwrap()
            .into_iter()
            .map(|d| Run::open("s", d).unwrap())
            .collect();
        Registry {
            sessions: vec![Session {
                name: "s".into(),
                runs,
            }],
        }
    }

    #[test]
    fn a_run_waits_for_the_weights_it_starts_from_and_fails_without_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = registry(dir.path());
        // No CPU slot: nothing is started, the ready run says what it waits for.
        schedule(&mut registry, 0, 2).unwrap();
        let runs = &registry.sessions[0].runs;
        assert_eq!(runs[0].state.status, RunStatus::Queued);
        assert_eq!(
            runs[0].queued_reason.as_deref(),
            Some("waiting for a CPU slot (0 of 0 in use)")
        );
        assert_eq!(runs[1].state.status, RunStatus::Waiting);
        assert!(
            runs[1]
                .queued_reason
                .as_deref()
                .unwrap()
                .contains("run pre")
        );
        assert_eq!(runs[1].dir.read_state().unwrap().status, RunStatus::Waiting);

        registry.sessions[0].runs[0]
            .set_status(RunStatus::Failed, None)
            .unwrap();
        schedule(&mut registry, 0, 2).unwrap();
        let ft = &registry.sessions[0].runs[1];
        assert_eq!(ft.state.status, RunStatus::Failed);
        assert!(
            ft.state
                .message
                .as_deref()
                .unwrap()
                .contains("pre ended failed")
        );
    }
}
