//! The run directory's locks: `worker.lock`, held by the one worker that trains the run, and
//! `train.lock`, held (shared) by each `thaw train` that means to, so that a daemon leaves the
//! run to it. Both are flocks: the kernel lets go however the process ends.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::Result;

use super::dir::RunDir;

/// Holds `worker.lock` for as long as the file lives: two workers on one run directory (a
/// `thaw train` beside the daemon, say) would corrupt each other's checkpoints.
pub fn lock_for_worker(run: &RunDir) -> Result<File> {
    let file = open_lock(&run.worker_lock())?;
    if held(&file) {
        anyhow::bail!(
            "another worker (pid {}) is already training {}: stop it first",
            worker_pid(run),
            run.root.display()
        );
    }
    Ok(file)
}

/// The pid of the worker training `run` now (holding its lock), if one is.
pub fn training(run: &RunDir) -> Option<String> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(run.worker_lock())
        .ok()?;
    match held(&file) {
        true => Some(worker_pid(run)),
        false => None,
    }
}

/// Claims `run` for this `thaw train` until the file returned is dropped. Shared: two
/// `thaw train`s of one run are told apart by the worker lock.
pub fn claim_for_train(run: &RunDir) -> Result<File> {
    let path = run.train_lock();
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
        .open(run.train_lock())
        .is_ok_and(|file| held(&file))
}

/// Whether another process holds a lock on the file (taking it here when none does: the lock
/// goes with the file).
fn held(file: &File) -> bool {
    // SAFETY: flock on a descriptor the caller owns; a lock taken here goes with the file.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 }
}

/// A lock file, created if it is not there (its content is never read).
fn open_lock(path: &Path) -> Result<File> {
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
