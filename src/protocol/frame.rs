//! How messages travel: each a JSON frame preceded by its length as a big-endian u32. A frame
//! over [`MAX_FRAME`] bytes is refused from its length alone, before its body is read.

use std::io::{Read, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame either side accepts.
pub const MAX_FRAME: u32 = 8 << 20;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the connection was closed")]
    Closed,
    #[error("a frame of {0} bytes is over the limit of {MAX_FRAME} bytes")]
    TooLarge(u64),
    #[error("malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error(transparent)]
    Io(std::io::Error),
}

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Self::Closed,
            _ => Self::Io(e),
        }
    }
}

/// A message as a frame: length, then JSON.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(message)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&n| n <= MAX_FRAME)
        .ok_or(FrameError::TooLarge(body.len() as u64))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

fn body_len(header: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header);
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(u64::from(len)));
    }
    Ok(len as usize)
}

/// Writes one frame.
pub fn write_frame<T: Serialize>(w: &mut impl Write, message: &T) -> Result<(), FrameError> {
    w.write_all(&encode(message)?)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame.
pub fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> Result<T, FrameError> {
    let mut header = [0u8; 4];
    r.read_exact(&mut header)?;
    let mut body = vec![0u8; body_len(header)?];
    r.read_exact(&mut body)?;
    Ok(serde_json::from_slice(&body)?)
}

/// Writes one frame to an async stream.
pub async fn write_frame_async<T: Serialize>(
    w: &mut (impl AsyncWrite + Unpin),
    message: &T,
) -> Result<(), FrameError> {
    w.write_all(&encode(message)?).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame from an async stream.
pub async fn read_frame_async<T: DeserializeOwned>(
    r: &mut (impl AsyncRead + Unpin),
) -> Result<T, FrameError> {
    let mut header = [0u8; 4];
    r.read_exact(&mut header).await?;
    let mut body = vec![0u8; body_len(header)?];
    r.read_exact(&mut body).await?;
    Ok(serde_json::from_slice(&body)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Control, Request};

    #[test]
    fn frames_round_trip() {
        let request = Request::Control {
            run: "s/a".into(),
            control: Control::Freeze {
                groups: vec!["stem".into()],
            },
        };
        let frame = encode(&request).unwrap();
        assert_eq!(&frame[..4], &((frame.len() - 4) as u32).to_be_bytes());
        let back: Request = read_frame(&mut frame.as_slice()).unwrap();
        assert_eq!(back, request);
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_length() {
        // Only the header: the body is never read.
        let header = (MAX_FRAME + 1).to_be_bytes();
        let err = read_frame::<Request>(&mut header.as_slice()).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge(n) if n == u64::from(MAX_FRAME) + 1));
    }

    #[test]
    fn garbage_is_malformed_and_a_short_read_is_closed() {
        let mut frame = 5u32.to_be_bytes().to_vec();
        frame.extend_from_slice(b"\x00\x01xyz");
        assert!(matches!(
            read_frame::<Request>(&mut frame.as_slice()),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            read_frame::<Request>(&mut [0u8, 0].as_slice()),
            Err(FrameError::Closed)
        ));
    }
}
