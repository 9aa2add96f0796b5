//! A consumer group's member, over the blocking [`Client`]: it joins, polls
//! its partitions in turn, commits what the caller processed, heartbeats
//! between polls, and joins again when the group rebalances.
//!
//! ```no_run
//! use rivulet_client::{Client, GroupConsumer, GroupOptions, api::TopicRef};
//!
//! # fn main() -> Result<(), rivulet_client::ClientError> {
//! let client = Client::connect("127.0.0.1:7406")?;
//! let topic = TopicRef::Name("orders".into());
//! let mut consumer = GroupConsumer::join(client, "billing", topic, GroupOptions::default())?;
//! loop {
//!     match consumer.poll()? {
//!         Some(batch) => {
//!             for record in &batch.records {
//!                 println!("{} {}", batch.partition, record.offset); // process it
//!             }
//!             consumer.commit()?; // at least once: after processing
//!         }
//!         None => std::thread::sleep(std::time::Duration::from_millis(100)),
//!     }
//! }
//! # }
//! ```
//!
//! **At least once.** A batch [`GroupConsumer::poll`] returned counts as
//! processed once the caller calls [`GroupConsumer::commit`] or `poll` again;
//! only processed positions are ever committed. A member that dies before
//! committing has its uncommitted batches read again by the partition's next
//! owner: those duplicates are the whole of the "uncommitted window".
//!
//! **Heartbeats.** The client is blocking and single-threaded, so there is no
//! heartbeat thread: `poll` (and [`GroupConsumer::heartbeat_if_due`], for a
//! caller that waits or works long between polls) sends one when a third of
//! the session timeout has passed since the last. A caller that does not
//! come back within the session timeout is removed from the group, and its
//! partitions go to the others.
//!
//! **Rebalances.** A heartbeat or poll answered `REBALANCING` makes the
//! member commit what it processed, join again (the answer waits until every
//! member has), and go on with its new partitions from their committed
//! offsets. `STALE_GENERATION` (it was replaced) and `UNKNOWN_MEMBER` (its
//! session ended) make it join again without committing: its uncommitted
//! work belongs to the new owner now.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rivulet_broker::api::{self, TopicRef, status};

use crate::{Client, ClientError, Record};

/// How a [`GroupConsumer`] joins and polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOptions {
    /// No heartbeat for this long ends the membership (1 s to 300 s).
    pub session_timeout: Duration,
    /// At most this many records per poll.
    pub count: u32,
    /// How the member names itself (its id is `<client_id>-<n>`); the
    /// server's default (`rivulet`) if `None`.
    pub client_id: Option<String>,
}

impl Default for GroupOptions {
    /// A 10 s session, 100 records a poll.
    fn default() -> GroupOptions {
        GroupOptions {
            session_timeout: Duration::from_secs(10),
            count: 100,
            client_id: None,
        }
    }
}

/// Records from one of the member's partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The partition.
    pub partition: u32,
    /// In offset order; never empty.
    pub records: Vec<Record>,
}

/// What the member must do before its next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rejoin {
    /// Nothing: its generation stands.
    No,
    /// The group is rebalancing: commit what was processed, join again.
    Rebalance,
    /// Its generation is gone: join again with its id.
    Stale,
    /// It is no member any more: join again as a new one.
    New,
}

/// One member of a consumer group (see the module documentation).
#[derive(Debug)]
pub struct GroupConsumer {
    client: Client,
    group: String,
    topic: TopicRef,
    options: GroupOptions,
    member: Option<String>,
    generation: i32,
    topic_id: u32,
    partitions: Vec<u32>,
    /// Where the next round of polls starts in `partitions`.
    cursor: usize,
    /// Per partition, the offset after the last record `poll` returned.
    delivered: BTreeMap<u32, u64>,
    /// Per partition, the offset after the last record processed.
    processed: BTreeMap<u32, u64>,
    /// Per partition, the offset last committed by this member.
    committed: BTreeMap<u32, u64>,
    last_heartbeat: Instant,
    rejoin: Rejoin,
    joins: u64,
}

impl GroupConsumer {
    /// Joins `group` as a new member reading `topic`, over `client`, and
    /// waits for the group's rebalance to hand it its partitions.
    pub fn join(
        client: Client,
        group: &str,
        topic: TopicRef,
        options: GroupOptions,
    ) -> Result<GroupConsumer, ClientError> {
        let mut consumer = GroupConsumer {
            client,
            group: group.to_string(),
            topic,
            options,
            member: None,
            generation: 0,
            topic_id: 0,
            partitions: Vec::new(),
            cursor: 0,
            delivered: BTreeMap::new(),
            processed: BTreeMap::new(),
            committed: BTreeMap::new(),
            last_heartbeat: Instant::now(),
            rejoin: Rejoin::New,
            joins: 0,
        };
        consumer.join_again()?;
        Ok(consumer)
    }

    /// The group's name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// This member's id (the server's).
    pub fn member(&self) -> &str {
        self.member.as_deref().unwrap_or_default()
    }

    /// The generation this member is in.
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// The topic's id.
    pub fn topic_id(&self) -> u32 {
        self.topic_id
    }

    /// This member's partitions in its generation.
    pub fn partitions(&self) -> &[u32] {
        &self.partitions
    }

    /// How many times it has joined (1 after [`GroupConsumer::join`]; one
    /// more for each rebalance it went through).
    pub fn joins(&self) -> u64 {
        self.joins
    }

    /// The connection, for other requests between polls.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    // ANCHOR: poll
    /// The next records of one of its partitions, taken in turn; `None` when
    /// none of them has any now (wait a little, and poll again). Calling it
    /// again means the batch it returned before was processed. Heartbeats
    /// when one is due, and joins again when the group says so.
    pub fn poll(&mut self) -> Result<Option<Batch>, ClientError> {
        self.processed.extend(&self.delivered);
        self.heartbeat_if_due()?;
        let (mut tried, mut joined) = (0, 0);
        while tried < self.partitions.len() {
            if self.rejoin != Rejoin::No {
                // Twice in one call is a group in turmoil: let the caller
                // breathe (and see `joins` move) before trying again.
                if joined == 2 {
                    return Ok(None);
                }
                self.join_again()?;
                (tried, joined) = (0, joined + 1);
                continue;
            }
            let partition = self.partitions[self.cursor % self.partitions.len()];
            self.cursor = (self.cursor + 1) % self.partitions.len();
            tried += 1;
            let request = api::GroupPoll {
                group: self.group.clone(),
                member: self.member().to_string(),
                generation: self.generation,
                topic: TopicRef::Id(self.topic_id),
                partition,
                // After what it was given, even if not committed yet; else
                // where the group committed.
                offset: self.delivered.get(&partition).copied(),
                count: self.options.count,
            };
            match self.client.group_poll(&request) {
                Ok(records) => {
                    if let Some(last) = records.last() {
                        let next = last.offset.saturating_add(1);
                        self.delivered.insert(partition, next);
                        return Ok(Some(Batch { partition, records }));
                    }
                }
                Err(error) => self.refused(error)?,
            }
            if tried == self.partitions.len() {
                self.heartbeat_if_due()?;
            }
        }
        if self.rejoin != Rejoin::No {
            self.join_again()?;
        }
        Ok(None)
    }
    // ANCHOR_END: poll

    /// Commits every batch [`GroupConsumer::poll`] returned (they count as
    /// processed now). `Ok(false)` if the group refused because this member
    /// was replaced or the group moved on: it joins again at the next poll,
    /// and those records may be read again, by it or by another member.
    pub fn commit(&mut self) -> Result<bool, ClientError> {
        self.processed.extend(&self.delivered);
        self.commit_processed()
    }

    /// Commits the processed positions not committed yet.
    fn commit_processed(&mut self) -> Result<bool, ClientError> {
        let due: Vec<(u32, u64)> = self
            .processed
            .iter()
            .filter(|(partition, offset)| self.committed.get(partition) != Some(offset))
            .map(|(partition, offset)| (*partition, *offset))
            .collect();
        for (partition, offset) in due {
            let request = api::CommitOffset {
                group: self.group.clone(),
                member: self.member().to_string(),
                generation: self.generation,
                topic: TopicRef::Id(self.topic_id),
                partition,
                offset,
            };
            match self.client.commit_offset(&request) {
                Ok(()) => {
                    self.committed.insert(partition, offset);
                }
                Err(error) => {
                    self.refused(error)?;
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Sends a heartbeat if a third of the session timeout has passed since
    /// the last; a caller that waits or works long between polls calls it.
    pub fn heartbeat_if_due(&mut self) -> Result<(), ClientError> {
        if self.last_heartbeat.elapsed() < self.options.session_timeout / 3 {
            return Ok(());
        }
        self.heartbeat()
    }

    /// Sends a heartbeat now; if the group is rebalancing, commits what was
    /// processed and joins again.
    pub fn heartbeat(&mut self) -> Result<(), ClientError> {
        let member = self.member().to_string();
        match self.client.heartbeat(&self.group, &member, self.generation) {
            Ok(()) => self.last_heartbeat = Instant::now(),
            Err(error) => self.refused(error)?,
        }
        if self.rejoin != Rejoin::No {
            self.join_again()?;
        }
        Ok(())
    }

    /// Commits what was processed and leaves the group: its partitions go
    /// to the others at once, not after its session timeout.
    pub fn leave(mut self) -> Result<Client, ClientError> {
        self.processed.extend(&self.delivered);
        // While its generation stands (rebalancing or not), what it
        // processed is committed; a refusal leaves it to the next owner.
        if matches!(self.rejoin, Rejoin::No | Rejoin::Rebalance) {
            self.commit_processed()?;
        }
        let member = self.member().to_string();
        match self.client.leave_group(&self.group, &member) {
            // Already out of the group: nothing left to leave.
            Err(error) if error.status() == Some(status::UNKNOWN_MEMBER) => {}
            other => other?,
        }
        Ok(self.client)
    }

    // ANCHOR: refused
    /// A refusal the member handles by joining again (on its next step);
    /// any other error is the caller's.
    fn refused(&mut self, error: ClientError) -> Result<(), ClientError> {
        self.rejoin = match error.status() {
            Some(status::REBALANCING) => Rejoin::Rebalance,
            Some(status::STALE_GENERATION | status::NOT_ASSIGNED) => Rejoin::Stale,
            Some(status::UNKNOWN_MEMBER) => Rejoin::New,
            _ => return Err(error),
        };
        Ok(())
    }

    /// Joins again: after a rebalance's notice it first commits what it
    /// processed (the group takes commits of the old generation until the
    /// new one begins); then every position is the group's committed one.
    fn join_again(&mut self) -> Result<(), ClientError> {
        if self.rejoin == Rejoin::Rebalance {
            self.rejoin = Rejoin::No;
            // A refusal here (the generation ended meanwhile) leaves the
            // records to be read again: at least once.
            self.commit_processed()?;
        }
        if self.rejoin == Rejoin::New {
            self.member = None;
        }
        let mut request = api::JoinGroup {
            group: self.group.clone(),
            topic: self.topic.clone(),
            session_timeout_ms: u64::try_from(self.options.session_timeout.as_millis())
                .unwrap_or(u64::MAX),
            member: self.member.clone(),
            client_id: self.options.client_id.clone(),
        };
        let joined = match self.client.join_group(&request) {
            // Its session ended while it was away: join as a new member.
            Err(error) if error.status() == Some(status::UNKNOWN_MEMBER) => {
                request.member = None;
                self.client.join_group(&request)?
            }
            other => other?,
        };
        self.member = Some(joined.member);
        self.generation = joined.generation;
        self.topic_id = joined.topic;
        self.partitions = joined.partitions;
        self.cursor = 0;
        self.delivered.clear();
        self.processed.clear();
        self.committed.clear();
        self.last_heartbeat = Instant::now();
        self.rejoin = Rejoin::No;
        self.joins += 1;
        Ok(())
    }
    // ANCHOR_END: refused
}
