//! The wire protocol of stages 4 to 6: stage 3's framing with topic commands
//! and the [`record`] format. Specified byte by byte in the book's protocol
//! reference chapter.
//!
//! | code | request | body | ok response body |
//! |---|---|---|---|
//! | 10 | create topic | `topic u32`, `partitions u32` | empty |
//! | 11 | produce | `topic u32`, partitioning, records | `partition u32`, `first_offset u64`, `count u32`, `durable u8` |
//! | 12 | poll | `topic u32`, `partition u32`, `offset u64`, `count u32` | records |
//!
//! Partitioning is a `u8` kind and its argument: `0` explicit (`partition u32`),
//! `1` round robin (nothing), `2` key hash (`key_len u16`, key bytes; the
//! partition is `crc32c(key) % partitions`). Records are `count u32` and that many
//! records in the [`record`] format.

pub mod record;

use stage3_tcp_server::protocol::{BodyError, BodyReader, PutLe};

use record::{Checksum, Record, RecordError, decode_records, encode_records};

/// Request codes. Stage 3's codes (1 to 3) are not reused, so a client that
/// talks to the wrong server gets "unknown command", not a misread body.
pub mod code {
    /// Create a topic with its partitions.
    pub const CREATE_TOPIC: u16 = 10;
    /// Append a batch of records to one partition.
    pub const PRODUCE: u16 = 11;
    /// Read records of one partition from an offset.
    pub const POLL: u16 = 12;
}

/// Response status codes. 0 to 6 mean what they mean in stage 3 (0 to 3 are the
/// framing's; a missing topic is stage 3's missing stream), 7 is new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// The frame is over the server's limit; the connection is closed.
    FrameTooLarge = 1,
    /// The frame or body does not parse; the connection is closed.
    Malformed = 2,
    /// Unknown request code; the connection is closed.
    UnknownCommand = 3,
    /// No topic with that id.
    TopicNotFound = 4,
    /// The request parses but cannot be served as asked.
    Invalid = 5,
    /// The storage failed.
    Storage = 6,
    /// The topic has no partition with that number.
    PartitionNotFound = 7,
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
            4 => Status::TopicNotFound,
            5 => Status::Invalid,
            6 => Status::Storage,
            7 => Status::PartitionNotFound,
            _ => return None,
        })
    }
}

// ANCHOR: partitioning
/// Which partition a produced batch goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partitioning {
    /// The producer names the partition.
    Explicit(u32),
    /// The server takes the topic's partitions in turn, batch by batch.
    RoundRobin,
    /// `crc32c(key) % partitions`: the same key always lands in the same
    /// partition, so its messages keep their order.
    Key(Vec<u8>),
}
// ANCHOR_END: partitioning

/// A request, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Create `topic` with `partitions` partitions.
    CreateTopic {
        /// Topic id.
        topic: u32,
        /// Number of partitions, at least 1.
        partitions: u32,
    },
    /// Append records to one partition of `topic`.
    Produce {
        /// Topic id.
        topic: u32,
        /// Where the batch goes.
        partitioning: Partitioning,
        /// The records (offsets, timestamps and checksums are the server's to set).
        records: Vec<Record>,
    },
    /// Read records.
    Poll {
        /// Topic id.
        topic: u32,
        /// Partition number.
        partition: u32,
        /// First offset wanted.
        offset: u64,
        /// How many at most.
        count: u32,
    },
}

/// Why a request body did not decode.
pub type DecodeError = RecordError;

impl Request {
    /// Decodes a request body; `None` for an unknown code.
    pub fn decode(code: u16, body: &[u8]) -> Option<Result<Request, DecodeError>> {
        let mut reader = BodyReader::new(body);
        let request = match code {
            code::CREATE_TOPIC => (|| {
                Ok(Request::CreateTopic {
                    topic: reader.u32("topic")?,
                    partitions: reader.u32("partitions")?,
                })
            })(),
            code::PRODUCE => (|| {
                let topic = reader.u32("topic")?;
                let partitioning = decode_partitioning(&mut reader)?;
                let records = decode_records(&mut reader, Checksum::Ignore)?;
                Ok(Request::Produce {
                    topic,
                    partitioning,
                    records,
                })
            })(),
            code::POLL => (|| {
                Ok(Request::Poll {
                    topic: reader.u32("topic")?,
                    partition: reader.u32("partition")?,
                    offset: reader.u64("offset")?,
                    count: reader.u32("count")?,
                })
            })(),
            _ => return None,
        };
        Some(request.and_then(|request| Ok(reader.finish().map(|()| request)?)))
    }

    /// The code and body a client sends.
    pub fn encode(&self) -> (u16, Vec<u8>) {
        let mut body = Vec::new();
        match self {
            Request::CreateTopic { topic, partitions } => {
                body.put_u32(*topic);
                body.put_u32(*partitions);
                (code::CREATE_TOPIC, body)
            }
            Request::Produce {
                topic,
                partitioning,
                records,
            } => {
                body.put_u32(*topic);
                match partitioning {
                    Partitioning::Explicit(partition) => {
                        body.push(0);
                        body.put_u32(*partition);
                    }
                    Partitioning::RoundRobin => body.push(1),
                    Partitioning::Key(key) => {
                        body.push(2);
                        body.put_u16(key.len() as u16);
                        body.extend_from_slice(key);
                    }
                }
                encode_records(
                    &mut body,
                    records
                        .iter()
                        .map(|r| (r.offset, r.timestamp, r.id, r.payload.as_slice())),
                );
                (code::PRODUCE, body)
            }
            Request::Poll {
                topic,
                partition,
                offset,
                count,
            } => {
                body.put_u32(*topic);
                body.put_u32(*partition);
                body.put_u64(*offset);
                body.put_u32(*count);
                (code::POLL, body)
            }
        }
    }
}

/// Reads a produce request's partitioning: a `u8` kind and its argument.
/// Stage 5 decodes produce requests with it too.
pub fn decode_partitioning(reader: &mut BodyReader<'_>) -> Result<Partitioning, BodyError> {
    Ok(match reader.u8("partitioning")? {
        0 => Partitioning::Explicit(reader.u32("partition")?),
        1 => Partitioning::RoundRobin,
        2 => {
            let len = reader.u16("key length")?;
            Partitioning::Key(reader.take("key", len.into())?.to_vec())
        }
        kind => {
            return Err(BodyError::UnknownKind {
                field: "partitioning",
                kind,
            });
        }
    })
}

/// A successful response, as the client decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The topic exists.
    Created,
    /// The batch was appended.
    Produced {
        /// The partition it went to.
        partition: u32,
        /// Offset of its first record.
        first_offset: u64,
        /// Number of records.
        count: u32,
        /// Whether they are synced to disk.
        durable: bool,
    },
    /// Records read, checksums verified.
    Polled {
        /// In offset order.
        records: Vec<Record>,
    },
}

impl Response {
    /// Decodes the ok body of a response to a request with `code`.
    pub fn decode(code: u16, body: &[u8]) -> Result<Response, DecodeError> {
        let mut reader = BodyReader::new(body);
        let response = match code {
            code::PRODUCE => Response::Produced {
                partition: reader.u32("partition")?,
                first_offset: reader.u64("first offset")?,
                count: reader.u32("count")?,
                durable: reader.u8("durable")? != 0,
            },
            code::POLL => Response::Polled {
                records: decode_records(&mut reader, Checksum::Verify)?,
            },
            _ => Response::Created,
        };
        reader.finish()?;
        Ok(response)
    }

    /// The ok body of a produce response.
    pub fn produced(partition: u32, first_offset: u64, count: u32, durable: bool) -> Vec<u8> {
        let mut body = Vec::new();
        body.put_u32(partition);
        body.put_u64(first_offset);
        body.put_u32(count);
        body.push(u8::from(durable));
        body
    }
}
