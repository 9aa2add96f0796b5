//! Kafka's record batches to Rivulet's records, and back.
//!
//! The two formats carry the same things (an offset, a timestamp, a key,
//! ordered headers, a value) in different shapes:
//!
//! - a Kafka **record batch** (magic 2) is a 61-byte header (base offset,
//!   length, CRC, attributes with the compression codec, base timestamp,
//!   producer fields, record count) followed by records whose numbers are
//!   varint *deltas* from the batch's base; the records may be compressed as
//!   one block;
//! - a Rivulet record stands alone: a 32-byte header with absolute values,
//!   then (for a record with a key or headers) the extension section of
//!   `stage6_broker::storage::record`, then the value.
//!
//! So translation is a real cost: a produce is decoded (decompressed, every
//! record's varints read, key, headers and value sliced) and re-encoded one
//! record at a time; a fetch is the reverse, and its batch is built in a new
//! buffer, so the zero-copy reply of Rivulet's own poll is lost on this path.
//! The Kafka bench measures each step (`benches/benches/kafka.rs`).
//! Rejected: storing Kafka's batches as they arrive, which would make the
//! Kafka path free and Rivulet's own protocol the one that translates, and
//! would need a second recovery scanner for a second on-disk format.
//!
//! Decompression is done here, not by the codec: the codec inflates a batch
//! into memory whatever its size, so a batch of a few KiB could ask for
//! gigabytes. Here every codec reads through a limit ([`Limits`]).

use std::io::Read;

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use stage6_broker::storage::record::{self, Contents, UserHeader};
use thiserror::Error;

/// Why a produce's records were refused.
#[derive(Debug, Error)]
pub enum TranslateError {
    /// The bytes are not record batches of magic 2.
    #[error("the records do not decode as Kafka record batches (magic 2): {0}")]
    Decode(String),
    /// A compressed batch inflates past the limit.
    #[error("a compressed record batch inflates past {limit} bytes")]
    TooLarge {
        /// The most bytes a batch may inflate to.
        limit: usize,
    },
    /// Transactional or control batches: this broker has no transactions.
    #[error("transactional and control batches are not supported")]
    Transactional,
    /// No records at all.
    #[error("a produce with no records")]
    Empty,
}

/// What a produce's records became.
#[derive(Debug)]
pub struct Translated {
    /// Rivulet records, offsets and server timestamps zero (the partition
    /// stamps them), ready for an append.
    pub records: Vec<u8>,
    /// How many.
    pub count: u32,
    /// The idempotent producer that sent them, and its sequence numbers
    /// (`None`: a producer without an id).
    pub producer: Option<crate::kafka::producers::ProducerBatch>,
}

/// Bounds on what one produce's batches may become.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most bytes one compressed batch may inflate to.
    pub max_inflated: usize,
}

// ANCHOR: records_from_batch
/// Turns a produce's record batches into Rivulet records: each record's key,
/// headers, value and CreateTime kept, in order.
pub fn records_from_batch(batches: &Bytes, limits: Limits) -> Result<Translated, TranslateError> {
    let mut input = batches.clone();
    let inflate = |compressed: &mut Bytes, codec: Compression| inflate(compressed, codec, limits);
    let mut out = Vec::with_capacity(batches.len() + batches.len() / 2);
    let mut count: u32 = 0;
    let mut producer: Option<crate::kafka::producers::ProducerBatch> = None;
    while !input.is_empty() {
        let set = RecordBatchDecoder::decode_with_custom_compression(&mut input, Some(&inflate))
            .map_err(decode_error)?;
        if let Some(first) = set.records.first()
            && first.producer_id >= 0
        {
            let records = i32::try_from(set.records.len()).unwrap_or(i32::MAX);
            match &mut producer {
                // A second batch of the same producer continues the first.
                Some(batch) if batch.producer_id == first.producer_id => {
                    batch.count = batch.count.saturating_add(records);
                }
                Some(_) => {
                    return Err(TranslateError::Decode(
                        "batches of two producers in one partition's records".to_string(),
                    ));
                }
                None => {
                    producer = Some(crate::kafka::producers::ProducerBatch {
                        producer_id: first.producer_id,
                        epoch: first.producer_epoch,
                        first_sequence: first.sequence,
                        count: records,
                    });
                }
            }
        }
        for kafka in &set.records {
            if kafka.transactional || kafka.control {
                return Err(TranslateError::Transactional);
            }
            let headers = kafka
                .headers
                .iter()
                .map(|(name, value)| UserHeader {
                    name: name.as_str(),
                    value: value.as_deref(),
                })
                .collect();
            let contents = Contents {
                create_time: (kafka.timestamp >= 0).then_some(kafka.timestamp),
                key: kafka.key.as_deref(),
                headers,
                value: kafka.value.as_deref(),
            };
            // Offset and timestamp 0: the partition stamps its own. The
            // producer id field is Rivulet's; Kafka's producers have none here.
            record::encode_contents(&mut out, 0, 0, 0, &contents);
            count = count.saturating_add(1);
        }
    }
    if count == 0 {
        return Err(TranslateError::Empty);
    }
    Ok(Translated {
        records: out,
        count,
        producer,
    })
}
// ANCHOR_END: records_from_batch

/// The codec's error, with its causes, on one line.
fn decode_error(error: anyhow::Error) -> TranslateError {
    match error.downcast_ref::<TranslateError>() {
        Some(TranslateError::TooLarge { limit }) => TranslateError::TooLarge { limit: *limit },
        _ => TranslateError::Decode(format!("{error:#}")),
    }
}

// ANCHOR: inflate
/// One batch's records, decompressed, never more than `limits.max_inflated`
/// bytes (the codec's own decompression reads to the end, however far).
fn inflate(compressed: &mut Bytes, codec: Compression, limits: Limits) -> anyhow::Result<Bytes> {
    let input = std::mem::take(compressed);
    let limit = limits.max_inflated;
    let bounded = |reader: &mut dyn Read| -> anyhow::Result<Bytes> {
        let mut out = Vec::new();
        // One byte past the limit tells "exactly at" from "over".
        reader.take(limit as u64 + 1).read_to_end(&mut out)?;
        if out.len() > limit {
            return Err(TranslateError::TooLarge { limit }.into());
        }
        Ok(Bytes::from(out))
    };
    match codec {
        Compression::None => Ok(input),
        Compression::Gzip => bounded(&mut flate2::read::GzDecoder::new(&input[..])),
        Compression::Lz4 => bounded(&mut lz4::Decoder::new(&input[..])?),
        Compression::Zstd => bounded(&mut zstd::stream::read::Decoder::new(&input[..])?),
        Compression::Snappy => unsnappy(&input, limit),
    }
}

/// Kafka's snappy: Java's "xerial" framing (a magic header, then blocks of
/// `u32 length` + raw snappy), or one raw snappy block. Each block's
/// inflated length is in its own first bytes, checked before inflating.
fn unsnappy(input: &[u8], limit: usize) -> anyhow::Result<Bytes> {
    const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
    const XERIAL_HEADER_LEN: usize = 16; // magic, version, compatible version
    let mut blocks = Vec::new();
    if input.starts_with(XERIAL_MAGIC) {
        let mut rest = input.get(XERIAL_HEADER_LEN..).unwrap_or_default();
        while let Some((len, tail)) = rest.split_first_chunk::<4>() {
            let len = u32::from_be_bytes(*len) as usize;
            let block = tail
                .get(..len)
                .ok_or_else(|| anyhow::anyhow!("a snappy block runs past the batch"))?;
            blocks.push(block);
            rest = &tail[len..];
        }
        if !rest.is_empty() {
            anyhow::bail!("{} stray bytes after the last snappy block", rest.len());
        }
    } else {
        blocks.push(input);
    }
    let mut out = Vec::new();
    let mut decoder = snap::raw::Decoder::new();
    for block in blocks {
        let len = snap::raw::decompress_len(block)?;
        if out.len() + len > limit {
            return Err(TranslateError::TooLarge { limit }.into());
        }
        let start = out.len();
        out.resize(start + len, 0);
        decoder.decompress(block, &mut out[start..])?;
    }
    Ok(Bytes::from(out))
}
// ANCHOR_END: inflate

/// One stored record, as a fetch returns it.
#[derive(Debug)]
pub struct Stored<'a> {
    /// Its offset.
    pub offset: u64,
    /// Server time of the append, µs since the UNIX epoch.
    pub timestamp_us: u64,
    /// Bytes the record takes as stored.
    pub stored_len: usize,
    /// Key, headers, value and create time.
    pub contents: Contents<'a>,
}

/// Why stored records could not be made a batch (a damaged record that the
/// checksum let through, which recovery should have caught).
#[derive(Debug, Error)]
#[error("stored record at byte {at} of a poll: {reason}")]
pub struct StoredError {
    /// Where in the polled bytes.
    pub at: usize,
    /// What was wrong.
    pub reason: String,
}

/// The stored records in `polled` (whole records, as a poll returns them).
pub fn stored_records(polled: &[u8]) -> Result<Vec<Stored<'_>>, StoredError> {
    if polled.is_empty() {
        return Ok(Vec::new()); // the end of the partition
    }
    let extents = record::walk(polled).map_err(|error| StoredError {
        at: 0,
        reason: error.to_string(),
    })?;
    let mut records = Vec::with_capacity(extents.len());
    for (at, len) in extents {
        let bytes = &polled[at..at + len];
        let header = record::header_at(bytes).ok_or_else(|| StoredError {
            at,
            reason: "no header".to_string(),
        })?;
        let contents = record::contents(bytes).map_err(|error| StoredError {
            at,
            reason: error.to_string(),
        })?;
        records.push(Stored {
            offset: header.offset,
            timestamp_us: header.timestamp,
            stored_len: len,
            contents,
        });
    }
    Ok(records)
}

// ANCHOR: batch_from_records
/// One uncompressed record batch (magic 2) of `records`, for a fetch: the
/// producer's CreateTime where it gave one, else the server's append time
/// (Kafka's timestamps are milliseconds; Rivulet's are microseconds).
pub fn batch_from_records(records: &[Stored<'_>]) -> Result<Bytes, String> {
    let base = records.first().map_or(0, |record| record.offset);
    let kafka: Vec<Record> = records
        .iter()
        .map(|record| kafka_record(record, base))
        .collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, &kafka, &options).map_err(|error| format!("{error:#}"))?;
    Ok(out.freeze())
}
// ANCHOR_END: batch_from_records

/// One stored record as the codec's record, in a batch starting at `base`.
fn kafka_record(stored: &Stored<'_>, base: u64) -> Record {
    let contents = &stored.contents;
    let server_ms = i64::try_from(stored.timestamp_us / 1000).unwrap_or(i64::MAX);
    let headers: IndexMap<StrBytes, Option<Bytes>> = contents
        .headers
        .iter()
        .map(|header| {
            (
                StrBytes::from_string(header.name.to_string()),
                header.value.map(Bytes::copy_from_slice),
            )
        })
        .collect();
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: i64::try_from(stored.offset).unwrap_or(i64::MAX),
        // The codec starts a new batch wherever `offset - sequence` changes
        // (its idea of a producer's run); one batch is wanted, and a batch
        // of no producer has base sequence -1: so -1, 0, 1, ... by offset.
        sequence: (stored.offset.wrapping_sub(base) as i32).wrapping_sub(1),
        timestamp: contents.create_time.unwrap_or(server_ms),
        key: contents.key.map(Bytes::copy_from_slice),
        value: contents.value.map(Bytes::copy_from_slice),
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka(key: &str, value: &str, headers: &[(&str, &str)], timestamp: i64) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp,
            key: Some(Bytes::from(key.to_string())),
            value: Some(Bytes::from(value.to_string())),
            headers: headers
                .iter()
                .map(|(n, v)| {
                    (
                        StrBytes::from_string(n.to_string()),
                        Some(Bytes::from(v.to_string())),
                    )
                })
                .collect(),
        }
    }

    fn batch(records: &[Record], compression: Compression) -> Bytes {
        let mut out = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut out, records, &options).unwrap();
        out.freeze()
    }

    const LIMITS: Limits = Limits {
        max_inflated: 1 << 20,
    };

    #[test]
    fn kafka_records_survive_the_round_trip_through_rivulet_records_with_every_codec() {
        let sent = [
            kafka(
                "k1",
                "v1",
                &[("trace", "abc"), ("n", "1")],
                1_700_000_000_123,
            ),
            kafka("k2", "", &[], 1_700_000_000_124),
        ];
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let translated = records_from_batch(&batch(&sent, codec), LIMITS).unwrap();
            assert_eq!(translated.count, 2, "{codec:?}");
            let mut records = translated.records;
            let extents = record::walk(&records).unwrap();
            record::stamp(&mut records, &extents, 40, 5_000_000);
            let stored = stored_records(&records).unwrap();
            let mut back = batch_from_records(&stored).unwrap();
            let decoded = RecordBatchDecoder::decode(&mut back).unwrap().records;
            assert_eq!(decoded.len(), 2);
            for (n, (got, want)) in decoded.iter().zip(&sent).enumerate() {
                assert_eq!(got.offset, 40 + n as i64);
                assert_eq!(got.key, want.key);
                assert_eq!(got.value, want.value);
                assert_eq!(got.headers, want.headers);
                assert_eq!(got.timestamp, want.timestamp, "CreateTime kept");
            }
        }
    }

    #[test]
    fn a_compressed_batch_that_inflates_past_the_limit_is_refused_not_inflated() {
        let big = "x".repeat(64 << 10);
        let sent = [kafka("k", &big, &[], 1)];
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let small = Limits {
                max_inflated: 16 << 10,
            };
            let refused = records_from_batch(&batch(&sent, codec), small);
            assert!(
                matches!(refused, Err(TranslateError::TooLarge { limit }) if limit == 16 << 10),
                "{codec:?}: {refused:?}"
            );
        }
    }

    #[test]
    fn garbage_and_old_message_formats_are_errors() {
        assert!(matches!(
            records_from_batch(
                &Bytes::from_static(b"not a batch at all, just bytes"),
                LIMITS
            ),
            Err(TranslateError::Decode(_))
        ));
        let mut magic1 = batch(&[kafka("k", "v", &[], 1)], Compression::None).to_vec();
        magic1[16] = 1;
        assert!(matches!(
            records_from_batch(&Bytes::from(magic1), LIMITS),
            Err(TranslateError::Decode(_))
        ));
        assert!(matches!(
            records_from_batch(&Bytes::new(), LIMITS),
            Err(TranslateError::Empty)
        ));
    }
}
