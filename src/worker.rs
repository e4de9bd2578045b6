//! `thaw worker RUN_DIR`: one run, from its directory, to completion.

use std::path::Path;

use anyhow::Result;

use crate::engine::device;
use crate::engine::rundir::{
    Event, RunDir, RunState, RunStatus, hostname, now, process_start_time,
};
use crate::engine::trainer::{self, Outcome};
use crate::paths::Paths;
use crate::session::RunSpec;
use crate::signals;

/// Exit status of a worker interrupted by a signal after checkpointing (EX_TEMPFAIL).
pub const EXIT_INTERRUPTED: i32 = 75;

/// The environment variable through which whoever starts a worker gives it its thread budget.
pub const THREADS_ENV: &str = "THAW_THREADS";

/// Runs the run in `root`; returns the process exit status (0 done or stopped, 75
/// interrupted, 1 failed with the reason in `events.jsonl` and `state.json`).
pub fn main(root: &Path) -> i32 {
    signals::install();
    let run = RunDir::new(root);
    // Refused before touching any file: the run belongs to the worker holding the lock.
    let _lock = match lock(&run) {
        Ok(lock) => lock,
        Err(err) => {
            eprintln!("thaw worker {}: {err:#}", root.display());
            return 1;
        }
    };
    match work(&run) {
        Ok(Outcome::Finished | Outcome::Stopped) => 0,
        Ok(Outcome::Interrupted) => EXIT_INTERRUPTED,
        Err(err) => {
            let reason = format!("{err:#}");
            eprintln!("thaw worker {}: {reason}", root.display());
            record_failure(&run, &reason);
            1
        }
    }
}

fn work(run: &RunDir) -> Result<Outcome> {
    if !run.root.is_dir() {
        anyhow::bail!("run directory {} does not exist", run.root.display());
    }
    announce(run)?;
    let spec = RunSpec::load(&run.spec())?;
    let threads = spec
        .threads
        .or_else(|| std::env::var(THREADS_ENV).ok().and_then(|t| t.parse().ok()))
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
    device::set_cpu_threads(threads);
    let paths = Paths::from_env()?;
    trainer::train(run, &spec, &paths.demo_data(), &signals::INTERRUPTED)
}

/// Holds `RUN_DIR/worker.lock` for the life of the process: two workers on one run directory
/// (a `thaw train` beside the daemon, say) would corrupt each other's checkpoints.
fn lock(run: &RunDir) -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = run.root.join("worker.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns; the lock goes with the file.
    let held = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0;
    if held {
        let pid = run
            .read_state()
            .map(|s| s.pid.to_string())
            .unwrap_or_else(|_| "?".into());
        anyhow::bail!(
            "another worker (pid {pid}) is already training {}: stop it first",
            run.root.display()
        );
    }
    Ok(file)
}

/// Says in `state.json`, before anything else, that this process now owns the run, keeping
/// what the file knew of its progress.
fn announce(run: &RunDir) -> Result<()> {
    let pid = std::process::id();
    let mut state = run
        .read_state()
        .unwrap_or_else(|_| RunState::before_training(RunStatus::Running, None));
    state.status = RunStatus::Running;
    state.pid = pid;
    state.pid_start = process_start_time(pid);
    state.host = hostname();
    state.message = Some("starting".into());
    state.updated = now();
    run.write_state(&state)
}

/// Marks the run failed in `state.json` (keeping what it knew) and says why in `events.jsonl`.
fn record_failure(run: &RunDir, reason: &str) {
    let mut state = run
        .read_state()
        .unwrap_or_else(|_| RunState::before_training(RunStatus::Failed, None));
    state.status = RunStatus::Failed;
    state.message = Some(reason.to_string());
    state.updated = now();
    let event = Event {
        time: now(),
        step: state.step,
        epoch: state.epoch,
        kind: "error".into(),
        message: reason.to_string(),
        groups: Vec::new(),
    };
    // The run directory may itself be what is broken; the exit status still says failed.
    let _ = run.append_event(&event);
    let _ = run.write_state(&state);
}
