//! `remove`: runs, or whole sessions, dropped from the daemon and their directories deleted.
//! Everything asked is checked first and nothing is removed if one cannot be: a run a worker
//! trains (stop it first), or one that a run still to start takes its best weights from.
//! Without a daemon, `thaw remove` does the same on the sessions on disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::daemon::Shared;
use crate::daemon::registry::{Registry, Run};
use crate::engine::checkpoint;
use crate::engine::weights::WeightsSource;
use crate::paths::Paths;
use crate::protocol::{Response, Update};
use crate::run::Catalog;
use crate::run::RunStatus;

/// What went: a session (`None`: whole) or one run of it.
pub type Gone = (String, Option<String>);

pub async fn handle(shared: &Arc<Shared>, runs: &[String], sessions: &[String]) -> Response {
    // A run just stopped (`s` then `D` in the dashboard) may still have its worker exiting.
    let asked = match targets(&mut shared.lock().registry, runs, sessions) {
        Ok(asked) => asked,
        Err(why) => return Response::error(why),
    };
    super::let_ended_workers_exit(shared, |r| {
        asked.contains(&(r.session.clone(), r.name.clone()))
    })
    .await;
    let mut daemon = shared.lock();
    let (updates, paths) = (daemon.updates.clone(), daemon.paths.clone());
    let mut told = |(session, run): Gone| {
        match &run {
            Some(run) => tracing::info!("{session}/{run}: removed"),
            None => tracing::info!("session {session}: removed"),
        }
        let _ = updates.send(Arc::new(Update::Removed { session, run }));
    };
    match remove(&mut daemon.registry, &paths, runs, sessions, &mut told) {
        Ok(message) => Response::done(message),
        Err(why) => Response::error(why),
    }
}

/// `(session, run)` of every run asked for, sessions' runs included, each once.
fn targets(
    registry: &mut Registry,
    runs: &[String],
    sessions: &[String],
) -> Result<Vec<(String, String)>, String> {
    let mut found: Vec<(String, String)> = Vec::new();
    for name in sessions {
        let Some(session) = registry.session(name) else {
            return Err(registry.no_session(name));
        };
        found.extend(
            session
                .runs
                .iter()
                .map(|r| (r.session.clone(), r.name.clone())),
        );
    }
    for name in runs {
        let run = registry.find(name)?;
        found.push((run.session.clone(), run.name.clone()));
    }
    let mut unique = Vec::new();
    for target in found {
        if !unique.contains(&target) {
            unique.push(target);
        }
    }
    Ok(unique)
}

/// Why a run cannot be removed now, if it cannot.
fn busy(run: &Run) -> Option<String> {
    let name = run.full_name();
    if let Some(slurm) = run.execution.slurm() {
        return Some(format!(
            "run {name} has {}: stop it first (`thaw stop {name}`)",
            slurm.info().line()
        ));
    }
    if let Some(job) = run.job.as_ref().filter(|j| !j.ended) {
        return Some(format!(
            "run {name}'s Slurm job {} may still run ({} when last seen) and no daemon watches it: start one (`thaw up`) and stop the run there",
            job.job_id, job.state
        ));
    }
    if run.execution.submitting().is_some() {
        return Some(format!(
            "run {name} is being submitted to Slurm: stop it first (`thaw stop {name}`)"
        ));
    }
    if let Some(worker) = run.execution.worker() {
        if run.state.status.is_settled() {
            return Some(format!(
                "run {name} has {}, and its worker (pid {}) is still exiting: try again in a moment",
                run.state.status.word(),
                worker.pid()
            ));
        }
        // Checkpointing is a moment of a running run.
        let doing = match run.state.status {
            RunStatus::Checkpointing => "running",
            status => status.word(),
        };
        return Some(format!(
            "run {name} is {doing} (worker pid {}): stop it first (`thaw stop {name}`)",
            worker.pid()
        ));
    }
    if let Some(pid) = crate::run::lock::training(&run.dir) {
        return Some(format!(
            "run {name} is trained by another worker (pid {pid}, a `thaw train`?): stop that first"
        ));
    }
    crate::run::lock::claimed_by_train(&run.dir).then(|| {
        format!(
            "run {name} is still to be trained by a `thaw train` that is running: stop that first (Ctrl-C), or let it finish"
        )
    })
}

/// A run not removed that has still to load `target`'s best weights (no checkpoint of its own).
fn needs(run: &Run, target: &(String, String)) -> bool {
    let Ok(WeightsSource::Run { session, run: from }) = WeightsSource::parse(&run.spec.weights)
    else {
        return false;
    };
    let session = session.unwrap_or_else(|| run.session.clone());
    (session, from) == *target && checkpoint::resume_point(&run.dir).is_none()
}

/// Removes the runs and sessions asked for from `registry` and the disk, all or none (see the
/// module); `gone` hears of each as it goes. The answer says what went, and where it was.
pub fn remove(
    registry: &mut Registry,
    paths: &Paths,
    runs: &[String],
    sessions: &[String],
    gone: &mut dyn FnMut(Gone),
) -> Result<String, String> {
    if runs.is_empty() && sessions.is_empty() {
        return Err("name a run (SESSION/RUN) or a session (--session NAME) to remove".into());
    }
    let targets = targets(registry, runs, sessions)?;
    let chosen = |r: &Run| targets.contains(&(r.session.clone(), r.name.clone()));
    if let Some(why) = registry.runs().filter(|r| chosen(r)).find_map(busy) {
        return Err(why);
    }
    for run in registry.runs().filter(|r| !chosen(r)) {
        if let Some((s, r)) = targets.iter().find(|t| needs(run, t)) {
            return Err(format!(
                "run {} starts from {s}/{r}'s best weights and has not loaded them yet: remove it too, or launch it again with other weights",
                run.full_name()
            ));
        }
    }
    // A session none of whose runs stays goes whole, its file with it.
    let whole: Vec<String> = registry
        .sessions
        .iter()
        .filter(|s| sessions.contains(&s.name) || (!s.runs.is_empty() && s.runs.iter().all(chosen)))
        .map(|s| s.name.clone())
        .collect();
    let mut said = Vec::new();
    for name in &whole {
        let dir = Catalog::of(paths).session_dir(name);
        let count = registry.session(name).map_or(0, |s| s.runs.len());
        discard(&paths.data, &dir)?;
        registry.sessions.retain(|s| s.name != *name);
        gone((name.clone(), None));
        said.push(format!(
            "session {name} ({count} run(s)): {}",
            dir.display()
        ));
    }
    for (session, name) in targets.iter().filter(|(s, _)| !whole.contains(s)) {
        let dir = Catalog::of(paths).run(session, name).root;
        discard(&paths.data, &dir)?;
        if let Some(s) = registry.sessions.iter_mut().find(|s| s.name == *session) {
            s.runs.retain(|r| r.name != *name);
        }
        gone((session.clone(), Some(name.clone())));
        said.push(format!("run {session}/{name}: {}", dir.display()));
    }
    Ok(format!(
        "removed, with their checkpoints, metrics and best weights: {}",
        said.join("; ")
    ))
}

/// Moves `dir` out of the sessions at once (a reader never sees it half gone), then deletes
/// it. A failed move changes nothing; a failed delete leaves it under `<data>/removed/`.
fn discard(data: &Path, dir: &Path) -> Result<(), String> {
    static REMOVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let bin = data.join("removed");
    // Unique: runs of the same name in two sessions may go in one request.
    let gone: PathBuf = bin.join(format!(
        "{}-{}-{}-{}",
        dir.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id(),
        crate::run::now() as u64,
        REMOVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&bin)
        .and_then(|()| std::fs::rename(dir, &gone))
        .map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    if let Err(e) = std::fs::remove_dir_all(&gone) {
        tracing::info!("cannot delete {}: {e}", gone.display());
    }
    Ok(())
}
