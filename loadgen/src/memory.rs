//! The in-process target: partitions as vectors in this process's memory.
//!
//! Two uses. The tests drive the load generator with it, since it needs no
//! server. And it is a measurement in its own right: the load generator's
//! ceiling, what it reaches against a target that does almost nothing (a lock,
//! a copy). A stage measured at 90% of this row is limited by the generator,
//! not by itself; every comparison table carries the row for that reason.
//!
//! Deliberate simplifications: it keeps every message until it is dropped
//! (memory grows by message size per message, so long timed runs belong to
//! real targets), and it acknowledges once the message is in the vector:
//! nothing is durable.

use std::sync::{Arc, Mutex, RwLock};

use anyhow::{Context, anyhow};

use crate::target::{Connection, Polled, Target};

/// One partition: message `n` is at index `n`, so offsets are dense by
/// construction.
///
/// A `std::sync::Mutex`, not a Tokio mutex: no `.await` happens while it is
/// held (the critical section is a copy), and a Tokio mutex would add a wait
/// queue and an asynchronous acquire to every call for nothing. A lock per
/// partition, not one for all, so producers on different partitions never wait
/// for each other, as in stage 4.
type Partition = Mutex<Vec<Vec<u8>>>;

/// Partitions in memory, shared by every connection.
#[derive(Debug, Clone, Default)]
pub struct MemoryTarget {
    /// Grows in `prepare`, read once per `connect`: connections keep their own
    /// copy of the list, so produce and poll never take this lock.
    partitions: Arc<RwLock<Vec<Arc<Partition>>>>,
}

impl MemoryTarget {
    /// A target with no partitions yet.
    pub fn new() -> MemoryTarget {
        MemoryTarget::default()
    }

    /// The number of messages in each partition.
    pub fn partition_lens(&self) -> anyhow::Result<Vec<u64>> {
        self.snapshot()?
            .iter()
            .map(|partition| {
                let messages = partition
                    .lock()
                    .map_err(|_| anyhow!("a memory partition's lock is poisoned"))?;
                Ok(messages.len() as u64)
            })
            .collect()
    }

    fn snapshot(&self) -> anyhow::Result<Vec<Arc<Partition>>> {
        let partitions = self
            .partitions
            .read()
            .map_err(|_| anyhow!("the memory target's partition list is poisoned"))?;
        Ok(partitions.clone())
    }
}

impl Target for MemoryTarget {
    type Connection = MemoryConnection;

    fn name(&self) -> String {
        "memory".to_string()
    }

    fn durability(&self) -> String {
        "none: in-process memory, lost when the process exits".to_string()
    }

    async fn prepare(&self, partitions: u32) -> anyhow::Result<()> {
        let mut existing = self
            .partitions
            .write()
            .map_err(|_| anyhow!("the memory target's partition list is poisoned"))?;
        while existing.len() < partitions as usize {
            existing.push(Arc::new(Mutex::new(Vec::new())));
        }
        Ok(())
    }

    async fn connect(&self) -> anyhow::Result<MemoryConnection> {
        Ok(MemoryConnection {
            partitions: self.snapshot()?,
        })
    }
}

/// A connection to a [`MemoryTarget`]: the partitions that existed when it
/// connected.
#[derive(Debug)]
pub struct MemoryConnection {
    partitions: Vec<Arc<Partition>>,
}

impl MemoryConnection {
    fn partition(&self, partition: u32) -> anyhow::Result<&Partition> {
        self.partitions
            .get(partition as usize)
            .map(Arc::as_ref)
            .with_context(|| {
                format!(
                    "partition {partition} does not exist (this connection has {})",
                    self.partitions.len()
                )
            })
    }
}

impl Connection for MemoryConnection {
    async fn produce(&mut self, partition: u32, payloads: &[Vec<u8>]) -> anyhow::Result<u64> {
        let mut messages = self
            .partition(partition)?
            .lock()
            .map_err(|_| anyhow!("partition {partition}'s lock is poisoned"))?;
        let first = messages.len() as u64;
        // The copy is the one cost every target pays: the caller keeps its buffers.
        messages.extend(payloads.iter().cloned());
        Ok(first)
    }

    async fn poll(
        &mut self,
        partition: u32,
        offset: u64,
        count: u32,
    ) -> anyhow::Result<Vec<Polled>> {
        let messages = self
            .partition(partition)?
            .lock()
            .map_err(|_| anyhow!("partition {partition}'s lock is poisoned"))?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(messages.len());
        let end = start.saturating_add(count as usize).min(messages.len());
        Ok(messages[start..end]
            .iter()
            .zip(offset..)
            .map(|(payload, offset)| Polled {
                offset,
                payload: payload.clone(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn produce_returns_first_offsets_and_poll_reads_them_back() {
        let target = MemoryTarget::new();
        target.prepare(2).await.unwrap();
        target.prepare(1).await.unwrap(); // idempotent, never shrinks
        let mut conn = target.connect().await.unwrap();
        assert_eq!(conn.produce(1, &[vec![1], vec![2]]).await.unwrap(), 0);
        assert_eq!(conn.produce(1, &[vec![3]]).await.unwrap(), 2);
        let polled = conn.poll(1, 1, 10).await.unwrap();
        let offsets: Vec<u64> = polled.iter().map(|m| m.offset).collect();
        assert_eq!(offsets, vec![1, 2]);
        assert_eq!(polled[1].payload, vec![3]);
        assert!(conn.poll(1, 3, 10).await.unwrap().is_empty());
        assert!(conn.poll(0, 0, 10).await.unwrap().is_empty());
        assert_eq!(target.partition_lens().unwrap(), vec![0, 3]);
    }

    #[tokio::test]
    async fn an_unknown_partition_is_an_error() {
        let target = MemoryTarget::new();
        target.prepare(1).await.unwrap();
        let mut conn = target.connect().await.unwrap();
        let error = conn.produce(5, &[vec![0]]).await.unwrap_err();
        assert!(error.to_string().contains("partition 5"), "{error}");
    }
}
