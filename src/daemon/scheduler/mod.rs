//! Which pending runs start now. CPU runs share the cores: at most `cpu_slots` at once, each
//! with a thread budget so that together they use the cores and no more. CUDA runs go to a
//! GPU with room (`runs_per_gpu` each): `tch:cuda:N` to that one, `gpu` (and `auto` where
//! LibTorch is built in and there are GPUs) to the least busy, each with a share of the cores
//! for preparing its batches. A run that starts from another
//! run's best weights waits until that run has them; if it ends without them, the waiting run
//! fails with that reason. Slurm runs are submitted as soon as they are ready: Slurm
//! decides when they start.

use std::collections::HashSet;
use std::process::Child;

use anyhow::Result;

use super::registry::{Registry, Run};
use super::workers::Worker;
use crate::daemon::registry::Execution;
use crate::engine::device::DeviceSpec;
use crate::gpu::GpuInfo;
use crate::run::{RunDir, RunStatus};
use crate::session::rules::{self, Dependency, Placement, Resumer, placement, thread_share};

/// Where runs can train.
#[derive(Debug, Clone)]
pub struct Capacity<'a> {
    pub cpu_slots: usize,
    pub cores: usize,
    /// The GPUs this daemon may use, in CUDA's order.
    pub gpus: &'a [GpuInfo],
    pub runs_per_gpu: usize,
}

/// Starts a run's worker with a thread budget, on a device when the daemon chose it; tests
/// start stand-in processes.
pub type Spawn<'a> = dyn FnMut(&RunDir, usize, Option<DeviceSpec>) -> Result<Child> + 'a;

/// Submits a Slurm run's job (recording it in the run, or the run's failure).
pub type Submit<'a> = dyn FnMut(&mut Run) -> Result<()> + 'a;

/// How runs are started: local workers, Slurm jobs.
pub struct Launch<'a, 'b> {
    pub spawn: &'a mut Spawn<'b>,
    pub submit: &'a mut Submit<'b>,
}

/// Whether a run is the daemon's to start: launched or resumed, not started yet.
pub fn pending(run: &Run) -> bool {
    !run.is_live() && !run.external && run.state.status.is_pending()
}

/// Starts what can start; marks the rest queued or waiting with the reason.
pub fn schedule(registry: &mut Registry, capacity: &Capacity, launch: &mut Launch) -> Result<()> {
    let spawn = &mut *launch.spawn;
    let gpus = capacity.gpus;
    // Only local workers use this machine's cores and GPUs.
    let live: Vec<(Placement, Option<usize>)> = registry
        .runs()
        .filter(|r| r.execution.worker().is_some())
        .map(|r| (placement(r.device, gpus), r.gpu))
        .collect();
    let mut cpu_busy = live.iter().filter(|(p, _)| *p == Placement::Cpu).count();
    let mut per_gpu = vec![0usize; gpus.len()];
    for (_, gpu) in &live {
        if let Some(slot) = gpu.and_then(|g| per_gpu.get_mut(g)) {
            *slot += 1;
        }
    }
    let mut devices_busy: HashSet<String> = live
        .iter()
        .filter_map(|(p, _)| match p {
            Placement::Device(d) => Some(d.clone()),
            _ => None,
        })
        .collect();
    let mut ready_cpu = Vec::new();
    let mut ready_other = Vec::new();
    for si in 0..registry.sessions.len() {
        for ri in 0..registry.sessions[si].runs.len() {
            if !pending(&registry.sessions[si].runs[ri]) {
                continue;
            }
            // A `thaw train` started on runs the daemon knows (launched through it, say) is
            // training them: it is left to, rather than raced by a second worker.
            let run = &mut registry.sessions[si].runs[ri];
            if crate::run::lock::claimed_by_train(&run.dir) {
                run.external = true;
                tracing::info!(
                    "{}: left to the `thaw train` that claimed it",
                    run.full_name()
                );
                continue;
            }
            let run = &registry.sessions[si].runs[ri];
            match dependency(&registry.sessions[si].runs, ri) {
                Dependency::Ready if run.on_slurm() => {
                    (launch.submit)(&mut registry.sessions[si].runs[ri])?
                }
                Dependency::Ready if placement(run.device, gpus) == Placement::Cpu => {
                    ready_cpu.push((si, ri))
                }
                Dependency::Ready => ready_other.push((si, ri)),
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
    // The cores are shared by the runs that will be training together on this machine. A GPU
    // keeps its run's data loader busy (one thread cannot decode a batch of JPEGs as fast as
    // an H200 trains on it), so GPU runs count and get their share; all that are ready for a
    // device are counted, though some may wait for one.
    let cpu_slots = capacity.cpu_slots;
    let starting = ready_cpu.len().min(cpu_slots.saturating_sub(cpu_busy));
    let others = live.iter().filter(|(p, _)| *p != Placement::Cpu).count() + ready_other.len();
    let cpu_runs = (cpu_busy + starting).clamp(1, cpu_slots.max(1));
    let threads = thread_share(capacity.cores, cpu_runs + others);
    for (si, ri) in ready_cpu {
        let run = &mut registry.sessions[si].runs[ri];
        if cpu_busy < cpu_slots {
            start(run, threads, None, spawn)?;
            cpu_busy += 1;
        } else {
            let why = format!("waiting for a CPU slot ({cpu_busy} of {cpu_slots} in use)");
            mark(run, RunStatus::Queued, why)?;
        }
    }
    let device_threads = thread_share(capacity.cores, cpu_busy + others);
    for (si, ri) in ready_other {
        let placement = placement(registry.sessions[si].runs[ri].device, gpus);
        let users = |registry: &Registry, gpu: Option<usize>, device: Option<&str>| {
            let names: Vec<String> = registry
                .runs()
                .filter(|r| r.execution.worker().is_some())
                .filter(|r| {
                    gpu.is_some_and(|g| r.gpu == Some(g))
                        || device.is_some_and(|d| r.device.to_string() == d)
                })
                .map(Run::full_name)
                .collect();
            names.join(", ")
        };
        let room = |n: usize, per_gpu: &[usize]| {
            per_gpu.get(n).is_some_and(|&k| k < capacity.runs_per_gpu)
        };
        let (chosen, why) = match placement {
            Placement::Cuda(Some(n)) if n >= gpus.len() => {
                let run = &mut registry.sessions[si].runs[ri];
                run.queued_reason = None;
                run.set_status(RunStatus::Failed, Some(no_such_gpu(n, gpus)))?;
                continue;
            }
            Placement::Cuda(None) if gpus.is_empty() => {
                let run = &mut registry.sessions[si].runs[ri];
                run.queued_reason = None;
                run.set_status(RunStatus::Failed, Some(no_such_gpu(0, gpus)))?;
                continue;
            }
            Placement::Cuda(Some(n)) => match room(n, &per_gpu) {
                true => (Some(n), String::new()),
                false => (
                    None,
                    format!(
                        "waiting for GPU {n} (used by {})",
                        users(registry, Some(n), None)
                    ),
                ),
            },
            Placement::Cuda(None) => {
                let least = (0..gpus.len())
                    .filter(|&g| room(g, &per_gpu))
                    .min_by_key(|&g| per_gpu[g]);
                match least {
                    Some(g) => (Some(g), String::new()),
                    None => (
                        None,
                        format!(
                            "waiting for a free GPU (all {} have {} run(s))",
                            gpus.len(),
                            capacity.runs_per_gpu
                        ),
                    ),
                }
            }
            Placement::Device(device) => match devices_busy.insert(device.clone()) {
                true => {
                    start(
                        &mut registry.sessions[si].runs[ri],
                        device_threads,
                        None,
                        spawn,
                    )?;
                    continue;
                }
                false => (
                    None,
                    format!(
                        "waiting for {device} (used by {})",
                        users(registry, None, Some(&device))
                    ),
                ),
            },
            Placement::Cpu => continue,
        };
        let run = &mut registry.sessions[si].runs[ri];
        match chosen {
            Some(g) => {
                per_gpu[g] += 1;
                start(run, device_threads, Some(DeviceSpec::TchCuda(g)), spawn)?;
                run.gpu = Some(g);
            }
            None => mark(run, RunStatus::Queued, why)?,
        }
    }
    Ok(())
}

/// Why a run cannot have GPU `n`: which GPUs there are, or why there are none.
pub fn no_such_gpu(n: usize, gpus: &[GpuInfo]) -> String {
    match gpus.len() {
        0 => "no CUDA GPU is visible to the daemon (no NVIDIA driver, or CUDA_VISIBLE_DEVICES hides them): use device = \"flex\" or \"tch:cpu\"".to_string(),
        k => format!("there is no GPU {n}: the daemon sees {k} (tch:cuda:0 to tch:cuda:{})", k - 1),
    }
}

/// Whether run `i` of a session can start: see [`rules::dependency`].
fn dependency(runs: &[Run], i: usize) -> Dependency {
    let Some(on) = runs[i].spec.waits_for() else {
        return Dependency::Ready;
    };
    match runs.iter().find(|r| r.name == on) {
        Some(source) => rules::dependency(on, &source.dir, source.state.status, Resumer::Daemon),
        // Not a run of this session: its best weights must already be there.
        None => Dependency::Ready,
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
fn start(
    run: &mut Run,
    threads: usize,
    device: Option<DeviceSpec>,
    spawn: &mut Spawn,
) -> Result<()> {
    run.change_desired(|d| d.stop = false)?;
    let child = match spawn(&run.dir, threads, device) {
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
    run.state.pid_start = crate::run::process::start_time(pid);
    run.state.host = crate::run::hostname();
    if let Some(device) = device {
        run.state.device = device.to_string();
    }
    run.execution = Execution::Local(Worker::Child(child));
    run.dir.write_state(&run.state)?;
    let on = device.map_or(String::new(), |d| format!(" on {d}"));
    tracing::info!(
        "{}: started worker pid {pid} with {threads} thread(s){on}",
        run.full_name()
    );
    Ok(())
}

/// Queues an interrupted, failed or stopped run again: its worker resumes from the run's last
/// checkpoint, with its frozen groups and metric history. Returns where it resumes from.
pub fn requeue(run: &mut Run, unpause: bool) -> Result<String> {
    // Asked of the daemon: from now on it is the daemon's to start.
    run.external = false;
    run.change_desired(|d| {
        d.stop = false;
        if unpause {
            d.paused = false;
        }
    })?;
    let from = match crate::engine::checkpoint::resume_point(&run.dir) {
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
mod tests;
