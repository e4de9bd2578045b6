//! `logs`: a run's events from its `events.jsonl`, then, with `follow`, each new one as the
//! daemon reads it, until the run ends.

use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio::sync::broadcast::error::RecvError;

use crate::daemon::Shared;
use crate::protocol::{FrameError, Response, Update, write_frame_async};
use crate::run::RunStatus;

pub async fn stream(
    shared: &Arc<Shared>,
    name: &str,
    follow: bool,
    stream: &mut UnixStream,
) -> Result<(), FrameError> {
    // Read under the lock up to what the daemon has announced, so that following continues
    // exactly where the file read stopped.
    let found = {
        let mut daemon = shared.lock();
        let updates = daemon.updates.subscribe();
        daemon.registry.find(name).map(|run| {
            let events = run.dir.read_events_upto(run.tail.events_read());
            (
                run.session.clone(),
                run.name.clone(),
                run.dir.clone(),
                ended(run.state.status),
                events,
                updates,
            )
        })
    };
    let (session, run, dir, done, events, mut updates) = match found {
        Ok(found) => found,
        Err(why) => return write_frame_async(stream, &Response::error(why)).await,
    };
    let full = format!("{session}/{run}");
    let mut sent = events.len();
    write_frame_async(
        stream,
        &Response::Events {
            run: full.clone(),
            events,
        },
    )
    .await?;
    if !follow || done {
        return Ok(());
    }
    let (mut reader, mut writer) = stream.split();
    let mut byte = [0u8; 1];
    loop {
        let update = tokio::select! {
            update = updates.recv() => update,
            _ = reader.read(&mut byte) => return Ok(()),
        };
        let update = match update {
            Ok(update) => update,
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return Ok(()),
        };
        match &*update {
            Update::Event {
                session: s,
                run: r,
                event,
            } if *s == session && *r == run => {
                sent += 1;
                let response = Response::Events {
                    run: full.clone(),
                    events: vec![event.clone()],
                };
                write_frame_async(&mut writer, &response).await?;
            }
            // Removed (`thaw remove`): there is nothing more to follow.
            Update::Removed { session: s, run: r }
                if *s == session && r.as_ref().is_none_or(|r| *r == run) =>
            {
                return Ok(());
            }
            Update::Run { info }
                if info.session == session && info.name == run && ended(info.status) =>
            {
                // The worker writes its last events before its last state: send any the
                // daemon has not announced yet.
                let rest: Vec<_> = dir.read_events().into_iter().skip(sent).collect();
                if !rest.is_empty() {
                    write_frame_async(
                        &mut writer,
                        &Response::Events {
                            run: full.clone(),
                            events: rest,
                        },
                    )
                    .await?;
                }
                return Ok(());
            }
            _ => {}
        }
    }
}

/// Whether following has nothing more to wait for. An interrupted run is still followed: under
/// a daemon it goes on when Slurm requeues its job or the user resumes it.
fn ended(status: RunStatus) -> bool {
    status.is_settled()
}
