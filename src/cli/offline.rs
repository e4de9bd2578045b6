//! The verbs on runs without a daemon: `status`, `logs` and `remove` work on the sessions on
//! disk (runs trained with `thaw train`, or left by a daemon that is down) as the workers wrote
//! them, and the control verbs (`freeze`, `pause`, `lr`, `stop`, ...) write a live worker's
//! `desired.json`, which it applies before its next step.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::executor::local::adoptable;
use crate::executor::slurm::JobRecord;
use crate::gpu::{GpuInventory, GpuStats};
use crate::paths::Paths;
use crate::protocol::{Control, Controlled, RunInfo};
use crate::run::event::parse_event;
use crate::run::follow::{FileTail, Tailed};
use crate::run::{Catalog, Event, RunDir, RunState, RunStatus, hostname};
use crate::session::RunSpec;
use crate::session::info::{Live, run_info};

/// How often `logs --follow` looks at the run's files.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);
/// How long `logs --follow` waits, after finding a run's worker gone, for its end to be
/// recorded.
const GONE_GRACE: Duration = Duration::from_secs(2);

/// What `status` shows without a daemon: every run as its worker last wrote it, a run whose
/// worker on this machine is gone shown `interrupted` (as a daemon starting now would mark
/// it; nothing is written), and this machine's GPUs.
pub fn status(paths: &Paths) -> (Vec<RunInfo>, Vec<GpuStats>) {
    let gpus = crate::gpu::Nvml::load().stats();
    let catalog = Catalog::of(paths);
    let runs = catalog
        .sessions()
        .into_iter()
        .flat_map(|s| {
            catalog
                .runs(&s.name)
                .into_iter()
                .map(move |r| (s.name.clone(), r))
        })
        .filter_map(|(session, name)| {
            let dir = catalog.run(&session, &name);
            let spec = match RunSpec::load(&dir.spec()) {
                Ok(spec) => spec,
                Err(e) => {
                    tracing::info!("session {session}: run {name} left out: {e:#}");
                    return None;
                }
            };
            let state = dir.state_or_queued();
            let desired = dir.desired_or_default();
            let live = Live {
                slurm: JobRecord::read(&dir).map(|job| job.info()),
                ..Live::default()
            };
            let mut info = run_info(&session, &spec, &state, &desired, live);
            match worker(&state, &format!("{session}/{name}")) {
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
            Some(info)
        })
        .collect();
    (runs, gpus)
}

/// A run on disk as the verbs without a daemon see it.
struct OnDisk {
    /// `session/run`.
    name: String,
    dir: RunDir,
    state: RunState,
}

impl OnDisk {
    /// The run a user named, as its worker last wrote it.
    fn find(paths: &Paths, name: &str) -> Result<Self> {
        let (session, dir) = Catalog::of(paths).find(name)?;
        let run = dir.root.file_name().unwrap_or_default().to_string_lossy();
        let state = dir.state_or_queued();
        Ok(Self {
            name: format!("{session}/{run}"),
            dir,
            state,
        })
    }
}

/// `logs` without a daemon: the run's events from its `events.jsonl`, then, with `follow`,
/// each new one until the run ends (finished, failed, stopped, interrupted, or its worker is
/// gone).
pub fn logs(paths: &Paths, name: &str, follow: bool, print: impl Fn(&Event)) -> Result<()> {
    let mut run = OnDisk::find(paths, name)?;
    let mut events = FileTail::new(run.dir.events_path());
    let mut gone_since = None;
    loop {
        // The state first: the events written before a final state are then all in the file.
        let done = !follow || ended(&mut run, &mut gone_since);
        events.poll(|line| {
            if let Tailed::Line(line) = line
                && let Some(event) = parse_event(line)
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
fn ended(run: &mut OnDisk, gone_since: &mut Option<Instant>) -> bool {
    if let Ok(state) = run.dir.read_state() {
        run.state = state;
    }
    // No daemon will requeue or resume an interrupted run: it has ended too.
    if run.state.status.has_ended() {
        return true;
    }
    match worker(&run.state, &run.name) {
        Worker::Gone(_) => gone_since.get_or_insert_with(Instant::now).elapsed() >= GONE_GRACE,
        _ => {
            *gone_since = None;
            false
        }
    }
}

/// A control verb without a daemon, for a run whose worker trains on this machine (a `thaw
/// train`'s, or one a stopped daemon left): its `desired.json` is changed as the daemon would
/// change it ([`Control::ask`]), and the worker applies it before its next step.
pub fn control(paths: &Paths, name: &str, control: Control) -> Result<String> {
    let run = OnDisk::find(paths, name)?;
    let full = &run.name;
    match worker(&run.state, full) {
        Worker::Alive(_) => {
            let spec = RunSpec::load(&run.dir.spec())?;
            let groups: Vec<String> = spec
                .model
                .group_names()
                .into_iter()
                .map(String::from)
                .collect();
            let model = spec.model.to_string();
            let controlled = Controlled {
                name: full,
                model: &model,
                groups: &groups,
                frozen: &run.state.frozen,
            };
            let before = run.dir.desired_or_default();
            let mut desired = before.clone();
            let message = control
                .ask(&controlled, &mut desired)
                .map_err(anyhow::Error::msg)?;
            if desired != before {
                run.dir
                    .write_desired(&desired)
                    .with_context(|| format!("run {full}"))?;
            }
            Ok(message)
        }
        Worker::Gone(why) => {
            bail!("no thaw daemon is running, and {full} is not training: {why}")
        }
        Worker::None => {
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

/// The worker `state.json` names, as this machine sees it; `name` is the run's `session/run`.
fn worker(state: &RunState, name: &str) -> Worker {
    if let Some(worker) = adoptable(state) {
        return Worker::Alive(worker.pid());
    }
    match state.status.is_live() && state.host == hostname() {
        false => Worker::None,
        true => Worker::Gone(format!(
            "the worker (pid {} on {}) is gone; its last checkpoint is kept: `thaw train` on its file again, or `thaw up` then `thaw resume {name}`, goes on from it",
            state.pid, state.host
        )),
    }
}
