//! SIGINT, SIGTERM and SIGUSR1 raise a flag that the step loop checks between steps, so a
//! signal always ends in a checkpoint, never in the middle of a step.

use std::sync::atomic::{AtomicBool, Ordering};

/// Raised by the first interrupting signal.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn raise(_signal: libc::c_int) {
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
