//! Framing: how requests and responses are cut out of a TCP byte stream.
//!
//! Every frame, in both directions, is a 10-byte header and a body:
//!
//! ```text
//! 0   u32  frame_len    bytes after this field: 6 + body length
//! 4   u16  code         request: the command; response: the status (0 = ok)
//! 6   u32  correlation  chosen by the client, echoed in the response
//! 10  [u8] body         frame_len - 6 bytes
//! ```
//!
//! All integers little-endian. The length comes first so a reader knows how
//! much to read before it parses anything, and it is checked against the
//! configured maximum *before* anything is allocated: a client that claims a
//! 4 GiB frame gets an error, not a 4 GiB buffer.
//!
//! Stages 4 to 6 use the same framing with their own commands.

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes of the frame header, length field included.
pub const HEADER_LEN: usize = 10;
/// The smallest valid `frame_len`: code and correlation, no body.
pub const MIN_FRAME_LEN: u32 = 6;
/// The default limit on `frame_len`.
pub const DEFAULT_MAX_FRAME_LEN: u32 = 16 << 20;

/// A frame read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The command (requests) or status (responses).
    pub code: u16,
    /// The client's correlation id.
    pub correlation: u32,
    /// Everything after the header.
    pub body: Vec<u8>,
}

/// Why a frame could not be read.
#[derive(Debug, Error)]
pub enum FrameError {
    /// The peer closed the connection cleanly, between frames.
    #[error("connection closed")]
    Closed,
    /// The header claims more than the limit allows.
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// The claimed `frame_len`.
        len: u32,
        /// The limit.
        max: u32,
        /// The correlation id, if the header was read far enough to know it.
        correlation: u32,
    },
    /// The header claims less than a header's worth.
    #[error("frame of {len} bytes is shorter than the {MIN_FRAME_LEN}-byte minimum")]
    TooShort {
        /// The claimed `frame_len`.
        len: u32,
    },
    /// The connection failed, or ended in the middle of a frame.
    #[error("reading a frame: {0}")]
    Io(#[from] std::io::Error),
}

// ANCHOR: read_frame
/// Reads one frame, refusing one longer than `max_len` before allocating it.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_len: u32,
) -> Result<Frame, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    // A clean close is only clean between frames: EOF on the first byte.
    match reader.read(&mut header[..1]).await? {
        0 => return Err(FrameError::Closed),
        _ => reader.read_exact(&mut header[1..]).await?,
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let code = u16::from_le_bytes([header[4], header[5]]);
    let correlation = u32::from_le_bytes([header[6], header[7], header[8], header[9]]);
    if len > max_len {
        return Err(FrameError::TooLarge {
            len,
            max: max_len,
            correlation,
        });
    }
    if len < MIN_FRAME_LEN {
        return Err(FrameError::TooShort { len });
    }
    let mut body = vec![0; (len - MIN_FRAME_LEN) as usize];
    reader.read_exact(&mut body).await?;
    Ok(Frame {
        code,
        correlation,
        body,
    })
}
// ANCHOR_END: read_frame

/// Writes one frame. The body must leave the frame within `u32` (callers
/// keep bodies under the frame limit, far below that).
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    code: u16,
    correlation: u32,
    body: &[u8],
) -> std::io::Result<()> {
    let len = u32::try_from(body.len() + MIN_FRAME_LEN as usize).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame body over 4 GiB")
    })?;
    let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&code.to_le_bytes());
    frame.extend_from_slice(&correlation.to_le_bytes());
    frame.extend_from_slice(body);
    writer.write_all(&frame).await
}
