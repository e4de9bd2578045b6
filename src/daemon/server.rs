//! The socket: `<runtime>/thaw.sock`, mode 0600 in a 0700 directory; a peer of another uid is
//! refused (SO_PEERCRED). Each connection: handshake with the protocol version, then requests.
//! A malformed or oversized frame closes that connection only.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::{UnixListener, UnixStream};

use super::{Shared, handlers};
use crate::protocol::{
    FrameError, Hello, PROTOCOL_VERSION, Request, Response, Welcome, read_frame_async,
    write_frame_async,
};

/// How long a client may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Listens on `socket`, replacing a stale one (the caller holds the daemon lock, so no other
/// daemon uses it).
pub fn bind(socket: &Path) -> Result<UnixListener> {
    if socket.exists() {
        std::fs::remove_file(socket)
            .with_context(|| format!("cannot remove the stale socket {}", socket.display()))?;
    }
    // Created 0600 from the start rather than narrowed after: no moment where others may connect.
    // SAFETY: umask only swaps the process's file-creation mask.
    let old = unsafe { libc::umask(0o177) };
    let listener = UnixListener::bind(socket);
    // SAFETY: as above, restoring it.
    unsafe { libc::umask(old) };
    let listener = listener.with_context(|| format!("cannot listen on {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Whether a peer of uid `peer` may talk to a daemon running as `own`: only the same user.
pub fn peer_allowed(peer: u32, own: u32) -> Result<(), String> {
    match peer == own {
        true => Ok(()),
        false => Err(format!(
            "this thaw daemon belongs to uid {own}; connections from uid {peer} are refused"
        )),
    }
}

/// Checks the uid of the process at the other end of `stream` (SO_PEERCRED).
pub fn check_peer(stream: &UnixStream) -> Result<(), String> {
    let cred = stream
        .peer_cred()
        .map_err(|e| format!("cannot read the peer's credentials: {e}"))?;
    // SAFETY: geteuid cannot fail.
    peer_allowed(cred.uid(), unsafe { libc::geteuid() })
}

/// Serves every connection until the listener fails.
pub async fn accept(listener: UnixListener, shared: Arc<Shared>) -> Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, shared).await {
                tracing::info!("connection closed: {e}");
            }
        });
    }
}

fn welcome(refused: Option<String>) -> Welcome {
    Welcome {
        protocol: PROTOCOL_VERSION,
        version: env!("CARGO_PKG_VERSION").into(),
        pid: std::process::id(),
        refused,
    }
}

async fn refuse(stream: &mut UnixStream, why: String) -> Result<(), FrameError> {
    tracing::info!("refused a client: {why}");
    write_frame_async(stream, &welcome(Some(why))).await
}

async fn connection(mut stream: UnixStream, shared: Arc<Shared>) -> Result<(), FrameError> {
    if let Err(why) = check_peer(&stream) {
        return refuse(&mut stream, why).await;
    }
    let hello: Hello = match tokio::time::timeout(HELLO_TIMEOUT, read_frame_async(&mut stream))
        .await
    {
        Err(_) | Ok(Err(FrameError::Closed)) => return Ok(()),
        Ok(Err(e)) => return refuse(&mut stream, format!("not a thaw client hello ({e})")).await,
        Ok(Ok(hello)) => hello,
    };
    if hello.program != "thaw" {
        let why = format!("{:?} is not a thaw client", hello.program);
        return refuse(&mut stream, why).await;
    }
    if hello.protocol != PROTOCOL_VERSION {
        let why = format!(
            "this daemon (thaw {}) speaks protocol {PROTOCOL_VERSION} and the client (thaw {}) protocol {}: restart the daemon with the client's thaw (`thaw down`, then `thaw up`) or use the daemon's",
            env!("CARGO_PKG_VERSION"),
            hello.version,
            hello.protocol
        );
        return refuse(&mut stream, why).await;
    }
    write_frame_async(&mut stream, &welcome(None)).await?;
    loop {
        let request: Request = match read_frame_async(&mut stream).await {
            Ok(request) => request,
            Err(FrameError::Closed) => return Ok(()),
            Err(e) => {
                let message = format!("{e}: closing this connection");
                let _ = write_frame_async(&mut stream, &Response::error(message)).await;
                return Err(e);
            }
        };
        if !handlers::handle(&shared, request, &mut stream).await? {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_uid_is_allowed() {
        assert!(peer_allowed(1000, 1000).is_ok());
        let why = peer_allowed(1001, 1000).unwrap_err();
        assert!(why.contains("uid 1001") && why.contains("refused"), "{why}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_peer_of_this_process_passes_the_check() {
        let (a, _b) = UnixStream::pair().unwrap();
        assert_eq!(check_peer(&a), Ok(()));
    }
}
