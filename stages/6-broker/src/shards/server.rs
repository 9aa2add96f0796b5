//! The broker: one thread per shard, each with its own compio runtime, its
//! own listener on the shared port, its own partitions.
//!
//! How connections reach shards: **every shard accepts**, on its own listening
//! socket bound to the same address with `SO_REUSEPORT`; the kernel spreads
//! incoming connections over the sockets by a hash of the connection's
//! addresses, and a connection lives and dies on the shard that accepted it.
//! Rejected: one acceptor handing sockets round robin to the shards. That is
//! exact round robin, but one thread does every `accept`, each new connection
//! costs a hop between threads before its first byte is read, and an io_uring
//! socket has to be handed from one ring to another. With `SO_REUSEPORT`
//! there is no hop and no thread that every connection waits on.
//!
//! Start-up ([`start`]): the data folder is locked, the topics to open are
//! found (the engine's own catalog of `partitions` files, or the broker's
//! metadata, through [`Extension::topics`]), the listeners are bound (so a
//! port in use is an error before any thread starts), each topic is opened
//! by the shards that own its partitions, with its own settings, and only
//! when every shard has recovered its partitions does `start` return.
//!
//! Connections: at most [`ServerConfig::max_connections`] open at once over
//! every shard, and [`ServerConfig::max_connections_per_peer`] from one
//! address (one more is told so and closed); one that sends no complete
//! frame for [`ServerConfig::idle_timeout`] is closed; and the bodies of
//! large requests in flight over every connection are bounded by
//! [`ServerConfig::max_request_bytes_in_flight`] (see [`crate::shards::limits`]).
//!
//! Shutdown ([`Server::shutdown`]), in two steps so that no request is lost
//! between shards: first every shard stops accepting and closes its
//! connections between requests (a request being served is answered
//! first), and waits for them to end; only when every shard has no
//! connection left (so no request can still cross to another shard) does
//! every shard write and sync each of its partitions and stop.
//!
//! Two servers must never share a data folder: both would append to the
//! same segments. So start-up takes an exclusive lock on `data/.lock`
//! (`lock_data`), held until the process ends (the kernel drops it even on
//! SIGKILL, so a crash never leaves a stale lock to clean by hand). And
//! because `SO_REUSEPORT` would let a second server share a fixed port
//! silently, the port is first probed with a bind without it
//! (`check_port_free`), which also lets a restart right after a SIGKILL take
//! the port the dead server's sockets are still letting go of.
//!
//! Deliberate simplification: the kernel's hash does not rebalance
//! long-lived connections, so a few connections may all land on one shard.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use compio::io::AsyncWrite;
use compio::net::TcpListener;
use futures_util::future::{Either, select};
use socket2::{Domain, Protocol, Socket, Type};
use thiserror::Error;
use tracing::{debug, error, warn};

use crate::shards::connection::serve_connection;
use crate::shards::driver::{IoDriver, driver_name};
use crate::shards::extension::{Extension, Plain};
use crate::shards::frame::write_frame;
use crate::shards::limits::{Admitted, Limits, and_more};
use crate::shards::router::ShardMessage;
use crate::shards::shard::{OnFailure, ShardState, saver};
use crate::shards::topics::{TopicSpec, catalog_writer};
use crate::shards::wire::status;
use crate::storage::config::{Config, ConfigError};

/// The address a server listens on when told nothing else: loopback only
/// (an operator opens it to the network on purpose), port 7406.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7406);

// ANCHOR: server_config
/// How the broker runs. Every optimization is a switch, so each one's gain
/// is measured in one binary.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address every shard listens on (port 0 picks one).
    pub listen: SocketAddr,
    /// Folder of the topics: `data/<topic>/<partition>/`.
    pub data: PathBuf,
    /// Number of shards (threads); by default one per core but one
    /// ([`default_shards`]).
    pub shards: usize,
    /// Pin shard `n`'s thread to core `n` (modulo the cores); off by
    /// default (see [`default_shards`] for when to turn it on).
    pub pin: bool,
    /// io_uring, polling, or compio's choice.
    pub driver: IoDriver,
    /// The partitions' storage settings (Direct I/O, fsync, segment size).
    pub storage: Config,
    /// The most bytes a frame may claim, checked before allocating.
    pub max_frame_len: u32,
    /// The most connections open at once, over every shard; one more gets a
    /// `TOO_MANY_CONNECTIONS` reply and is closed.
    pub max_connections: usize,
    /// The most connections open at once from one peer address, over every
    /// shard (`None`: no such limit); one more is refused the same way.
    pub max_connections_per_peer: Option<usize>,
    /// The most bytes of large request bodies held at once, over every
    /// connection (never fewer than `max_frame_len`); a request that does
    /// not fit waits, unread, until it does or the idle timeout ends it.
    pub max_request_bytes_in_flight: usize,
    /// A connection that sends no complete frame for this long is closed
    /// (between requests only); `None` never closes one.
    pub idle_timeout: Option<Duration>,
}
// ANCHOR_END: server_config

impl ServerConfig {
    /// Defaults: loopback port 7406, `rivulet-data`, a shard per core but
    /// one ([`default_shards`]), not pinned, compio's driver choice,
    /// [`Config::default`] storage.
    pub fn new() -> ServerConfig {
        ServerConfig {
            listen: DEFAULT_LISTEN,
            data: PathBuf::from("rivulet-data"),
            shards: default_shards(cores()),
            pin: false,
            driver: IoDriver::Auto,
            storage: Config::default(),
            max_frame_len: crate::shards::frame::DEFAULT_MAX_FRAME_LEN,
            max_connections: 1024,
            max_connections_per_peer: Some(256),
            max_request_bytes_in_flight: 256 << 20,
            idle_timeout: Some(Duration::from_secs(300)),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig::new()
    }
}

/// The cores this process may use (1 if the system will not say).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

// ANCHOR: default_shards
/// The default shard count on a machine with `cores` cores: one per core
/// but one, and at least one. The core left over is for everything else on
/// the machine, which a broker never has to itself: the kernel's network
/// work, the clients on the same host, a neighbour's compiler.
///
/// Shards are not pinned by default either ([`ServerConfig::pin`]). A pinned
/// shard cannot move away from a core something else is busy on, and every
/// connection it serves waits behind that (the ladder's noisy-neighbour row
/// measures it). Pin on a machine the broker has to itself, cores isolated
/// from the scheduler (`isolcpus`) or nothing else running, where pinning
/// buys cache locality and never costs a wait. Rejected: a shard per core,
/// pinned, the talk's setting, which on a 2-core machine put a shard on the
/// core a neighbour held and fell behind stage 5 (the ablation's noisy rows
/// measure it).
pub fn default_shards(cores: usize) -> usize {
    cores.saturating_sub(1).max(1)
}
// ANCHOR_END: default_shards

/// Why the server did not start or stop cleanly.
#[derive(Debug, Error)]
pub enum ServerError {
    /// A setting cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Listening, reading the data folder or starting a thread failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A shard could not start (its runtime, or recovering a partition).
    #[error("shard {shard}: {reason}")]
    Shard {
        /// Which one.
        shard: usize,
        /// Why.
        reason: String,
    },
    /// A partition could not be written or synced at shutdown.
    #[error("flushing at shutdown: {0}")]
    Flush(String),
    /// The topics to open could not be found: the broker's metadata file
    /// could not be read or written, or names a topic whose settings no
    /// longer hold, or the data folder could not be read.
    #[error("metadata: {0}")]
    Metadata(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let what = what.into();
    move |source| ServerError::Io { what, source }
}

/// A running broker.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    /// Where each of the product's extra listeners listens, in order.
    extra_addrs: Vec<SocketAddr>,
    driver: &'static str,
    inboxes: Vec<flume::Sender<ShardMessage>>,
    threads: Vec<JoinHandle<()>>,
    /// The data folder's lock, released when the server is dropped.
    _lock: std::fs::File,
}

/// Each shard's inbox length, for the metrics endpoint: a clone of the
/// senders, so the reader needs nothing of the shards but their channels.
#[derive(Debug, Clone)]
pub struct QueueDepths {
    inboxes: Vec<flume::Sender<ShardMessage>>,
}

impl QueueDepths {
    /// Messages waiting in each shard's inbox now, by shard number.
    pub fn now(&self) -> Vec<usize> {
        self.inboxes.iter().map(flume::Sender::len).collect()
    }
}

/// Starts the engine alone: stage 4's requests, its own catalog of topics;
/// returns once every shard listens and has recovered its partitions.
pub fn start(config: ServerConfig) -> Result<Server, ServerError> {
    start_with(config, Arc::new(Plain))
}

// ANCHOR: start
/// Starts the shards with `extension` plugged in (the broker's part, see
/// [`crate::shards::extension`]); returns once every shard listens and has
/// recovered its partitions.
pub fn start_with(
    config: ServerConfig,
    extension: Arc<dyn Extension>,
) -> Result<Server, ServerError> {
    config.storage.validate()?;
    let shards = config.shards.max(1);
    let lock = lock_data(&config.data)?;
    if config.storage.direct_io {
        check_direct_io(&config.data)?;
    }
    let topics = extension
        .topics(&config.data, &config.storage)
        .map_err(ServerError::Metadata)?;
    let limits = Arc::new(Limits::new(
        config.max_connections,
        config.max_connections_per_peer,
        config.max_request_bytes_in_flight,
        config.max_frame_len,
    ));
    let (addr, listeners) = listen_on_every_shard(config.listen, shards, None)?;
    // The product's own ports (the broker's Kafka listener), bound the same
    // way before any shard starts, so a taken port is an error at start that
    // names the setting. `extra[shard][n]` is shard's socket for listener n.
    let mut extra_addrs = Vec::new();
    let mut extra: Vec<Vec<std::net::TcpListener>> = (0..shards).map(|_| Vec::new()).collect();
    for wanted in extension.listeners() {
        let (bound, sockets) = listen_on_every_shard(wanted.addr, shards, Some(wanted.setting))?;
        extra_addrs.push(bound);
        for (of_shard, socket) in extra.iter_mut().zip(sockets) {
            of_shard.push(socket);
        }
    }
    // Every shard's inbox is made before any shard starts: each one gets the
    // senders to all of them.
    let (inboxes, receivers): (Vec<_>, Vec<_>) = (0..shards).map(|_| flume::unbounded()).unzip();
    let (ready, started) = flume::unbounded();
    let mut server = Server {
        addr,
        extra_addrs,
        driver: "",
        inboxes: inboxes.clone(),
        threads: Vec::with_capacity(shards),
        _lock: lock,
    };
    let sockets = listeners.into_iter().zip(extra);
    for (id, (inbox, (listener, extra))) in receivers.into_iter().zip(sockets).enumerate() {
        let shard = Shard {
            id,
            inbox,
            inboxes: inboxes.clone(),
            listener,
            extra,
            config: config.clone(),
            topics: topics.clone(),
            limits: Arc::clone(&limits),
            extension: Arc::clone(&extension),
            ready: ready.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("rivulet-shard-{id}"))
            .spawn(move || shard.run())
            .map_err(io(format!("starting shard {id}")))?;
        server.threads.push(thread);
    }
    drop(ready);
    for _ in 0..shards {
        match started.recv() {
            Ok(Ok((0, driver))) => server.driver = driver,
            Ok(Ok(_)) => {}
            Ok(Err((shard, reason))) => return Err(ServerError::Shard { shard, reason }),
            Err(_) => {
                let reason = "stopped before it was ready".to_string();
                return Err(ServerError::Shard { shard: 0, reason });
            }
        }
    }
    Ok(server)
}
// ANCHOR_END: start

/// `shards` sockets listening on `addr` (port 0: one free port for all),
/// and the address they share; `setting` names who asked for it in errors.
fn listen_on_every_shard(
    addr: SocketAddr,
    shards: usize,
    setting: Option<&str>,
) -> Result<(SocketAddr, Vec<std::net::TcpListener>), ServerError> {
    let label = |addr: SocketAddr| match setting {
        Some(setting) => format!("listening on {addr} ({setting})"),
        None => format!("listening on {addr}"),
    };
    check_port_free(addr, setting)?;
    let first = listener(addr).map_err(io(label(addr)))?;
    let bound = first
        .local_addr()
        .map_err(io("reading the bound address"))?;
    let mut sockets = vec![first];
    for _ in 1..shards {
        sockets.push(listener(bound).map_err(io(label(bound)))?);
    }
    Ok((bound, sockets))
}

/// A listening socket that other sockets may share the port of.
fn listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

// ANCHOR: lock_data
/// Takes the data folder for this process: an exclusive `flock` on
/// `data/.lock`, which holds our process id for whoever finds it taken.
/// Rejected: a lock file that exists-or-not (`O_EXCL`), which a SIGKILL
/// leaves behind, so the next start would refuse until someone deleted it.
fn lock_data(data: &std::path::Path) -> Result<std::fs::File, ServerError> {
    use std::io::{Read, Seek, Write};
    let path = data.join(".lock");
    std::fs::create_dir_all(data).map_err(io(format!("creating {}", data.display())))?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io(format!("opening {}", path.display())))?;
    if let Err(error) =
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
    {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        return Err(ServerError::Io {
            what: format!(
                "the data folder {} is in use by another rivulet-server (process {}); \
                 stop it, or give this one another --data folder",
                data.display(),
                holder.trim()
            ),
            source: error.into(),
        });
    }
    let pid = std::process::id().to_string();
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()));
    written.map_err(io(format!("writing {}", path.display())))?;
    Ok(file)
}
// ANCHOR_END: lock_data

// ANCHOR: check_port_free
/// How long a start waits for a fixed port that is still listened on, in
/// case the listener belongs to a server that was just killed: a SIGKILLed
/// process's io_uring ring is torn down by the kernel *after* the process
/// is reaped (in a kernel worker), and its pending `accept`s keep the
/// listening sockets open until then, so `ss` still shows them in `LISTEN`
/// right after `waitpid` returned (the broker's `tests/restart.rs` fails
/// without this wait). The teardown waits on every request the ring still
/// has, hence a grace of seconds. A live server never lets go of its port,
/// so a second server is still refused, only later.
pub const PORT_RELEASE_GRACE: Duration = Duration::from_secs(5);

/// Fails if another process listens on `addr`'s fixed port. Every shard's
/// socket sets `SO_REUSEPORT`, and so would another server's: their binds
/// would both succeed and the kernel would split connections between them.
/// So the probe is a socket *without* `SO_REUSEPORT`, whose bind the kernel
/// refuses while any socket listens on the port; but *with* `SO_REUSEADDR`,
/// so that the connections a killed server leaves behind (in `FIN_WAIT` or
/// `TIME_WAIT` for up to a minute) do not count. It is bound, never listened
/// on, so no client's connection can land in it.
///
/// A refusal is tried again for [`PORT_RELEASE_GRACE`]: a server that was
/// SIGKILLed a moment ago may still hold its listeners (see there).
/// Rejected: `SO_REUSEPORT` on the probe (it would join a live server's
/// group instead of detecting it), and no probe (two servers sharing a port
/// without a word).
///
/// Port 0 asks for a fresh port, which nobody holds.
fn check_port_free(addr: SocketAddr, setting: Option<&str>) -> Result<(), ServerError> {
    const LOOK_EVERY: Duration = Duration::from_millis(20);
    if addr.port() == 0 {
        return Ok(());
    }
    let probe = || -> std::io::Result<()> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())
    };
    let deadline = Instant::now() + PORT_RELEASE_GRACE;
    let mut said = false;
    loop {
        match probe() {
            Ok(()) => return Ok(()),
            Err(error)
                if error.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline =>
            {
                if !said {
                    said = true;
                    warn!(
                        %addr,
                        "the port is in use; waiting up to {} s in case it is a server \
                         that was just killed and whose sockets are still closing",
                        PORT_RELEASE_GRACE.as_secs()
                    );
                }
                std::thread::sleep(LOOK_EVERY);
            }
            Err(error) => {
                let what = match setting {
                    Some(setting) => format!(
                        "listening on {addr}, set by {setting} (is another server running? \
                         choose another port, or \"off\")"
                    ),
                    None => format!("listening on {addr} (is another server running?)"),
                };
                return Err(ServerError::Io {
                    what,
                    source: error,
                });
            }
        }
    }
}
// ANCHOR_END: check_port_free

/// Fails at start, with a message an operator can act on, when the data
/// folder cannot do Direct I/O (tmpfs before Linux 6.6, some network file
/// systems), rather than at the first create-topic with a storage error.
/// (Not covered by a test: the development kernel's tmpfs accepts O_DIRECT,
/// and no file system without it can be mounted in the test environment.)
fn check_direct_io(data: &std::path::Path) -> Result<(), ServerError> {
    use std::os::unix::fs::OpenOptionsExt;
    let probe = data.join(".direct-io-probe");
    let opened = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(&probe);
    let _ = std::fs::remove_file(&probe);
    opened.map(drop).map_err(|source| ServerError::Io {
        what: format!(
            "Direct I/O (O_DIRECT) is not supported in {}: use --direct-io off, or a data \
             folder on ext4 or xfs",
            data.display()
        ),
        source,
    })
}

type Ready = Result<(usize, &'static str), (usize, String)>;

/// What a shard thread starts with.
struct Shard {
    id: usize,
    inbox: flume::Receiver<ShardMessage>,
    inboxes: Vec<flume::Sender<ShardMessage>>,
    listener: std::net::TcpListener,
    /// The product's extra listeners' sockets for this shard, in order.
    extra: Vec<std::net::TcpListener>,
    config: ServerConfig,
    topics: Vec<TopicSpec>,
    limits: Arc<Limits>,
    extension: Arc<dyn Extension>,
    ready: flume::Sender<Ready>,
}

impl Shard {
    // ANCHOR: shard_run
    /// The shard's thread: its runtime (pinned to its core if asked), then
    /// its recovery, then its inbox until told to finish.
    fn run(self) {
        let id = self.id;
        let mut cpus = HashSet::new();
        if self.config.pin {
            // compio's own affinity support: the runtime builder pins the
            // thread that builds it (CPUs the process may not use are dropped).
            cpus.insert(id % cores());
        }
        let runtime = match self.config.driver.runtime_on(cpus) {
            Ok(runtime) => runtime,
            Err(error) => {
                let _ = self.ready.send(Err((id, format!("io driver: {error}"))));
                return;
            }
        };
        let driver = driver_name(&runtime);
        runtime.block_on(self.serve(driver));
    }
    // ANCHOR_END: shard_run

    async fn serve(self, driver: &'static str) {
        let Shard {
            id,
            inbox,
            inboxes,
            listener,
            extra,
            config,
            topics,
            limits,
            extension,
            ready,
        } = self;
        let fail = |reason: String| {
            let _ = ready.send(Err((id, reason)));
        };
        let listener = match TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(error) => return fail(format!("listener: {error}")),
        };
        let mut extra_listeners = Vec::with_capacity(extra.len());
        for socket in extra {
            match TcpListener::from_std(socket) {
                Ok(listener) => extra_listeners.push(listener),
                Err(error) => return fail(format!("listener: {error}")),
            }
        }
        let (stop, stopped) = flume::bounded(1);
        let state = Rc::new(ShardState {
            id,
            inboxes,
            config: config.storage.clone(),
            data: config.data.clone(),
            max_frame_len: config.max_frame_len,
            partitions: Default::default(),
            topics: Default::default(),
            stop: std::cell::RefCell::new(Some(stop)),
            stopped,
            catalog: Default::default(),
            driver,
            limits,
            idle_timeout: config.idle_timeout,
            extension: Arc::clone(&extension),
        });
        for topic in &topics {
            // A partition that cannot be opened is served as failed, not a
            // reason to refuse to start (see `OnFailure`).
            let opened = state.open_topic(
                topic.id,
                topic.partitions,
                &topic.config,
                OnFailure::MarkFailed,
            );
            if let Err(error) = opened.await {
                return fail(format!("topic {}: {}", topic.id, error.message));
            }
            state.publish(topic);
        }
        if id == 0 {
            let (catalog, queue) = flume::unbounded();
            *state.catalog.borrow_mut() = Some(catalog);
            compio::runtime::spawn(catalog_writer(Rc::clone(&state), queue)).detach();
        }
        extension.start_shard(&state);
        compio::runtime::spawn(saver(Rc::clone(&state), config.storage.saver_interval)).detach();
        // Each connection holds a clone of `alive`; when the accept loop and
        // every connection have dropped theirs, `gone` reports disconnected.
        let (alive, gone) = flume::bounded::<()>(1);
        compio::runtime::spawn(accept(
            Rc::clone(&state),
            listener,
            Spoken::Engine,
            alive.clone(),
        ))
        .detach();
        for (n, listener) in extra_listeners.into_iter().enumerate() {
            let accepting = accept(Rc::clone(&state), listener, Spoken::Extra(n), alive.clone());
            compio::runtime::spawn(accepting).detach();
        }
        drop(alive);
        let _ = ready.send(Ok((id, driver)));
        drop(ready);
        inbox_loop(state, inbox, gone).await;
    }
}

// ANCHOR: inbox
/// The shard's inbox: requests from other shards' connections, and the
/// metadata and shutdown steps. Storage requests are handed straight to the
/// partition's task, so a slow fsync on one partition never holds the inbox.
async fn inbox_loop(
    state: Rc<ShardState>,
    inbox: flume::Receiver<ShardMessage>,
    gone: flume::Receiver<()>,
) {
    let mut gone = Some(gone);
    while let Ok(message) = inbox.recv_async().await {
        match message {
            ShardMessage::Storage { key, op } => state.to_local(key, op),
            ShardMessage::CreateTopic {
                topic,
                partitions,
                done,
            } => {
                let catalog = state.catalog.borrow().clone();
                match catalog {
                    Some(catalog) => {
                        let _ = catalog.send((topic, partitions, done));
                    }
                    None => {
                        let _ = done.send(Err(crate::shards::shard::storage_stopped()));
                    }
                }
            }
            ShardMessage::Open {
                topic,
                partitions,
                config,
                done,
            } => {
                let state = Rc::clone(&state);
                compio::runtime::spawn(async move {
                    let opened = state.open_topic(topic, partitions, &config, OnFailure::Refuse);
                    let _ = done.send(opened.await);
                })
                .detach();
            }
            ShardMessage::Run(job) => job.run(&state),
            ShardMessage::Publish { topic, done } => {
                state.publish(&topic);
                let _ = done.send(());
            }
            ShardMessage::Close { topic, done } => {
                let state = Rc::clone(&state);
                compio::runtime::spawn(async move {
                    state.close_topic(topic).await;
                    let _ = done.send(());
                })
                .detach();
            }
            ShardMessage::Drain { done } => {
                // Dropping the sender wakes the accept loop and every idle
                // connection (their `stopped` receivers see it closed).
                state.stop.borrow_mut().take();
                if let Some(gone) = gone.take() {
                    compio::runtime::spawn(async move {
                        let _ = gone.recv_async().await; // Err: every connection ended
                        let _ = done.send(());
                    })
                    .detach();
                } else {
                    let _ = done.send(());
                }
            }
            ShardMessage::Finish { done } => {
                let flushed = state.flush_all().await;
                // Dropping the queues ends the partition tasks.
                state.partitions.borrow_mut().clear();
                let _ = done.send(flushed);
                return;
            }
        }
    }
}
// ANCHOR_END: inbox

/// Whose protocol a listener's connections speak.
#[derive(Debug, Clone, Copy)]
enum Spoken {
    /// The engine's frames, through the product's [`crate::shards::extension::Session`].
    Engine,
    /// The product's own, on its `n`th extra listener ([`Extension::serve_stream`]).
    Extra(usize),
}

// ANCHOR: accept
/// Accepts connections until the shard stops; each one is a task on this
/// shard. One over the server's limit, or over its peer address's, is told
/// so and closed.
///
/// The limits are one [`Limits`] shared by every shard: written once per
/// connect and once per disconnect, never per request, so the cache lines
/// it bounces between cores cost nothing measurable. Rejected: a share of
/// the limit per shard, which refuses connections on one shard while
/// another has room (the kernel's `SO_REUSEPORT` hash is not even), and
/// cannot see one peer's connections spread over the shards.
async fn accept(
    state: Rc<ShardState>,
    listener: TcpListener,
    protocol: Spoken,
    alive: flume::Sender<()>,
) {
    if state.id == 0 && matches!(protocol, Spoken::Engine) {
        // One shard is enough: the allocator's memory is the whole process's.
        compio::runtime::spawn(give_back_memory(Rc::clone(&state))).detach();
    }
    loop {
        let accepted = {
            let next = pin!(listener.accept());
            let stopped = pin!(state.stopped.recv_async());
            match select(next, stopped).await {
                Either::Left((accepted, _)) => accepted,
                Either::Right(_) => return,
            }
        };
        match accepted {
            Ok((stream, peer)) => {
                let alive = alive.clone();
                let state = Rc::clone(&state);
                let admitted = match state.limits.admit(peer.ip()) {
                    Ok(admitted) => admitted,
                    Err(refusal) => {
                        let message = refusal.message(peer.ip());
                        state.extension.connection_refused(state.id);
                        // A client can be refused as fast as it connects:
                        // one line a second, saying how many it stands for.
                        if let Some(more) = state.limits.refusals.event(Instant::now()) {
                            warn!(%peer, "connection refused: {message}{}", and_more(more));
                        }
                        compio::runtime::spawn(async move {
                            // Only the engine's clients can read the engine's
                            // frame; another protocol's are just closed.
                            if let Spoken::Engine = protocol {
                                refuse_over_limit(stream, &message).await;
                            }
                            drop(alive);
                        })
                        .detach();
                        continue;
                    }
                };
                state.extension.connection_opened(state.id);
                let counted = OpenConnection {
                    state,
                    _admitted: admitted,
                    _alive: alive,
                };
                compio::runtime::spawn(async move {
                    let state = Rc::clone(&counted.state);
                    match protocol {
                        Spoken::Engine => serve_connection(state, stream, peer).await,
                        Spoken::Extra(n) => {
                            let extension = Arc::clone(&state.extension);
                            extension.serve_stream(state, n, stream, peer).await;
                        }
                    }
                    drop(counted);
                })
                .detach();
            }
            Err(failure) => {
                // Out of file descriptors, most likely: say so, and give
                // connections a moment to close instead of spinning.
                error!(shard = state.id, "accept: {failure}");
                compio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}
// ANCHOR_END: accept

/// Shard 0, once a second until the shard stops: gives freed request
/// memory back to the kernel when it is due ([`Limits::give_back_memory`]).
/// Rejected: doing it as the last large request is freed, which may run
/// before that request's body is (it is freed on the partition's shard),
/// and then not again until the next large request.
async fn give_back_memory(state: Rc<ShardState>) {
    loop {
        let tick = pin!(compio::time::sleep(Duration::from_secs(1)));
        let stopped = pin!(state.stopped.recv_async());
        if let Either::Right(_) = select(tick, stopped).await {
            return;
        }
        if state.limits.give_back_memory() {
            debug!(
                shard = state.id,
                "freed request memory given back to the kernel"
            );
        }
    }
}

/// A connection counted as open: dropping it uncounts it, on every way the
/// connection's task ends (returned, or dropped with the runtime), so the
/// limits never fill with connections that are gone.
struct OpenConnection {
    state: Rc<ShardState>,
    /// Counted in the server's and its peer's limits until dropped.
    _admitted: Admitted,
    /// Held until the connection ends: the drain waits for every clone.
    _alive: flume::Sender<()>,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.state.extension.connection_closed(self.state.id);
    }
}

/// The one frame a connection over a limit gets, before it is closed.
async fn refuse_over_limit(mut stream: compio::net::TcpStream, message: &str) {
    let _ = write_frame(
        &mut stream,
        status::TOO_MANY_CONNECTIONS,
        0,
        message.as_bytes(),
    )
    .await;
    let _ = stream.shutdown().await;
}

impl Server {
    /// The address every shard listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The io driver the shards run on (`io-uring` or `polling`).
    pub fn driver(&self) -> &'static str {
        self.driver
    }

    /// Where the product's extra listeners listen, in the order
    /// [`Extension::listeners`] named them (port 0 resolved).
    pub fn extra_addrs(&self) -> &[SocketAddr] {
        &self.extra_addrs
    }

    /// Each shard's inbox length, readable from any thread.
    pub fn queue_depths(&self) -> QueueDepths {
        QueueDepths {
            inboxes: self.inboxes.clone(),
        }
    }

    /// Stops accepting, lets in-flight requests be answered, then writes and
    /// syncs every partition and stops every shard.
    pub fn shutdown(mut self) -> Result<(), ServerError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), ServerError> {
        if self.threads.is_empty() {
            return Ok(());
        }
        let drained: Vec<Option<()>> = self.ask_every_shard(|done| ShardMessage::Drain { done });
        drop(drained);
        let mut result = Ok(());
        for flushed in self.ask_every_shard(|done| ShardMessage::Finish { done }) {
            if let Some(Err(error)) = flushed {
                result = result.and(Err(ServerError::Flush(error)));
            }
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        result
    }

    // ANCHOR: ask_every_shard
    /// Sends every shard a message made with a fresh `done` sender and waits
    /// for each answer, or for that shard's thread to end without one.
    ///
    /// Why not just wait on the answer: a shard that failed to start leaves
    /// its thread, and with it the inbox's receiver, while the message may
    /// already sit in the inbox. flume keeps a queued message (and the `done`
    /// sender inside it) for as long as any *sender* of the inbox lives, and
    /// this server holds one: so the answer neither comes nor fails, and a
    /// plain `recv` waited for ever (a start that failed on a corrupt
    /// partition sometimes hung here). The thread's end is the signal that
    /// no answer will come.
    fn ask_every_shard<T>(
        &self,
        message: impl Fn(flume::Sender<T>) -> ShardMessage,
    ) -> Vec<Option<T>> {
        let mut waits = Vec::with_capacity(self.inboxes.len());
        for inbox in &self.inboxes {
            let (done, wait) = flume::bounded(1);
            let sent = inbox.send(message(done)).is_ok();
            waits.push(sent.then_some(wait));
        }
        waits
            .into_iter()
            .enumerate()
            .map(|(shard, wait)| {
                let thread = self.threads.get(shard);
                wait.and_then(|wait| answer_or_end(&wait, thread))
            })
            .collect()
    }
    // ANCHOR_END: ask_every_shard
}

/// The answer on `wait`, or `None` once it cannot come: its sender dropped,
/// or `thread` (the shard that should answer) ended without answering.
fn answer_or_end<T>(wait: &flume::Receiver<T>, thread: Option<&JoinHandle<()>>) -> Option<T> {
    // How often to look at the thread while waiting: the answer itself
    // wakes the wait at once, so this only bounds how long a shard that
    // is gone keeps a stop waiting.
    const LOOK_EVERY: Duration = Duration::from_millis(50);
    loop {
        match wait.recv_timeout(LOOK_EVERY) {
            Ok(answer) => return Some(answer),
            Err(flume::RecvTimeoutError::Disconnected) => return None,
            Err(flume::RecvTimeoutError::Timeout) => {
                if thread.is_none_or(JoinHandle::is_finished) {
                    // One last look: it may have answered just before ending.
                    return wait.try_recv().ok();
                }
            }
        }
    }
}

impl Drop for Server {
    /// A server dropped without [`Server::shutdown`] still flushes and stops.
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_stop_does_not_wait_for_a_shard_that_ended_with_the_message_queued() {
        // A shard that failed to start: its thread ends without reading its
        // inbox, while a sender of the inbox (the server's) lives on and the
        // message with its `done` sender stays queued.
        let (inbox, receiver) = flume::unbounded::<flume::Sender<()>>();
        let (done, wait) = flume::bounded(1);
        inbox.send(done).unwrap();
        let thread = std::thread::spawn(move || drop(receiver));
        assert_eq!(answer_or_end(&wait, Some(&thread)), None);
        // A shard that answers is waited for.
        let (done, wait) = flume::bounded(1);
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(120));
            done.send(7).unwrap();
        });
        assert_eq!(answer_or_end(&wait, Some(&thread)), Some(7));
    }
}
