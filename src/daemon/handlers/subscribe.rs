//! `subscribe`: a snapshot of a session (or all) with every run's history, one frame per run,
//! then live updates until the client goes. A subscriber that falls too far behind gets a
//! fresh snapshot.

use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio::sync::broadcast::error::RecvError;

use crate::daemon::{Daemon, Shared};
use crate::protocol::{FrameError, Response, RunSnapshot, Update, write_frame_async};

pub async fn stream(
    shared: &Arc<Shared>,
    session: Option<String>,
    stream: &mut UnixStream,
) -> Result<(), FrameError> {
    let wanted = |name: &str| session.as_deref().is_none_or(|s| s == name);
    let found = {
        let daemon = shared.lock();
        match &session {
            Some(name) if daemon.registry.session(name).is_none() => {
                Err(daemon.registry.no_session(name))
            }
            _ => Ok((
                runs(&daemon, &wanted),
                daemon.gpu_stats.clone(),
                daemon.updates.subscribe(),
            )),
        }
    };
    let (snapshot, gpus, mut updates) = match found {
        Ok(found) => found,
        Err(message) => return write_frame_async(stream, &Response::error(message)).await,
    };
    send_snapshot(stream, snapshot).await?;
    if !gpus.is_empty() {
        let update = Box::new(Update::Gpus { gpus });
        write_frame_async(stream, &Response::Update { update }).await?;
    }
    let (mut reader, mut writer) = stream.split();
    let mut byte = [0u8; 1];
    loop {
        let update = tokio::select! {
            update = updates.recv() => update,
            // The client speaks no more once subscribed: anything it sends, or its going, ends it.
            _ = reader.read(&mut byte) => return Ok(()),
        };
        match update {
            Ok(update) if update.session().is_none_or(wanted) => {
                let response = Response::Update {
                    update: Box::new(Update::clone(&update)),
                };
                write_frame_async(&mut writer, &response).await?;
            }
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => {
                let snapshot = runs(&shared.lock(), &wanted);
                for run in snapshot {
                    let update = Box::new(Update::History { run: Box::new(run) });
                    write_frame_async(&mut writer, &Response::Update { update }).await?;
                }
            }
            Err(RecvError::Closed) => return Ok(()),
        }
    }
}

fn runs(daemon: &Daemon, wanted: &dyn Fn(&str) -> bool) -> Vec<RunSnapshot> {
    daemon
        .registry
        .runs()
        .filter(|r| wanted(&r.session))
        .map(|r| r.snapshot())
        .collect()
}

async fn send_snapshot(stream: &mut UnixStream, runs: Vec<RunSnapshot>) -> Result<(), FrameError> {
    let count = runs.len();
    for run in runs {
        write_frame_async(stream, &Response::Snapshot { run: Box::new(run) }).await?;
    }
    write_frame_async(stream, &Response::SnapshotDone { runs: count }).await
}
