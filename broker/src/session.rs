//! The broker's side of a connection: every frame is seen here first
//! (`stage6_broker::shards::extension::Session`). The broker's own commands
//! are answered here; stage 4's three are checked against access control
//! and handed to the engine.
//!
//! How each is served:
//! - metadata commands (streams, topics, stage 4's create-topic) go to shard
//!   0's metadata writer ([`crate::admin`]), whichever shard this is;
//! - polls by position, stored offsets and a partition's state are jobs run
//!   by the partition's owner ([`crate::jobs`]);
//! - consumer group commands go to the group's coordinator, on the shard
//!   its name hashes to, and then (a group's poll or commit) to the
//!   partition's owner ([`crate::groups::rivulet`]);
//! - produce and poll by offset are the engine's.
//!
//! Each session counts nothing itself: the engine tells the broker's
//! metrics what it appended and returned ([`crate::server`]), and a poll by
//! position is counted through the engine's [`Connection::polled`]. Failed
//! logins are the exception: only the session sees them.
//!
//! Failed logins are limited, when access control is on ([`LoginLimits`]):
//! a connection is closed after a few, and an address that failed too many
//! in the last minute has every login refused until the minute is over
//! ([`LoginGuard`]), so guessing costs a connection per few guesses and is
//! capped per address. Each failure is counted in the metrics, and the WARN
//! line that says so is written at most once a second, with the count of
//! the ones it stands for: a client that can fail as fast as it can send
//! must not be able to fill the log. Deliberate simplifications: the table
//! of addresses is bounded ([`MAX_PEERS_TRACKED`]; when it is full of
//! addresses still within their minute, new ones are not tracked, so the
//! per-connection limit is all that holds them), and a legitimate user
//! behind the same address as a guesser is refused with it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future::LocalBoxFuture;
use stage6_broker::PartitionInfo;
use stage6_broker::shards::connection::{Connection, MAX_POLL_RECORDS};
use stage6_broker::shards::extension::{Answer, Served, Session};
use stage6_broker::shards::frame::Frame;
use stage6_broker::shards::limits::{LogEvery, and_more};
use stage6_broker::shards::protocol::Request as EngineRequest;
use stage6_broker::shards::router::owner;
use stage6_broker::shards::shard::{ShardState, TopicMeta, storage_stopped};
use stage6_broker::shards::wire::{WireError, status};
use tracing::{info, warn};

use crate::admin::{AdminRequest, Answered};
use crate::api::{self, TopicRef};
use crate::auth::{Action, AuthConfig};
use crate::groups::rivulet as groups;
use crate::jobs::{self, Done};
use crate::requests::{Admin, Request};
use crate::server::Shared;

/// One connection's session: who logged in, and its channels for answers.
pub struct BrokerSession {
    shard: Rc<ShardState>,
    shared: Arc<Shared>,
    /// Who logged in on this connection, when access control is on.
    user: Option<usize>,
    /// Failed logins on this connection.
    login_failures: u32,
    /// Answers of jobs other than polls (one request in flight: one slot).
    done_to: jobs::DoneTo,
    done: flume::Receiver<Result<Done, WireError>>,
    /// Answers of the metadata writer.
    admin_to: flume::Sender<Result<Answered, WireError>>,
    admin: flume::Receiver<Result<Answered, WireError>>,
}

impl BrokerSession {
    /// A session on `shard`.
    pub fn new(shard: &Rc<ShardState>, shared: Arc<Shared>) -> BrokerSession {
        let (done_to, done) = flume::bounded(1);
        let (admin_to, admin) = flume::bounded(1);
        BrokerSession {
            shard: Rc::clone(shard),
            shared,
            user: None,
            login_failures: 0,
            done_to,
            done,
            admin_to,
            admin,
        }
    }
}

/// Which of the two protocols' requests a frame holds.
enum Decoded {
    Engine(EngineRequest),
    Broker(Request),
}

impl Session for BrokerSession {
    fn serve<'a>(
        &'a mut self,
        connection: &'a mut Connection,
        frame: Frame,
    ) -> LocalBoxFuture<'a, Served> {
        Box::pin(async move {
            let decoded = match decode(frame) {
                Ok(decoded) => decoded,
                Err(error) => return Served::Close(error),
            };
            let shared = Arc::clone(&self.shared);
            let gated = match &shared.auth {
                Some(auth) => {
                    if let Decoded::Broker(Request::Login(login)) = &decoded {
                        let peer = connection.peer().ip();
                        return self.login(auth, login, peer, Instant::now());
                    }
                    self.gate(auth, &decoded)
                }
                None => Ok(None),
            };
            let answer = match gated {
                Ok(None) => self.handle(connection, decoded).await,
                Ok(Some(body)) => Ok(Answer::Whole(body)),
                Err(error) => Err(error),
            };
            Served::Answer(answer)
        })
    }
}

/// The frame's request, or the error that closes the connection: a body
/// that cannot be trusted, or a code neither protocol knows.
fn decode(frame: Frame) -> Result<Decoded, WireError> {
    let malformed =
        |error: &dyn std::fmt::Display| WireError::new(status::MALFORMED, error.to_string());
    if let Some(request) = Request::decode(frame.code, &frame.body) {
        return request
            .map(Decoded::Broker)
            .map_err(|error| malformed(&error));
    }
    match EngineRequest::decode(frame.code, frame.body) {
        Some(Ok(request)) => Ok(Decoded::Engine(request)),
        Some(Err(error)) => Err(malformed(&error)),
        None => Err(WireError::new(
            status::UNKNOWN_COMMAND,
            format!("unknown command code {}", frame.code),
        )),
    }
}

impl BrokerSession {
    // ANCHOR: handle
    /// Serves one request: metadata commands on shard 0's writer, topic
    /// lookups from the shard's own copy, storage from the partition's
    /// owner, wherever it runs.
    async fn handle(
        &mut self,
        connection: &mut Connection,
        request: Decoded,
    ) -> Result<Answer, WireError> {
        let request = match request {
            // Stage 4's create-topic names the topic in the metadata too.
            Decoded::Engine(EngineRequest::CreateTopic { topic, partitions }) => {
                return self
                    .admin(Admin::CreateTopicById { topic, partitions })
                    .await;
            }
            Decoded::Engine(request) => return connection.serve(request).await,
            Decoded::Broker(request) => request,
        };
        match request {
            Request::Admin(request) => self.admin(request).await,
            Request::PollBy(poll) => {
                connection.check_partition(poll.topic, poll.partition)?;
                if !poll.consumer.is_empty() {
                    api::check_name("consumer", &poll.consumer).map_err(WireError::invalid)?;
                } else if poll.kind == api::PollKind::Next || poll.auto_commit {
                    return Err(WireError::invalid(
                        "a poll of the next records, or with auto-commit, needs a consumer name",
                    ));
                }
                let job = jobs::PollBy {
                    kind: poll.kind,
                    count: u64::from(poll.count.min(MAX_POLL_RECORDS)),
                    consumer: poll.consumer,
                    auto_commit: poll.auto_commit,
                    buf: connection.buffer()?,
                    reply: connection.reply_to(),
                };
                self.shard
                    .run_on((poll.topic, poll.partition), Box::new(job));
                let reply = connection.reply().await?;
                connection.polled(poll.topic, reply)
            }
            Request::StoreOffset(store) => {
                api::check_name("consumer", &store.consumer).map_err(WireError::invalid)?;
                let (id, _) = find(&self.shard, &store.topic)?;
                connection.check_partition(id, store.partition)?;
                let job = jobs::StoreOffset {
                    consumer: store.consumer,
                    offset: store.offset,
                    done: self.done_to.clone(),
                };
                match self.run((id, store.partition), Box::new(job)).await? {
                    Done::Stored => json(&api::Empty {}),
                    _ => Err(storage_stopped()),
                }
            }
            Request::GetOffsets(get) => self.get_offsets(get).await,
            Request::DescribeTopic(reference) => self.describe(reference).await,
            Request::Stats => json(&self.stats()),
            // Access control is not on: every connection may do everything.
            Request::Login(_) => json(&api::Empty {}),
            Request::JoinGroup(join) => groups::join(&self.shard, connection.peer(), join).await,
            Request::Heartbeat(beat) => {
                let may_consume = self.may_consume();
                groups::heartbeat(&self.shard, beat, may_consume.as_deref()).await
            }
            Request::LeaveGroup(leave) => {
                let may_consume = self.may_consume();
                groups::leave(&self.shard, leave, may_consume.as_deref()).await
            }
            Request::GroupPoll(poll) => groups::poll(&self.shard, connection, poll).await,
            Request::CommitOffset(commit) => {
                let metrics = &self.shared.metrics;
                groups::commit_offset(&self.shard, connection, metrics, commit).await
            }
            Request::ListGroups => groups::list(&self.shard).await,
            Request::DescribeGroup(group) => {
                let may_consume = self.may_consume();
                groups::describe(&self.shard, group, may_consume.as_deref()).await
            }
        }
    }
    // ANCHOR_END: handle

    /// With access control on, the check that the logged-in user may
    /// consume from a topic (by name), for the group commands that learn
    /// their topic from the group; `None` when access control is off.
    fn may_consume(&self) -> Option<groups::ConsumeCheck<'_>> {
        let auth = self.shared.auth.as_ref()?;
        let who = self.user?;
        Some(Box::new(move |topic: &str| {
            if auth.allows(who, Action::Consume(topic)) {
                Ok(())
            } else {
                Err(forbidden(
                    auth,
                    who,
                    &format!("consume from topic {topic:?}"),
                ))
            }
        }))
    }

    /// Runs `job` on the partition's owner and waits for its answer.
    async fn run(
        &self,
        key: (u32, u32),
        job: Box<dyn stage6_broker::shards::extension::PartitionJob>,
    ) -> Result<Done, WireError> {
        self.shard.run_on(key, job);
        self.done
            .recv_async()
            .await
            .map_err(|_| storage_stopped())?
    }

    /// Hands a metadata command to shard 0's writer and waits for its answer.
    async fn admin(&self, request: Admin) -> Result<Answer, WireError> {
        match self.ask_writer(request).await? {
            Answered::Body(body) => Ok(Answer::Whole(body)),
            Answered::Topic(topic) => json(&topic),
        }
    }

    async fn ask_writer(&self, request: Admin) -> Result<Answered, WireError> {
        let message: AdminRequest = (request, self.admin_to.clone());
        self.shared
            .admin
            .send(message)
            .map_err(|_| storage_stopped())?;
        self.admin
            .recv_async()
            .await
            .map_err(|_| storage_stopped())?
    }

    /// A consumer's offsets in every partition of a topic, asked one
    /// partition at a time: the session's answer channel has one slot.
    async fn get_offsets(&self, get: api::GetOffsets) -> Result<Answer, WireError> {
        api::check_name("consumer", &get.consumer).map_err(WireError::invalid)?;
        let (id, meta) = find(&self.shard, &get.topic)?;
        let mut partitions = Vec::with_capacity(meta.partitions as usize);
        for partition in 0..meta.partitions {
            let job = jobs::GetOffset {
                consumer: get.consumer.clone(),
                done: self.done_to.clone(),
            };
            let Done::Offset(offset) = self.run((id, partition), Box::new(job)).await? else {
                return Err(storage_stopped());
            };
            partitions.push(offset);
        }
        json(&api::ConsumerOffsets {
            consumer: get.consumer,
            topic: id,
            partitions,
        })
    }

    /// A topic as the metadata holds it, with each partition's state from
    /// its owner.
    async fn describe(&self, reference: TopicRef) -> Result<Answer, WireError> {
        let Answered::Topic(mut info) = self.ask_writer(Admin::Describe(reference)).await? else {
            return Err(storage_stopped());
        };
        for partition in 0..info.partitions {
            let job = jobs::Describe {
                done: self.done_to.clone(),
            };
            let state = match self.run((info.id, partition), Box::new(job)).await {
                Ok(Done::Described(state)) => state,
                // A partition that could not be opened at start: shown failed,
                // with why and how to repair it, beside the healthy ones.
                Err(error) if error.status == status::PARTITION_FAILED => PartitionInfo {
                    partition,
                    shard: u32::try_from(owner(info.id, partition, self.shard.shards()))
                        .unwrap_or(u32::MAX),
                    failed: Some(error.message),
                    ..PartitionInfo::default()
                },
                Ok(_) => return Err(storage_stopped()),
                Err(error) => return Err(error),
            };
            info.partition_info.push(state);
        }
        json(&info)
    }

    /// The server's counters: every shard's summed, and this shard's copy of
    /// the topics.
    fn stats(&self) -> api::Stats {
        let metrics = &self.shared.metrics;
        let mut stats = api::Stats {
            uptime_seconds: metrics.started.elapsed().as_secs(),
            shards: u32::try_from(self.shard.shards()).unwrap_or(u32::MAX),
            io_driver: self.shard.driver().to_string(),
            connections: metrics.connections(),
            topics: u32::try_from(self.shard.topic_count()).unwrap_or(u32::MAX),
            ..api::Stats::default()
        };
        for counters in metrics.topic_totals().values() {
            stats.messages_in += counters.messages_in;
            stats.bytes_in += counters.bytes_in;
            stats.messages_out += counters.messages_out;
            stats.bytes_out += counters.bytes_out;
        }
        stats
    }

    // ANCHOR: gate
    /// Access control, when it is on: anything but a login (answered by
    /// [`BrokerSession::login`]) needs one, and the permission its topic
    /// asks for. `Ok(None)`: go ahead.
    fn gate(&mut self, auth: &AuthConfig, request: &Decoded) -> Result<Option<Vec<u8>>, WireError> {
        let Some(who) = self.user else {
            return Err(WireError::new(
                api::status::UNAUTHENTICATED,
                "access control is on: log in first (LOGIN, code 31)",
            ));
        };
        let name_of = |topic: u32| self.shard.topic(topic).ok().map(|meta| meta.name.clone());
        let named = |reference: &TopicRef| {
            find(&self.shard, reference)
                .ok()
                .map(|(_, meta)| meta.name.clone())
        };
        // The topic's name, and whether the request writes to it.
        let (topic, produce) = match request {
            Decoded::Engine(EngineRequest::Produce { topic, .. }) => (name_of(*topic), true),
            Decoded::Engine(EngineRequest::Poll { topic, .. }) => (name_of(*topic), false),
            Decoded::Broker(Request::PollBy(poll)) => (name_of(poll.topic), false),
            Decoded::Broker(Request::StoreOffset(store)) => (named(&store.topic), false),
            Decoded::Broker(Request::GetOffsets(get)) => (named(&get.topic), false),
            // A group's members consume its topic; a heartbeat or leave
            // names none, and is checked against the group's own topic
            // when served ([`BrokerSession::may_consume`]).
            Decoded::Broker(Request::JoinGroup(join)) => (named(&join.topic), false),
            Decoded::Broker(Request::GroupPoll(poll)) => (named(&poll.topic), false),
            Decoded::Broker(Request::CommitOffset(commit)) => (named(&commit.topic), false),
            Decoded::Engine(EngineRequest::CreateTopic { .. })
            | Decoded::Broker(Request::Admin(
                Admin::CreateTopicById { .. }
                | Admin::CreateStream(_)
                | Admin::DeleteStream(_)
                | Admin::CreateTopic(_)
                | Admin::DeleteTopic(_),
            )) => {
                if auth.allows(who, Action::Admin) {
                    return Ok(None);
                }
                return Err(forbidden(auth, who, "create or delete streams and topics"));
            }
            Decoded::Broker(
                Request::Admin(Admin::ListStreams | Admin::ListTopics(_) | Admin::Describe(_))
                | Request::DescribeTopic(_)
                | Request::Stats
                | Request::Login(_)
                | Request::Heartbeat(_)
                | Request::LeaveGroup(_)
                | Request::ListGroups
                | Request::DescribeGroup(_),
            ) => return Ok(None),
        };
        // A topic that does not exist is let through: the request gets
        // `TopicNotFound` as it would anyway.
        let Some(topic) = topic else {
            return Ok(None);
        };
        let (action, verb) = if produce {
            (Action::Produce(&topic), "produce to")
        } else {
            (Action::Consume(&topic), "consume from")
        };
        if auth.allows(who, action) {
            return Ok(None);
        }
        Err(forbidden(auth, who, &format!("{verb} topic {topic:?}")))
    }
}

impl BrokerSession {
    // ANCHOR: login
    /// A login, when access control is on, from `peer` at `now`: refused
    /// unchecked while the address is over its failure budget; a wrong
    /// secret answered `UNAUTHENTICATED`, and the connection closed once it
    /// (or its address) has failed too often.
    fn login(
        &mut self,
        auth: &AuthConfig,
        login: &api::Login,
        peer: IpAddr,
        now: Instant,
    ) -> Served {
        let shard = self.shard.id();
        let logins = &self.shared.logins;
        let limits = auth.login;
        let unauthenticated =
            |message: String| WireError::new(api::status::UNAUTHENTICATED, message);
        if let Err(left) = logins.admit(peer, now, limits.per_peer) {
            self.shared.metrics.shard(shard).login_failed();
            if let Some(more) = logins.log.event(now) {
                warn!(shard, %peer, "a login refused: too many failures from this address{}", and_more(more));
            }
            return Served::Close(unauthenticated(format!(
                "too many failed logins from {peer}; retry in {} s",
                left.as_secs().max(1)
            )));
        }
        if let Some(found) = auth.login(login) {
            info!(user = auth.name(found), shard, "logged in");
            self.user = Some(found);
            return Served::Answer(Ok(Answer::Whole(b"{}".to_vec())));
        }
        self.login_failures = self.login_failures.saturating_add(1);
        let address_spent = logins.failed(peer, now, limits.per_peer);
        self.shared.metrics.shard(shard).login_failed();
        // Never the secrets: only that a login failed, and from where.
        if let Some(more) = logins.log.event(now) {
            warn!(shard, %peer, "a login failed{}", and_more(more));
        }
        let wrong = "wrong user name, password or token";
        let connection_spent = limits
            .per_connection
            .is_some_and(|max| self.login_failures >= max);
        if connection_spent {
            let failures = self.login_failures;
            return Served::Close(unauthenticated(format!(
                "{wrong}; {failures} failed logins on this connection: closing it"
            )));
        }
        if address_spent {
            return Served::Close(unauthenticated(format!(
                "{wrong}; too many failed logins from {peer}: closing the connection"
            )));
        }
        Served::Answer(Err(unauthenticated(wrong.to_string())))
    }
    // ANCHOR_END: login
}

/// The default of `server.max_login_failures`: enough for typos, too few to guess.
pub const DEFAULT_MAX_LOGIN_FAILURES: u32 = 5;
/// The default of `server.max_login_failures_per_peer`: a few closed
/// connections' worth per minute.
pub const DEFAULT_MAX_LOGIN_FAILURES_PER_PEER: u32 = 30;
/// How long an address's failed logins count against it.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// The most addresses whose failed logins are remembered at once.
pub const MAX_PEERS_TRACKED: usize = 65_536;

// ANCHOR: login_limits
/// How many failed logins are allowed (the settings
/// `server.max_login_failures` and `server.max_login_failures_per_peer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failed logins after which a connection is closed; `None`: no limit.
    pub per_connection: Option<u32>,
    /// Failed logins from one address within [`LOGIN_WINDOW`] after which
    /// every login from it is refused until the window is over; `None`: no
    /// limit.
    pub per_peer: Option<u32>,
}
// ANCHOR_END: login_limits

impl Default for LoginLimits {
    fn default() -> LoginLimits {
        LoginLimits {
            per_connection: Some(DEFAULT_MAX_LOGIN_FAILURES),
            per_peer: Some(DEFAULT_MAX_LOGIN_FAILURES_PER_PEER),
        }
    }
}

/// Failed logins by address over every shard, and the WARN line they may
/// write. Shared by every session (in [`Shared`]); its mutex is taken only
/// for a login, never for another request. The clock is passed in, so a
/// test decides what time it is.
#[derive(Debug)]
pub struct LoginGuard {
    peers: Mutex<HashMap<IpAddr, Failures>>,
    /// At most one WARN line a second about failed or refused logins.
    pub log: LogEvery,
}

/// One address's failed logins in its current window.
#[derive(Debug, Clone, Copy)]
struct Failures {
    /// When the window began: at the first failure after the last window.
    since: Instant,
    count: u32,
}

impl Default for LoginGuard {
    fn default() -> LoginGuard {
        LoginGuard {
            peers: Mutex::new(HashMap::new()),
            log: LogEvery::new(Duration::from_secs(1)),
        }
    }
}

impl LoginGuard {
    /// Whether `peer` may try to log in at `now`: `Err(left)` while it has
    /// failed `limit` times in its window, `left` being the window's rest.
    pub fn admit(&self, peer: IpAddr, now: Instant, limit: Option<u32>) -> Result<(), Duration> {
        let Some(limit) = limit else { return Ok(()) };
        let peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        match peers.get(&peer.to_canonical()) {
            Some(failures) if failures.count >= limit => {
                let ends = failures.since + LOGIN_WINDOW;
                match ends.checked_duration_since(now) {
                    Some(left) if !left.is_zero() => Err(left),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed login of `peer` at `now`; says whether it has now
    /// failed `limit` times in its window (its next logins will be refused).
    pub fn failed(&self, peer: IpAddr, now: Instant, limit: Option<u32>) -> bool {
        let Some(limit) = limit else { return false };
        let peer = peer.to_canonical();
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let over =
            |failures: &Failures| now.saturating_duration_since(failures.since) >= LOGIN_WINDOW;
        if !peers.contains_key(&peer) && peers.len() >= MAX_PEERS_TRACKED {
            peers.retain(|_, failures| !over(failures));
            if peers.len() >= MAX_PEERS_TRACKED {
                return false; // full of live windows: not tracked (see the module doc)
            }
        }
        let failures = peers.entry(peer).or_insert(Failures {
            since: now,
            count: 0,
        });
        if over(failures) {
            *failures = Failures {
                since: now,
                count: 0,
            };
        }
        failures.count = failures.count.saturating_add(1);
        failures.count >= limit
    }
}

/// The answer to a logged-in user who may not do `what`.
fn forbidden(auth: &AuthConfig, who: usize, what: &str) -> WireError {
    WireError::new(
        api::status::FORBIDDEN,
        format!("user {:?} may not {what}", auth.name(who)),
    )
}
// ANCHOR_END: gate

/// The topic `reference` names, by id or by name, from this shard's copy.
pub(crate) fn find(
    shard: &ShardState,
    reference: &TopicRef,
) -> Result<(u32, Rc<TopicMeta>), WireError> {
    match reference {
        TopicRef::Id(id) => shard.topic(*id).map(|meta| (*id, meta)),
        TopicRef::Name(name) => shard.topic_named(name),
    }
}

/// A JSON reply body.
pub(crate) fn json(value: &impl serde::Serialize) -> Result<Answer, WireError> {
    serde_json::to_vec(value)
        .map(Answer::Whole)
        .map_err(|error| WireError::storage(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_guard_refuses_an_address_for_the_rest_of_its_window() {
        let guard = LoginGuard::default();
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        let other: IpAddr = "10.1.2.4".parse().unwrap();
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let limit = Some(3);
        assert!(!guard.failed(peer, at(0), limit));
        assert!(!guard.failed(peer, at(10), limit));
        assert_eq!(guard.admit(peer, at(10), limit), Ok(()));
        assert!(guard.failed(peer, at(20), limit), "the third spends it");
        // Refused until a minute after the first failure, whoever asks.
        assert_eq!(
            guard.admit(peer, at(20), limit),
            Err(Duration::from_secs(40))
        );
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(
            guard.admit(mapped, at(59), limit),
            Err(Duration::from_secs(1))
        );
        assert_eq!(guard.admit(other, at(20), limit), Ok(()));
        // A new window after that: failures count from zero again.
        assert_eq!(guard.admit(peer, at(60), limit), Ok(()));
        assert!(!guard.failed(peer, at(61), limit));
        assert_eq!(guard.admit(peer, at(61), limit), Ok(()));
        // No limit: nothing is refused, nothing is remembered.
        let open = LoginGuard::default();
        for second in 0..100 {
            assert!(!open.failed(peer, at(second), None));
        }
        assert_eq!(open.admit(peer, at(100), None), Ok(()));
        assert!(open.peers.lock().unwrap().is_empty());
    }

    #[test]
    fn login_guard_table_stays_bounded_and_forgets_finished_windows() {
        let guard = LoginGuard::default();
        let start = Instant::now();
        let address = |n: usize| IpAddr::from(std::net::Ipv6Addr::from(n as u128 + 1));
        for n in 0..MAX_PEERS_TRACKED {
            guard.failed(address(n), start, Some(2));
        }
        // Full of live windows: a new address is not tracked...
        let late = address(MAX_PEERS_TRACKED);
        assert!(!guard.failed(late, start, Some(1)));
        assert_eq!(guard.admit(late, start, Some(1)), Ok(()));
        // ...until the old windows are over and make room.
        let later = start + LOGIN_WINDOW;
        assert!(guard.failed(late, later, Some(1)));
        assert_eq!(guard.peers.lock().unwrap().len(), 1);
    }
}
