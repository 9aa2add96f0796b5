//! What the ladder runs, read off a workload: every rung gets the same messages,
//! the same batch size, the same actors and the same fsync policy.

use rivulet_datasets::Workload;
use stage2_batching::FsyncPolicy;

/// The shape of a ladder run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Messages per rung (after warmup).
    pub messages: u64,
    /// Messages per append or produce.
    pub batch: u32,
    /// Producers, consumers and partitions of the network rungs.
    pub producers: u32,
    /// Consumers of the network rungs.
    pub consumers: u32,
    /// Partitions (streams for stage 3) of the network rungs.
    pub partitions: u32,
    /// The fsync policy every rung keeps.
    pub fsync: FsyncPolicy,
}

impl Plan {
    /// Reads the plan off `workload`.
    pub fn of(workload: &Workload) -> anyhow::Result<Plan> {
        let name = workload.fsync.name();
        // The datasets crate names policies without depending on stage 2; the
        // two parsers are kept in agreement by a test in benches/tests.
        let fsync = FsyncPolicy::parse(&name)
            .ok_or_else(|| anyhow::anyhow!("workload {}: fsync policy {name:?}", workload.name))?;
        Ok(Plan {
            messages: workload.messages,
            batch: workload.batch.max(1),
            producers: workload.producers,
            consumers: workload.consumers,
            partitions: workload.partitions,
            fsync,
        })
    }

    /// Payload length of message `n`.
    pub fn size_of(workload: &Workload, n: u64) -> usize {
        workload.size_of(n) as usize
    }

    /// The bytes one batch moves (of the first batch: sizes may vary), which
    /// the limits round up to Direct I/O's alignment: the block size the disk
    /// limits are measured at.
    pub fn block_size(&self, workload: &Workload) -> usize {
        let batch = u64::from(self.batch);
        (0..batch)
            .map(|n| Plan::size_of(workload, n))
            .sum::<usize>()
            .max(1)
    }
}
