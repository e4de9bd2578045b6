//! Worker processes on this machine, for the daemon and for `thaw train`: started in their own
//! session (so they outlive the daemon and never get the terminal's signals), adopted again by
//! a restarted daemon (pid, start time and host checked, so a reused pid is not mistaken for
//! one), and reaped with the reason they ended recorded in the run directory.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};

use crate::engine::device::DeviceSpec;
use crate::run::process::alive;
use crate::run::{EventKind, RunDir, RunState, RunStatus, hostname};
use crate::worker::{DEVICE_ENV, EXIT_INTERRUPTED, THREADS_ENV};

/// A worker process watched from here.
#[derive(Debug)]
pub enum Worker {
    /// Started by this daemon: its exit status is known.
    Child(Child),
    /// Started by an earlier daemon: only /proc tells whether it still runs.
    Adopted { pid: u32, start: u64 },
}

/// How a worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// An adopted worker: its status went to its real parent.
    Unknown,
}

impl Worker {
    pub fn pid(&self) -> u32 {
        match self {
            Self::Child(child) => child.id(),
            Self::Adopted { pid, .. } => *pid,
        }
    }

    /// How it ended, once it has.
    pub fn poll(&mut self) -> Option<Exit> {
        match self {
            Self::Child(child) => match child.try_wait() {
                Ok(Some(status)) => Some(match (status.code(), status.signal()) {
                    (Some(code), _) => Exit::Code(code),
                    (None, Some(signal)) => Exit::Signal(signal),
                    (None, None) => Exit::Unknown,
                }),
                Ok(None) => None,
                Err(_) => Some(Exit::Unknown),
            },
            Self::Adopted { pid, start } => (!alive(*pid, *start)).then_some(Exit::Unknown),
        }
    }

    /// Sends `signal` to the worker, if it is still the process it was.
    pub fn signal(&self, signal: libc::c_int) {
        let alive = match self {
            Self::Child(_) => true,
            Self::Adopted { pid, start } => alive(*pid, *start),
        };
        if alive {
            // SAFETY: kill with a pid this daemon watches and a plain signal number.
            unsafe {
                libc::kill(self.pid() as libc::pid_t, signal);
            }
        }
    }
}

/// The worker that `state.json` names, if it still runs on this host.
pub fn adoptable(state: &RunState) -> Option<Worker> {
    (state.status.is_live() && state.host == hostname() && alive(state.pid, state.pid_start))
        .then_some(Worker::Adopted {
            pid: state.pid,
            start: state.pid_start,
        })
}

/// Starts `thaw worker RUN_DIR` in its own session with `threads` CPU threads, its output
/// appended to `RUN_DIR/worker.log`.
pub fn spawn(run: &RunDir, threads: usize, device: Option<DeviceSpec>) -> Result<Child> {
    let exe = crate::paths::executable()?;
    let log = run.open_worker_log()?;
    let mut command = Command::new(exe);
    command
        .arg("worker")
        .arg(&run.root)
        .env(THREADS_ENV, threads.to_string())
        .env_remove(DEVICE_ENV)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if let Some(device) = device {
        command.env(DEVICE_ENV, device.to_string());
    }
    in_own_session(&mut command);
    command.spawn().context("cannot start a worker process")
}

/// A run as whoever watches its worker holds it: its name (`session/run`), its directory and
/// its state as last read.
pub struct Watched<'a> {
    pub name: String,
    pub dir: &'a RunDir,
    pub state: &'a mut RunState,
}

impl Watched<'_> {
    /// Sets the status (and message) the watcher decided on, keeping what the worker wrote
    /// about steps and figures, and writes `state.json`.
    pub fn set_status(&mut self, status: RunStatus, message: Option<String>) -> Result<()> {
        self.state.decided(status, message);
        self.dir.write_state(self.state)
    }
}

/// Records how a run's worker ended: what the worker wrote if it wrote a final status, else
/// `failed` with the exit status, in `state.json` and as an `error` event.
pub fn settle(run: &mut Watched, pid: u32, exit: Exit) -> Result<()> {
    if let Ok(state) = run.dir.read_state() {
        *run.state = state;
    }
    let ended = run.state.status.has_ended();
    // What the worker recorded stands, unless its exit status says it failed after writing
    // `finished`. An adopted worker's exit status is not known: its record stands.
    let failed_after_finishing =
        run.state.status == RunStatus::Finished && !matches!(exit, Exit::Code(0) | Exit::Unknown);
    if ended && !failed_after_finishing {
        return Ok(());
    }
    // A worker that failed at once may have written its state before the daemon's record of
    // its start replaced it; its error event says why all the same.
    if let Exit::Code(code) = exit
        && code != 0
        && code != EXIT_INTERRUPTED
        && let Some(last) = run.dir.read_events().pop()
        && last.kind == EventKind::Error
    {
        return run.set_status(RunStatus::Failed, Some(last.message));
    }
    let log = run.dir.worker_log();
    let how = match exit {
        Exit::Code(EXIT_INTERRUPTED) => {
            return interrupted(run, "the worker was interrupted by a signal");
        }
        Exit::Code(code) => format!("the worker (pid {pid}) exited with status {code}"),
        Exit::Signal(signal) => format!(
            "the worker (pid {pid}) was killed by signal {signal} ({})",
            signal_name(signal)
        ),
        Exit::Unknown => format!("the worker (pid {pid}) ended without recording why"),
    };
    let message = format!("{how}; see {}", log.display());
    record(run, RunStatus::Failed, EventKind::Error, message)
}

/// Marks a run whose worker is gone as interrupted, resumable from its last checkpoint.
pub fn interrupted(run: &mut Watched, why: &str) -> Result<()> {
    let from = match crate::engine::checkpoint::resume_point(run.dir) {
        Some((dir, _)) => format!(
            "`thaw resume {}` continues from checkpoint {}",
            run.name,
            dir.file_name().unwrap_or_default().to_string_lossy()
        ),
        None => format!(
            "no checkpoint yet: `thaw resume {}` starts it again",
            run.name
        ),
    };
    record(
        run,
        RunStatus::Interrupted,
        EventKind::Interrupted,
        format!("{why}: {from}"),
    )
}

/// Says why the run ended (or stopped for now) in `events.jsonl`, and its status in
/// `state.json`.
pub fn record(
    run: &mut Watched,
    status: RunStatus,
    kind: EventKind,
    message: String,
) -> Result<()> {
    run.dir
        .append_event(&run.state.event(kind, message.clone()))?;
    run.set_status(status, Some(message))
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// Starts `command` in a session of its own, so it outlives the daemon and the terminal
/// (no SIGHUP, no shared process group).
pub fn in_own_session(command: &mut Command) {
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reaped_child_is_not_alive() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = crate::run::process::start_time(pid);
        child.wait().unwrap();
        assert!(!alive(pid, start));
    }
}
