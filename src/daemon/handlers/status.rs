//! `status`: every run, as `thaw status --json` prints it, and the GPUs' figures.

use crate::daemon::Daemon;
use crate::protocol::Response;

pub fn handle(daemon: &Daemon) -> Response {
    Response::Status {
        runs: daemon.registry.runs().map(|r| r.info()).collect(),
        gpus: daemon.gpu_stats.clone(),
    }
}
