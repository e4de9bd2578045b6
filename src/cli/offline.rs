//! The verbs on runs without a daemon: `status`, `logs` and `remove` work on the sessions on
//! disk (runs trained with `thaw train`, or left by a daemon that is down) as the workers wrote
//! them, and the control verbs (`freeze`, `pause`, `lr`, `stop`, ...) write a live worker's
//! `desired.json`, which it applies before its next step.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::daemon::registry::Execution;
use crate::daemon::registry::{Registry, Run};
use crate::executor::local::{Worker as Process, adoptable};
use crate::gpu::{GpuInventory, GpuStats};
use crate::paths::Paths;
use crate::protocol::{Control, RunInfo};
use crate::run::follow::{FileTail, Tailed};
use crate::run::{Catalog, Event, RunStatus, hostname};

/// How often `logs --follow` looks at the run's files.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);
/// How long `logs --follow` waits, after finding a run's worker gone, for its end to be
/// recorded.
const GONE_GRACE: Duration = Duration::from_secs(2);

/// Every launched session's runs, as the run directories hold them.
pub fn registry(paths: &Paths) -> Registry {
    Registry::load(&Catalog::of(paths))
}

/// What `status` shows without a daemon: every run as its worker last wrote it, a run whose
/// worker on this machine is gone shown `interrupted` (as a daemon starting now would mark
/// it; nothing is written), and this machine's GPUs.
pub fn status(paths: &Paths) -> (Vec<RunInfo>, Vec<GpuStats>) {
    let gpus = crate::gpu::Nvml::load().stats();
    let runs = registry(paths)
        .runs()
        .map(|run| {
            let mut info = run.info();
            match worker(run) {
                Worker::Alive(pid) => {
                    info.pid = Some(pid);
                    info.gpu_memory = gpus
                        .iter()
                        .flat_map(|g| &g.processes)
                        .filter(|(p, _)| *p == pid)
                        .map(|(_, bytes)| *bytes)
                        .reduce(|a, b| a + b);
                }
                Worker::Gone(why) => {
                    info.status = RunStatus::Interrupted;
                    info.message = Some(why);
                }
                Worker::None => {}
            }
            info
        })
        .collect();
    (runs, gpus)
}

/// `logs` without a daemon: the run's events from its `events.jsonl`, then, with `follow`,
/// each new one until the run ends (finished, failed, stopped, interrupted, or its worker is
/// gone).
pub fn logs(paths: &Paths, name: &str, follow: bool, print: impl Fn(&Event)) -> Result<()> {
    let mut registry = registry(paths);
    let run = registry.find(name).map_err(anyhow::Error::msg)?;
    let mut events = FileTail::new(run.dir.events_path());
    let mut gone_since = None;
    loop {
        // The state first: the events written before a final state are then all in the file.
        let done = !follow || ended(run, &mut gone_since);
        events.poll(|line| {
            if let Tailed::Line(line) = line
                && let Ok(event) = serde_json::from_str::<Event>(line)
            {
                print(&event);
            }
        });
        if done {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_EVERY);
    }
}

/// Whether nothing more will be written to the run without someone starting it again. A
/// worker found gone is given [`GONE_GRACE`] for whoever watched it (a `thaw train`, a
/// daemon starting) to record how it ended.
fn ended(run: &mut Run, gone_since: &mut Option<Instant>) -> bool {
    if let Ok(state) = run.dir.read_state() {
        run.state = state;
    }
    // No daemon will requeue or resume an interrupted run: it has ended too.
    if run.state.status.has_ended() {
        return true;
    }
    match worker(run) {
        Worker::Gone(_) => gone_since.get_or_insert_with(Instant::now).elapsed() >= GONE_GRACE,
        _ => {
            *gone_since = None;
            false
        }
    }
}

/// A control verb without a daemon, for a run whose worker trains on this machine (a `thaw
/// train`'s, or one a stopped daemon left): its `desired.json` is changed as the daemon would
/// change it, and the worker applies it before its next step.
pub fn control(paths: &Paths, name: &str, control: Control) -> Result<String> {
    let mut registry = registry(paths);
    let run = registry.find(name).map_err(anyhow::Error::msg)?;
    match worker(run) {
        Worker::Alive(pid) => {
            run.execution = Execution::Local(Process::Adopted {
                pid,
                start: run.state.pid_start,
            });
            crate::daemon::handlers::control::apply(run, control).map_err(anyhow::Error::msg)
        }
        Worker::Gone(why) => bail!(
            "no thaw daemon is running, and {} is not training: {why}",
            run.full_name()
        ),
        Worker::None => {
            let full = run.full_name();
            let why = match run.state.status {
                RunStatus::Finished => "it has finished".to_string(),
                status if status.is_live() => format!(
                    "its worker runs on {}: control it through the daemon (`thaw up`)",
                    run.state.host
                ),
                status => format!(
                    "it is {}: `thaw train` on its session file trains it, or `thaw up` then `thaw resume {full}`",
                    status.word()
                ),
            };
            bail!("no thaw daemon is running, and no worker on this machine trains {full}: {why}")
        }
    }
}

enum Worker {
    /// The worker `state.json` names runs on this machine, with this pid.
    Alive(u32),
    /// `state.json` says a worker trains it, but that worker on this machine is gone: why.
    Gone(String),
    /// No worker is recorded, or it runs elsewhere (a Slurm node), where it cannot be checked.
    None,
}

fn worker(run: &Run) -> Worker {
    let state = &run.state;
    if let Some(worker) = adoptable(state) {
        return Worker::Alive(worker.pid());
    }
    match state.status.is_live() && state.host == hostname() {
        false => Worker::None,
        true => Worker::Gone(format!(
            "the worker (pid {} on {}) is gone; its last checkpoint is kept: `thaw train` on its file again, or `thaw up` then `thaw resume {}`, goes on from it",
            state.pid,
            state.host,
            run.full_name()
        )),
    }
}
