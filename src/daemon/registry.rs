//! The sessions and runs the daemon knows: loaded from `<data>/sessions` when it starts,
//! added by `launch`, each run with its directory, its spec, what it last read from there and
//! its worker if one runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::slurm::{SlurmRun, Submitting};
use super::tail::RunTail;
use super::workers::Worker;
use crate::engine::device::DeviceSpec;
use crate::engine::model::LayerGroup;
use crate::engine::rundir::{Desired, DesiredRead, RunDir, RunState, RunStatus, now};
use crate::engine::weights::GroupTransfer;
use crate::executor::slurm::JobRecord;
use crate::protocol::{GroupInfo, RunInfo, RunSnapshot};
use crate::session::RunSpec;

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
    /// The local worker process, when one trains it.
    pub worker: Option<Worker>,
    /// Its Slurm job, while Slurm has it (pending, running, requeued).
    pub slurm: Option<SlurmRun>,
    /// sbatch, while it runs for this run.
    pub submitting: Option<Submitting>,
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
        let state = dir.read_state().unwrap_or_else(|_| {
            RunState::before_training(RunStatus::Queued, Some("queued".into()))
        });
        let desired = match dir.read_desired() {
            DesiredRead::Good(desired) => desired,
            _ => Desired::default(),
        };
        let external = crate::worker::claimed_by_train(&dir);
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
            worker: None,
            slurm: None,
            submitting: None,
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
        self.worker.is_some() || self.slurm.is_some() || self.submitting.is_some()
    }

    /// Whether its workers run as Slurm jobs.
    pub fn on_slurm(&self) -> bool {
        self.spec.executor.slurm().is_some()
    }

    /// Sets the status (and message) the daemon decided on, keeping what the worker wrote
    /// about steps and figures, and writes `state.json`.
    pub fn set_status(&mut self, status: RunStatus, message: Option<String>) -> Result<()> {
        let fresh = RunState::before_training(status, message.clone());
        self.state = RunState {
            status,
            message,
            pid: fresh.pid,
            pid_start: fresh.pid_start,
            host: fresh.host,
            updated: now(),
            ..self.state.clone()
        };
        self.dir.write_state(&self.state)
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
        let groups: Vec<(String, usize)> = match &self.groups {
            Some(groups) => groups.iter().map(|g| (g.name.clone(), g.params)).collect(),
            None => self.group_names().into_iter().map(|g| (g, 0)).collect(),
        };
        let frozen = match (&self.worker, self.state.status) {
            // Before the worker has said anything, the session file's freeze list applies.
            (None, RunStatus::Queued | RunStatus::Waiting) if self.state.step == 0 => {
                self.spec.initially_frozen()
            }
            _ => self.state.frozen.clone(),
        };
        let overlay = self
            .slurm
            .as_ref()
            .and_then(|s| s.overlay(self.state.status));
        let (status, message) = match overlay {
            Some((status, message)) => (status, Some(message)),
            None => (self.state.status, self.state.message.clone()),
        };
        // A pending Slurm job waits for what Slurm says.
        let queued_reason = match (&self.slurm, status) {
            (Some(_), RunStatus::Queued) => message.clone(),
            _ => self.queued_reason.clone(),
        };
        let device = match self.state.device.is_empty() {
            true => self.device.to_string(),
            false => self.state.device.clone(),
        };
        let pretrained = |name: &str| {
            let groups = self.transfer.as_ref()?;
            Some(
                groups
                    .iter()
                    .find(|g| g.name == name)
                    .map_or(0, |g| g.pretrained),
            )
        };
        RunInfo {
            session: self.session.clone(),
            name: self.name.clone(),
            status,
            step: self.state.step,
            epoch: self.state.epoch,
            epochs: self.spec.epochs,
            total_steps: self.state.total_steps,
            batch_size: self.spec.batch_size,
            model: self.spec.model.to_string(),
            device,
            last_loss: self.state.last_loss,
            groups: groups
                .into_iter()
                .enumerate()
                .map(|(i, (name, params))| GroupInfo {
                    frozen: frozen.contains(&name),
                    lr: self.tail.lrs.get(i).copied(),
                    pretrained: pretrained(&name),
                    name,
                    params,
                })
                .collect(),
            message,
            best_val_loss: self.state.best_val_loss,
            best_val_accuracy: self.state.best_val_accuracy,
            samples_per_sec: self.state.samples_per_sec,
            grad_norm: self.state.grad_norm,
            secs_left: self.state.secs_left,
            secs_left_grows: self.state.secs_left_grows,
            lr_multiplier: self.desired.lr_multiplier,
            pid: self.worker.as_ref().map(Worker::pid),
            queued_reason,
            gpu_memory: self.gpu_memory,
            slurm: match &self.slurm {
                Some(live) => Some(Box::new(live.info())),
                None => self.job.as_ref().map(|j| Box::new(SlurmRun::ended_info(j))),
            },
        }
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
    pub fn load(sessions_dir: &Path) -> Self {
        let mut found: Vec<(f64, Session)> = Vec::new();
        let Ok(entries) = std::fs::read_dir(sessions_dir) else {
            return Self::default();
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            let Ok(meta) = std::fs::metadata(dir.join("session.toml")) else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().to_string();
            let launched = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0.0, |d| d.as_secs_f64());
            let runs = open_runs(&name, &dir, |_| true);
            found.push((launched, Session { name, runs }));
        }
        found.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
        Self {
            sessions: found.into_iter().map(|(_, s)| s).collect(),
            unreadable: HashMap::new(),
        }
    }

    /// Adds what a `thaw train` wrote under `sessions_dir` since: new sessions, and new runs
    /// of known ones, as [`Run::external`]. Returns where they were added, (session, run)
    /// indices.
    pub fn discover(&mut self, sessions_dir: &Path) -> Vec<(usize, usize)> {
        let Ok(entries) = std::fs::read_dir(sessions_dir) else {
            return Vec::new();
        };
        let mut added = Vec::new();
        for entry in entries.flatten() {
            let dir = entry.path();
            if !dir.join("session.toml").is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().to_string();
            let known: Vec<String> = self
                .session(&name)
                .map(|s| s.runs.iter().map(|r| r.name.clone()).collect())
                .unwrap_or_default();
            let unreadable = &mut self.unreadable;
            let runs = open_runs(&name, &dir, |run| {
                if known.iter().any(|k| k == run) {
                    return false;
                }
                let root = dir.join("runs").join(run);
                let written = std::fs::metadata(root.join("spec.toml"))
                    .and_then(|m| m.modified())
                    .ok();
                unreadable.insert(root, written) != Some(written)
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
        let matches: Vec<(usize, usize)> = self
            .sessions
            .iter()
            .enumerate()
            .flat_map(|(si, s)| s.runs.iter().enumerate().map(move |(ri, r)| (si, ri, r)))
            .filter(|(_, _, r)| match name.split_once('/') {
                Some((session, run)) => r.session == session && r.name == run,
                None => r.name == name,
            })
            .map(|(si, ri, _)| (si, ri))
            .collect();
        match matches.as_slice() {
            [(si, ri)] => Ok(&mut self.sessions[*si].runs[*ri]),
            [] => {
                let all: Vec<String> = self.runs().map(Run::full_name).collect();
                Err(match all.is_empty() {
                    true => format!("no run {name:?}: no session has been launched"),
                    false => format!("no run {name:?}: the runs are {}", all.join(", ")),
                })
            }
            several => {
                let names: Vec<String> = several
                    .iter()
                    .map(|(si, ri)| self.sessions[*si].runs[*ri].full_name())
                    .collect();
                Err(format!(
                    "run {name:?} is in more than one session: say {}",
                    names.join(" or ")
                ))
            }
        }
    }
}

/// The error for a session name that is not there, given the sessions there are.
pub fn no_session(name: &str, known: &[&str]) -> String {
    match known.is_empty() {
        true => format!("no session {name:?}: no session has been launched"),
        false => format!("no session {name:?}: the sessions are {}", known.join(", ")),
    }
}

/// The runs of the session in `dir` that `wanted` names, in the session file's order; a run
/// whose directory cannot be read is left out with a message.
fn open_runs(session: &str, dir: &Path, mut wanted: impl FnMut(&str) -> bool) -> Vec<Run> {
    let mut runs = Vec::new();
    for run_name in run_order(&dir.join("session.toml")) {
        if !wanted(&run_name) {
            continue;
        }
        match Run::open(session, RunDir::new(dir.join("runs").join(&run_name))) {
            Ok(run) => runs.push(run),
            Err(e) => super::log(&format!(
                "session {session}: run {run_name} left out: {e:#}"
            )),
        }
    }
    runs
}

/// The run names of a session, in its file's order (the file as launched); directories the
/// file does not name come after, sorted.
fn run_order(session_file: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_to_string(session_file)
        .ok()
        .and_then(|text| toml::from_str::<toml::Table>(&text).ok())
        .and_then(|t| t.get("runs").and_then(|r| r.as_array()).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r.get("name").and_then(|n| n.as_str()).map(String::from))
        .collect();
    let runs_dir = session_file.with_file_name("runs");
    let mut rest: Vec<String> = std::fs::read_dir(&runs_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("spec.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !names.contains(n))
        .collect();
    rest.sort();
    names.retain(|n| runs_dir.join(n).join("spec.toml").is_file());
    names.extend(rest);
    names
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
        let sessions = paths.data.join("sessions");
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
