//! The idempotent producer: InitProducerId hands out producer ids, and each
//! partition's owner checks every batch's sequence numbers, so a batch a
//! producer sends again (its answer was lost, it timed out) is answered
//! with its first offset instead of being appended twice.
//!
//! Why it is here at all: kafka-python and the Java client turn idempotence
//! on by default against any broker that looks like Kafka 3, and refuse to
//! produce when the broker has no InitProducerId. librdkafka leaves it off.
//!
//! The rules, Kafka's (KIP-98), per partition and producer id:
//! - a batch carries the producer's epoch and the sequence number of its
//!   first record; a producer's first batch in a partition starts at 0 and
//!   each batch starts where the last one ended;
//! - a batch equal to one of the last [`REMEMBERED`] batches is a duplicate:
//!   answered with the offset it got the first time, not appended;
//! - any other gap is OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch is
//!   INVALID_PRODUCER_EPOCH (a newer one starts the count again).
//!
//! The deliberate simplification: the state lives in memory on the
//! partition's owner and is not kept across a restart (Kafka writes it to
//! snapshots beside each log). After a restart a producer's next batch
//! starts its state afresh, so a batch that was written just before a crash
//! and sent again just after it is appended twice. Within one run of the
//! broker, no retry duplicates a record. Rejected: keeping the producer id
//! and sequence in every stored record and rebuilding the state at start,
//! which is the real fix and a change of the record format for a feature
//! this issue did not ask for.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::kafka::connection::Handler;

/// How many of a producer's last batches are remembered per partition
/// (Kafka's: a producer has at most 5 requests in flight).
pub const REMEMBERED: usize = 5;

/// Which producer sent a batch, and where its sequence starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    /// The producer id InitProducerId gave.
    pub producer_id: i64,
    /// Its epoch.
    pub epoch: i16,
    /// The first record's sequence number.
    pub first_sequence: i32,
    /// Records in the batch.
    pub count: i32,
}

/// What the owner does with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The next batch: append it.
    Append,
    /// Sent before: answer with the first offset it got then.
    Duplicate(u64),
    /// Refused with this Kafka error code.
    Refuse(i16),
}

/// One producer's state in one partition.
#[derive(Debug, Default)]
struct Producer {
    epoch: i16,
    /// The sequence the next batch must start at.
    next: i32,
    /// The last batches: first sequence, record count, first offset.
    last: VecDeque<(i32, i32, u64)>,
}

/// Every producer's state, per partition, of the partitions this thread's
/// shard owns. Thread-local because a partition's jobs run only on its
/// owner's thread: no lock, like the partition itself.
#[derive(Debug, Default)]
pub struct Producers {
    partitions: HashMap<(u32, u32), HashMap<i64, Producer>>,
}

thread_local! {
    static PRODUCERS: RefCell<Producers> = RefCell::new(Producers::default());
}

/// Runs `f` with this thread's producer state.
pub fn with_producers<T>(f: impl FnOnce(&mut Producers) -> T) -> T {
    PRODUCERS.with(|producers| f(&mut producers.borrow_mut()))
}

impl Producers {
    // ANCHOR: verdict
    /// What to do with `batch` in `partition`.
    pub fn verdict(&mut self, partition: (u32, u32), batch: &ProducerBatch) -> Verdict {
        let producers = self.partitions.entry(partition).or_default();
        let Some(known) = producers.get(&batch.producer_id) else {
            // A producer new to this partition (or to this run of the
            // broker): its first batch sets the count.
            return Verdict::Append;
        };
        if batch.epoch < known.epoch {
            return Verdict::Refuse(ResponseError::InvalidProducerEpoch.code());
        }
        if batch.epoch > known.epoch {
            // A new epoch starts the count again, at 0.
            return if batch.first_sequence == 0 {
                Verdict::Append
            } else {
                Verdict::Refuse(ResponseError::OutOfOrderSequenceNumber.code())
            };
        }
        if let Some(&(_, _, offset)) = known
            .last
            .iter()
            .find(|(first, count, _)| *first == batch.first_sequence && *count == batch.count)
        {
            return Verdict::Duplicate(offset);
        }
        if batch.first_sequence == known.next {
            Verdict::Append
        } else {
            Verdict::Refuse(ResponseError::OutOfOrderSequenceNumber.code())
        }
    }
    // ANCHOR_END: verdict

    /// `batch` was appended in `partition` from `offset`.
    pub fn appended(&mut self, partition: (u32, u32), batch: &ProducerBatch, offset: u64) {
        let producers = self.partitions.entry(partition).or_default();
        let known = producers.entry(batch.producer_id).or_default();
        if batch.epoch != known.epoch {
            known.epoch = batch.epoch;
            known.last.clear();
        }
        // Sequences wrap at i32::MAX to 0 (Kafka's rule).
        known.next = batch.first_sequence.wrapping_add(batch.count) & i32::MAX;
        known
            .last
            .push_back((batch.first_sequence, batch.count, offset));
        if known.last.len() > REMEMBERED {
            known.last.pop_front();
        }
    }
}

/// The next producer id. Seeded from the start time, so that ids handed out
/// after a restart are not ones handed out before it (a producer keeps its
/// id across the broker's restart, and two must never share one).
#[derive(Debug)]
pub struct ProducerIds(AtomicI64);

impl ProducerIds {
    /// Ids from `start_ms << 20`: a million ids per millisecond of uptime
    /// before they could meet the next start's.
    pub fn starting_at(start_ms: u64) -> ProducerIds {
        let seed = i64::try_from(start_ms & ((1 << 43) - 1)).unwrap_or(0) << 20;
        ProducerIds(AtomicI64::new(seed))
    }

    fn next(&self) -> i64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

impl Handler {
    /// InitProducerId: a new producer id, or the same id with its epoch
    /// bumped when the producer asks for it (KIP-360). Transactional ids
    /// are refused: this broker has no transactions.
    pub fn init_producer_id(&self, request: InitProducerIdRequest) -> InitProducerIdResponse {
        let mut response = InitProducerIdResponse::default();
        if request.transactional_id.is_some() {
            response.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
            response.producer_id = ProducerId(-1);
            response.producer_epoch = -1;
            return response;
        }
        let ProducerId(id) = request.producer_id;
        if id >= 0 && request.producer_epoch >= 0 {
            response.producer_id = ProducerId(id);
            response.producer_epoch = request.producer_epoch.saturating_add(1);
        } else {
            response.producer_id = ProducerId(self.shared.producer_ids.next());
            response.producer_epoch = 0;
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first_sequence: i32, count: i32, epoch: i16) -> ProducerBatch {
        ProducerBatch {
            producer_id: 7,
            epoch,
            first_sequence,
            count,
        }
    }

    #[test]
    fn a_batch_sent_again_is_answered_with_its_first_offset_not_appended() {
        let mut producers = Producers::default();
        let at = (1, 0);
        assert_eq!(producers.verdict(at, &batch(0, 3, 0)), Verdict::Append);
        producers.appended(at, &batch(0, 3, 0), 100);
        assert_eq!(producers.verdict(at, &batch(3, 2, 0)), Verdict::Append);
        producers.appended(at, &batch(3, 2, 0), 103);
        // Both sent again: duplicates, with their offsets.
        assert_eq!(
            producers.verdict(at, &batch(0, 3, 0)),
            Verdict::Duplicate(100)
        );
        assert_eq!(
            producers.verdict(at, &batch(3, 2, 0)),
            Verdict::Duplicate(103)
        );
        // A gap, an old epoch.
        let out_of_order = ResponseError::OutOfOrderSequenceNumber.code();
        assert_eq!(
            producers.verdict(at, &batch(9, 1, 0)),
            Verdict::Refuse(out_of_order)
        );
        producers.appended(at, &batch(0, 1, 1), 105);
        let old = ResponseError::InvalidProducerEpoch.code();
        assert_eq!(producers.verdict(at, &batch(5, 1, 0)), Verdict::Refuse(old));
        // Another partition knows nothing of it.
        assert_eq!(producers.verdict((1, 1), &batch(40, 1, 0)), Verdict::Append);
    }

    #[test]
    fn only_the_last_batches_are_remembered() {
        let mut producers = Producers::default();
        for n in 0..=REMEMBERED as i32 {
            producers.appended((0, 0), &batch(n, 1, 0), n as u64);
        }
        let out_of_order = ResponseError::OutOfOrderSequenceNumber.code();
        assert_eq!(
            producers.verdict((0, 0), &batch(0, 1, 0)),
            Verdict::Refuse(out_of_order)
        );
        assert_eq!(
            producers.verdict((0, 0), &batch(1, 1, 0)),
            Verdict::Duplicate(1)
        );
    }
}
