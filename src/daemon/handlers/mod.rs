//! One file per kind of request. Short requests lock the daemon, answer and unlock; streams
//! (subscribe, logs) take the connection and keep writing to it.

pub mod compare;
pub mod control;
pub mod launch;
pub mod logs;
pub mod remove;
pub mod resume_all;
pub mod shutdown;
pub mod status;
pub mod subscribe;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UnixStream;

use super::Shared;
use super::registry::Run;
use crate::protocol::{FrameError, Request, write_frame_async};

/// Answers one request; returns whether the connection takes further requests.
pub async fn handle(
    shared: &Arc<Shared>,
    request: Request,
    stream: &mut UnixStream,
) -> Result<bool, FrameError> {
    let response = match request {
        Request::Launch {
            file,
            text,
            replace,
        } => launch::handle(shared, file, text, replace).await,
        Request::Control { run, control } => {
            let mut daemon = shared.lock();
            control::handle(&mut daemon, &run, control)
        }
        Request::Status => {
            let daemon = shared.lock();
            status::handle(&daemon)
        }
        Request::Compare { session, target } => {
            let paths = shared.lock().paths.clone();
            compare::handle(&paths, &session, target)
        }
        Request::Remove { runs, sessions } => remove::handle(shared, &runs, &sessions).await,
        Request::ResumeAll => {
            let mut daemon = shared.lock();
            resume_all::handle(&mut daemon)
        }
        Request::Subscribe { session } => {
            subscribe::stream(shared, session, stream).await?;
            return Ok(false);
        }
        Request::Logs { run, follow } => {
            logs::stream(shared, &run, follow, stream).await?;
            return Ok(false);
        }
        Request::Shutdown => {
            shutdown::handle(shared, stream).await?;
            return Ok(false);
        }
    };
    write_frame_async(stream, &response).await?;
    Ok(true)
}

/// Gives the workers of the runs `which` picks that have recorded their end, but are still
/// exiting, a moment to be reaped: a run the dashboard shows finished or stopped can be
/// replaced or removed at once.
pub async fn let_ended_workers_exit(shared: &Arc<Shared>, which: impl Fn(&Run) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let exiting = {
            let mut daemon = shared.lock();
            daemon.tick();
            daemon
                .registry
                .runs()
                .any(|r| which(r) && r.execution.worker().is_some() && r.state.status.is_settled())
        };
        if !exiting || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
