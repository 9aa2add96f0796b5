//! Streams, topics, consumer offsets and the server's counters: one JSON
//! command each, printed as a table or as the server's JSON.

use anyhow::{Context, anyhow};
use clap::Args;
use rivulet_client::api::{self, TopicRef, status};
use rivulet_client::{Client, ClientError};
use serde_json::json;

use crate::output::{Output, table};

/// Where the broker is and who to log in as.
#[derive(Debug)]
pub struct Session {
    /// `host:port`.
    pub server: String,
    /// Sent first on every connection, if any.
    pub login: Option<api::Login>,
}

impl Session {
    /// Connects and logs in, saying what to do when nothing answers or the
    /// login is refused.
    pub fn connect(&self) -> anyhow::Result<Client> {
        let server = &self.server;
        let mut client = Client::connect(server).map_err(|error| match &error {
            ClientError::Connect { source, .. }
                if source.kind() == std::io::ErrorKind::ConnectionRefused =>
            {
                anyhow!(
                    "cannot connect to {server}: connection refused; is rivulet-server running?"
                )
            }
            _ => anyhow::Error::new(error),
        })?;
        if let Some(login) = &self.login {
            client
                .login(login)
                .with_context(|| format!("logging in to {server}"))?;
        }
        Ok(client)
    }
}

/// A hint for an error the user can fix by logging in differently.
pub fn hint(error: &anyhow::Error) -> Option<&'static str> {
    let status = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<ClientError>()?.status())?;
    match status {
        status::UNAUTHENTICATED => Some(
            "the server has access control on: log in with --user NAME and \
             RIVULET_PASSWORD, or with RIVULET_TOKEN",
        ),
        status::FORBIDDEN => Some("the user logged in may not do this to this topic"),
        _ => None,
    }
}

/// The topic a command line names: by name first, and a number that is no
/// topic's name is taken as an id. Missing, the error says how to create it.
pub fn resolve(client: &mut Client, topic: &str) -> anyhow::Result<api::TopicInfo> {
    let not_found = |error: &ClientError| error.status() == Some(api::status::TOPIC_NOT_FOUND);
    let by_name = if api::check_name("topic", topic).is_ok() {
        client.describe_topic(&TopicRef::Name(topic.to_string()))
    } else {
        Err(ClientError::Server {
            status: api::status::TOPIC_NOT_FOUND,
            message: String::new(),
        })
    };
    match by_name {
        Err(error) if not_found(&error) => {
            if let Ok(id) = topic.parse::<u32>() {
                match client.describe_topic(&TopicRef::Id(id)) {
                    Err(error) if not_found(&error) => {}
                    other => return other.with_context(|| format!("topic {id}")),
                }
            }
            Err(anyhow!(
                "topic {topic} does not exist (create it with `rivulet topic create {topic}`)"
            ))
        }
        other => other.with_context(|| format!("topic {topic}")),
    }
}

/// `rivulet stream create`.
pub fn create_stream(client: &mut Client, out: &Output, name: &str) -> anyhow::Result<()> {
    let stream = client
        .create_stream(name)
        .with_context(|| format!("creating stream {name}"))?;
    out.either(&stream, || format!("created stream {}", stream.name))
}

/// `rivulet stream list`.
pub fn list_streams(client: &mut Client, out: &Output) -> anyhow::Result<()> {
    let streams = client.list_streams().context("listing streams")?;
    out.either(
        &api::StreamList {
            streams: streams.clone(),
        },
        || {
            let rows: Vec<Vec<String>> = streams
                .iter()
                .map(|s| vec![s.name.clone(), s.topics.join(", ")])
                .collect();
            table(&["STREAM", "TOPICS"], &rows)
        },
    )
}

/// `rivulet stream delete`.
pub fn delete_stream(client: &mut Client, out: &Output, name: &str) -> anyhow::Result<()> {
    client.delete_stream(name).map_err(|error| {
        if error.status() == Some(status::STREAM_NOT_FOUND) {
            anyhow!("stream {name} does not exist")
        } else {
            anyhow::Error::new(error).context(format!("deleting stream {name}"))
        }
    })?;
    out.either(&json!({ "deleted": name }), || {
        format!("deleted stream {name}")
    })
}

/// `rivulet topic create`'s arguments.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Its name (letters, digits, '.', '_', '-').
    name: String,
    /// Number of partitions.
    #[arg(long, default_value_t = 1)]
    partitions: u32,
    /// The stream it joins (created if missing) [default: default].
    #[arg(long)]
    stream: Option<String>,
    /// When appends are synced: always, every-batch, interval-250ms (any
    /// milliseconds) or never, as `rivulet-server --fsync` [default: the server's].
    #[arg(long, value_name = "POLICY")]
    fsync: Option<String>,
    /// Bytes per segment file, a multiple of 4096 [default: the server's].
    #[arg(long, value_name = "BYTES")]
    segment_size: Option<u64>,
    /// Delete the oldest segments while a partition holds more than this.
    #[arg(long, value_name = "BYTES")]
    retention_bytes: Option<u64>,
    /// Delete segments whose newest message is older than this.
    #[arg(long, value_name = "SECONDS")]
    retention_seconds: Option<u64>,
}

/// `rivulet topic create`.
pub fn create_topic(client: &mut Client, out: &Output, args: CreateArgs) -> anyhow::Result<()> {
    let request = api::CreateTopic {
        stream: args.stream,
        name: args.name.clone(),
        id: None,
        partitions: args.partitions,
        settings: api::TopicSettings {
            fsync: args.fsync,
            segment_size: args.segment_size,
            retention_bytes: args.retention_bytes,
            retention_seconds: args.retention_seconds,
        },
    };
    let topic = client.create_topic(&request).map_err(|error| match error {
        ClientError::Server { status, message } if status == status::ALREADY_EXISTS => anyhow!(
            "cannot create topic {name}: {message} (`rivulet topic describe {name}` shows it)",
            name = args.name
        ),
        error => anyhow::Error::new(error).context(format!("creating topic {}", args.name)),
    })?;
    out.either(&topic, || {
        format!(
            "created topic {} (id {}, {} partition{}, stream {}, fsync {})",
            topic.name,
            topic.id,
            topic.partitions,
            if topic.partitions == 1 { "" } else { "s" },
            topic.stream,
            topic.fsync
        )
    })
}

/// `rivulet topic list`.
pub fn list_topics(client: &mut Client, out: &Output, stream: Option<&str>) -> anyhow::Result<()> {
    let topics = client.list_topics(stream).map_err(|error| match stream {
        Some(stream) if error.status() == Some(status::STREAM_NOT_FOUND) => {
            anyhow!("stream {stream} does not exist")
        }
        _ => anyhow::Error::new(error).context("listing topics"),
    })?;
    out.either(
        &api::TopicList {
            topics: topics.clone(),
        },
        || {
            let rows: Vec<Vec<String>> = topics
                .iter()
                .map(|t| {
                    vec![
                        t.id.to_string(),
                        t.name.clone(),
                        t.stream.clone(),
                        t.partitions.to_string(),
                        t.fsync.clone(),
                    ]
                })
                .collect();
            table(&["ID", "NAME", "STREAM", "PARTITIONS", "FSYNC"], &rows)
        },
    )
}

/// `rivulet topic describe`.
pub fn describe_topic(client: &mut Client, out: &Output, topic: &str) -> anyhow::Result<()> {
    let info = resolve(client, topic)?;
    out.either(&info, || {
        let limit = |value: Option<u64>, unit: &str| {
            value.map_or_else(|| "none".to_string(), |v| format!("{v} {unit}"))
        };
        let mut text = format!(
            "topic {} (id {}) in stream {}\n\
             partitions {} · fsync {} · segment size {} bytes · retention {} / {}\n\n",
            info.name,
            info.id,
            info.stream,
            info.partitions,
            info.fsync,
            info.segment_size,
            limit(info.retention_bytes, "bytes"),
            limit(info.retention_seconds, "seconds"),
        );
        let rows: Vec<Vec<String>> = info
            .partition_info
            .iter()
            .map(|p| {
                vec![
                    p.partition.to_string(),
                    p.shard.to_string(),
                    p.first_offset.to_string(),
                    p.next_offset.to_string(),
                    p.durable_offset.to_string(),
                    p.segments.to_string(),
                    p.bytes.to_string(),
                    p.failed.clone().unwrap_or_else(|| "ok".to_string()),
                ]
            })
            .collect();
        text.push_str(&table(
            &[
                "PARTITION",
                "SHARD",
                "FIRST",
                "NEXT",
                "DURABLE",
                "SEGMENTS",
                "BYTES",
                "STATE",
            ],
            &rows,
        ));
        text
    })
}

/// `rivulet topic delete`.
pub fn delete_topic(client: &mut Client, out: &Output, topic: &str) -> anyhow::Result<()> {
    let info = resolve(client, topic)?;
    client
        .delete_topic(&TopicRef::Id(info.id))
        .with_context(|| format!("deleting topic {}", info.name))?;
    out.either(&json!({ "deleted": info.name, "id": info.id }), || {
        format!("deleted topic {} (id {})", info.name, info.id)
    })
}

/// `rivulet offsets`.
pub fn offsets(
    client: &mut Client,
    out: &Output,
    topic: &str,
    consumer: &str,
) -> anyhow::Result<()> {
    let info = resolve(client, topic)?;
    let offsets = client
        .get_offsets(consumer, &TopicRef::Id(info.id))
        .with_context(|| format!("offsets of consumer {consumer} in topic {}", info.name))?;
    out.either(&offsets, || {
        let rows: Vec<Vec<String>> = offsets
            .partitions
            .iter()
            .map(|p| {
                let stored = p.offset.map_or_else(|| "-".to_string(), |o| o.to_string());
                let lag = p.next_offset.saturating_sub(p.offset.unwrap_or(0));
                vec![
                    p.partition.to_string(),
                    stored,
                    p.next_offset.to_string(),
                    lag.to_string(),
                ]
            })
            .collect();
        format!(
            "consumer {consumer} in topic {}\n{}",
            info.name,
            table(&["PARTITION", "STORED", "NEXT", "LAG"], &rows)
        )
    })
}

/// `rivulet stats`.
pub fn stats(client: &mut Client, out: &Output) -> anyhow::Result<()> {
    let stats = client.stats().context("reading the server's counters")?;
    out.either(&stats, || {
        let rows = [
            ("uptime", format!("{} s", stats.uptime_seconds)),
            ("shards", stats.shards.to_string()),
            ("io driver", stats.io_driver.clone()),
            ("connections", stats.connections.to_string()),
            ("topics", stats.topics.to_string()),
            ("messages in", stats.messages_in.to_string()),
            ("bytes in", stats.bytes_in.to_string()),
            ("messages out", stats.messages_out.to_string()),
            ("bytes out", stats.bytes_out.to_string()),
        ];
        rows.iter()
            .map(|(name, value)| format!("{name:<14}{value}\n"))
            .collect()
    })
}
