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
//! is allocated as its bytes arrive, not all at once ([`read_body`]), unless
//! the server's request budget already holds its whole length
//! ([`FrameReader::body`]). A connection reads its header with whatever
//! followed it ([`FrameReader`]): one read for a whole small request.

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
/// bytes arrive ([`read_body`]) unless a reservation covers them
/// ([`FrameReader::body`]).
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
    parse_header(header, max_len)
}

/// A header's fields, its length checked against `max_len` (and a header's own).
fn parse_header(header: [u8; HEADER_LEN], max_len: u32) -> Result<Header, FrameError> {
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
    read_body_into(reader, Vec::with_capacity(len.min(BODY_STEP)), len).await
}

/// [`read_body`] after the first `body.len()` bytes, which the caller has.
async fn read_body_into<R: AsyncRead>(
    reader: &mut R,
    mut body: Vec<u8>,
    len: usize,
) -> Result<Vec<u8>, FrameError> {
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

/// Bytes asked of the socket when a header is due: a poll's whole frame (30
/// bytes) or any small request comes in the same read as its header, and a
/// produce's first few kilobytes come with its header.
pub const READ_AHEAD: usize = 4096;

// ANCHOR: frame_reader
/// A connection's reader of request frames: the header read together with
/// what follows it, and the bytes past the frame (a client that sent its
/// next request already) kept for the next one.
///
/// Why: [`read_header`] then [`read_body`] is two reads per request even
/// when the whole request arrived at once, and a poll's is 30 bytes. Each
/// read is an io_uring operation, a completion and a wake of the task; at a
/// thousand 100-byte messages per batch the polls alone made half of a
/// connection's reads. Here one read of up to [`READ_AHEAD`] bytes takes the
/// header and what arrived with it: a small request is then whole, and a
/// produce's body is copied out of it (at most `READ_AHEAD` bytes) and read
/// on into its own buffer. Rejected: reading large bodies through this
/// buffer too, which would copy every produce once more; and a larger read
/// ahead, which copies more of every large body for no fewer reads.
///
/// The rules of [`read_frame`] hold: the length is checked before the body
/// is allocated, and a body is never read past its own end into its buffer.
#[derive(Debug, Default)]
pub struct FrameReader {
    /// Bytes read from the socket and not yet taken: `buffer[taken..]`.
    buffer: Vec<u8>,
    taken: usize,
}

impl FrameReader {
    /// A reader with nothing read yet.
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Bytes read and not yet taken by a frame.
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.taken
    }

    /// The next frame's header, its length checked against `max_len`:
    /// from the bytes already read, or from one read of up to
    /// [`READ_AHEAD`] bytes more (or several, while fewer than a header's
    /// ten have come).
    pub async fn header<R: AsyncRead>(
        &mut self,
        reader: &mut R,
        max_len: u32,
    ) -> Result<Header, FrameError> {
        while self.buffered() < HEADER_LEN {
            match self.fill(reader).await {
                Ok(0) => return Err(FrameError::Closed), // between frames, or inside a header
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(FrameError::Io(error)),
            }
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&self.buffer[self.taken..self.taken + HEADER_LEN]);
        self.taken += HEADER_LEN;
        parse_header(header, max_len)
    }

    /// The body of `len` bytes after the header: what was read with it,
    /// then the rest read straight into the body's own buffer.
    ///
    /// `reserved` is what the caller holds of the server's request budget
    /// for this body ([`crate::shards::limits::Reservation::bytes`]). A body
    /// it covers whole gets one buffer of its length at once: the budget
    /// already bounds what clients that claim large bodies and stall can
    /// make the server hold, which is what growing the buffer as the bytes
    /// arrive ([`read_body`]) is for, and growing it copied a produce of a
    /// thousand 100-byte messages (132 kB) twice on the way (to 128 KiB,
    /// then to 132 kB). A body nothing covers grows as [`read_body`]'s does.
    pub async fn body<R: AsyncRead>(
        &mut self,
        reader: &mut R,
        len: usize,
        reserved: usize,
    ) -> Result<Vec<u8>, FrameError> {
        let have = self.buffered().min(len);
        let carried = &self.buffer[self.taken..self.taken + have];
        self.taken += have;
        if have == len {
            return Ok(carried.to_vec());
        }
        let first = if reserved >= len {
            len
        } else {
            len.min(BODY_STEP).max(have)
        };
        let mut body = Vec::with_capacity(first);
        body.extend_from_slice(carried);
        // Everything buffered was this body's: the next frame starts fresh.
        self.buffer.clear();
        self.taken = 0;
        read_body_into(reader, body, len).await
    }

    /// One read into the buffer's free room, after moving what is left to
    /// its start; the bytes read.
    async fn fill<R: AsyncRead>(&mut self, reader: &mut R) -> std::io::Result<usize> {
        self.buffer.drain(..self.taken);
        self.taken = 0;
        if self.buffer.capacity() < READ_AHEAD {
            self.buffer.reserve_exact(READ_AHEAD - self.buffer.len());
        }
        let start = self.buffer.len();
        let end = self.buffer.capacity();
        let buffer = std::mem::take(&mut self.buffer);
        let BufResult(read, slice) = reader.read(buffer.slice(start..end)).await;
        self.buffer = slice.into_inner();
        read
    }
}
// ANCHOR_END: frame_reader

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

    /// A peer whose bytes arrive `step` at a time, as a slow network
    /// delivers them: a header may be cut anywhere.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl AsyncRead for Trickle<'_> {
        async fn read<B: compio::buf::IoBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
            let mut part = &self.bytes[..self.step.min(self.bytes.len())];
            let BufResult(read, buf) = part.read(buf).await;
            if let Ok(n) = read {
                self.bytes = &self.bytes[n..];
            }
            BufResult(read, buf)
        }
    }

    #[test]
    fn frame_reader_takes_pipelined_frames_apart_whatever_the_reads_return() {
        runtime().block_on(async {
            let large: Vec<u8> = (0..3 * BODY_STEP + 5).map(|n| n as u8).collect();
            let mut bytes = Vec::new();
            write_frame(&mut bytes, 12, 1, b"a poll body of 20 b.")
                .await
                .unwrap();
            write_frame(&mut bytes, 11, 2, &large).await.unwrap();
            write_frame(&mut bytes, 12, 3, b"").await.unwrap();
            write_frame(&mut bytes, 12, 4, b"last").await.unwrap();
            // All at once (the next frames arrive with the first header),
            // and a few bytes per read (headers cut in two).
            for step in [bytes.len(), 7, 3] {
                let mut peer = Trickle {
                    bytes: &bytes,
                    step,
                };
                let mut reader = FrameReader::new();
                let mut frames = Vec::new();
                loop {
                    let header = match reader.header(&mut peer, DEFAULT_MAX_FRAME_LEN).await {
                        Ok(header) => header,
                        Err(FrameError::Closed) => break,
                        Err(error) => panic!("{error}"),
                    };
                    // The large body is covered by a reservation, the others not.
                    let reserved = if header.body_len() > BODY_STEP {
                        header.body_len()
                    } else {
                        0
                    };
                    let body = reader
                        .body(&mut peer, header.body_len(), reserved)
                        .await
                        .unwrap();
                    assert_eq!(body.len(), header.body_len());
                    frames.push((header.code, header.correlation, body));
                }
                assert_eq!(frames.len(), 4, "step {step}");
                assert_eq!(frames[0], (12, 1, b"a poll body of 20 b.".to_vec()));
                assert!(frames[1].2 == large, "step {step}: the large body differs");
                assert_eq!(frames[2], (12, 3, Vec::new()));
                assert_eq!(frames[3], (12, 4, b"last".to_vec()));
                assert_eq!(reader.buffered(), 0);
            }
        });
    }

    #[test]
    fn frame_reader_reads_one_frame_ahead_at_most_and_refuses_like_read_frame() {
        runtime().block_on(async {
            // A large body with nothing reserved grows as read_body's does,
            // and is never read past its end.
            let large: Vec<u8> = (0..2 * BODY_STEP + 1).map(|n| n as u8).collect();
            let mut bytes = Vec::new();
            write_frame(&mut bytes, 11, 1, &large).await.unwrap();
            write_frame(&mut bytes, 12, 2, b"next").await.unwrap();
            let mut peer = bytes.as_slice();
            let mut reader = FrameReader::new();
            let header = reader
                .header(&mut peer, DEFAULT_MAX_FRAME_LEN)
                .await
                .unwrap();
            assert!(reader.buffered() <= READ_AHEAD);
            let body = reader.body(&mut peer, header.body_len(), 0).await.unwrap();
            assert!(body == large);
            assert!(body.capacity() < 2 * large.len());
            assert_eq!(peer.len(), HEADER_LEN + 4, "the next frame is left unread");
            let header = reader
                .header(&mut peer, DEFAULT_MAX_FRAME_LEN)
                .await
                .unwrap();
            assert_eq!(header.correlation, 2);
            // Too long, from the header alone; and a close inside a header
            // or inside a body.
            let mut claim = Vec::new();
            claim.extend_from_slice(&u32::MAX.to_le_bytes());
            claim.extend_from_slice(&11u16.to_le_bytes());
            claim.extend_from_slice(&7u32.to_le_bytes());
            let result = FrameReader::new()
                .header(&mut claim.as_slice(), DEFAULT_MAX_FRAME_LEN)
                .await;
            assert!(matches!(
                result,
                Err(FrameError::TooLarge { correlation: 7, .. })
            ));
            let result = FrameReader::new()
                .header(&mut &claim[..5], DEFAULT_MAX_FRAME_LEN)
                .await;
            assert!(matches!(result, Err(FrameError::Closed)));
            let mut cut = Vec::new();
            write_frame(&mut cut, 12, 1, b"0123456789").await.unwrap();
            cut.truncate(cut.len() - 3);
            let mut peer = cut.as_slice();
            let mut reader = FrameReader::new();
            let header = reader
                .header(&mut peer, DEFAULT_MAX_FRAME_LEN)
                .await
                .unwrap();
            let result = reader.body(&mut peer, header.body_len(), 0).await;
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
