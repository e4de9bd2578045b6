//! SIGINT, SIGTERM and SIGUSR1 raise a flag that the step loop checks between steps, so a
//! signal always ends in a checkpoint, never in the middle of a step.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// Raised by the first interrupting signal.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The first interrupting signal's number (0 before one arrives).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn raise(signal: libc::c_int) {
    let _ = RECEIVED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Routes SIGINT, SIGTERM and SIGUSR1 (Slurm's warning before a time limit) to [`INTERRUPTED`].
pub fn install() {
    let handler = raise as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGUSR1] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(signal, handler);
        }
    }
}

/// Whether an interrupting signal has arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The interrupting signal in words, for the run's events: `SIGUSR1 (...)`; `a signal` when
/// none was installed here (a flag raised by other means).
pub fn received() -> &'static str {
    match RECEIVED.load(Ordering::SeqCst) {
        libc::SIGUSR1 => "SIGUSR1 (Slurm's warning before the job's time limit)",
        libc::SIGTERM => "SIGTERM (thaw down, a kill, or Slurm preempting or cancelling the job)",
        libc::SIGINT => "SIGINT (Ctrl-C)",
        _ => "a signal",
    }
}
