//! `rivulet send` and `rivulet poll`: stage 5's produce and stage 6's poll
//! by position, with a follow loop.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Read};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{ArgGroup, Args};
use rivulet_client::Client;
use rivulet_client::Partitioning;
use rivulet_client::api::{PollBy, PollKind, TopicInfo, TopicRef};
use rivulet_client::{GroupConsumer, GroupOptions};
use rivulet_client::{ProducerRecord, Record};
use serde::Serialize;
use stage6_broker::shards::frame::DEFAULT_MAX_FRAME_LEN;

use crate::output::Output;
use crate::topics::resolve;

/// Messages per produce request when reading stdin: a batch is one request
/// and one append, so batching is what makes a piped file fast.
const BATCH_MESSAGES: usize = 1000;
/// Payload bytes per produce request, far below the server's frame limit.
const BATCH_BYTES: usize = 1 << 20;
/// How long `--follow` waits after a round of polls that found nothing.
/// Rejected: a long poll on the server, which the protocol does not have.
const FOLLOW_IDLE: Duration = Duration::from_millis(100);

/// `rivulet send`'s arguments.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("partitioning").args(["key", "partition"])))]
pub struct SendArgs {
    /// The topic, by name (or by id).
    topic: String,
    /// The messages; none reads one message per line of stdin.
    messages: Vec<String>,
    /// Store this key with every message, and send to the partition it
    /// hashes to (same key, same partition, in order).
    #[arg(long)]
    key: Option<String>,
    /// Send to this partition [default: round robin, batch by batch].
    #[arg(long)]
    partition: Option<u32>,
    /// Store this header with every message (repeat for more; order kept,
    /// a name may repeat; `NAME=` is an empty value).
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
}

/// `NAME=VALUE`, split at the first `=`.
fn parse_header(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) => Ok((name.to_string(), value.to_string())),
        None => Err(format!("`{text}` is not NAME=VALUE")),
    }
}

/// `partition`, if `topic` has it; else an error naming the ones it has.
fn check_partition(topic: &TopicInfo, partition: u32) -> anyhow::Result<u32> {
    if partition >= topic.partitions {
        bail!(
            "topic {} has partitions 0 to {}, not {partition}",
            topic.name,
            topic.partitions.saturating_sub(1)
        );
    }
    Ok(partition)
}

/// What one produce request was answered with, as `--json` prints it.
#[derive(Debug, Serialize)]
struct SentBatch {
    partition: u32,
    first_offset: u64,
    count: u32,
    durable: bool,
}

/// `rivulet send`.
pub fn send(client: &mut Client, out: &Output, args: &SendArgs) -> anyhow::Result<()> {
    let topic = resolve(client, &args.topic)?;
    let partitioning = match (&args.key, args.partition) {
        (Some(key), _) => Partitioning::Key(key.as_bytes().to_vec()),
        (None, Some(partition)) => Partitioning::Explicit(check_partition(&topic, partition)?),
        (None, None) => Partitioning::RoundRobin,
    };
    // Every message of the command carries the same key and headers; with
    // neither, each goes as a plain record, as before keys existed.
    let headers: Vec<(String, Option<Vec<u8>>)> = args
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), Some(value.as_bytes().to_vec())))
        .collect();
    let key = args.key.as_ref().map(|key| key.as_bytes().to_vec());
    let mut sent = Vec::new();
    let mut send_batch = |batch: &mut Vec<Vec<u8>>| -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let records: Vec<ProducerRecord> = batch
            .drain(..)
            .map(|value| ProducerRecord {
                key: key.clone(),
                headers: headers.clone(),
                ..ProducerRecord::value(value)
            })
            .collect();
        let produced = client
            .send_records(topic.id, partitioning.clone(), &records)
            .with_context(|| format!("sending to topic {}", topic.name))?;
        batch.clear();
        let batch = SentBatch {
            partition: produced.partition,
            first_offset: produced.first_offset,
            count: produced.count,
            durable: produced.durable,
        };
        if out.json() {
            out.json_line(&batch)?;
        }
        sent.push(batch);
        Ok(())
    };
    let mut batch: Vec<Vec<u8>> = Vec::new();
    if args.messages.is_empty() {
        let stdin = std::io::stdin();
        // At a terminal, each line is sent as it is typed; from a pipe or a
        // file, lines are batched.
        let interactive = stdin.is_terminal();
        let mut reader = stdin.lock();
        let mut bytes = 0;
        while let Some(line) = read_message_line(&mut reader)? {
            bytes += line.len();
            batch.push(line);
            if interactive || batch.len() >= BATCH_MESSAGES || bytes >= BATCH_BYTES {
                send_batch(&mut batch)?;
                bytes = 0;
            }
        }
    } else {
        for chunk in args.messages.chunks(BATCH_MESSAGES) {
            batch.extend(chunk.iter().map(|m| m.as_bytes().to_vec()));
            send_batch(&mut batch)?;
        }
    }
    send_batch(&mut batch)?;
    if out.json() {
        return Ok(());
    }
    out.text(&sent_summary(&topic.name, &sent))
}

/// The next line of `reader` without its line ending (`\n` or `\r\n`), as
/// bytes (a payload need not be UTF-8), or `None` at the end. A line longer
/// than a frame can carry is an error as soon as that many bytes are read.
/// Rejected: `BufRead::lines`, which refuses bytes that are not UTF-8 and
/// reads a line whatever its length (a binary file piped in by mistake could
/// take all memory before the server refused it).
fn read_message_line(reader: &mut impl BufRead) -> anyhow::Result<Option<Vec<u8>>> {
    let limit = u64::from(DEFAULT_MAX_FRAME_LEN);
    let mut line = Vec::new();
    let read = reader
        .take(limit + 1)
        .read_until(b'\n', &mut line)
        .context("reading stdin")?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    } else if line.len() as u64 > limit {
        bail!("a line of stdin is longer than {limit} bytes, more than a message can hold");
    }
    Ok(Some(line))
}

/// "sent 3 messages to orders: partition 0 offsets 0 to 2 (durable)".
fn sent_summary(topic: &str, sent: &[SentBatch]) -> String {
    let total: u64 = sent.iter().map(|b| u64::from(b.count)).sum();
    if total == 0 {
        return format!("sent nothing to {topic} (no messages given)");
    }
    // Per partition: lowest first offset, highest last offset, all durable.
    let mut ranges: BTreeMap<u32, (u64, u64, bool)> = BTreeMap::new();
    for batch in sent.iter().filter(|b| b.count > 0) {
        let last = batch.first_offset + u64::from(batch.count) - 1;
        let range = ranges
            .entry(batch.partition)
            .or_insert((batch.first_offset, last, true));
        range.0 = range.0.min(batch.first_offset);
        range.1 = range.1.max(last);
        range.2 &= batch.durable;
    }
    let parts: Vec<String> = ranges
        .iter()
        .map(|(partition, (first, last, durable))| {
            let durable = if *durable {
                "durable"
            } else {
                "not yet synced"
            };
            format!("partition {partition} offsets {first} to {last} ({durable})")
        })
        .collect();
    format!(
        "sent {total} message{} to {topic}: {}",
        if total == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

/// `rivulet poll`'s arguments.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("position").args(["offset", "first", "last", "timestamp", "since"])))]
pub struct PollArgs {
    /// The topic, by name (or by id).
    topic: String,
    /// Only this partition [default: every partition of the topic].
    #[arg(long)]
    partition: Option<u32>,
    /// Start at this offset.
    #[arg(long)]
    offset: Option<u64>,
    /// Start at the oldest message stored (the default without --consumer).
    #[arg(long)]
    first: bool,
    /// The last --count messages.
    #[arg(long)]
    last: bool,
    /// Start at the first message stamped at or after this time
    /// (microseconds since the Unix epoch).
    #[arg(long, value_name = "MICROS")]
    timestamp: Option<u64>,
    /// Start at the first message stamped within this long before now
    /// (90s, 15m, 2h, 1d).
    #[arg(long, value_name = "DURATION", value_parser = parse_age)]
    since: Option<Duration>,
    /// At most this many messages per partition per poll.
    #[arg(long, default_value_t = 100)]
    count: u32,
    /// Read as this consumer: start where its stored offset says (unless a
    /// position is given) and store the offset after what was read.
    #[arg(long, value_name = "NAME")]
    consumer: Option<String>,
    /// With --consumer: do not store its offset.
    #[arg(long, requires = "consumer")]
    no_commit: bool,
    /// Read as a member of this consumer group: the server assigns this
    /// process some of the topic's partitions, shared with the group's other
    /// members; each batch is committed after it is printed. Without
    /// --follow, leaves once its partitions are drained.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["consumer", "partition", "position"])]
    group: Option<String>,
    /// With --group: the member is dropped from the group (and its
    /// partitions handed to the others) after this long without a word
    /// from it (a process killed, or stopped with Ctrl-C).
    #[arg(long, value_name = "MS", requires = "group", default_value_t = 10_000)]
    session_timeout_ms: u64,
    /// Keep polling and print new messages as they arrive, until Ctrl-C.
    #[arg(long)]
    follow: bool,
}

// ANCHOR: poll_kind
impl PollArgs {
    /// Where the first poll of each partition starts.
    fn kind(&self) -> PollKind {
        if let Some(offset) = self.offset {
            PollKind::Offset(offset)
        } else if let Some(timestamp) = self.timestamp {
            PollKind::Timestamp(timestamp)
        } else if let Some(age) = self.since {
            // The server stamps records from its own clock; on one host (or
            // hosts kept in sync by NTP) "now" here is "now" there.
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let micros = now.saturating_sub(age).as_micros();
            PollKind::Timestamp(u64::try_from(micros).unwrap_or(u64::MAX))
        } else if self.last {
            PollKind::Last
        } else if self.first || self.consumer.is_none() {
            PollKind::First
        } else {
            PollKind::Next
        }
    }
}
// ANCHOR_END: poll_kind

/// A message as `--json` prints it: one object per line.
#[derive(Debug, Serialize)]
struct Message<'a> {
    partition: u32,
    offset: u64,
    /// Microseconds since the Unix epoch, stamped by the server.
    timestamp: u64,
    id: u64,
    /// The value as UTF-8, invalid sequences replaced by U+FFFD; `null` for
    /// a null value (a tombstone).
    payload: Option<std::borrow::Cow<'a, str>>,
    /// `null` without a key.
    key: Option<Bytes<'a>>,
    /// `[name, value]` pairs in order (a name may repeat, so not an object);
    /// a value is `null` when null.
    headers: Vec<(&'a str, Option<Bytes<'a>>)>,
    /// The producer's timestamp, milliseconds since the Unix epoch; `null`
    /// when it gave none.
    create_time: Option<i64>,
}

/// Bytes in JSON, exactly: a string when they are UTF-8, else
/// `{"hex": "..."}` (two lowercase digits a byte). Rejected: base64, one
/// more dependency for a form people read less easily; and replacing
/// invalid bytes as `payload` does, which a key or header would not survive.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Bytes<'a> {
    Text(&'a str),
    Hex { hex: String },
}

impl<'a> Bytes<'a> {
    fn of(bytes: &'a [u8]) -> Bytes<'a> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Bytes::Text(text),
            Err(_) => Bytes::Hex {
                hex: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            },
        }
    }
}

/// `rivulet poll`.
pub fn poll(mut client: Client, out: &Output, args: &PollArgs) -> anyhow::Result<()> {
    let topic = resolve(&mut client, &args.topic)?;
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    if let Some(group) = &args.group {
        return poll_group(client, out, args, &topic, group);
    }
    let client = &mut client;
    let partitions: Vec<u32> = match args.partition {
        Some(partition) => vec![check_partition(&topic, partition)?],
        None => (0..topic.partitions).collect(),
    };
    // With one partition in view the partition column says nothing.
    let show_partition = partitions.len() > 1;
    let mut positions: Vec<(u32, PollKind)> =
        partitions.iter().map(|&p| (p, args.kind())).collect();
    let auto_commit = args.consumer.is_some() && !args.no_commit;
    loop {
        let mut found = false;
        for (partition, kind) in &mut positions {
            let request = PollBy {
                topic: topic.id,
                partition: *partition,
                kind: *kind,
                count: args.count,
                consumer: args.consumer.clone().unwrap_or_default(),
                auto_commit,
            };
            let records = client
                .poll_by(&request)
                .with_context(|| format!("polling topic {} partition {partition}", topic.name))?;
            print_records(out, *partition, show_partition, &records)?;
            // ANCHOR: follow
            match records.last() {
                // Next time: right after the last one printed. (With a
                // consumer and auto-commit the server stored the same offset.)
                // (Saturating: an offset comes from the server's reply, and
                // a reply holding u64::MAX must not panic the command line.)
                Some(last) => {
                    *kind = PollKind::Offset(last.offset.saturating_add(1));
                    found = true;
                }
                // Nothing yet: "the last N" of an empty partition is its start.
                None if *kind == PollKind::Last => *kind = PollKind::First,
                None => {}
            }
            // ANCHOR_END: follow
        }
        if !args.follow {
            return Ok(());
        }
        if !found {
            std::thread::sleep(FOLLOW_IDLE);
        }
    }
}

// ANCHOR: poll_group
/// `rivulet poll --group`: a member of the group, printing each batch and
/// committing it once printed (at least once: killed between the two, the
/// batch is read again by whoever gets the partition). Leaves the group on
/// the way out, so the others take its partitions at once.
fn poll_group(
    client: Client,
    out: &Output,
    args: &PollArgs,
    topic: &TopicInfo,
    group: &str,
) -> anyhow::Result<()> {
    let options = GroupOptions {
        session_timeout: Duration::from_millis(args.session_timeout_ms),
        count: args.count,
        client_id: Some(format!("rivulet-{}", std::process::id())),
    };
    let mut consumer = GroupConsumer::join(client, group, TopicRef::Id(topic.id), options)
        .with_context(|| format!("joining group {group} for topic {}", topic.name))?;
    announce(&consumer);
    let show_partition = topic.partitions > 1;
    let consumed = (|| -> anyhow::Result<()> {
        loop {
            let joins = consumer.joins();
            let polled = consumer
                .poll()
                .with_context(|| format!("polling topic {} as group {group}", topic.name))?;
            if consumer.joins() != joins {
                announce(&consumer);
            }
            match polled {
                Some(batch) => {
                    print_records(out, batch.partition, show_partition, &batch.records)?;
                    consumer
                        .commit()
                        .with_context(|| format!("committing group {group}'s offsets"))?;
                }
                // Drained: nothing in any of its partitions, and no
                // rebalance handed it new ones meanwhile.
                None if !args.follow && consumer.joins() == joins => return Ok(()),
                None if args.follow => std::thread::sleep(FOLLOW_IDLE),
                None => {}
            }
        }
    })();
    let left = consumer
        .leave()
        .with_context(|| format!("leaving group {group}"));
    consumed?;
    left.map(|_| ())
}
// ANCHOR_END: poll_group

/// Says on stderr which partitions this member reads now (stdout is the
/// messages').
fn announce(consumer: &GroupConsumer) {
    let partitions: Vec<String> = consumer.partitions().iter().map(u32::to_string).collect();
    eprintln!(
        "group {}: member {}, generation {}, partitions [{}]",
        consumer.group(),
        consumer.member(),
        consumer.generation(),
        partitions.join(", ")
    );
}

/// An age as people type it: a number and a unit, `s`, `m`, `h` or `d`
/// (a bare number is seconds).
fn parse_age(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: the unit is s, m, h or d")),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not an age (try 90s, 15m, 2h or 1d)"))?;
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too long ago"))
}

fn print_records(
    out: &Output,
    partition: u32,
    show_partition: bool,
    records: &[Record],
) -> anyhow::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let mut text = String::new();
    for record in records {
        if out.json() {
            let message = Message {
                partition,
                offset: record.offset,
                timestamp: record.timestamp,
                id: record.id,
                payload: (!record.null_value).then(|| String::from_utf8_lossy(&record.payload)),
                key: record.key.as_deref().map(Bytes::of),
                headers: record
                    .headers
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_deref().map(Bytes::of)))
                    .collect(),
                create_time: record.create_time,
            };
            text.push_str(&serde_json::to_string(&message)?);
        } else {
            text.push_str(&text_line(partition, show_partition, record));
        }
        text.push('\n');
    }
    out.text(&text)
}

/// A message as text: tab-separated `[partition] offset [key=K] [NAME=VALUE
/// ...] payload`, bytes as UTF-8 with invalid sequences replaced; a message
/// without key or headers is `offset<TAB>payload`, as before keys existed.
/// A null header value or a null payload (a tombstone) shows as `(null)`.
fn text_line(partition: u32, show_partition: bool, record: &Record) -> String {
    let lossy = |bytes: Option<&[u8]>| match bytes {
        Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        None => "(null)".to_string(),
    };
    let mut columns = Vec::new();
    if show_partition {
        columns.push(partition.to_string());
    }
    columns.push(record.offset.to_string());
    if let Some(key) = &record.key {
        columns.push(format!("key={}", lossy(Some(key))));
    }
    for (name, value) in &record.headers {
        columns.push(format!("{name}={}", lossy(value.as_deref())));
    }
    columns.push(lossy((!record.null_value).then_some(&record.payload[..])));
    columns.join("\t")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn poll_since_reads_ages() {
        assert_eq!(parse_age("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_age("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_age("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_age("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_age("30"), Ok(Duration::from_secs(30)));
        assert!(parse_age("5w").is_err());
        assert!(parse_age("soon").is_err());
        assert!(parse_age("99999999999999999999d").is_err());
    }

    #[test]
    fn send_reads_lines_as_bytes_and_refuses_one_too_long() {
        let mut input: &[u8] = b"a\r\n\xffb\n\nlast";
        let mut lines = Vec::new();
        while let Some(line) = read_message_line(&mut input).unwrap() {
            lines.push(line);
        }
        assert_eq!(lines, [&b"a"[..], b"\xffb", b"", b"last"]);
        let long = vec![b'x'; DEFAULT_MAX_FRAME_LEN as usize + 1];
        let error = read_message_line(&mut &long[..]).unwrap_err();
        assert!(error.to_string().contains("longer than"), "{error}");
    }

    #[test]
    fn send_header_flags_split_at_the_first_equals() {
        assert_eq!(parse_header("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_header("a="), Ok(("a".into(), String::new())));
        assert!(parse_header("novalue").is_err());
    }

    #[test]
    fn poll_text_shows_key_and_headers_only_when_there() {
        let plain = Record {
            offset: 3,
            payload: b"hello".to_vec(),
            ..Record::default()
        };
        assert_eq!(text_line(0, false, &plain), "3\thello");
        assert_eq!(text_line(1, true, &plain), "1\t3\thello");
        let keyed = Record {
            key: Some(b"k1".to_vec()),
            headers: vec![("h1".into(), Some(b"v1".to_vec())), ("h2".into(), None)],
            ..plain.clone()
        };
        assert_eq!(
            text_line(0, false, &keyed),
            "3\tkey=k1\th1=v1\th2=(null)\thello"
        );
        let tombstone = Record {
            key: Some(b"k1".to_vec()),
            payload: Vec::new(),
            null_value: true,
            ..plain
        };
        assert_eq!(text_line(0, false, &tombstone), "3\tkey=k1\t(null)");
    }

    #[test]
    fn poll_json_bytes_are_text_when_utf8_else_hex() {
        assert_eq!(
            serde_json::to_string(&Bytes::of(b"caf\xc3\xa9")).unwrap(),
            "\"café\""
        );
        assert_eq!(
            serde_json::to_string(&Bytes::of(b"\xff\x00A")).unwrap(),
            r#"{"hex":"ff0041"}"#
        );
    }

    #[test]
    fn send_summary_names_partitions_and_ranges() {
        let sent = [
            SentBatch {
                partition: 0,
                first_offset: 0,
                count: 2,
                durable: true,
            },
            SentBatch {
                partition: 1,
                first_offset: 5,
                count: 1,
                durable: false,
            },
            SentBatch {
                partition: 0,
                first_offset: 2,
                count: 3,
                durable: true,
            },
        ];
        assert_eq!(
            sent_summary("orders", &sent),
            "sent 6 messages to orders: partition 0 offsets 0 to 4 (durable), \
             partition 1 offsets 5 to 5 (not yet synced)"
        );
        assert_eq!(
            sent_summary("orders", &[]),
            "sent nothing to orders (no messages given)"
        );
    }
}
