//! The sessions and runs the daemon knows: loaded from `<data>/sessions` when it starts,
//! added by `launch`, each run with its directory, its spec, what it last read from there and
//! its worker if one runs.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::slurm::{SlurmRun, Submitting};
use super::tail::RunTail;
use crate::engine::device::DeviceSpec;
use crate::engine::model::LayerGroup;
use crate::engine::weights::GroupTransfer;
use crate::executor::local::{Watched, Worker};
use crate::executor::slurm::JobRecord;
use crate::protocol::{RunInfo, RunSnapshot};
use crate::run::{Catalog, Desired, RunDir, RunState, RunStatus};
use crate::session::RunSpec;
use crate::session::info::{Live, run_info};

/// One run and everything the daemon knows of it.
#[derive(Debug)]
pub struct Run {
    pub session: String,
    pub name: String,
    pub dir: RunDir,
    pub spec: RunSpec,
    /// The session file's device; the scheduler places `auto` and `gpu`.
    pub device: DeviceSpec,
    /// The CUDA GPU its worker trains on.
    pub gpu: Option<usize>,
    /// GPU memory its worker holds, in bytes, as last sampled.
    pub gpu_memory: Option<u64>,
    /// `state.json` as last read, or as the daemon last wrote it.
    pub state: RunState,
    /// `desired.json` as the daemon last wrote it.
    pub desired: Desired,
    /// What trains it now: a local worker, sbatch submitting its job, or its Slurm job.
    pub execution: Execution,
    /// Its latest Slurm job as `slurm.json` records it, also after it ended.
    pub job: Option<JobRecord>,
    /// What a queued or waiting run waits for.
    pub queued_reason: Option<String>,
    pub tail: RunTail,
    /// The model's groups with their parameter counts, once the run's classes are known.
    pub groups: Option<Vec<LayerGroup>>,
    /// How much of each group came from the weights file (`transfer.json`), once written.
    pub transfer: Option<Vec<GroupTransfer>>,
    /// What clients were last told, to send only changes.
    pub announced: Option<RunInfo>,
    /// A `thaw train`'s: found on disk while the daemon ran, or claimed by a `thaw train`
    /// running (its `train.lock`). The daemon shows it and passes controls on to its worker,
    /// but does not start it, until it is asked to (`thaw resume`, a launch that changes it).
    pub external: bool,
}

impl Run {
    /// A run from its directory (its `spec.toml` must load).
    pub fn open(session: &str, dir: RunDir) -> Result<Self> {
        let spec = RunSpec::load(&dir.spec())?;
        let state = dir.state_or_queued();
        let desired = dir.desired_or_default();
        let external = crate::run::lock::claimed_by_train(&dir);
        Ok(Self {
            session: session.to_string(),
            name: spec.name.clone(),
            device: spec.device,
            gpu: None,
            gpu_memory: None,
            tail: RunTail::new(&dir),
            job: JobRecord::read(&dir),
            dir,
            spec,
            state,
            desired,
            execution: Execution::Idle,
            queued_reason: None,
            groups: None,
            transfer: None,
            announced: None,
            external,
        })
    }

    /// `session/run`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.session, self.name)
    }

    /// The run's layer group names, in model order.
    pub fn group_names(&self) -> Vec<String> {
        self.spec
            .model
            .group_names()
            .into_iter()
            .map(String::from)
            .collect()
    }

    /// Whether a worker process trains it now, or its Slurm job may still run (or is being
    /// submitted).
    pub fn is_live(&self) -> bool {
        !matches!(self.execution, Execution::Idle)
    }

    /// Whether its workers run as Slurm jobs.
    pub fn on_slurm(&self) -> bool {
        self.spec.executor.slurm().is_some()
    }

    /// Sets the status (and message) the daemon decided on, keeping what the worker wrote
    /// about steps and figures, and writes `state.json`.
    pub fn set_status(&mut self, status: RunStatus, message: Option<String>) -> Result<()> {
        self.watched().set_status(status, message)
    }

    /// The run as its worker's watcher records how it ended.
    pub fn watched(&mut self) -> Watched<'_> {
        Watched {
            name: format!("{}/{}", self.session, self.name),
            dir: &self.dir,
            state: &mut self.state,
        }
    }

    /// Writes `desired.json` after `change`, keeping the old one if the write fails.
    pub fn change_desired(&mut self, change: impl FnOnce(&mut Desired)) -> Result<()> {
        let mut desired = self.desired.clone();
        change(&mut desired);
        if desired != self.desired {
            self.dir
                .write_desired(&desired)
                .with_context(|| format!("run {}", self.full_name()))?;
            self.desired = desired;
        }
        Ok(())
    }

    /// The run as `status` shows it.
    pub fn info(&self) -> RunInfo {
        let overlay = self
            .execution
            .slurm()
            .and_then(|s| s.overlay(self.state.status));
        // A pending Slurm job waits for what Slurm says.
        let queued_reason = match (self.execution.slurm(), &overlay) {
            (Some(_), Some((RunStatus::Queued, message))) => Some(message.clone()),
            (Some(_), None) if self.state.status == RunStatus::Queued => self.state.message.clone(),
            _ => self.queued_reason.clone(),
        };
        let live = Live {
            groups: self.groups.as_deref(),
            lrs: &self.tail.lrs,
            transfer: self.transfer.as_deref(),
            pid: self.execution.worker().map(Worker::pid),
            overlay,
            queued_reason,
            gpu_memory: self.gpu_memory,
            slurm: match self.execution.slurm() {
                Some(live) => Some(live.info()),
                None => self.job.as_ref().map(JobRecord::info),
            },
        };
        run_info(&self.session, &self.spec, &self.state, &self.desired, live)
    }

    /// The run with its history and latest events.
    pub fn snapshot(&self) -> RunSnapshot {
        RunSnapshot {
            info: self.info(),
            history: self.tail.history.to_wire(),
            events: self.tail.recent_events.iter().cloned().collect(),
        }
    }
}

/// What carries out a run's training now: at most one of these at a time.
#[derive(Debug, Default)]
pub enum Execution {
    /// Nothing: not started, ended, or a `thaw train`'s to train.
    #[default]
    Idle,
    /// A worker process on this machine.
    Local(Worker),
    /// sbatch, while it runs for this run.
    Submitting(Submitting),
    /// Its Slurm job, while Slurm has it (pending, running, requeued).
    Slurm(SlurmRun),
}

impl Execution {
    /// The local worker, if one trains the run.
    pub fn worker(&self) -> Option<&Worker> {
        match self {
            Execution::Local(worker) => Some(worker),
            _ => None,
        }
    }

    pub fn worker_mut(&mut self) -> Option<&mut Worker> {
        match self {
            Execution::Local(worker) => Some(worker),
            _ => None,
        }
    }

    /// The run's Slurm job, while Slurm has it.
    pub fn slurm(&self) -> Option<&SlurmRun> {
        match self {
            Execution::Slurm(job) => Some(job),
            _ => None,
        }
    }

    pub fn slurm_mut(&mut self) -> Option<&mut SlurmRun> {
        match self {
            Execution::Slurm(job) => Some(job),
            _ => None,
        }
    }

    /// sbatch, while it runs for the run.
    pub fn submitting(&self) -> Option<&Submitting> {
        match self {
            Execution::Submitting(submitting) => Some(submitting),
            _ => None,
        }
    }

    /// Takes the local worker out, leaving the run idle; anything else stays.
    pub fn take_worker(&mut self) -> Option<Worker> {
        match std::mem::take(self) {
            Execution::Local(worker) => Some(worker),
            other => {
                *self = other;
                None
            }
        }
    }

    /// Takes the Slurm job out, leaving the run idle; anything else stays.
    pub fn take_slurm(&mut self) -> Option<SlurmRun> {
        match std::mem::take(self) {
            Execution::Slurm(job) => Some(job),
            other => {
                *self = other;
                None
            }
        }
    }

    /// Takes sbatch's submission out, leaving the run idle; anything else stays.
    pub fn take_submitting(&mut self) -> Option<Submitting> {
        match std::mem::take(self) {
            Execution::Submitting(submitting) => Some(submitting),
            other => {
                *self = other;
                None
            }
        }
    }
}

/// A launched session.
#[derive(Debug)]
pub struct Session {
    pub name: String,
    /// In the session file's order.
    pub runs: Vec<Run>,
}

/// Every session, in the order they were launched.
#[derive(Debug, Default)]
pub struct Registry {
    pub sessions: Vec<Session>,
    /// Run directories [`Registry::discover`] could not read, with their `spec.toml`'s time
    /// then: said once, tried again when the file changes.
    unreadable: HashMap<PathBuf, Option<std::time::SystemTime>>,
}

impl Registry {
    /// The sessions under `<data>/sessions`; a run whose directory cannot be read is left out
    /// with a message.
    pub fn load(catalog: &Catalog) -> Self {
        let sessions = catalog
            .sessions()
            .into_iter()
            .map(|entry| Session {
                runs: open_runs(catalog, &entry.name, |_| true),
                name: entry.name,
            })
            .collect();
        Self {
            sessions,
            unreadable: HashMap::new(),
        }
    }

    /// Adds what a `thaw train` wrote under `<data>/sessions` since: new sessions, and new
    /// runs of known ones, as [`Run::external`]. Returns where they were added, (session, run)
    /// indices.
    pub fn discover(&mut self, catalog: &Catalog) -> Vec<(usize, usize)> {
        let mut added = Vec::new();
        for entry in catalog.sessions() {
            let name = entry.name;
            let known: Vec<String> = self
                .session(&name)
                .map(|s| s.runs.iter().map(|r| r.name.clone()).collect())
                .unwrap_or_default();
            let unreadable = &mut self.unreadable;
            let runs = open_runs(catalog, &name, |run| {
                if known.iter().any(|k| k == run) {
                    return false;
                }
                let dir = catalog.run(&name, run);
                let written = std::fs::metadata(dir.spec())
                    .and_then(|m| m.modified())
                    .ok();
                unreadable.insert(dir.root, written) != Some(written)
            });
            if runs.is_empty() {
                continue;
            }
            let si = match self.sessions.iter().position(|s| s.name == name) {
                Some(si) => si,
                None => {
                    self.sessions.push(Session {
                        name: name.clone(),
                        runs: Vec::new(),
                    });
                    self.sessions.len() - 1
                }
            };
            for mut run in runs {
                self.unreadable.remove(&run.dir.root);
                run.external = true;
                self.sessions[si].runs.push(run);
                added.push((si, self.sessions[si].runs.len() - 1));
            }
        }
        added
    }

    pub fn session(&self, name: &str) -> Option<&Session> {
        self.sessions.iter().find(|s| s.name == name)
    }

    /// The error for a session name that is not there: the sessions there are.
    pub fn no_session(&self, name: &str) -> String {
        let known: Vec<&str> = self.sessions.iter().map(|s| s.name.as_str()).collect();
        no_session(name, &known)
    }

    /// Every run, session by session.
    pub fn runs(&self) -> impl Iterator<Item = &Run> {
        self.sessions.iter().flat_map(|s| s.runs.iter())
    }

    pub fn runs_mut(&mut self) -> impl Iterator<Item = &mut Run> {
        self.sessions.iter_mut().flat_map(|s| s.runs.iter_mut())
    }

    /// The run a user named: `session/run`, or `run` when only one session has it. The error
    /// lists the runs there are.
    pub fn find(&mut self, name: &str) -> Result<&mut Run, String> {
        let at: Vec<(usize, usize)> = self
            .sessions
            .iter()
            .enumerate()
            .flat_map(|(si, s)| (0..s.runs.len()).map(move |ri| (si, ri)))
            .collect();
        let names: Vec<(String, String)> = self
            .runs()
            .map(|r| (r.session.clone(), r.name.clone()))
            .collect();
        let (si, ri) = at[crate::run::catalog::resolve(name, &names)?];
        Ok(&mut self.sessions[si].runs[ri])
    }
}

/// The error for a session name that is not there, given the sessions there are.
pub fn no_session(name: &str, known: &[&str]) -> String {
    match known.is_empty() {
        true => format!("no session {name:?}: no session has been launched"),
        false => format!("no session {name:?}: the sessions are {}", known.join(", ")),
    }
}

/// The runs of `session` that `wanted` names, in the session file's order; a run whose
/// directory cannot be read is left out with a message.
fn open_runs(catalog: &Catalog, session: &str, mut wanted: impl FnMut(&str) -> bool) -> Vec<Run> {
    let mut runs = Vec::new();
    for run_name in catalog.runs(session) {
        if !wanted(&run_name) {
            continue;
        }
        match Run::open(session, catalog.run(session, &run_name)) {
            Ok(run) => runs.push(run),
            Err(e) => tracing::info!("session {session}: run {run_name} left out: {e:#}"),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{SessionSpec, store};

    /// A run directory that cannot be read is left out (and said once), then found when its
    /// `spec.toml` is written again.
    #[test]
    fn an_unreadable_run_is_found_once_its_spec_is_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let text = "name = \"s\"\n[defaults]\nmodel = \"mlp\"\n[[runs]]\nname = \"a\"\n";
        let spec = SessionSpec::parse(text, &dir.path().join("s.toml")).unwrap();
        let paths = crate::paths::Paths {
            data: dir.path().join("data"),
            config: dir.path().join("config"),
            runtime: dir.path().join("run"),
        };
        let run = store::prepare(&paths, &spec).unwrap().runs.remove(0);
        let good = std::fs::read_to_string(run.spec()).unwrap();
        let set = |text: &str, secs: u64| {
            std::fs::write(run.spec(), text).unwrap();
            let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            let file = std::fs::File::options()
                .write(true)
                .open(run.spec())
                .unwrap();
            file.set_modified(time).unwrap();
        };
        let sessions = Catalog::of(&paths);
        let mut registry = Registry::default();
        set("model = ", 1000);
        assert!(registry.discover(&sessions).is_empty());
        set(&good, 1000);
        assert!(registry.discover(&sessions).is_empty(), "not read again");
        set(&good, 2000);
        assert_eq!(registry.discover(&sessions), vec![(0, 0)]);
        assert!(registry.sessions[0].runs[0].external);
        assert!(registry.discover(&sessions).is_empty(), "known now");
    }
}
