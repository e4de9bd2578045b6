//! Talks to the daemon: connect to its socket, handshake, requests and streams. Used by the
//! CLI verbs and the dashboard.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::paths::Paths;
use crate::protocol::{
    FrameError, Hello, PROTOCOL_VERSION, Request, Response, Welcome, read_frame, write_frame,
};

/// Why the daemon could not be reached or understood.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no thaw daemon is running: start one with `thaw up`")]
    NotRunning,
    #[error(
        "cannot reach the thaw daemon's socket {0}: permission denied (it belongs to another user)"
    )]
    Forbidden(PathBuf),
    #[error("the thaw daemon refused this client: {0}")]
    Refused(String),
    #[error(
        "the thaw daemon (pid {pid}) speaks protocol {daemon} (thaw {daemon_version}) and this client protocol {PROTOCOL_VERSION} (thaw {}): restart the daemon with this thaw (`thaw down`, then `thaw up`)",
        env!("CARGO_PKG_VERSION")
    )]
    Version {
        daemon: u32,
        daemon_version: String,
        pid: u32,
    },
    /// Not a `source`: the message already holds the frame error's, and `{:#}` would say it twice.
    #[error("talking to the thaw daemon: {0}")]
    Frame(FrameError),
    #[error("cannot connect to the thaw daemon at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<FrameError> for ClientError {
    fn from(e: FrameError) -> Self {
        Self::Frame(e)
    }
}

/// The daemon's socket.
pub fn socket_path(paths: &Paths) -> PathBuf {
    paths.runtime.join("thaw.sock")
}

/// A connection to the daemon, past the handshake.
pub struct Client {
    stream: UnixStream,
    /// The daemon's own account of itself.
    pub daemon: Welcome,
}

impl Client {
    /// Connects to the daemon of these paths.
    pub fn connect(paths: &Paths) -> Result<Self, ClientError> {
        Self::connect_to(&socket_path(paths))
    }

    /// Connects to the daemon listening at `socket`.
    pub fn connect_to(socket: &Path) -> Result<Self, ClientError> {
        use std::io::ErrorKind;
        let mut stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
            ErrorKind::NotFound | ErrorKind::ConnectionRefused => ClientError::NotRunning,
            ErrorKind::PermissionDenied => ClientError::Forbidden(socket.to_path_buf()),
            _ => ClientError::Io {
                path: socket.to_path_buf(),
                source: e,
            },
        })?;
        // A daemon that accepts but never answers must not hang a command forever.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
        // A daemon that refuses this peer answers without waiting for the hello and closes:
        // the write may then fail, but its answer is still there to read.
        let sent = write_frame(&mut stream, &Hello::ours());
        let daemon: Welcome = read_frame(&mut stream).map_err(|e| match (e, sent) {
            (_, Err(unsent)) => ClientError::Frame(unsent),
            (e, Ok(())) => match e {
                FrameError::Closed => {
                    ClientError::Refused("it closed the connection during the handshake".into())
                }
                // A daemon dying as we connect (its listening socket closed with this
                // connection still unaccepted) resets it: there is no daemon any more.
                FrameError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    ClientError::NotRunning
                }
                other => ClientError::Frame(other),
            },
        })?;
        // A daemon of another protocol (an older thaw, refusing this client, or a newer one)
        // is said as such, with its pid: `thaw down` can still stop it.
        if daemon.protocol != PROTOCOL_VERSION {
            return Err(ClientError::Version {
                daemon: daemon.protocol,
                daemon_version: daemon.version,
                pid: daemon.pid,
            });
        }
        if let Some(reason) = daemon.refused {
            return Err(ClientError::Refused(reason));
        }
        Ok(Self { stream, daemon })
    }

    /// Sends a request and reads its one answer.
    pub fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        write_frame(&mut self.stream, request)?;
        Ok(read_frame(&mut self.stream)?)
    }

    /// Sends a request whose answer may take long (shutdown waits for the workers).
    pub fn request_patiently(&mut self, request: &Request) -> Result<Response, ClientError> {
        let _ = self.stream.set_read_timeout(None);
        self.request(request)
    }

    /// Sends a request that is answered by a stream of responses (subscribe, logs).
    pub fn stream(mut self, request: &Request) -> Result<Responses, ClientError> {
        write_frame(&mut self.stream, request)?;
        let _ = self.stream.set_read_timeout(None);
        Ok(Responses {
            stream: self.stream,
        })
    }
}

/// The responses to a streaming request, as they come; ends when the daemon closes.
pub struct Responses {
    stream: UnixStream,
}

impl Iterator for Responses {
    type Item = Result<Response, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        match read_frame(&mut self.stream) {
            Ok(response) => Some(Ok(response)),
            Err(FrameError::Closed) => None,
            Err(e) => Some(Err(e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daemon killed while a client connects: the connection sat unaccepted in the
    /// listener's backlog and is reset when the listener closes.
    #[test]
    fn a_connection_reset_by_a_dying_daemon_is_no_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("thaw.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let dies = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(listener);
        });
        let err = Client::connect_to(&socket).err().unwrap();
        dies.join().unwrap();
        assert!(matches!(err, ClientError::NotRunning), "{err}");
    }

    #[test]
    fn a_frame_error_is_said_once() {
        let err = anyhow::Error::from(ClientError::from(FrameError::Io(
            std::io::ErrorKind::BrokenPipe.into(),
        )));
        assert_eq!(
            format!("{err:#}"),
            "talking to the thaw daemon: broken pipe"
        );
    }
}
