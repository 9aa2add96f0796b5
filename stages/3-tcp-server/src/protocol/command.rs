//! Stage 3's commands and their bodies.
//!
//! | code | request | body | ok response body |
//! |---|---|---|---|
//! | 1 | create stream | `stream u32` | empty |
//! | 2 | append | `stream u32`, `count u32`, then `count` × (`id u64`, `len u32`, payload) | `first_offset u64`, `count u32`, `durable u8` |
//! | 3 | poll | `stream u32`, `offset u64`, `count u32` | `count u32`, then `count` stage 1 records |
//!
//! An error response has a non-zero status and a UTF-8 message as its body.

use stage1_file_log::{HEADER_LEN as RECORD_HEADER_LEN, Message};

use super::body::{BodyError, BodyReader, PutLe};

/// Request codes.
pub mod code {
    /// Create a stream if it does not exist.
    pub const CREATE_STREAM: u16 = 1;
    /// Append a batch of messages.
    pub const APPEND: u16 = 2;
    /// Read messages from an offset.
    pub const POLL: u16 = 3;
}

/// A response's status: 0 for success, otherwise what went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// The frame is longer than the server's limit; the connection is closed.
    FrameTooLarge = 1,
    /// The frame or its body does not parse; the connection is closed.
    Malformed = 2,
    /// The request code is not one this server knows; the connection is closed.
    UnknownCommand = 3,
    /// The stream does not exist.
    StreamNotFound = 4,
    /// The request parses but cannot be served (a message too large, say).
    Invalid = 5,
    /// The storage failed; the message says how.
    Storage = 6,
}

impl From<Status> for u16 {
    fn from(status: Status) -> u16 {
        status as u16
    }
}

impl Status {
    /// The status for a wire code, if it is one.
    pub fn from_code(code: u16) -> Option<Status> {
        Some(match code {
            0 => Status::Ok,
            1 => Status::FrameTooLarge,
            2 => Status::Malformed,
            3 => Status::UnknownCommand,
            4 => Status::StreamNotFound,
            5 => Status::Invalid,
            6 => Status::Storage,
            _ => return None,
        })
    }
}

/// A request, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Create `stream` (no error if it exists).
    CreateStream {
        /// The stream's id.
        stream: u32,
    },
    /// Append messages (their offsets are ignored; the server assigns them).
    Append {
        /// The stream's id.
        stream: u32,
        /// The messages, with their ids and payloads.
        messages: Vec<Message>,
    },
    /// Poll up to `count` messages from `offset`.
    Poll {
        /// The stream's id.
        stream: u32,
        /// The first offset wanted.
        offset: u64,
        /// How many at most.
        count: u32,
    },
}

/// The smallest message in an append body: id and length, empty payload.
const MIN_APPEND_MESSAGE: usize = 8 + 4;

impl Request {
    /// Decodes the body of a request with `code`; `None` for an unknown code.
    pub fn decode(code: u16, body: &[u8]) -> Option<Result<Request, BodyError>> {
        let mut reader = BodyReader::new(body);
        let request = match code {
            code::CREATE_STREAM => reader
                .u32("stream")
                .map(|stream| Request::CreateStream { stream }),
            code::APPEND => decode_append(&mut reader),
            code::POLL => (|| {
                Ok(Request::Poll {
                    stream: reader.u32("stream")?,
                    offset: reader.u64("offset")?,
                    count: reader.u32("count")?,
                })
            })(),
            _ => return None,
        };
        Some(request.and_then(|request| reader.finish().map(|()| request)))
    }

    /// The request's code and body, as a client sends them.
    pub fn encode(&self) -> (u16, Vec<u8>) {
        let mut body = Vec::new();
        match self {
            Request::CreateStream { stream } => {
                body.put_u32(*stream);
                (code::CREATE_STREAM, body)
            }
            Request::Append { stream, messages } => {
                body.put_u32(*stream);
                body.put_u32(messages.len() as u32);
                for message in messages {
                    body.put_u64(message.id);
                    body.put_u32(message.payload.len() as u32);
                    body.extend_from_slice(&message.payload);
                }
                (code::APPEND, body)
            }
            Request::Poll {
                stream,
                offset,
                count,
            } => {
                body.put_u32(*stream);
                body.put_u64(*offset);
                body.put_u32(*count);
                (code::POLL, body)
            }
        }
    }
}

fn decode_append(reader: &mut BodyReader<'_>) -> Result<Request, BodyError> {
    let stream = reader.u32("stream")?;
    let count = reader.count("message count", MIN_APPEND_MESSAGE)?;
    let mut messages = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let id = reader.u64("message id")?;
        let len = reader.u32("payload length")?;
        let payload = reader.take("payload", len as usize)?;
        messages.push(Message::new(id, payload.to_vec()));
    }
    Ok(Request::Append { stream, messages })
}

/// A successful response, decoded by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The stream exists now.
    Created,
    /// The batch was appended.
    Appended {
        /// Offset of the first message.
        first_offset: u64,
        /// Number of messages.
        count: u32,
        /// Whether they are synced to disk (see stage 2's policies).
        durable: bool,
    },
    /// Messages read.
    Polled {
        /// The messages, in offset order.
        messages: Vec<Message>,
    },
}

impl Response {
    /// The body of a successful response.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        match self {
            Response::Created => {}
            Response::Appended {
                first_offset,
                count,
                durable,
            } => {
                body.put_u64(*first_offset);
                body.put_u32(*count);
                body.push(u8::from(*durable));
            }
            Response::Polled { messages } => {
                body.put_u32(messages.len() as u32);
                for message in messages {
                    // Stage 1's record layout: offset, id, length, payload.
                    // Payload lengths were checked on the way in, so this cannot fail.
                    let _ = message.encode_into(&mut body);
                }
            }
        }
        body
    }

    /// Decodes the ok body of a response to `request_code`.
    pub fn decode(request_code: u16, body: &[u8]) -> Result<Response, BodyError> {
        let mut reader = BodyReader::new(body);
        let response = match request_code {
            code::APPEND => Response::Appended {
                first_offset: reader.u64("first offset")?,
                count: reader.u32("count")?,
                durable: reader.u8("durable")? != 0,
            },
            code::POLL => {
                let count = reader.count("message count", RECORD_HEADER_LEN)?;
                let mut messages = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    let offset = reader.u64("offset")?;
                    let id = reader.u64("id")?;
                    let len = reader.u32("payload length")?;
                    let payload = reader.take("payload", len as usize)?.to_vec();
                    messages.push(Message {
                        offset,
                        id,
                        payload,
                    });
                }
                Response::Polled { messages }
            }
            _ => Response::Created,
        };
        reader.finish()?;
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for request in [
            Request::CreateStream { stream: 7 },
            Request::Append {
                stream: 7,
                messages: vec![
                    Message::new(1, b"hello".to_vec()),
                    Message::new(2, Vec::new()),
                ],
            },
            Request::Poll {
                stream: 7,
                offset: 3,
                count: 10,
            },
        ] {
            let (code, body) = request.encode();
            assert_eq!(Request::decode(code, &body), Some(Ok(request)));
        }
    }

    #[test]
    fn unknown_codes_and_trailing_bytes_are_refused() {
        assert_eq!(Request::decode(99, &[]), None);
        let mut body = Request::CreateStream { stream: 1 }.encode().1;
        body.push(0);
        assert_eq!(
            Request::decode(code::CREATE_STREAM, &body),
            Some(Err(BodyError::TrailingBytes { extra: 1 }))
        );
    }

    #[test]
    fn a_payload_length_past_the_body_is_truncated() {
        let mut body = Vec::new();
        body.put_u32(1);
        body.put_u32(1);
        body.put_u64(5);
        body.put_u32(1000);
        body.extend_from_slice(b"short");
        assert!(matches!(
            Request::decode(code::APPEND, &body),
            Some(Err(BodyError::Truncated {
                field: "payload",
                ..
            }))
        ));
    }
}
