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
    /// The fsync policy every rung keeps, as stage 2's type (stages 2 to 5).
    pub fsync: FsyncPolicy,
    /// The same policy as the engine's type (stage 6 keeps its own copy of
    /// the enum, so a lesson's change cannot change the broker's): read off
    /// the same name by the engine's parser.
    pub engine_fsync: stage6_broker::FsyncPolicy,
}

impl Plan {
    /// Reads the plan off `workload`.
    pub fn of(workload: &Workload) -> anyhow::Result<Plan> {
        let name = workload.fsync.name();
        // The datasets crate names policies without depending on stage 2 or
        // the engine; the three parsers are kept in agreement by a test in
        // benches/tests.
        let refused = || anyhow::anyhow!("workload {}: fsync policy {name:?}", workload.name);
        let fsync = FsyncPolicy::parse(&name).ok_or_else(refused)?;
        let engine_fsync = stage6_broker::FsyncPolicy::parse(&name).ok_or_else(refused)?;
        Ok(Plan {
            messages: workload.messages,
            batch: workload.batch.max(1),
            producers: workload.producers,
            consumers: workload.consumers,
            partitions: workload.partitions,
            fsync,
            engine_fsync,
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
