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

use std::io::IoSlice;

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
    // EXERCISE: read_frame
    // HINT: read the 10-byte header (EOF before its first byte is Closed; after it, an
    // HINT: error); check frame_len against max_len and MIN_FRAME_LEN before allocating
    // HINT: the body of frame_len - 6 bytes.
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
    // EXERCISE_END
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
    let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
    frame.extend_from_slice(&header(code, correlation, body.len())?);
    frame.extend_from_slice(body);
    writer.write_all(&frame).await
}

/// The most body parts [`write_frame_parts`] takes: enough for a head, a
/// region and a tail, and small enough to live on the stack.
pub const MAX_BODY_PARTS: usize = 4;

// ANCHOR: write_frame_parts
/// Writes one frame whose body is `parts`, one after another, without first
/// copying them into one buffer: the header and the parts go to the writer as
/// one vectored write (`writev`), looping until every byte is taken.
///
/// Stage 5 sends a poll's records this way, straight from the buffer they
/// were read into. [`write_frame`] copies the body behind the header instead,
/// which costs nothing for small bodies and a copy of the whole body for large
/// ones. At most [`MAX_BODY_PARTS`] parts: the slices live on the stack, so
/// writing a frame allocates nothing.
pub async fn write_frame_parts<W: AsyncWrite + Unpin>(
    writer: &mut W,
    code: u16,
    correlation: u32,
    parts: &[&[u8]],
) -> std::io::Result<()> {
    // EXERCISE: write_frame_parts
    // HINT: header(code, correlation, total length) then the parts, as IoSlices to
    // HINT: write_vectored, in a loop: a write may take fewer bytes than offered
    // HINT: (advance past them), and a write of 0 bytes is WriteZero.
    if parts.len() > MAX_BODY_PARTS {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "a frame body of {} parts (at most {MAX_BODY_PARTS})",
                parts.len()
            ),
        ));
    }
    let body_len = parts.iter().map(|part| part.len()).sum();
    let header = header(code, correlation, body_len)?;
    let mut pending: [&[u8]; MAX_BODY_PARTS + 1] = [&[]; MAX_BODY_PARTS + 1];
    pending[0] = &header;
    pending[1..=parts.len()].copy_from_slice(parts);
    let pending = &mut pending[..=parts.len()];
    let mut slices = [IoSlice::new(&[]); MAX_BODY_PARTS + 1];
    loop {
        // Only what is not written yet (and not empty) goes into the next write.
        let mut n = 0;
        for part in pending.iter().filter(|part| !part.is_empty()) {
            slices[n] = IoSlice::new(part);
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        let mut written = writer.write_vectored(&slices[..n]).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        // A short write is normal (a full socket buffer): advance past it.
        for part in pending.iter_mut() {
            let taken = written.min(part.len());
            *part = &part[taken..];
            written -= taken;
        }
    }
    // EXERCISE_END
}
// ANCHOR_END: write_frame_parts

/// A frame's header for a body of `body_len` bytes, refusing a frame whose
/// length would not fit `frame_len`.
fn header(code: u16, correlation: u32, body_len: usize) -> std::io::Result<[u8; HEADER_LEN]> {
    let len = body_len
        .checked_add(MIN_FRAME_LEN as usize)
        .and_then(|len| u32::try_from(len).ok())
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame body over 4 GiB")
        })?;
    let mut header = [0; HEADER_LEN];
    header[0..4].copy_from_slice(&len.to_le_bytes());
    header[4..6].copy_from_slice(&code.to_le_bytes());
    header[6..10].copy_from_slice(&correlation.to_le_bytes());
    Ok(header)
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// A writer that takes at most 3 bytes per call, as a full socket might.
    #[derive(Default)]
    struct Trickle(Vec<u8>);

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let n = buf.len().min(3);
            self.0.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn frame_parts_are_the_same_bytes_as_one_body_even_written_three_at_a_time() {
        let parts: [&[u8]; 3] = [b"count", b"", b"the records region"];
        let mut whole = Vec::new();
        write_frame(&mut whole, 12, 99, &parts.concat())
            .await
            .unwrap();
        let mut trickle = Trickle::default();
        write_frame_parts(&mut trickle, 12, 99, &parts)
            .await
            .unwrap();
        assert_eq!(trickle.0, whole);
        let mut empty = Trickle::default();
        write_frame_parts(&mut empty, 0, 1, &[]).await.unwrap();
        assert_eq!(empty.0, [6, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    }

    #[tokio::test]
    async fn frame_parts_refuse_more_parts_than_the_stack_holds() {
        let parts = [&b"x"[..]; MAX_BODY_PARTS + 1];
        let error = write_frame_parts(&mut Trickle::default(), 0, 1, &parts)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    }
}
