//! `remove`: runs, or whole sessions, dropped from the daemon and their directories deleted.
//! Everything asked is checked first and nothing is removed if one cannot be: a run a worker
//! trains (stop it first), or one that a run still to start takes its best weights from.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::daemon::registry::Run;
use crate::daemon::{Daemon, Shared, log};
use crate::engine::checkpoint;
use crate::engine::rundir::RunStatus;
use crate::engine::weights::WeightsSource;
use crate::protocol::{Response, Update};

pub async fn handle(shared: &Arc<Shared>, runs: &[String], sessions: &[String]) -> Response {
    // A run just stopped (`s` then `D` in the dashboard) may still have its worker exiting.
    let asked = match targets(&mut shared.lock(), runs, sessions) {
        Ok(asked) => asked,
        Err(why) => return Response::error(why),
    };
    super::let_ended_workers_exit(shared, |r| {
        asked.contains(&(r.session.clone(), r.name.clone()))
    })
    .await;
    match remove(&mut shared.lock(), runs, sessions) {
        Ok(message) => Response::done(message),
        Err(why) => Response::error(why),
    }
}

/// `(session, run)` of every run asked for, sessions' runs included, each once.
fn targets(
    daemon: &mut Daemon,
    runs: &[String],
    sessions: &[String],
) -> Result<Vec<(String, String)>, String> {
    let mut found: Vec<(String, String)> = Vec::new();
    for name in sessions {
        let Some(session) = daemon.registry.session(name) else {
            return Err(daemon.registry.no_session(name));
        };
        found.extend(
            session
                .runs
                .iter()
                .map(|r| (r.session.clone(), r.name.clone())),
        );
    }
    for name in runs {
        let run = daemon.registry.find(name)?;
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
    if let Some(slurm) = &run.slurm {
        return Some(format!(
            "run {name} has {}: stop it first (`thaw stop {name}`)",
            slurm.info().line()
        ));
    }
    if run.submitting.is_some() {
        return Some(format!(
            "run {name} is being submitted to Slurm: stop it first (`thaw stop {name}`)"
        ));
    }
    if let Some(worker) = &run.worker {
        if matches!(
            run.state.status,
            RunStatus::Finished | RunStatus::Stopped | RunStatus::Failed
        ) {
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
    crate::worker::training(&run.dir).map(|pid| {
        format!(
            "run {name} is trained by another worker (pid {pid}, a `thaw train`?): stop that first"
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

fn remove(daemon: &mut Daemon, runs: &[String], sessions: &[String]) -> Result<String, String> {
    if runs.is_empty() && sessions.is_empty() {
        return Err("name a run (SESSION/RUN) or a session (--session NAME) to remove".into());
    }
    let targets = targets(daemon, runs, sessions)?;
    let chosen = |r: &Run| targets.contains(&(r.session.clone(), r.name.clone()));
    if let Some(why) = daemon.registry.runs().filter(|r| chosen(r)).find_map(busy) {
        return Err(why);
    }
    for run in daemon.registry.runs().filter(|r| !chosen(r)) {
        if let Some((s, r)) = targets.iter().find(|t| needs(run, t)) {
            return Err(format!(
                "run {} starts from {s}/{r}'s best weights and has not loaded them yet: remove it too, or launch it again with other weights",
                run.full_name()
            ));
        }
    }
    // A session none of whose runs stays goes whole, its file with it.
    let whole: Vec<String> = daemon
        .registry
        .sessions
        .iter()
        .filter(|s| sessions.contains(&s.name) || (!s.runs.is_empty() && s.runs.iter().all(chosen)))
        .map(|s| s.name.clone())
        .collect();
    let mut said = Vec::new();
    for name in &whole {
        let dir = daemon.paths.session(name);
        let count = daemon.registry.session(name).map_or(0, |s| s.runs.len());
        discard(&daemon.paths.data, &dir)?;
        daemon.registry.sessions.retain(|s| s.name != *name);
        daemon.announce(Update::Removed {
            session: name.clone(),
            run: None,
        });
        log(&format!("session {name}: removed"));
        said.push(format!(
            "session {name} ({count} run(s)): {}",
            dir.display()
        ));
    }
    for (session, name) in targets.iter().filter(|(s, _)| !whole.contains(s)) {
        let dir = daemon.paths.run(session, name);
        discard(&daemon.paths.data, &dir)?;
        if let Some(s) = daemon
            .registry
            .sessions
            .iter_mut()
            .find(|s| s.name == *session)
        {
            s.runs.retain(|r| r.name != *name);
        }
        daemon.announce(Update::Removed {
            session: session.clone(),
            run: Some(name.clone()),
        });
        log(&format!("{session}/{name}: removed"));
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
        crate::engine::rundir::now() as u64,
        REMOVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&bin)
        .and_then(|()| std::fs::rename(dir, &gone))
        .map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    if let Err(e) = std::fs::remove_dir_all(&gone) {
        log(&format!("cannot delete {}: {e}", gone.display()));
    }
    Ok(())
}
