//! Stage 3's framing, read and written with compio's owned buffers.
//!
//! The bytes are stage 3's, unchanged: a 10-byte header (`frame_len u32`,
//! `code u16`, `correlation u32`) and a body. The engine owns its copy of the
//! constants and the frame type (see [`crate::shards::wire`] for why). What changes is how
//! the bytes move: stage 3's `read_frame` is written against tokio's
//! `AsyncRead`, which lends the reader a `&mut [u8]`; io_uring needs the buffer
//! to stay alive until the kernel completes the operation, even if the future
//! is dropped, so compio's reads and writes take the buffer by value and give
//! it back ([`compio::BufResult`]). The logic is stage 3's: the length is
//! checked against the limit *before* the body is allocated; and a large body
//! is allocated as its bytes arrive, not all at once ([`read_body`]).

use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use thiserror::Error;

use crate::storage::segment::StoredBytes;

/// Bytes of the frame header, length field included.
pub const HEADER_LEN: usize = 10;
/// The smallest valid `frame_len`: code and correlation, no body.
pub const MIN_FRAME_LEN: u32 = 6;
/// The default limit on `frame_len`.
pub const DEFAULT_MAX_FRAME_LEN: u32 = 16 << 20;
/// A body's first allocation, at most: bodies up to this size are read into
/// one buffer of their size, larger ones into a buffer that grows as their
/// bytes arrive ([`read_body`]).
pub const BODY_STEP: usize = 64 * 1024;

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
        /// The correlation id, read from the header.
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
pub async fn read_frame<R: AsyncRead>(reader: &mut R, max_len: u32) -> Result<Frame, FrameError> {
    let header = read_header(reader, max_len).await?;
    let body = read_body(reader, header.body_len()).await?;
    Ok(Frame {
        code: header.code,
        correlation: header.correlation,
        body,
    })
}

/// A frame's header, its length checked against the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// `frame_len`: code, correlation and body.
    pub len: u32,
    /// The command (requests) or status (responses).
    pub code: u16,
    /// The client's correlation id.
    pub correlation: u32,
}

impl Header {
    /// Bytes of the body that follows.
    pub fn body_len(&self) -> usize {
        // `read_header` let no `len` below `MIN_FRAME_LEN` through.
        self.len.saturating_sub(MIN_FRAME_LEN) as usize
    }
}

/// Reads a header, refusing a length over `max_len` (or under a header's).
pub async fn read_header<R: AsyncRead>(reader: &mut R, max_len: u32) -> Result<Header, FrameError> {
    // The header lives in a 10-byte array handed to the kernel and back.
    let BufResult(read, header) = reader.read_exact([0u8; HEADER_LEN]).await;
    match read {
        Ok(()) => {}
        // A close before (or inside) a header: nothing to answer.
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(FrameError::Closed);
        }
        Err(error) => return Err(FrameError::Io(error)),
    }
    let [l0, l1, l2, l3, c0, c1, r0, r1, r2, r3] = header;
    let len = u32::from_le_bytes([l0, l1, l2, l3]);
    let code = u16::from_le_bytes([c0, c1]);
    let correlation = u32::from_le_bytes([r0, r1, r2, r3]);
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
    Ok(Header {
        len,
        code,
        correlation,
    })
}

/// Reads a body of `len` bytes into a buffer that grows as they arrive:
/// [`BODY_STEP`] at first, then doubled each time it is full, never past
/// `len`. So a client that claims a large frame and stalls halfway holds
/// about what it sent, not what it claimed, and the copies made by growing
/// add up to less than the body itself.
///
/// Rejected: one allocation of `len` up front (stage 3's way: a hundred
/// clients that each claim 16 MiB and send half make it hold 1600 MiB of
/// address space, 800 MiB of it written), and a list of fixed chunks glued at
/// the end (a copy of every body, not only of the large ones).
pub async fn read_body<R: AsyncRead>(reader: &mut R, len: usize) -> Result<Vec<u8>, FrameError> {
    let mut body = Vec::with_capacity(len.min(BODY_STEP));
    while body.len() < len {
        if body.len() == body.capacity() {
            // `reserve_exact`: `reserve` may round up past `len`.
            body.reserve_exact(body.capacity().min(len - body.len()));
        }
        // Never past `len`: the next frame's bytes are not this body's.
        let (start, end) = (body.len(), body.capacity().min(len));
        let BufResult(read, slice) = reader.read(body.slice(start..end)).await;
        body = slice.into_inner();
        match read {
            // The connection ended inside the frame.
            Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()),
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(body)
}
// ANCHOR_END: read_frame

/// A frame's header for a body of `body_len` bytes; `None` if the frame
/// would not fit `frame_len` (callers keep bodies far below that).
pub fn header(code: u16, correlation: u32, body_len: usize) -> Option<[u8; HEADER_LEN]> {
    let len = u32::try_from(body_len.checked_add(MIN_FRAME_LEN as usize)?).ok()?;
    let mut header = [0; HEADER_LEN];
    header[0..4].copy_from_slice(&len.to_le_bytes());
    header[4..6].copy_from_slice(&code.to_le_bytes());
    header[6..10].copy_from_slice(&correlation.to_le_bytes());
    Some(header)
}

/// Writes a frame whose body is built in one buffer (every reply but a poll's).
pub async fn write_frame<W: AsyncWrite>(
    writer: &mut W,
    code: u16,
    correlation: u32,
    body: &[u8],
) -> std::io::Result<()> {
    let head = header(code, correlation, body.len()).ok_or_else(too_large)?;
    let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
    frame.extend_from_slice(&head);
    frame.extend_from_slice(body);
    let BufResult(written, _) = writer.write_all(frame).await;
    written
}

// ANCHOR: write_polled
/// Writes a poll's reply: the header and the record count in one small
/// array, then the records *as they were read from the segment*, in one
/// vectored write. The records are not copied on the way to the socket: the
/// kernel takes them from the aligned buffer the segment read filled (by
/// DMA, for records read from the file). The buffer comes back for the
/// connection's next poll.
pub async fn write_polled<W: AsyncWrite>(
    writer: &mut W,
    correlation: u32,
    count: u32,
    records: StoredBytes,
) -> (std::io::Result<()>, StoredBytes) {
    let Some(head) = header(0, correlation, 4 + records.len()) else {
        return (Err(too_large()), records);
    };
    let mut prefix = [0u8; HEADER_LEN + 4];
    prefix[..HEADER_LEN].copy_from_slice(&head);
    prefix[HEADER_LEN..].copy_from_slice(&count.to_le_bytes());
    let BufResult(written, (_, (records,))) = writer.write_vectored_all((prefix, (records,))).await;
    (written, records)
}
// ANCHOR_END: write_polled

fn too_large() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame body over 4 GiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> compio::runtime::Runtime {
        crate::IoDriver::Auto.runtime().unwrap()
    }

    #[test]
    fn frame_read_back_is_what_was_written_and_a_close_between_frames_is_clean() {
        runtime().block_on(async {
            let mut bytes = Vec::new();
            write_frame(&mut bytes, 12, 99, b"a body").await.unwrap();
            write_frame(&mut bytes, 0, 1, b"").await.unwrap();
            let mut reader = bytes.as_slice();
            let first = read_frame(&mut reader, DEFAULT_MAX_FRAME_LEN)
                .await
                .unwrap();
            assert_eq!((first.code, first.correlation), (12, 99));
            assert_eq!(first.body, b"a body");
            let second = read_frame(&mut reader, DEFAULT_MAX_FRAME_LEN)
                .await
                .unwrap();
            assert_eq!(
                (second.code, second.correlation, second.body.len()),
                (0, 1, 0)
            );
            let end = read_frame(&mut reader, DEFAULT_MAX_FRAME_LEN).await;
            assert!(matches!(end, Err(FrameError::Closed)));
        });
    }

    #[test]
    fn frame_large_body_grows_as_it_arrives_and_stops_at_its_own_end() {
        runtime().block_on(async {
            // Over several growth steps, and not a multiple of one; the next
            // frame right behind it must not be read into it.
            let large: Vec<u8> = (0..5 * BODY_STEP + 123).map(|n| n as u8).collect();
            let mut bytes = Vec::new();
            write_frame(&mut bytes, 11, 1, &large).await.unwrap();
            write_frame(&mut bytes, 12, 2, b"next").await.unwrap();
            let mut reader = bytes.as_slice();
            let first = read_frame(&mut reader, DEFAULT_MAX_FRAME_LEN)
                .await
                .unwrap();
            assert_eq!((first.code, first.correlation), (11, 1));
            assert!(first.body == large, "the body read back differs");
            assert!(first.body.capacity() < 2 * large.len());
            let second = read_frame(&mut reader, DEFAULT_MAX_FRAME_LEN)
                .await
                .unwrap();
            assert_eq!(second.body, b"next");
            // Cut inside the large body: an I/O error, not a short frame.
            let mut cut = &bytes[..3 * BODY_STEP];
            let result = read_frame(&mut cut, DEFAULT_MAX_FRAME_LEN).await;
            assert!(matches!(result, Err(FrameError::Io(_))));
        });
    }

    #[test]
    fn frame_length_is_refused_before_the_body_is_read_or_allocated() {
        runtime().block_on(async {
            // A header claiming 4 GiB and no body at all: the answer must
            // come from the header alone.
            let mut header = Vec::new();
            header.extend_from_slice(&u32::MAX.to_le_bytes());
            header.extend_from_slice(&11u16.to_le_bytes());
            header.extend_from_slice(&7u32.to_le_bytes());
            let result = read_frame(&mut header.as_slice(), DEFAULT_MAX_FRAME_LEN).await;
            assert!(matches!(
                result,
                Err(FrameError::TooLarge {
                    len: u32::MAX,
                    correlation: 7,
                    ..
                })
            ));
            let mut short = Vec::new();
            short.extend_from_slice(&5u32.to_le_bytes());
            short.extend_from_slice(&[0; 6]);
            let result = read_frame(&mut short.as_slice(), DEFAULT_MAX_FRAME_LEN).await;
            assert!(matches!(result, Err(FrameError::TooShort { len: 5 })));
            // A body cut short is an I/O error, not a frame.
            let mut cut = Vec::new();
            write_frame(&mut cut, 12, 1, b"0123456789").await.unwrap();
            cut.truncate(cut.len() - 3);
            let result = read_frame(&mut cut.as_slice(), DEFAULT_MAX_FRAME_LEN).await;
            assert!(matches!(result, Err(FrameError::Io(_))));
        });
    }
}
