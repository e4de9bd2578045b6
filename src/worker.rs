//! `thaw worker RUN_DIR`: one run, from its directory, to completion.

use std::path::Path;

use anyhow::{Context, Result};

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
/// The device the daemon placed the run on, when the session file left the choice to it.
pub const DEVICE_ENV: &str = "THAW_DEVICE";

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
    // LibTorch reports errors such as CUDA running out of memory by panicking inside tch:
    // caught here, they fail the run with their reason like any other error.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&run)))
        .unwrap_or_else(|panic| Err(anyhow::anyhow!(panic_reason(panic.as_ref()))));
    match result {
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
    let mut spec = RunSpec::load(&run.spec())?;
    // The daemon places `gpu` and `auto` runs on a GPU of its choosing.
    if let Ok(placed) = std::env::var(DEVICE_ENV) {
        spec.device = placed
            .parse()
            .with_context(|| format!("{DEVICE_ENV}={placed:?} from the daemon"))?;
    }
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

/// The pid of the worker training `run` now (holding its lock), if one is.
pub fn training(run: &RunDir) -> Option<String> {
    let path = run.root.join("worker.lock");
    let file = std::fs::OpenOptions::new().write(true).open(&path).ok()?;
    match held(&file) {
        true => Some(worker_pid(run)),
        false => None,
    }
}

fn held(file: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor the caller owns; a lock taken here goes with the file.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 }
}

/// `RUN_DIR/train.lock`: held (shared) by each `thaw train` that will train the run, for as
/// long as it runs, so that a daemon leaves the run to it.
fn train_lock(run: &RunDir) -> std::path::PathBuf {
    run.root.join("train.lock")
}

/// Claims `run` for this `thaw train` until the file returned is dropped (the kernel lets go
/// however the process ends). Shared: two `thaw train`s of one run are told apart by the
/// worker lock.
pub fn claim_for_train(run: &RunDir) -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = train_lock(run);
    let file = open_lock(&path)?;
    // SAFETY: flock on the descriptor just opened; blocking only while a daemon looks.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH) } != 0 {
        anyhow::bail!(
            "cannot lock {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(file)
}

/// Whether a `thaw train` on this machine means to train `run` (see [`claim_for_train`]).
pub fn claimed_by_train(run: &RunDir) -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open(train_lock(run))
        .is_ok_and(|file| held(&file))
}

/// A lock file, created if it is not there (its content is never read).
fn open_lock(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))
}

fn worker_pid(run: &RunDir) -> String {
    run.read_state()
        .map(|s| s.pid.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Holds `RUN_DIR/worker.lock` for the life of the process: two workers on one run directory
/// (a `thaw train` beside the daemon, say) would corrupt each other's checkpoints.
fn lock(run: &RunDir) -> Result<std::fs::File> {
    let file = open_lock(&run.root.join("worker.lock"))?;
    if held(&file) {
        anyhow::bail!(
            "another worker (pid {}) is already training {}: stop it first",
            worker_pid(run),
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
/// What a panic says, with CUDA running out of memory named as such.
fn panic_reason(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim();
    match text.contains("out of memory") {
        true => format!(
            "CUDA out of memory: {first} (a smaller batch_size, or fewer runs on this GPU, needs less)"
        ),
        false => format!("the worker crashed: {first}"),
    }
}

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
        epoch: state.epoch_said(),
        kind: "error".into(),
        message: reason.to_string(),
        groups: Vec::new(),
    };
    // The run directory may itself be what is broken; the exit status still says failed.
    let _ = run.append_event(&event);
    let _ = run.write_state(&state);
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cuda_out_of_memory_panic_is_named() {
        let oom: Box<dyn std::any::Any + Send> = Box::new(String::from(
            "called `Result::unwrap()` on an `Err` value: Torch(\"CUDA out of memory. Tried to allocate 2.00 GiB\")\nbacktrace",
        ));
        let reason = super::panic_reason(oom.as_ref());
        assert!(reason.starts_with("CUDA out of memory: "), "{reason}");
        assert!(reason.contains("Tried to allocate 2.00 GiB") && !reason.contains("backtrace"));
        let other: Box<dyn std::any::Any + Send> = Box::new("index out of bounds");
        assert_eq!(
            super::panic_reason(other.as_ref()),
            "the worker crashed: index out of bounds"
        );
    }
}
