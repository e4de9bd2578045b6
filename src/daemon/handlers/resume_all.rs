//! `resume --all`: every interrupted run is queued again; its worker resumes from the last
//! checkpoint with its frozen groups and metric history.

use crate::daemon::{Daemon, scheduler};
use crate::protocol::Response;
use crate::run::RunStatus;

pub fn handle(daemon: &mut Daemon) -> Response {
    if daemon.shutting_down {
        return Response::error("the daemon is shutting down");
    }
    let mut resumed = Vec::new();
    for run in daemon.registry.runs_mut() {
        if run.is_live() || run.state.status != RunStatus::Interrupted {
            continue;
        }
        match scheduler::requeue(run, false) {
            Ok(from) => resumed.push(format!("{} {from}", run.full_name())),
            Err(e) => return Response::error(format!("{}: {e:#}", run.full_name())),
        }
    }
    if resumed.is_empty() {
        return Response::done("no interrupted runs to resume");
    }
    daemon.tick();
    Response::done(format!("resuming {}", resumed.join("; ")))
}
