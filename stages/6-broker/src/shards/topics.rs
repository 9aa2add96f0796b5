//! Which topics exist, and how one is created or deleted across every shard.
//!
//! The engine's own catalog is stage 4's layout: a topic is the folder
//! `data/<id>/`, complete once its `partitions` file (the count, as text) is
//! written, which happens after every shard opened its partitions. At start
//! the complete folders are the topics ([`on_disk`]); a folder without the
//! file is a create that a crash interrupted, and is left alone. The broker
//! keeps richer metadata (names, streams, settings) in its own file and
//! tells the engine which topics to open ([`crate::shards::extension`]); it
//! uses the same steps below to create and delete them.
//!
//! A create, in order: every shard opens the partitions it owns
//! ([`ShardState::open_everywhere`]), the `partitions` file is written, and
//! only then does every shard learn the topic exists
//! ([`ShardState::publish_everywhere`]): so no shard routes a request to a
//! partition that is not open yet. A delete: every shard forgets the topic
//! and stops its partitions' tasks, answering what was queued first
//! ([`ShardState::close_everywhere`]), then the folder is removed.

use std::path::Path;
use std::rc::Rc;

use tracing::info;

use crate::shards::router::ShardMessage;
use crate::shards::shard::{ShardState, storage_stopped};
use crate::shards::wire::WireError;
use crate::storage::aligned::ALIGN;
use crate::storage::config::Config;

/// The most partitions a topic may have (stage 4's limit).
pub const MAX_PARTITIONS: u32 = 1024;

/// The file whose presence makes a topic folder a complete topic.
pub const PARTITIONS_FILE: &str = "partitions";

/// A topic to open: its id, its name, its partition count, its storage settings.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// The id produce and poll frames address it by.
    pub id: u32,
    /// Its name (the engine's own topics are named by their id).
    pub name: String,
    /// Partition count.
    pub partitions: u32,
    /// The storage settings its partitions open with.
    pub config: Config,
}

/// Every complete topic folder in `data`: `(id, partitions)`.
pub fn topics_on_disk(data: &Path) -> std::io::Result<Vec<(u32, u32)>> {
    std::fs::create_dir_all(data)?;
    let mut found = Vec::new();
    for entry in std::fs::read_dir(data)? {
        let path = entry?.path();
        let id = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.parse::<u32>().ok());
        let count = std::fs::read_to_string(path.join(PARTITIONS_FILE))
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok());
        if let (Some(id), Some(count)) = (id, count) {
            found.push((id, count));
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// The engine's topics at start: every complete folder, with `defaults`.
pub fn on_disk(data: &Path, defaults: &Config) -> Result<Vec<TopicSpec>, String> {
    let found =
        topics_on_disk(data).map_err(|error| format!("reading {}: {error}", data.display()))?;
    Ok(found
        .into_iter()
        .map(|(id, partitions)| TopicSpec {
            id,
            name: id.to_string(),
            partitions,
            config: defaults.clone(),
        })
        .collect())
}

/// Refuses a partition count outside 1 to [`MAX_PARTITIONS`].
pub fn check_partitions(partitions: u32) -> Result<(), WireError> {
    if (1..=MAX_PARTITIONS).contains(&partitions) {
        Ok(())
    } else {
        Err(WireError::invalid(format!(
            "a topic has 1 to {MAX_PARTITIONS} partitions, not {partitions}"
        )))
    }
}

/// Refuses a create whose partitions would not fit on the disk holding
/// `data`: each new partition's first step (its first segment's file, see
/// [`crate::storage::segment`]) and its folder's block, plus a reserve of
/// one more step for each, so that the topic can take writes past its first
/// few megabytes before a full disk stops it. Nothing is created either
/// way: a topic of 1024 partitions on a small disk is refused whole here,
/// rather than failing at its hundredth partition with the disk full for
/// everyone else.
///
/// Rejected reserves: a fixed one (64 MiB is most of a small disk, and
/// nothing beside a topic of a thousand partitions), and a fraction of the
/// disk (it says nothing about what this topic needs). `STORAGE`, not
/// `INVALID`: the request is well formed, and the same create succeeds on a
/// disk with room, or on this one once space is freed, as a produce refused
/// by a full disk does (`Error::NoSpace` answers `STORAGE` too).
///
/// The space is `statvfs`'s count of blocks free for unprivileged users, on
/// the nearest folder of `data` that exists; a blocking system call on the
/// caller's thread, which answers from the file system's counters in memory.
pub fn check_room(data: &Path, partitions: u32, config: &Config) -> Result<(), WireError> {
    const MIB: u64 = 1 << 20;
    let first_step = config.preallocate_step.min(config.segment_size);
    let count = u64::from(partitions);
    let needed = count.saturating_mul(first_step.saturating_add(ALIGN as u64));
    let reserve = count.saturating_mul(first_step);
    let free = free_bytes(data)?;
    if needed.saturating_add(reserve) <= free {
        return Ok(());
    }
    Err(WireError::storage(format!(
        "not enough disk space: the topic needs {} MiB for its {partitions} partitions' \
         first segments plus a reserve of {} MiB; the data folder has {} MiB free",
        needed.div_ceil(MIB),
        reserve.div_ceil(MIB),
        free / MIB
    )))
}

/// Bytes free for files on the file system of `data` (or of its nearest
/// folder that exists: the data folder of a first create may not yet).
fn free_bytes(data: &Path) -> Result<u64, WireError> {
    let nearest = data
        .ancestors()
        .find(|path| !path.as_os_str().is_empty() && path.exists())
        .unwrap_or(Path::new("."));
    match rustix::fs::statvfs(nearest) {
        Ok(stat) => Ok(stat.f_bavail.saturating_mul(stat.f_frsize)),
        Err(errno) => Err(WireError::storage(format!(
            "cannot tell the free space of {}: {errno}",
            nearest.display()
        ))),
    }
}

impl ShardState {
    /// Every shard opens its partitions of topic `id`, then the topic's
    /// `partitions` file is written: the first step of a create. A topic
    /// that would not fit on the disk is refused first ([`check_room`]),
    /// before any shard is asked for anything.
    pub async fn open_everywhere(
        &self,
        id: u32,
        partitions: u32,
        config: &Config,
    ) -> Result<(), WireError> {
        check_room(&self.data, partitions, config)?;
        let mut waits = Vec::with_capacity(self.inboxes.len());
        for inbox in &self.inboxes {
            let (done, wait) = flume::bounded(1);
            let open = ShardMessage::Open {
                topic: id,
                partitions,
                config: config.clone(),
                done,
            };
            inbox.send(open).map_err(|_| storage_stopped())?;
            waits.push(wait);
        }
        let mut result = Ok(());
        for wait in waits {
            let opened = wait.recv_async().await.map_err(|_| storage_stopped());
            result = result.and(opened.and_then(|opened| opened));
        }
        result?;
        let file = self.data.join(id.to_string()).join(PARTITIONS_FILE);
        compio::fs::write(&file, partitions.to_string().into_bytes())
            .await
            .0
            .map_err(|error| WireError::storage(error.to_string()))
    }

    /// Every shard learns that `topic` exists: the last step of a create.
    pub async fn publish_everywhere(&self, topic: &TopicSpec) -> Result<(), WireError> {
        self.broadcast(|done| ShardMessage::Publish {
            topic: topic.clone(),
            done,
        })
        .await
    }

    /// Every shard forgets topic `id` and stops its partitions' tasks
    /// (answering the requests already queued to them), then its folder is
    /// removed.
    pub async fn close_everywhere(&self, id: u32) -> Result<(), WireError> {
        self.broadcast(|done| ShardMessage::Close { topic: id, done })
            .await?;
        let dir = self.data.join(id.to_string());
        // Blocking, on this shard's thread (compio has no recursive removal):
        // freeing a large topic's segments stalls this shard's other work for
        // as long. Deletes are rare; a helper thread would be the fix if not.
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(WireError::storage(format!(
                "removing {}: {error}",
                dir.display()
            ))),
        }
    }

    /// Sends every shard a message made with a fresh `done` sender, and
    /// waits for every answer.
    async fn broadcast(
        &self,
        message: impl Fn(flume::Sender<()>) -> ShardMessage,
    ) -> Result<(), WireError> {
        let mut waits = Vec::with_capacity(self.inboxes.len());
        for inbox in &self.inboxes {
            let (done, wait) = flume::bounded(1);
            inbox.send(message(done)).map_err(|_| storage_stopped())?;
            waits.push(wait);
        }
        for wait in waits {
            wait.recv_async().await.map_err(|_| storage_stopped())?;
        }
        Ok(())
    }
}

/// A create-topic for the catalog writer, and where its answer goes.
pub(crate) type CatalogRequest = (u32, u32, flume::Sender<Result<(), WireError>>);

// ANCHOR: catalog_writer
/// Shard 0's catalog writer: stage 4's create-topic, one at a time, so two
/// creates of one id never interleave. Creating a topic that exists with
/// as many partitions is not an error (a client that lost the answer may
/// retry); with another count it is.
pub(crate) async fn catalog_writer(state: Rc<ShardState>, queue: flume::Receiver<CatalogRequest>) {
    while let Ok((id, partitions, done)) = queue.recv_async().await {
        let _ = done.send(create(&state, id, partitions).await);
    }
}
// ANCHOR_END: catalog_writer

async fn create(state: &ShardState, id: u32, partitions: u32) -> Result<(), WireError> {
    check_partitions(partitions)?;
    if let Ok(existing) = state.topic(id) {
        return match existing.partitions {
            n if n == partitions => Ok(()),
            n => Err(WireError::invalid(format!(
                "topic {id} exists with {n} partitions"
            ))),
        };
    }
    let topic = TopicSpec {
        id,
        name: id.to_string(),
        partitions,
        config: state.config.clone(),
    };
    state.open_everywhere(id, partitions, &topic.config).await?;
    state.publish_everywhere(&topic).await?;
    info!(topic = id, partitions, "topic created");
    Ok(())
}
