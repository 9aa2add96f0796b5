//! What the broker promised, and the check of a restarted broker against it.
//!
//! The ledger holds, per partition, every offset the broker acknowledged
//! and the id it stored there. After each crash and restart, [`Ledger::verify`]
//! reads every partition from its first stored offset to its end and checks:
//!
//! - **nothing acknowledged is lost**: every acknowledged offset at or
//!   above the partition's first stored offset is there, holding the
//!   acknowledged id;
//! - **intact**: every record's checksum (checked by the poll's decoding)
//!   and its payload's own checksum and id (see `payload`);
//! - **dense**: offsets follow each other with no gap. Below the first
//!   stored offset, records may be gone, but only from the front: that is
//!   retention, and never a hole in the middle;
//! - **exactly once, in order**: no id appears twice, and each producer's
//!   sequence numbers rise with the offsets.
//!
//! A record that was never acknowledged (its batch was in flight when the
//! server died) may be there or not; once it has been served after a
//! restart it is adopted, and must stay, like any other record.
//!
//! Records below the first stored offset are excused as retention's only
//! when the server runs with retention: without it, the front of a
//! partition must stay where it is, and a missing front is a loss.
//! (Rejected: excusing the front always, which let a recovery that dropped
//! a whole first segment pass.)

use std::collections::{BTreeMap, HashMap, HashSet};

use rivulet_client::api::{PollBy, PollKind};
use rivulet_client::{Client, ClientError};
use rivulet_torture::Counts;

use crate::payload::{is_payload_of, producer_of, sequence_of};

/// The most failures described in the summary; the counts keep counting.
const MAX_DESCRIBED: usize = 25;

/// An offset's expected record.
#[derive(Debug, Clone, Copy)]
struct Expected {
    /// The message id stored there.
    id: u64,
    /// Acknowledged to a producer (else adopted after a restart served it).
    acked: bool,
    /// Seen intact after a crash that followed its acknowledgement.
    verified: bool,
}

impl Expected {
    /// How the record came to be promised, for a failure's description.
    fn promise(&self) -> &'static str {
        if self.acked {
            "acknowledged"
        } else {
            "served before"
        }
    }
}

/// One partition's promises.
#[derive(Debug, Default)]
struct PartitionLedger {
    expected: BTreeMap<u64, Expected>,
    /// The first offset stored at the last check (retention moves it up).
    first: u64,
}

/// The promises and what the checks found.
#[derive(Debug)]
pub struct Ledger {
    topic: u32,
    /// Whether the server deletes old segments (else the front must stay).
    retention: bool,
    partitions: Vec<PartitionLedger>,
    /// The counts so far.
    pub counts: Counts,
    /// What failed, described (the first few).
    pub failures: Vec<String>,
}

impl Ledger {
    /// An empty ledger for `partitions` partitions of `topic`, on a server
    /// that deletes old segments if `retention`.
    pub fn new(topic: u32, partitions: u32, retention: bool) -> Ledger {
        Ledger {
            topic,
            retention,
            partitions: (0..partitions)
                .map(|_| PartitionLedger::default())
                .collect(),
            counts: Counts::default(),
            failures: Vec::new(),
        }
    }

    fn fail(&mut self, message: String) {
        if self.failures.len() < MAX_DESCRIBED {
            eprintln!("FAILURE: {message}");
            self.failures.push(message);
        }
    }

    /// Records an acknowledgement: `ids` stored from `first_offset` on.
    pub fn acknowledged(&mut self, partition: u32, first_offset: u64, ids: &[u64]) {
        let mut clashes = Vec::new();
        let Some(ledger) = self.partitions.get_mut(partition as usize) else {
            self.fail(format!(
                "acknowledged for partition {partition}, not in the topic"
            ));
            return;
        };
        for (offset, &id) in (first_offset..).zip(ids) {
            let entry = Expected {
                id,
                acked: true,
                verified: false,
            };
            // An adopted record at that offset with the same id is this
            // very batch, acknowledged late: keep it once.
            match ledger.expected.insert(offset, entry) {
                Some(old) if old.id != id => clashes.push((offset, old.id, id)),
                _ => {}
            }
        }
        self.counts.acknowledged += ids.len() as u64;
        for (offset, old, new) in clashes {
            self.counts.order_violations += 1;
            self.fail(format!(
                "partition {partition}: offset {offset} acknowledged for id {new:#x}, \
                 but id {old:#x} was there already"
            ));
        }
    }

    /// Reads every partition back and checks it against the promises.
    pub fn verify(&mut self, conn: &mut Client) -> Result<(), ClientError> {
        for partition in 0..self.partitions.len() as u32 {
            self.verify_partition(conn, partition)?;
        }
        Ok(())
    }

    /// The first stored offset, asked of the server: a poll at offset 0
    /// answers from the first stored record, or, where the server refuses
    /// offsets below its first, `POLL_BY first` says where it is.
    fn first_stored(&self, conn: &mut Client, partition: u32) -> Result<Option<u64>, ClientError> {
        match conn.poll(self.topic, partition, 0, 1) {
            Ok(records) => Ok(records.first().map(|r| r.offset)),
            Err(ClientError::Server { .. }) => {
                let first = PollBy {
                    topic: self.topic,
                    partition,
                    kind: PollKind::First,
                    count: 1,
                    consumer: String::new(),
                    auto_commit: false,
                };
                Ok(conn.poll_by(&first)?.first().map(|r| r.offset))
            }
            Err(error) => Err(error),
        }
    }

    fn verify_partition(&mut self, conn: &mut Client, partition: u32) -> Result<(), ClientError> {
        let topic = self.topic;
        let first = self.first_stored(conn, partition)?;
        let mut next = first.unwrap_or(0);
        let mut seen_ids = HashSet::new();
        let mut last_sequence: HashMap<u64, u64> = HashMap::new();
        let mut found: BTreeMap<u64, u64> = BTreeMap::new();
        let mut problems = Vec::new();
        let mut first = first;
        'read: loop {
            let records = conn.poll(topic, partition, next, 1000)?;
            if records.is_empty() {
                break;
            }
            for record in records {
                if record.offset != next {
                    // A gap: retention may have moved the front past it
                    // while we read; otherwise it is a hole.
                    let now_first = self.first_stored(conn, partition)?;
                    if record.offset > next && now_first.is_some_and(|f| f >= record.offset) {
                        first = now_first;
                        found.retain(|&offset, _| offset >= record.offset);
                    } else {
                        problems.push((
                            Problem::Order,
                            format!(
                                "partition {partition}: expected offset {next}, got {} \
                                 (first stored {now_first:?})",
                                record.offset
                            ),
                        ));
                        if record.offset < next {
                            break 'read; // going backwards: nothing after it can be trusted
                        }
                    }
                }
                next = record.offset + 1;
                self.counts.records_checked += 1;
                if !is_payload_of(record.id, &record.payload) {
                    problems.push((
                        Problem::Corrupt,
                        format!(
                            "partition {partition} offset {}: payload is not id {:#x}'s",
                            record.offset, record.id
                        ),
                    ));
                }
                if !seen_ids.insert(record.id) {
                    problems.push((
                        Problem::Duplicate,
                        format!(
                            "partition {partition}: id {:#x} stored twice (again at {})",
                            record.id, record.offset
                        ),
                    ));
                }
                let producer = producer_of(record.id);
                let sequence = sequence_of(record.id);
                if let Some(&before) = last_sequence.get(&producer)
                    && before >= sequence
                {
                    problems.push((
                        Problem::Order,
                        format!(
                            "partition {partition}: producer {producer}'s message {sequence} \
                             at offset {} after its message {before}",
                            record.offset
                        ),
                    ));
                }
                last_sequence.insert(producer, sequence);
                found.insert(record.offset, record.id);
            }
        }
        let first = first.unwrap_or(next);
        self.settle(partition, first, &found, problems);
        Ok(())
    }

    /// Compares what a partition holds (`found`, from `first` on) with what
    /// was promised, and counts.
    fn settle(
        &mut self,
        partition: u32,
        first: u64,
        found: &BTreeMap<u64, u64>,
        problems: Vec<(Problem, String)>,
    ) {
        for (problem, message) in problems {
            match problem {
                Problem::Corrupt => self.counts.corrupt += 1,
                Problem::Duplicate => self.counts.duplicates += 1,
                Problem::Order => self.counts.order_violations += 1,
            }
            self.fail(message);
        }
        let ledger = &mut self.partitions[partition as usize];
        if first < ledger.first {
            self.counts.first_offset_moved_down += 1;
        }
        ledger.first = first;
        let mut messages = Vec::new();
        let mut lost = Vec::new();
        // Below the first stored offset: gone by retention, if it is on.
        let kept = ledger.expected.split_off(&first);
        for (offset, expected) in std::mem::replace(&mut ledger.expected, kept) {
            if !self.retention {
                messages.push(format!(
                    "partition {partition} offset {offset}: id {:#x} {} is gone from the \
                     front (first stored offset {first}) with retention off",
                    expected.id,
                    expected.promise()
                ));
            } else if expected.acked && !expected.verified {
                self.counts.removed_by_retention_unverified += 1;
            }
        }
        for (&offset, expected) in ledger.expected.iter_mut() {
            let found_there = match found.get(&offset) {
                Some(&id) if id == expected.id => {
                    if expected.acked && !expected.verified {
                        self.counts.verified += 1;
                    }
                    expected.verified = true;
                    continue;
                }
                Some(&id) => format!("found id {id:#x}"),
                None => "is missing".to_string(),
            };
            lost.push(offset);
            messages.push(format!(
                "partition {partition} offset {offset}: id {:#x} {}, {found_there}",
                expected.id,
                expected.promise()
            ));
        }
        for offset in lost {
            // Counted once: the next check compares against what is there now.
            ledger.expected.remove(&offset);
        }
        self.counts.losses += messages.len() as u64;
        // What is there and was never promised: in flight at the kill.
        for (&offset, &id) in found {
            if let std::collections::btree_map::Entry::Vacant(entry) = ledger.expected.entry(offset)
            {
                entry.insert(Expected {
                    id,
                    acked: false,
                    verified: true,
                });
                self.counts.unacknowledged_survivors += 1;
            }
        }
        for message in messages {
            self.fail(message);
        }
    }

    /// Records the ledger expects to be stored now (retention's deletions
    /// taken off), for the driver's log.
    pub fn stored(&self) -> u64 {
        self.partitions
            .iter()
            .map(|p| p.expected.len() as u64)
            .sum()
    }

    /// Notes a failure found elsewhere (a consumer offset, an ack that was
    /// not durable).
    pub fn other_failure(&mut self, message: String) {
        self.fail(message);
    }
}

/// The kinds of problem a read finds.
enum Problem {
    Corrupt,
    Duplicate,
    Order,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ledger of one partition with ids 10, 11, 12, 13 acknowledged at
    /// offsets 0 to 3, settled against a server holding `found` from `first`.
    fn settled(retention: bool, first: u64, found: &[(u64, u64)]) -> Counts {
        let mut ledger = Ledger::new(1, 1, retention);
        ledger.acknowledged(0, 0, &[10, 11, 12, 13]);
        let found: BTreeMap<u64, u64> = found.iter().copied().collect();
        ledger.settle(0, first, &found, Vec::new());
        ledger.counts
    }

    #[test]
    fn ledger_counts_every_acknowledged_record_found_as_verified() {
        let counts = settled(false, 0, &[(0, 10), (1, 11), (2, 12), (3, 13)]);
        assert_eq!((counts.verified, counts.losses), (4, 0));
    }

    #[test]
    fn ledger_a_missing_or_replaced_record_is_a_loss() {
        let counts = settled(false, 0, &[(0, 10), (1, 99), (3, 13)]);
        assert_eq!((counts.verified, counts.losses), (2, 2));
    }

    #[test]
    fn ledger_a_missing_front_is_retention_only_when_retention_is_on() {
        let rest = [(2, 12), (3, 13)];
        let with = settled(true, 2, &rest);
        assert_eq!((with.removed_by_retention_unverified, with.losses), (2, 0));
        let without = settled(false, 2, &rest);
        assert_eq!(
            (without.removed_by_retention_unverified, without.losses),
            (0, 2)
        );
    }
}
