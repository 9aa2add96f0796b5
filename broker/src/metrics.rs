//! The broker's counters, written by the shards and read by the metrics
//! endpoint and the `stats` command.
//!
//! Shared nothing, as far as counters go: each shard has its own
//! [`ShardMetrics`], written only by its own thread, so no cache line is
//! written by two cores; the reader (a scrape, a few times a minute) sums the
//! shards. Rejected: one set of global atomics, which every produce on every
//! core would write, bouncing their cache lines between cores.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Upper bounds of the fsync latency histogram's buckets, in seconds
/// (Prometheus `le` labels); a last `+Inf` bucket counts everything.
pub const FSYNC_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Messages and bytes, in and out, of one topic on one shard.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TopicCounters {
    /// Messages appended.
    pub messages_in: u64,
    /// Bytes appended (records as stored).
    pub bytes_in: u64,
    /// Messages returned by polls.
    pub messages_out: u64,
    /// Bytes returned by polls.
    pub bytes_out: u64,
}

/// One shard's counters.
#[derive(Debug, Default)]
pub struct ShardMetrics {
    /// Connections open on this shard now.
    pub connections: AtomicU64,
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// Connections refused at the limit since start.
    pub connections_refused: AtomicU64,
    /// Logins refused since start (wrong secrets, or an address over its
    /// failure budget): counted each, while the log shows a line a second.
    pub login_failures: AtomicU64,
    /// Per topic id. A mutex only this shard and the scraper take, so it is
    /// never contended in practice.
    pub topics: Mutex<HashMap<u32, TopicCounters>>,
    /// fsync latency: counts per bucket of [`FSYNC_BUCKETS`] plus `+Inf`.
    pub fsync_buckets: [AtomicU64; FSYNC_BUCKETS.len() + 1],
    /// Sum of fsync latencies, in nanoseconds.
    pub fsync_nanos: AtomicU64,
    /// Partitions that failed since start (could not be opened, or refuse
    /// writes after a failed write or sync).
    pub partition_failures: AtomicU64,
    /// Repairs recovery made as partitions opened, by kind: torn bytes
    /// erased, index entries dropped and rebuilt, stray files removed.
    pub repairs: [AtomicU64; REPAIR_KINDS.len()],
}

/// The kinds of repair [`ShardMetrics::repairs`] counts, as labelled.
pub const REPAIR_KINDS: [&str; 4] = [
    "torn_bytes_erased",
    "index_entries_dropped",
    "index_entries_rebuilt",
    "stray_files_removed",
];

impl ShardMetrics {
    /// A batch was appended to `topic`.
    pub fn produced(&self, topic: u32, messages: u64, bytes: u64) {
        self.with_topic(topic, |counters| {
            counters.messages_in += messages;
            counters.bytes_in += bytes;
        });
    }

    /// A poll of `topic` returned records.
    pub fn polled(&self, topic: u32, messages: u64, bytes: u64) {
        self.with_topic(topic, |counters| {
            counters.messages_out += messages;
            counters.bytes_out += bytes;
        });
    }

    fn with_topic(&self, topic: u32, change: impl FnOnce(&mut TopicCounters)) {
        // A poisoned lock only means a panic elsewhere mid-update of plain
        // counters: the numbers are still numbers.
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        change(topics.entry(topic).or_default());
    }

    /// A connection was refused at the limit.
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Relaxed);
    }

    /// A login was refused.
    pub fn login_failed(&self) {
        self.login_failures.fetch_add(1, Relaxed);
    }

    /// A connection was accepted.
    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Relaxed);
        self.connections_total.fetch_add(1, Relaxed);
    }

    /// A connection ended.
    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Relaxed);
    }

    /// One fsync (or fdatasync) took `took`.
    pub fn fsync(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = FSYNC_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(FSYNC_BUCKETS.len());
        self.fsync_buckets[bucket].fetch_add(1, Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.fsync_nanos.fetch_add(nanos, Relaxed);
    }
}

/// Every shard's counters, and the topic names to label them with.
#[derive(Debug)]
pub struct Metrics {
    /// By shard number.
    pub shards: Vec<ShardMetrics>,
    /// Topic id to name, kept by the metadata writer.
    pub topic_names: RwLock<HashMap<u32, String>>,
    /// When the server started.
    pub started: Instant,
    /// Consumer groups' gauges, by group name (written by the groups'
    /// shards on a change or a commit, read at scrape time).
    pub groups: Mutex<BTreeMap<String, GroupGauges>>,
}

/// One consumer group's gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupGauges {
    /// Members now.
    pub members: usize,
    /// Rebalances completed since start.
    pub rebalances: u64,
    /// Records not yet committed, by topic name and partition, as of the
    /// group's last commit there.
    pub lag: BTreeMap<(String, u32), u64>,
}

impl Metrics {
    /// Counters for `shards` shards, all zero.
    pub fn new(shards: usize) -> Arc<Metrics> {
        Arc::new(Metrics {
            shards: (0..shards.max(1))
                .map(|_| ShardMetrics::default())
                .collect(),
            topic_names: RwLock::default(),
            started: Instant::now(),
            groups: Mutex::default(),
        })
    }

    /// Shard `id`'s counters (shard 0's if there is no such shard).
    pub fn shard(&self, id: usize) -> &ShardMetrics {
        &self.shards[id.min(self.shards.len() - 1)]
    }

    /// Names topic `id` in the labels.
    pub fn name_topic(&self, id: u32, name: &str) {
        let mut names = self.topic_names.write().unwrap_or_else(|p| p.into_inner());
        names.insert(id, name.to_string());
    }

    /// Forgets a deleted topic's name and counters.
    pub fn forget_topic(&self, id: u32) {
        let mut names = self.topic_names.write().unwrap_or_else(|p| p.into_inner());
        names.remove(&id);
        for shard in &self.shards {
            shard
                .topics
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        }
    }

    /// Per-topic counters summed over the shards.
    pub fn topic_totals(&self) -> HashMap<u32, TopicCounters> {
        let mut totals: HashMap<u32, TopicCounters> = HashMap::new();
        for shard in &self.shards {
            let topics = shard.topics.lock().unwrap_or_else(|p| p.into_inner());
            for (&topic, counters) in topics.iter() {
                let total = totals.entry(topic).or_default();
                total.messages_in += counters.messages_in;
                total.bytes_in += counters.bytes_in;
                total.messages_out += counters.messages_out;
                total.bytes_out += counters.bytes_out;
            }
        }
        totals
    }

    /// Group `name` has `members` members and has completed `rebalances`
    /// rebalances since start (the group's own count, so the counter holds
    /// every rebalance, whether it completed in a join or in a tick).
    pub fn group_changed(&self, name: &str, members: usize, rebalances: u64) {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let gauges = groups.entry(name.to_string()).or_default();
        gauges.members = members;
        gauges.rebalances = gauges.rebalances.max(rebalances);
    }

    /// Group `name` committed in `topic`'s `partition`, `lag` records behind its end.
    pub fn group_lag(&self, name: &str, topic: &str, partition: u32, lag: u64) {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let gauges = groups.entry(name.to_string()).or_default();
        gauges.lag.insert((topic.to_string(), partition), lag);
    }

    /// Connections open now, over every shard.
    pub fn connections(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.connections.load(Relaxed))
            .sum()
    }
}

// ANCHOR: metric_names
/// One metric the endpoint serves: its name, Prometheus type, labels and
/// help text. [`Metrics::render`] writes the HELP and TYPE lines from here,
/// and the book's list of metrics is generated from here
/// ([`reference_markdown`]), so a metric cannot be served undocumented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricInfo {
    /// Its name (`rivulet_messages_in_total`).
    pub name: &'static str,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    /// Its labels, comma separated (empty if none).
    pub labels: &'static str,
    /// What it counts.
    pub help: &'static str,
}

/// Every metric, in the order they are served.
pub const METRICS: [MetricInfo; 16] = [
    MetricInfo {
        name: "rivulet_uptime_seconds",
        kind: "gauge",
        labels: "",
        help: "Seconds since the broker started.",
    },
    MetricInfo {
        name: "rivulet_connections",
        kind: "gauge",
        labels: "",
        help: "Client connections open now, over every shard.",
    },
    MetricInfo {
        name: "rivulet_connections_accepted_total",
        kind: "counter",
        labels: "",
        help: "Client connections accepted since start.",
    },
    MetricInfo {
        name: "rivulet_connections_refused_total",
        kind: "counter",
        labels: "",
        help: "Client connections refused at the max_connections or max_connections_per_peer limit since start.",
    },
    MetricInfo {
        name: "rivulet_login_failures_total",
        kind: "counter",
        labels: "",
        help: "Logins refused since start: a wrong user name, password or token, or any login from an address over its failure budget. Each is counted; the log writes at most one line a second about them.",
    },
    MetricInfo {
        name: "rivulet_messages_in_total",
        kind: "counter",
        labels: "topic",
        help: "Messages appended to the topic since start.",
    },
    MetricInfo {
        name: "rivulet_bytes_in_total",
        kind: "counter",
        labels: "topic",
        help: "Bytes appended to the topic since start (records as stored, headers included).",
    },
    MetricInfo {
        name: "rivulet_messages_out_total",
        kind: "counter",
        labels: "topic",
        help: "Messages returned by polls of the topic since start.",
    },
    MetricInfo {
        name: "rivulet_bytes_out_total",
        kind: "counter",
        labels: "topic",
        help: "Bytes returned by polls of the topic since start (records as stored).",
    },
    MetricInfo {
        name: "rivulet_group_members",
        kind: "gauge",
        labels: "group",
        help: "Members of the consumer group now (either protocol's); 0 once every member left or its session ended.",
    },
    MetricInfo {
        name: "rivulet_group_rebalances_total",
        kind: "counter",
        labels: "group",
        help: "Rebalances of the consumer group completed since start (each moves its generation on).",
    },
    MetricInfo {
        name: "rivulet_group_lag",
        kind: "gauge",
        labels: "group, topic, partition",
        help: "Records of the partition after the group's committed offset, as of the group's last commit there.",
    },
    MetricInfo {
        name: "rivulet_shard_queue_depth",
        kind: "gauge",
        labels: "shard",
        help: "Requests waiting in the shard's inbox now (handed over by other shards).",
    },
    MetricInfo {
        name: "rivulet_fsync_seconds",
        kind: "histogram",
        labels: "",
        help: "How long each fsync of a segment took.",
    },
    MetricInfo {
        name: "rivulet_partition_failures_total",
        kind: "counter",
        labels: "",
        help: "Partitions that failed since start: could not be opened (damaged files), or refuse writes after a failed write or sync. Each stays failed until a restart; the log says why and how to repair it.",
    },
    MetricInfo {
        name: "rivulet_recovery_repairs_total",
        kind: "counter",
        labels: "kind",
        help: "What recovery repaired as partitions opened at start: torn_bytes_erased, index_entries_dropped, index_entries_rebuilt (offset and time indexes), stray_files_removed. Each repair is also logged.",
    },
];
// ANCHOR_END: metric_names

/// A label value as the exposition format wants it: backslash, double
/// quote and newline escaped.
pub fn escape_label(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A float as Prometheus reads it (`+Inf` for infinity).
fn number(value: f64) -> String {
    if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{value}")
    }
}

// ANCHOR: render
impl Metrics {
    /// Every metric in the Prometheus text exposition format 0.0.4: a HELP
    /// and a TYPE line per metric, then its samples. The shards' counters
    /// are summed here, at scrape time, not on the data path.
    /// `queue_depths` is each shard's inbox length (see
    /// `Server::queue_depths`), read by the caller at the same moment.
    pub fn render(&self, queue_depths: &[usize]) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let mut family = |name: &str, samples: &mut dyn FnMut(&mut String)| {
            if let Some(info) = METRICS.iter().find(|info| info.name == name) {
                let help = info.help.replace('\\', "\\\\").replace('\n', "\\n");
                let _ = writeln!(out, "# HELP {} {help}", info.name);
                let _ = writeln!(out, "# TYPE {} {}", info.name, info.kind);
            }
            samples(&mut out);
        };
        let sample = |out: &mut String, name: &str, labels: &str, value: String| {
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        };
        let uptime = self.started.elapsed().as_secs_f64();
        family("rivulet_uptime_seconds", &mut |out| {
            sample(out, "rivulet_uptime_seconds", "", number(uptime));
        });
        let sum = |read: fn(&ShardMetrics) -> u64| -> u64 { self.shards.iter().map(read).sum() };
        let connections = self.connections();
        family("rivulet_connections", &mut |out| {
            sample(out, "rivulet_connections", "", connections.to_string());
        });
        let accepted = sum(|shard| shard.connections_total.load(Relaxed));
        family("rivulet_connections_accepted_total", &mut |out| {
            let name = "rivulet_connections_accepted_total";
            sample(out, name, "", accepted.to_string());
        });
        let refused = sum(|shard| shard.connections_refused.load(Relaxed));
        family("rivulet_connections_refused_total", &mut |out| {
            let name = "rivulet_connections_refused_total";
            sample(out, name, "", refused.to_string());
        });
        let login_failures = sum(|shard| shard.login_failures.load(Relaxed));
        family("rivulet_login_failures_total", &mut |out| {
            let name = "rivulet_login_failures_total";
            sample(out, name, "", login_failures.to_string());
        });

        // Every named topic, with zeros until it sees traffic (so a dashboard
        // shows it from the start), and any counted topic without a name
        // (labelled by its id).
        let totals = self.topic_totals();
        let names = self
            .topic_names
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut ids: Vec<u32> = names.keys().chain(totals.keys()).copied().collect();
        ids.sort_unstable();
        ids.dedup();
        let topics: Vec<(String, TopicCounters)> = ids
            .iter()
            .map(|id| {
                let name = names.get(id).cloned().unwrap_or_else(|| id.to_string());
                let label = format!("topic=\"{}\"", escape_label(&name));
                (label, totals.get(id).copied().unwrap_or_default())
            })
            .collect();
        type Read = fn(&TopicCounters) -> u64;
        let per_topic: [(&str, Read); 4] = [
            ("rivulet_messages_in_total", |c| c.messages_in),
            ("rivulet_bytes_in_total", |c| c.bytes_in),
            ("rivulet_messages_out_total", |c| c.messages_out),
            ("rivulet_bytes_out_total", |c| c.bytes_out),
        ];
        for (name, read) in per_topic {
            family(name, &mut |out| {
                for (label, counters) in &topics {
                    sample(out, name, label, read(counters).to_string());
                }
            });
        }

        let groups = self
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        family("rivulet_group_members", &mut |out| {
            for (name, gauges) in &groups {
                let label = format!("group=\"{}\"", escape_label(name));
                let value = gauges.members.to_string();
                sample(out, "rivulet_group_members", &label, value);
            }
        });
        family("rivulet_group_rebalances_total", &mut |out| {
            for (name, gauges) in &groups {
                let label = format!("group=\"{}\"", escape_label(name));
                let value = gauges.rebalances.to_string();
                sample(out, "rivulet_group_rebalances_total", &label, value);
            }
        });
        family("rivulet_group_lag", &mut |out| {
            for (name, gauges) in &groups {
                for ((topic, partition), lag) in &gauges.lag {
                    let label = format!(
                        "group=\"{}\",topic=\"{}\",partition=\"{partition}\"",
                        escape_label(name),
                        escape_label(topic)
                    );
                    sample(out, "rivulet_group_lag", &label, lag.to_string());
                }
            }
        });

        family("rivulet_shard_queue_depth", &mut |out| {
            for (shard, depth) in queue_depths.iter().enumerate() {
                let label = format!("shard=\"{shard}\"");
                sample(out, "rivulet_shard_queue_depth", &label, depth.to_string());
            }
        });

        // Buckets are counted per bucket on the data path (one add), and made
        // cumulative here, as the format requires.
        let mut counts = [0u64; FSYNC_BUCKETS.len() + 1];
        for shard in &self.shards {
            for (count, bucket) in counts.iter_mut().zip(&shard.fsync_buckets) {
                *count += bucket.load(Relaxed);
            }
        }
        let nanos = sum(|shard| shard.fsync_nanos.load(Relaxed));
        let failures = sum(|shard| shard.partition_failures.load(Relaxed));
        family("rivulet_partition_failures_total", &mut |out| {
            let name = "rivulet_partition_failures_total";
            sample(out, name, "", failures.to_string());
        });
        family("rivulet_recovery_repairs_total", &mut |out| {
            for (n, kind) in REPAIR_KINDS.iter().enumerate() {
                let count: u64 = self.shards.iter().map(|s| s.repairs[n].load(Relaxed)).sum();
                let labels = format!("kind=\"{kind}\"");
                sample(
                    out,
                    "rivulet_recovery_repairs_total",
                    &labels,
                    count.to_string(),
                );
            }
        });
        family("rivulet_fsync_seconds", &mut |out| {
            let bounds = FSYNC_BUCKETS.iter().copied().chain([f64::INFINITY]);
            let mut cumulative = 0;
            for (bound, count) in bounds.zip(counts) {
                cumulative += count;
                let label = format!("le=\"{}\"", number(bound));
                sample(
                    out,
                    "rivulet_fsync_seconds_bucket",
                    &label,
                    cumulative.to_string(),
                );
            }
            let seconds = nanos as f64 / 1e9;
            sample(out, "rivulet_fsync_seconds_sum", "", number(seconds));
            sample(
                out,
                "rivulet_fsync_seconds_count",
                "",
                cumulative.to_string(),
            );
        });
        out
    }
}
// ANCHOR_END: render

/// The book's list of metrics, generated from [`METRICS`].
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "<!-- Generated from broker/src/metrics.rs by \
         `RIVULET_BLESS=1 cargo test -p rivulet-broker --test metrics`; do not edit. -->\n\n",
    );
    out.push_str("| metric | type | labels | meaning |\n|---|---|---|---|\n");
    for info in METRICS {
        let labels = if info.labels.is_empty() {
            String::new()
        } else {
            format!("`{}`", info.labels)
        };
        out.push_str(&format!(
            "| `{}` | {} | {labels} | {} |\n",
            info.name, info.kind, info.help
        ));
    }
    out.push_str(&format!(
        "\nThe histogram's buckets (`le`, seconds): {}, `+Inf`.\n",
        FSYNC_BUCKETS
            .iter()
            .map(|bound| format!("`{}`", number(*bound)))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_sums_shards_and_escapes_labels() {
        let metrics = Metrics::new(2);
        metrics.name_topic(1, "a\"b\\c\nd");
        metrics.shard(0).produced(1, 3, 300);
        metrics.shard(1).produced(1, 2, 200);
        metrics.shard(1).polled(1, 4, 400);
        metrics.shard(0).fsync(Duration::from_micros(50));
        metrics.shard(1).fsync(Duration::from_millis(3));
        metrics.shard(1).fsync(Duration::from_secs(5));
        let text = metrics.render(&[0, 7]);
        let label = r#"topic="a\"b\\c\nd""#;
        assert!(
            text.contains(&format!("rivulet_messages_in_total{{{label}}} 5\n")),
            "{text}"
        );
        assert!(text.contains(&format!("rivulet_bytes_in_total{{{label}}} 500\n")));
        assert!(text.contains(&format!("rivulet_messages_out_total{{{label}}} 4\n")));
        assert!(text.contains("rivulet_shard_queue_depth{shard=\"1\"} 7\n"));
        assert!(text.contains("rivulet_fsync_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("rivulet_fsync_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("rivulet_fsync_seconds_bucket{le=\"1\"} 2\n"));
        assert!(text.contains("rivulet_fsync_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("rivulet_fsync_seconds_count 3\n"));
        for info in METRICS {
            assert!(text.contains(&format!("# TYPE {} {}\n", info.name, info.kind)));
        }
    }

    #[test]
    fn metrics_unnamed_topics_are_labelled_by_id() {
        let metrics = Metrics::new(1);
        metrics.shard(0).produced(9, 1, 10);
        let text = metrics.render(&[0]);
        assert!(
            text.contains("rivulet_messages_in_total{topic=\"9\"} 1\n"),
            "{text}"
        );
    }
}
