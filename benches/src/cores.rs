//! Splitting the machine's cores between a server and the load generator
//! that drives it from the same process, so that neither runs on the other's
//! cores. On a machine with few cores, a load generator that floats over all
//! of them takes turns with the server's threads, and thread-per-core's
//! premise (a core for each shard, and nothing else on it) does not hold.

/// The cores this process may run on, in order.
pub fn allowed() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&cpu| set.is_set(cpu))
            .collect(),
        Err(_) => (0..stage6_broker::cores()).collect(),
    }
}

/// The first half of the allowed cores (at least one) for the server, the
/// rest (at least one, shared with the server's if there is only one core)
/// for the load generator. The server gets the first ones because stage 6
/// pins shard `n` to core `n`.
pub fn split() -> (Vec<usize>, Vec<usize>) {
    let cores = allowed();
    let half = (cores.len() / 2).max(1);
    let (server, load) = cores.split_at(half.min(cores.len()));
    let load = if load.is_empty() { server } else { load };
    (server.to_vec(), load.to_vec())
}

/// Pins the calling thread to `cores`; on failure (a container that forbids
/// it) the thread keeps running where the kernel puts it, and says so.
pub fn pin_current_thread(cores: &[usize]) {
    let mut set = rustix::thread::CpuSet::new();
    for &core in cores {
        set.set(core);
    }
    if let Err(error) = rustix::thread::sched_setaffinity(None, &set) {
        eprintln!("could not pin a thread to cores {cores:?}: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_gives_each_side_at_least_one_core_and_no_core_twice() {
        let (server, load) = split();
        assert!(!server.is_empty() && !load.is_empty());
        if allowed().len() > 1 {
            assert!(server.iter().all(|core| !load.contains(core)));
        }
    }
}
