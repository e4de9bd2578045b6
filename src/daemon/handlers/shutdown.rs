//! `down`: every local worker is asked to checkpoint and stop (SIGTERM: it ends
//! `interrupted`, resumable), the daemon waits for them, answers, and stops. Slurm jobs go
//! on: they belong to the cluster, and the next daemon watches them again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UnixStream;

use crate::daemon::Shared;
use crate::protocol::{FrameError, Response, write_frame_async};

/// How long `down` waits for workers to checkpoint before it stops anyway.
const STOP_TIMEOUT: Duration = Duration::from_secs(300);

pub async fn handle(shared: &Arc<Shared>, stream: &mut UnixStream) -> Result<(), FrameError> {
    let asked = {
        let mut daemon = shared.lock();
        daemon.shutting_down = true;
        let mut asked = Vec::new();
        // A `thaw train`'s workers are its own, not the daemon's to stop.
        for run in daemon.registry.runs().filter(|r| !r.external) {
            if let Some(worker) = run.execution.worker() {
                worker.signal(libc::SIGTERM);
                asked.push(run.full_name());
            }
        }
        asked
    };
    tracing::info!("shutting down: {} worker(s) checkpointing", asked.len());
    let started = Instant::now();
    let left = loop {
        let left: Vec<String> = {
            let daemon = shared.lock();
            daemon
                .registry
                .runs()
                // A job sbatch is submitting is waited for too, so it is watched again.
                .filter(|r| {
                    !r.external
                        && (r.execution.worker().is_some() || r.execution.submitting().is_some())
                })
                .map(|r| r.full_name())
                .collect()
        };
        if left.is_empty() || started.elapsed() > STOP_TIMEOUT {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let jobs: Vec<String> = shared
        .lock()
        .registry
        .runs()
        .filter_map(|r| {
            Some(format!(
                "{} (job {})",
                r.full_name(),
                r.execution.slurm()?.job_id()
            ))
        })
        .collect();
    let on_slurm = match jobs.is_empty() {
        true => String::new(),
        false => format!(
            "; Slurm jobs go on ({}), and `thaw up` watches them again",
            jobs.join(", ")
        ),
    };
    let message = match (asked.len(), left.is_empty()) {
        (0, _) => "thaw daemon stopped (no run was training)".to_string(),
        (n, true) => format!(
            "thaw daemon stopped: {n} run(s) checkpointed and interrupted ({}); `thaw up`, then `thaw resume --all` continues them",
            asked.join(", ")
        ),
        (_, false) => format!(
            "thaw daemon stopped; these workers did not stop within {}s and go on: {}",
            STOP_TIMEOUT.as_secs(),
            left.join(", ")
        ),
    };
    let message = format!("{message}{on_slurm}");
    let result = write_frame_async(stream, &Response::done(message)).await;
    let _ = shared.stop.send(true);
    result
}
