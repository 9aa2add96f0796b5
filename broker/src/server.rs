//! The broker: the engine's shards with the broker's part plugged in
//! (`stage6_broker::shards::extension`).
//!
//! What the broker adds, through the seam only:
//! - at start, the topics to open come from `metadata.json`
//!   ([`crate::metadata`]: interrupted deletes finished, topic folders it
//!   does not know adopted), each with its own settings;
//! - on shard 0, the metadata writer ([`crate::admin`]), the one task that
//!   creates and deletes streams and topics; every shard's sessions send it
//!   their commands on one channel, made before any shard starts;
//! - a session per connection ([`crate::session`]): the broker's commands,
//!   and access control ([`crate::auth`]) in front of the engine's;
//! - counters ([`crate::metrics`]) of what the engine reports, each shard
//!   writing only its own;
//! - the Kafka listener ([`crate::kafka`]): a second port on every shard
//!   (the engine's [`ExtraListener`]), whose connections the broker serves.

use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use compio::net::TcpStream;
use futures_util::future::LocalBoxFuture;
use stage6_broker::shards::extension::{Extension, ExtraListener, Session};
use stage6_broker::shards::limits::LogEvery;
use stage6_broker::shards::shard::ShardState;
use stage6_broker::shards::topics::{TopicSpec, topics_on_disk};
use stage6_broker::{Config, QueueDepths, RecoveryReport, ServerConfig, ServerError};

use crate::admin::{AdminRequest, metadata_writer};
use crate::auth::AuthConfig;
use crate::kafka::KafkaConfig;
use crate::metadata::{Metadata, resolve};
use crate::metrics::Metrics;
use crate::session::{BrokerSession, LoginGuard};

/// What every shard's sessions share: read-only, or atomic, or a channel.
#[derive(Debug)]
pub struct Shared {
    /// Every shard's counters (each shard writes only its own).
    pub metrics: Arc<Metrics>,
    /// Who may do what, when access control is on.
    pub auth: Option<AuthConfig>,
    /// The metadata writer's queue, on shard 0.
    pub admin: flume::Sender<AdminRequest>,
    /// Failed logins by address, over every shard ([`crate::session`]).
    pub logins: LoginGuard,
    /// Told of every append, by either protocol: what a Kafka fetch waiting
    /// for records listens to ([`crate::kafka::fetch`]).
    pub appended: event_listener::Event,
    /// Kafka connections closed for bad input: a line a second at most,
    /// since a client can send bad frames as fast as it likes.
    pub kafka_refusals: LogEvery,
    /// The idempotent Kafka producers' ids ([`crate::kafka::producers`]).
    pub producer_ids: crate::kafka::producers::ProducerIds,
}

/// The broker's part, given to the engine at start.
struct Broker {
    shared: Arc<Shared>,
    /// Loaded by [`Extension::topics`], taken by shard 0's writer.
    metadata: Mutex<Option<Metadata>>,
    /// The writer's end of [`Shared::admin`], taken by shard 0.
    admin_queue: Mutex<Option<flume::Receiver<AdminRequest>>>,
    /// The Kafka listener's settings, if it is on.
    kafka: Option<Arc<KafkaConfig>>,
}

impl Extension for Broker {
    /// Reads `metadata.json`, adopts the topic folders it does not mention,
    /// finishes interrupted deletes, saves it if any of that changed it, and
    /// resolves every topic's settings.
    fn topics(&self, data: &Path, defaults: &Config) -> Result<Vec<TopicSpec>, String> {
        let on_disk =
            topics_on_disk(data).map_err(|error| format!("reading {}: {error}", data.display()))?;
        let (metadata, changed) = Metadata::load(data, &on_disk).map_err(|e| e.to_string())?;
        if changed {
            metadata.save(data).map_err(|e| e.to_string())?;
        }
        let mut topics = Vec::with_capacity(metadata.topics.len());
        for record in metadata.topics.values() {
            let config = resolve(defaults, &record.settings)
                .map_err(|error| format!("topic {:?}: {error}", record.name))?;
            self.shared.metrics.name_topic(record.id, &record.name);
            topics.push(TopicSpec {
                id: record.id,
                name: record.name.clone(),
                partitions: record.partitions,
                config,
            });
        }
        *lock(&self.metadata) = Some(metadata);
        Ok(topics)
    }

    fn start_shard(&self, shard: &Rc<ShardState>) {
        let metrics = Arc::clone(&self.shared.metrics);
        compio::runtime::spawn(crate::groups::service::ticker(Rc::clone(shard), metrics)).detach();
        if shard.id() != 0 {
            return;
        }
        let metadata = lock(&self.metadata).take().unwrap_or_default();
        if let Some(queue) = lock(&self.admin_queue).take() {
            let metrics = Arc::clone(&self.shared.metrics);
            compio::runtime::spawn(metadata_writer(Rc::clone(shard), metadata, metrics, queue))
                .detach();
        }
    }

    fn session(&self, shard: &Rc<ShardState>) -> Box<dyn Session> {
        Box::new(BrokerSession::new(shard, Arc::clone(&self.shared)))
    }

    fn listeners(&self) -> Vec<ExtraListener> {
        self.kafka
            .iter()
            .map(|kafka| ExtraListener {
                setting: "kafka.listen",
                addr: kafka.listen,
            })
            .collect()
    }

    fn serve_stream(
        &self,
        shard: Rc<ShardState>,
        _listener: usize,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> LocalBoxFuture<'static, ()> {
        // One extra listener: the Kafka one.
        let Some(kafka) = self.kafka.clone() else {
            return Box::pin(std::future::ready(()));
        };
        let shared = Arc::clone(&self.shared);
        Box::pin(crate::kafka::connection::serve(
            shard, shared, kafka, stream, peer,
        ))
    }

    fn connection_opened(&self, shard: usize) {
        self.shared.metrics.shard(shard).connection_opened();
    }

    fn connection_closed(&self, shard: usize) {
        self.shared.metrics.shard(shard).connection_closed();
    }

    fn connection_refused(&self, shard: usize) {
        self.shared.metrics.shard(shard).connection_refused();
    }

    fn synced(&self, shard: usize, took: Duration) {
        self.shared.metrics.shard(shard).fsync(took);
    }

    fn produced(&self, shard: usize, topic: u32, records: u64, bytes: u64) {
        self.shared
            .metrics
            .shard(shard)
            .produced(topic, records, bytes);
        // Kafka fetches waiting for records wake up (a no-op when none waits).
        self.shared.appended.notify(usize::MAX);
    }

    fn polled(&self, shard: usize, topic: u32, records: u64, bytes: u64) {
        self.shared
            .metrics
            .shard(shard)
            .polled(topic, records, bytes);
    }

    fn recovered(&self, shard: usize, report: &RecoveryReport) {
        let repairs = &self.shared.metrics.shard(shard).repairs;
        let counts = [
            report.torn_bytes_erased,
            report.index_entries_dropped + report.time_entries_dropped,
            report.index_entries_rebuilt + report.time_entries_rebuilt,
            report.stray_files_removed as u64,
        ];
        for (counter, count) in repairs.iter().zip(counts) {
            counter.fetch_add(count, Relaxed);
        }
    }

    fn partition_failed(&self, shard: usize, _topic: u32, _partition: u32) {
        let metrics = self.shared.metrics.shard(shard);
        metrics.partition_failures.fetch_add(1, Relaxed);
    }
}

/// A mutex's value, even if a thread panicked holding it (the values here
/// are taken once and never left half-changed).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running broker.
#[derive(Debug)]
pub struct Server {
    engine: stage6_broker::Server,
    metrics: Arc<Metrics>,
}

/// What the broker adds to the engine's [`ServerConfig`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Access control (`None`: off, every connection may do everything;
    /// see [`crate::auth`]).
    pub auth: Option<AuthConfig>,
    /// The Kafka listener (`None`: off).
    pub kafka: Option<KafkaConfig>,
}

/// Starts the broker, access control and the Kafka listener off.
pub fn start(config: ServerConfig) -> Result<Server, ServerError> {
    start_with(config, Options::default())
}

/// Starts the broker with access control as `auth` says, Kafka listener off.
pub fn start_with_auth(
    config: ServerConfig,
    auth: Option<AuthConfig>,
) -> Result<Server, ServerError> {
    start_with(config, Options { auth, kafka: None })
}

// ANCHOR: start
/// Starts the broker with `options`; returns once every shard listens (on
/// Rivulet's port and, if on, Kafka's) and has recovered its partitions.
pub fn start_with(config: ServerConfig, options: Options) -> Result<Server, ServerError> {
    let Options { auth, kafka } = options;
    if let Some(auth) = &auth {
        auth.validate()?;
        if kafka.is_some() {
            // Kafka clients cannot log in here (no SASL): a Kafka port would
            // be a way around every permission.
            return Err(ServerError::Metadata(
                "access control ([auth]) is on, and the Kafka listener has no way to log \
                 in (no SASL): set kafka.listen = \"off\""
                    .to_string(),
            ));
        }
    }
    let metrics = Metrics::new(config.shards.max(1));
    let (admin, admin_queue) = flume::unbounded();
    let broker = Broker {
        shared: Arc::new(Shared {
            metrics: Arc::clone(&metrics),
            auth,
            admin,
            logins: LoginGuard::default(),
            appended: event_listener::Event::new(),
            kafka_refusals: LogEvery::new(Duration::from_secs(1)),
            producer_ids: crate::kafka::producers::ProducerIds::starting_at(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |since| since.as_millis() as u64),
            ),
        }),
        metadata: Mutex::new(None),
        admin_queue: Mutex::new(Some(admin_queue)),
        kafka: kafka.map(Arc::new),
    };
    let engine = stage6_broker::start_with(config, Arc::new(broker))?;
    Ok(Server { engine, metrics })
}
// ANCHOR_END: start

impl Server {
    /// The address every shard listens on.
    pub fn addr(&self) -> SocketAddr {
        self.engine.addr()
    }

    /// The io driver the shards run on (`io-uring` or `polling`).
    pub fn driver(&self) -> &'static str {
        self.engine.driver()
    }

    /// Where the Kafka listener listens, if it is on.
    pub fn kafka_addr(&self) -> Option<SocketAddr> {
        self.engine.extra_addrs().first().copied()
    }

    /// The counters every shard writes (one [`crate::metrics::ShardMetrics`] each).
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Each shard's inbox length, readable from any thread.
    pub fn queue_depths(&self) -> QueueDepths {
        self.engine.queue_depths()
    }

    /// Stops accepting, lets in-flight requests be answered, then writes and
    /// syncs every partition and stops every shard.
    pub fn shutdown(self) -> Result<(), ServerError> {
        self.engine.shutdown()
    }
}
