//! Streams and topics: which exist, their names, ids, partition counts and
//! per-topic settings, kept in one file, `data/metadata.json`.
//!
//! Invariants:
//! - one writer: shard 0's metadata task owns the [`Metadata`] value and is
//!   the only code that changes it or its file (every other shard keeps a
//!   read-only copy of each topic, told by message); so two creates of one
//!   name cannot interleave, and no lock is needed;
//! - the file is replaced atomically ([`Metadata::save`]: write a temporary
//!   file, fsync it, rename it over the old one, fsync the folder), so a
//!   crash leaves the old version or the new one, never half of either.
//!   Rejected: rewriting the file in place, which a crash can leave torn;
//! - a topic is in the file *before* its partitions are created, and out of
//!   it *before* its folder is removed. A delete interrupted by a crash
//!   leaves the topic's id in `deleting`, and start-up removes the folder
//!   ([`Metadata::load`]); a folder with a `partitions` file that the file
//!   does not mention at all (stage 4 and 5's layout, or a data folder from
//!   before this file existed) is adopted as a topic named by its id in the
//!   [`api::DEFAULT_STREAM`] stream.
//!
//! Deliberate simplifications: the whole file is rewritten on every change
//! (it is small and changes are rare); the metadata is written with blocking
//! `std::fs` calls on shard 0's thread, which stalls that shard for a few
//! milliseconds per create or delete. Rejected: compio's file calls, which
//! have no `rename` or directory fsync to make the replacement atomic.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stage6_broker::FsyncPolicy;
use thiserror::Error;

use crate::api::{self, TopicInfo, TopicSettings};
use stage6_broker::Config;

/// The file, in the data folder, that holds the streams and topics.
pub const METADATA_FILE: &str = "metadata.json";

/// The engine's file, in a topic's folder, that holds its partition count.
/// `metadata.json` is what start-up trusts; this file is for tools that read
/// stage 4's layout, and for adopting a data folder made before
/// `metadata.json` existed.
pub use stage6_broker::shards::topics::PARTITIONS_FILE;

/// One topic as the metadata file records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    /// Its id on the wire, and its folder's name.
    pub id: u32,
    /// Its name, unique in the broker.
    pub name: String,
    /// Its stream.
    pub stream: String,
    /// Partition count.
    pub partitions: u32,
    /// The settings it was created with (`None`: the server's default).
    #[serde(default)]
    pub settings: TopicSettings,
}

/// Every stream and topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Stream names (a stream may have no topic).
    #[serde(default)]
    pub streams: BTreeSet<String>,
    /// Topics by id.
    #[serde(default)]
    pub topics: BTreeMap<u32, TopicRecord>,
    /// Ids of deleted topics whose folders may still exist (a crash
    /// mid-delete); their folders are removed at start-up.
    #[serde(default)]
    pub deleting: BTreeSet<u32>,
    /// Ids of topics being created: in `topics`, not yet complete on disk.
    /// One still here at start-up whose folder has no `partitions` file was
    /// never acknowledged to anyone: start-up removes it.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub creating: BTreeSet<u32>,
}

/// Why the metadata could not be read or written.
#[derive(Debug, Error)]
pub enum MetadataError {
    /// Reading, writing or syncing a file failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is not valid metadata.
    #[error("{path}: not valid metadata: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> MetadataError {
    let what = what.into();
    move |source| MetadataError::Io { what, source }
}

impl Metadata {
    /// Reads `data/metadata.json` (empty if absent), finishes interrupted
    /// deletes (their folders are removed), and adopts the topic folders
    /// `on_disk` found that it does not mention. Returns whether anything
    /// changed, so the caller saves it.
    pub fn load(data: &Path, on_disk: &[(u32, u32)]) -> Result<(Metadata, bool), MetadataError> {
        let path = data.join(METADATA_FILE);
        let mut metadata = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Metadata>(&bytes).map_err(|error| {
                MetadataError::Parse {
                    path: path.clone(),
                    reason: error.to_string(),
                }
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Metadata::default(),
            Err(error) => return Err(io(format!("reading {}", path.display()))(error)),
        };
        let mut deleted = std::mem::take(&mut metadata.deleting);
        // A create interrupted before its topic was whole (a crash, or an
        // undo whose last save failed): it never answered its client, so it
        // is finished by removing it, never by re-creating its partitions.
        let creating = std::mem::take(&mut metadata.creating);
        let mut changed = !creating.is_empty();
        for id in creating {
            let complete = on_disk.iter().any(|&(found, _)| found == id);
            if !complete {
                metadata.topics.remove(&id);
                deleted.insert(id);
                tracing::info!(topic = id, "removed a topic whose create did not finish");
            }
        }
        changed |= !deleted.is_empty();
        for id in &deleted {
            let dir = data.join(id.to_string());
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(io(format!("removing {}", dir.display()))(error)),
            }
        }
        for &(id, partitions) in on_disk {
            // A deleted topic's folder was listed before it was removed
            // above: adopting it would bring the topic back, empty.
            if metadata.topics.contains_key(&id) || deleted.contains(&id) {
                continue;
            }
            metadata.adopt(id, partitions);
            changed = true;
        }
        Ok((metadata, changed))
    }

    /// Adds a topic found on disk (or made by stage 4's binary create-topic):
    /// named by its id, in the default stream, default settings.
    pub fn adopt(&mut self, id: u32, partitions: u32) -> &TopicRecord {
        let mut name = id.to_string();
        // A named topic may already have taken the id's name: say which id.
        while self.topic_by_name(&name).is_some() {
            name = format!("topic-{name}");
        }
        self.streams.insert(api::DEFAULT_STREAM.to_string());
        self.topics.entry(id).or_insert(TopicRecord {
            id,
            name,
            stream: api::DEFAULT_STREAM.to_string(),
            partitions,
            settings: TopicSettings::default(),
        })
    }

    /// The topic called `name`.
    pub fn topic_by_name(&self, name: &str) -> Option<&TopicRecord> {
        self.topics.values().find(|topic| topic.name == name)
    }

    /// The topic `reference` names.
    pub fn find(&self, reference: &api::TopicRef) -> Option<&TopicRecord> {
        match reference {
            api::TopicRef::Id(id) => self.topics.get(id),
            api::TopicRef::Name(name) => self.topic_by_name(name),
        }
    }

    /// The lowest id no topic has (nor a topic being deleted).
    pub fn free_id(&self) -> Option<u32> {
        (0..=u32::MAX).find(|id| !self.topics.contains_key(id) && !self.deleting.contains(id))
    }

    /// A stream's topics' names, in name order.
    pub fn stream_info(&self, stream: &str) -> api::StreamInfo {
        let mut topics: Vec<String> = self
            .topics
            .values()
            .filter(|topic| topic.stream == stream)
            .map(|topic| topic.name.clone())
            .collect();
        topics.sort();
        api::StreamInfo {
            name: stream.to_string(),
            topics,
        }
    }

    // ANCHOR: save
    /// Replaces `data/metadata.json` atomically: a temporary file, written
    /// and synced, renamed over the old one, and the folder synced so the
    /// rename itself survives a crash.
    pub fn save(&self, data: &Path) -> Result<(), MetadataError> {
        let path = data.join(METADATA_FILE);
        let temporary = data.join(format!("{METADATA_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(self).map_err(|error| MetadataError::Parse {
            path: path.clone(),
            reason: error.to_string(),
        })?;
        let mut file = std::fs::File::create(&temporary)
            .map_err(io(format!("creating {}", temporary.display())))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(io(format!("writing {}", temporary.display())))?;
        drop(file);
        std::fs::rename(&temporary, &path)
            .map_err(io(format!("renaming to {}", path.display())))?;
        sync_dir(data)
    }
    // ANCHOR_END: save
}

/// fsyncs a folder, so a file created, renamed or removed in it stays so.
pub fn sync_dir(dir: &Path) -> Result<(), MetadataError> {
    std::fs::File::open(dir)
        .and_then(|folder| folder.sync_all())
        .map_err(io(format!("syncing {}", dir.display())))
}

/// A per-topic setting that cannot work: the key, as the client spelled it,
/// and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid topic setting `{key}`: {reason}")]
pub struct SettingError {
    /// The key in [`TopicSettings`].
    pub key: &'static str,
    /// Why.
    pub reason: String,
}

// ANCHOR: resolve
/// A topic's storage settings: the server's `defaults` with the topic's
/// overrides, checked as a whole (a segment size that is no multiple of
/// 4096 is refused here, at create, never at the first write).
pub fn resolve(defaults: &Config, settings: &TopicSettings) -> Result<Config, SettingError> {
    let mut config = defaults.clone();
    if let Some(fsync) = &settings.fsync {
        config.fsync = fsync.parse::<FsyncPolicy>().map_err(|_| SettingError {
            key: "fsync",
            reason: format!("{fsync:?}: expected always, every-batch, interval-<ms>ms or never"),
        })?;
    }
    if let Some(segment_size) = settings.segment_size {
        config.segment_size = segment_size;
    }
    if let Some(bytes) = settings.retention_bytes {
        config.retention_bytes = Some(bytes);
    }
    if let Some(seconds) = settings.retention_seconds {
        config.retention_age = Some(Duration::from_secs(seconds));
    }
    config.validate().map_err(|error| SettingError {
        // The one setting a topic names otherwise than `Config` does.
        key: match error.key {
            "retention_age" => "retention_seconds",
            other => other,
        },
        reason: error.reason,
    })?;
    Ok(config)
}
// ANCHOR_END: resolve

/// What a client is shown of a topic: its record with the settings in effect.
pub fn topic_info(record: &TopicRecord, config: &Config) -> TopicInfo {
    TopicInfo {
        stream: record.stream.clone(),
        name: record.name.clone(),
        id: record.id,
        partitions: record.partitions,
        fsync: config.fsync.name(),
        segment_size: config.segment_size,
        retention_bytes: config.retention_bytes,
        retention_seconds: config.retention_age.map(|age| age.as_secs()),
        partition_info: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn metadata_round_trips_and_finishes_interrupted_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let mut metadata = Metadata::default();
        metadata.streams.insert("s".into());
        metadata.topics.insert(
            3,
            TopicRecord {
                id: 3,
                name: "orders".into(),
                stream: "s".into(),
                partitions: 2,
                settings: TopicSettings {
                    segment_size: Some(8192),
                    ..TopicSettings::default()
                },
            },
        );
        metadata.deleting.insert(4);
        std::fs::create_dir_all(dir.path().join("4/0")).unwrap();
        metadata.save(dir.path()).unwrap();
        // Start-up lists the folders before `load` finishes the delete of 4.
        let (loaded, changed) = Metadata::load(dir.path(), &[(3, 2), (4, 1), (5, 1)]).unwrap();
        assert!(changed);
        assert!(
            !dir.path().join("4").exists(),
            "the interrupted delete is finished"
        );
        assert_eq!(loaded.topics[&3], metadata.topics[&3]);
        assert_eq!(loaded.topics[&5].name, "5", "a stage 4 folder is adopted");
        assert_eq!(loaded.topics[&5].stream, api::DEFAULT_STREAM);
        assert!(loaded.deleting.is_empty());
        assert!(
            !loaded.topics.contains_key(&4),
            "a deleted topic is not adopted back"
        );
    }

    #[test]
    fn metadata_settings_resolve_against_the_defaults_and_name_the_bad_key() {
        let defaults = Config::default();
        let settings = TopicSettings {
            fsync: Some("never".into()),
            retention_seconds: Some(60),
            ..TopicSettings::default()
        };
        let config = resolve(&defaults, &settings).unwrap();
        assert_eq!(config.fsync, FsyncPolicy::Never);
        assert_eq!(config.retention_age, Some(Duration::from_secs(60)));
        assert_eq!(config.segment_size, defaults.segment_size);
        let bad = TopicSettings {
            segment_size: Some(1000),
            ..TopicSettings::default()
        };
        assert_eq!(resolve(&defaults, &bad).unwrap_err().key, "segment_size");
        let bad = TopicSettings {
            fsync: Some("sometimes".into()),
            ..TopicSettings::default()
        };
        assert_eq!(resolve(&defaults, &bad).unwrap_err().key, "fsync");
    }
}
