//! `launch`: checks the session file before anything changes (a bad file reports file, line
//! and key), refuses a session name that exists unless `replace`, writes the run directories
//! and queues the runs.

use std::path::PathBuf;

use anyhow::Context;
use std::sync::Arc;

use crate::daemon::registry::{Run, Session};
use crate::daemon::{Daemon, Shared};
use crate::protocol::{Response, Update};
use crate::run::Catalog;
use crate::run::RunStatus;
use crate::session::rules::{Placement, placement};
use crate::session::{SessionSpec, store};

pub async fn handle(shared: &Arc<Shared>, file: PathBuf, text: String, replace: bool) -> Response {
    let spec = match SessionSpec::parse(&text, &file) {
        Ok(spec) => spec,
        Err(e) => return Response::error(e.to_string()),
    };
    if replace {
        super::let_ended_workers_exit(shared, |r| r.session == spec.name).await;
    }
    let demo_dir = {
        let daemon = shared.lock();
        if let Err(why) = may_launch(&daemon, &spec.name, replace) {
            return Response::error(why);
        }
        daemon.paths.demo_data()
    };
    // Generated once here, before any worker starts, rather than by each worker (and not
    // while the daemon is locked: it takes seconds).
    let sets: Vec<String> = spec
        .runs
        .iter()
        .filter_map(|r| r.data.strip_prefix("demo:").map(String::from))
        .collect();
    let made = tokio::task::spawn_blocking(move || {
        sets.iter()
            .try_for_each(|set| crate::engine::data::ensure_demo(&demo_dir, set).map(|_| ()))
    })
    .await;
    match made {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Response::error(format!("cannot write the demo data: {e}")),
        Err(e) => return Response::error(format!("cannot write the demo data: {e}")),
    }
    let mut daemon = shared.lock();
    match launch(&mut daemon, &spec, replace) {
        Ok(message) => Response::done(message),
        Err(e) => Response::error(format!("{e:#}")),
    }
}

/// Whether a session of this name may be launched now.
fn may_launch(daemon: &Daemon, name: &str, replace: bool) -> Result<(), String> {
    if daemon.shutting_down {
        return Err("the daemon is shutting down".into());
    }
    let exists = daemon.registry.session(name).is_some()
        || Catalog::of(&daemon.paths).session_dir(name).exists();
    if !exists {
        return Ok(());
    }
    if !replace {
        // Launched again: what the file changed is checked run by run (see `relaunch`).
        return Ok(());
    }
    let live: Vec<String> = daemon
        .registry
        .session(name)
        .map(|s| {
            s.runs
                .iter()
                .filter(|r| r.is_live())
                .map(Run::full_name)
                .collect()
        })
        .unwrap_or_default();
    match live.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "session {name:?} still trains ({}): stop those runs first (`thaw stop RUN`), then launch with --replace",
            live.join(", ")
        )),
    }
}

/// Every GPU the session's runs name is there, before anything is written.
fn gpus_there(daemon: &Daemon, spec: &SessionSpec) -> Result<(), String> {
    // A Slurm run's GPU is on the node Slurm gives it.
    for run in spec.runs.iter().filter(|r| r.executor.slurm().is_none()) {
        let missing = match placement(run.device, &daemon.gpus) {
            Placement::Cuda(Some(n)) if n >= daemon.gpus.len() => n,
            Placement::Cuda(None) if daemon.gpus.is_empty() => 0,
            _ => continue,
        };
        let why = daemon
            .no_gpus
            .as_ref()
            .map_or(String::new(), |why| format!(" ({why})"));
        return Err(format!(
            "run {}: device = \"{}\": {}{why}",
            run.name,
            run.device,
            crate::daemon::scheduler::no_such_gpu(missing, &daemon.gpus)
        ));
    }
    Ok(())
}

fn launch(daemon: &mut Daemon, spec: &SessionSpec, replace: bool) -> anyhow::Result<String> {
    // A session a `thaw train` wrote since the last look is launched again, not replaced.
    daemon.discover();
    may_launch(daemon, &spec.name, replace).map_err(anyhow::Error::msg)?;
    gpus_there(daemon, spec).map_err(anyhow::Error::msg)?;
    if !replace && daemon.registry.session(&spec.name).is_some() {
        return relaunch(daemon, spec);
    }
    let dir = Catalog::of(&daemon.paths).session_dir(&spec.name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
        daemon.registry.sessions.retain(|s| s.name != spec.name);
        daemon.announce(Update::Removed {
            session: spec.name.clone(),
            run: None,
        });
        tracing::info!("session {}: discarded (--replace)", spec.name);
    }
    let prepared = store::prepare(&daemon.paths, spec)?;
    let mut runs = Vec::new();
    for dir in prepared.runs {
        let mut run = Run::open(&spec.name, dir)?;
        run.set_status(RunStatus::Queued, Some("queued".into()))?;
        runs.push(run);
    }
    daemon.registry.sessions.push(Session {
        name: spec.name.clone(),
        runs,
    });
    daemon.tick();
    let session = daemon
        .registry
        .session(&spec.name)
        .map(|s| {
            s.runs
                .iter()
                .map(|r| format!("{} {}", r.name, r.state.status.word()))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    tracing::info!("session {} launched", spec.name);
    Ok(format!(
        "session {} launched: {} run(s): {}; run directories in {}",
        spec.name,
        session.len(),
        session.join(", "),
        Catalog::of(&daemon.paths).runs_dir(&spec.name).display()
    ))
}

/// A session launched again from its file, edited: new runs queue; a run whose settings
/// changed (as `thaw train` allows: any before it has trained, only the rate, the epochs and
/// the like after) is queued to train with them; the others are left as they are. A run that
/// trains must be stopped before its settings change.
fn relaunch(daemon: &mut Daemon, spec: &SessionSpec) -> anyhow::Result<String> {
    let session = daemon
        .registry
        .session(&spec.name)
        .context("the session is known")?;
    for run in &spec.runs {
        let Some(known) = session
            .runs
            .iter()
            .find(|r| r.name == run.name && r.spec != *run)
        else {
            continue;
        };
        if !known.is_live() && crate::run::lock::claimed_by_train(&known.dir) {
            anyhow::bail!(
                "run {} is still to be trained by a `thaw train` that is running, and this session file changes its settings: stop that first (Ctrl-C), then launch again",
                known.full_name()
            );
        }
        if known.is_live() {
            anyhow::bail!(
                "run {} trains and this session file changes its settings: stop it first (`thaw stop {}`), or change it as it trains (`thaw lr`, `thaw freeze`)",
                known.full_name(),
                known.full_name()
            );
        }
    }
    let prepared = store::prepare(&daemon.paths, spec)?;
    let session = daemon
        .registry
        .sessions
        .iter_mut()
        .find(|s| s.name == spec.name)
        .context("the session is known")?;
    let (mut added, mut changed) = (Vec::new(), Vec::new());
    for (wanted, dir) in spec.runs.iter().zip(prepared.runs) {
        let Some(run) = session.runs.iter_mut().find(|r| r.name == wanted.name) else {
            let mut run = Run::open(&spec.name, dir)?;
            run.set_status(RunStatus::Queued, Some("queued".into()))?;
            added.push(run.name.clone());
            session.runs.push(run);
            continue;
        };
        let Some((_, line)) = prepared.changed.iter().find(|(name, _)| *name == run.name) else {
            continue;
        };
        // The same run, history and all, with the settings `prepare` wrote into its directory.
        run.spec = wanted.clone();
        run.device = wanted.device;
        run.groups = None;
        run.transfer = None;
        // A finished run the change gives nothing more to train (its rate, say) stays
        // finished, with the settings kept for when it is given more epochs.
        if let Some((done, more)) = crate::train::finished_for_good(&run.dir, wanted) {
            changed.push(format!("{line} (not queued: {done}; {more})"));
            continue;
        }
        run.external = false;
        run.set_status(RunStatus::Queued, Some("queued".into()))?;
        changed.push(format!("{line} (queued)"));
    }
    // Runs the file no longer has stay, as they are: said, so the user is not surprised.
    let kept: Vec<String> = session
        .runs
        .iter()
        .filter(|r| !spec.runs.iter().any(|s| s.name == r.name))
        .map(|r| r.name.clone())
        .collect();
    daemon.tick();
    tracing::info!(
        "session {} launched again: {} new, {} changed",
        spec.name,
        added.len(),
        changed.len()
    );
    let mut said = vec![match added.is_empty() {
        true => "no new runs".to_string(),
        false => format!("new: {} (queued)", added.join(", ")),
    }];
    said.extend(changed.iter().map(|line| format!("changed: {line}")));
    if changed.is_empty() {
        said.push("no run's settings changed".into());
    }
    if !kept.is_empty() {
        said.push(format!(
            "not in the file, left as they are: {}",
            kept.join(", ")
        ));
    }
    Ok(format!(
        "session {} launched again: {}",
        spec.name,
        said.join("; ")
    ))
}
