//! What a partition's owner does for the Kafka listener: append (syncing
//! first when the producer asked for acks=all), read from an offset with the
//! partition's bounds, and find an offset for ListOffsets. Each runs on the
//! owner's thread, in order with the partition's other requests, and
//! answers on the asking connection's channel with the index of the
//! partition in its request, so one request's partitions, spread over every
//! shard, run at once.

use futures_util::future::LocalBoxFuture;
use kafka_protocol::ResponseError;
use stage6_broker::shards::extension::{PartitionAt, PartitionJob};
use stage6_broker::shards::shard::storage_error;
use stage6_broker::shards::wire::WireError;
use stage6_broker::storage::record;
use stage6_broker::{AlignedBuf, Partition, Polled};

use crate::kafka::errors::code_of;
use crate::kafka::producers::{ProducerBatch, Verdict, with_producers};

/// Where a job's answer goes, with the index of its partition in the request.
pub type Answers<T, E = WireError> = flume::Sender<(usize, Result<T, E>)>;

/// A partition's bounds, as every answer reports them.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// The first offset still stored (Kafka's log start offset).
    pub first: u64,
    /// The offset the next record will get (Kafka's high watermark).
    pub next: u64,
}

fn bounds(partition: &Partition) -> Bounds {
    Bounds {
        first: partition.first_offset(),
        next: partition.next_offset(),
    }
}

// ANCHOR: append
/// Append translated records; with `sync`, return only once they are on
/// disk, whatever the topic's fsync policy (acks=all). A batch of an
/// idempotent producer is checked against its sequence numbers first
/// ([`crate::kafka::producers`]).
pub struct Append {
    /// Rivulet records, whole, unstamped.
    pub records: Vec<u8>,
    /// Sync before answering.
    pub sync: bool,
    /// The idempotent producer's batch, if it has an id.
    pub producer: Option<ProducerBatch>,
    /// The topic, for the producers' state.
    pub topic: u32,
    /// The partition's index in the request.
    pub index: usize,
    /// Where the answer goes: the first offset given, and the bounds after;
    /// or a Kafka error code and why.
    pub answer: Answers<(u64, Bounds), Refused>,
}

/// A Kafka error code, and why.
pub type Refused = (i16, String);

impl PartitionJob for Append {
    fn run<'a>(
        mut self: Box<Self>,
        partition: &'a mut Partition,
        at: PartitionAt,
    ) -> LocalBoxFuture<'a, ()> {
        Box::pin(async move {
            let key = (self.topic, at.partition);
            let verdict = self
                .producer
                .map(|batch| with_producers(|producers| producers.verdict(key, &batch)));
            let result = match verdict {
                Some(Verdict::Duplicate(first)) => Ok((first, bounds(partition))),
                Some(Verdict::Refuse(code)) => Err((
                    code,
                    "the batch's sequence numbers do not follow".to_string(),
                )),
                Some(Verdict::Append) | None => {
                    let appended = append_in_steps(partition, &mut self.records, self.sync).await;
                    if let (Ok((first, _)), Some(batch)) = (&appended, &self.producer) {
                        with_producers(|producers| producers.appended(key, batch, *first));
                    }
                    appended
                }
            };
            let _ = self.answer.send((self.index, result));
        })
    }

    fn fail(self: Box<Self>, error: WireError) {
        let _ = self
            .answer
            .send((self.index, Err((code_of(&error), error.message))));
    }
}

/// Appends `records`, in as many appends as the partition's segment size
/// needs (a Kafka client batches up to a MiB of records, which may not fit
/// a small segment in one append), then syncs if asked; the first offset
/// given and the bounds after.
async fn append_in_steps(
    partition: &mut Partition,
    records: &mut [u8],
    sync: bool,
) -> Result<(u64, Bounds), Refused> {
    let refused = |error: stage6_broker::storage::error::Error| match error {
        stage6_broker::storage::error::Error::BatchTooLarge { .. } => {
            (ResponseError::MessageTooLarge.code(), error.to_string())
        }
        error => {
            let error = storage_error(error);
            (code_of(&error), error.message)
        }
    };
    let most = usize::try_from(partition.config().segment_size).unwrap_or(usize::MAX);
    let extents = record::walk(records)
        .map_err(|error| (ResponseError::CorruptMessage.code(), error.to_string()))?;
    let mut first = None;
    let mut durable = true;
    let mut start = 0;
    while start < records.len() {
        // Whole records, as many as fit `most` bytes (at least one: a
        // record larger than a segment is refused by the append).
        let end = extents
            .iter()
            .map(|&(at, len)| at + len)
            .take_while(|&end| end - start <= most)
            .filter(|&end| end > start)
            .last()
            .unwrap_or_else(|| {
                extents
                    .iter()
                    .map(|&(at, len)| at + len)
                    .find(|&end| end > start)
                    .unwrap_or(records.len())
            });
        let appended = partition
            .append(&mut records[start..end])
            .await
            .map_err(refused)?;
        first.get_or_insert(appended.offsets.start);
        durable &= appended.durable;
        start = end;
    }
    // ANCHOR: acks_all
    if sync && !durable {
        partition.flush().await.map_err(refused)?;
    }
    // ANCHOR_END: acks_all
    Ok((
        first.unwrap_or_else(|| partition.next_offset()),
        bounds(partition),
    ))
}
// ANCHOR_END: append

/// What a read found.
#[derive(Debug)]
pub enum Read {
    /// Records from the offset asked (none at the end of the partition).
    Records(Polled, Bounds),
    /// The offset is outside the partition's bounds.
    OutOfRange(Bounds),
}

/// Read stored records from `offset`, at most about `max_bytes` of them
/// (and at most the topic's `max_poll_bytes`; one record always).
pub struct ReadFrom {
    /// First offset.
    pub offset: u64,
    /// At most this many records.
    pub max_records: u64,
    /// At most about this many bytes of them (one record always).
    pub max_bytes: u64,
    /// The partition's index in the request.
    pub index: usize,
    /// Where the answer goes.
    pub answer: Answers<Read>,
}

impl PartitionJob for ReadFrom {
    fn run<'a>(
        self: Box<Self>,
        partition: &'a mut Partition,
        _: PartitionAt,
    ) -> LocalBoxFuture<'a, ()> {
        Box::pin(async move {
            let bounds = bounds(partition);
            let result = if !(bounds.first..=bounds.next).contains(&self.offset) {
                Ok(Read::OutOfRange(bounds))
            } else {
                let buf = AlignedBuf::with_capacity(0)
                    .map_err(|error| WireError::storage(error.to_string()));
                match buf {
                    Ok(buf) => partition
                        .poll_within(self.offset, self.max_records, self.max_bytes, buf)
                        .await
                        .map(|polled| Read::Records(polled, bounds))
                        .map_err(storage_error),
                    Err(error) => Err(error),
                }
            };
            let _ = self.answer.send((self.index, result));
        })
    }

    fn fail(self: Box<Self>, error: WireError) {
        let _ = self.answer.send((self.index, Err(error)));
    }
}

/// ListOffsets' question for one partition.
#[derive(Debug, Clone, Copy)]
pub enum Position {
    /// The next offset (Kafka's timestamp -1).
    Latest,
    /// The first offset still stored (-2).
    Earliest,
    /// The first record appended at or after this time, ms since the epoch.
    At(u64),
}

/// Find an offset by position.
pub struct Find {
    /// Which.
    pub position: Position,
    /// The partition's index in the request.
    pub index: usize,
    /// Where the answer goes: the offset, if any record is there.
    pub answer: Answers<Option<u64>>,
}

impl PartitionJob for Find {
    fn run<'a>(
        self: Box<Self>,
        partition: &'a mut Partition,
        _: PartitionAt,
    ) -> LocalBoxFuture<'a, ()> {
        let offset = match self.position {
            Position::Latest => Some(partition.next_offset()),
            Position::Earliest => Some(partition.first_offset()),
            // The partition's time index holds append times in µs.
            Position::At(ms) => partition.offset_at(ms.saturating_mul(1000)),
        };
        let _ = self.answer.send((self.index, Ok(offset)));
        Box::pin(std::future::ready(()))
    }

    fn fail(self: Box<Self>, error: WireError) {
        let _ = self.answer.send((self.index, Err(error)));
    }
}
