//! `rivulet group list` and `rivulet group describe`: consumer groups, as
//! tables or as the server's JSON.

use anyhow::{Context, anyhow};
use rivulet_client::Client;
use rivulet_client::api::{self, status};

use crate::output::{Output, table};

/// `rivulet group list`.
pub fn list(client: &mut Client, out: &Output) -> anyhow::Result<()> {
    let groups = client.list_groups().context("listing groups")?;
    out.either(
        &api::GroupList {
            groups: groups.clone(),
        },
        || {
            if groups.is_empty() {
                return "no groups since the server started".to_string();
            }
            let rows: Vec<Vec<String>> = groups
                .iter()
                .map(|g| {
                    vec![
                        g.group.clone(),
                        g.state.clone(),
                        g.members.to_string(),
                        g.generation.to_string(),
                        g.topic.clone().unwrap_or_else(|| "-".to_string()),
                        kind(&g.protocol_type).to_string(),
                    ]
                })
                .collect();
            table(
                &[
                    "GROUP",
                    "STATE",
                    "MEMBERS",
                    "GENERATION",
                    "TOPIC",
                    "CLIENTS",
                ],
                &rows,
            )
        },
    )
}

/// What kind of clients a group's members are, in a word.
fn kind(protocol_type: &str) -> &str {
    match protocol_type {
        "rivulet" => "rivulet",
        "" => "-",
        _ => "kafka",
    }
}

/// `rivulet group describe`.
pub fn describe(client: &mut Client, out: &Output, group: &str) -> anyhow::Result<()> {
    let info = client.describe_group(group).map_err(|error| {
        if error.status() == Some(status::CONSUMER_NOT_FOUND) {
            anyhow!(
                "group {group} does not exist: no member joined it since the server \
                 started, and it has no committed offsets"
            )
        } else {
            anyhow::Error::new(error).context(format!("describing group {group}"))
        }
    })?;
    out.either(&info, || describe_text(&info))
}

/// The group as text: a summary line, its members, its offsets.
fn describe_text(info: &api::GroupDescription) -> String {
    let mut text = format!(
        "group {} · {} · generation {} · {} member{}",
        info.group,
        info.state,
        info.generation,
        info.members.len(),
        if info.members.len() == 1 { "" } else { "s" },
    );
    if let Some(topic) = &info.topic {
        text.push_str(&format!(" · topic {topic}"));
    }
    if !info.protocol_type.is_empty() {
        text.push_str(&format!(" · {} clients", kind(&info.protocol_type)));
    }
    if !info.protocol.is_empty() {
        text.push_str(&format!(" · {} assignor", info.protocol));
    }
    if info.rebalances > 0 {
        let plural = if info.rebalances == 1 { "" } else { "s" };
        text.push_str(&format!(" · {} rebalance{plural}", info.rebalances));
    }
    text.push_str("\n\n");
    if !info.members.is_empty() {
        let rows: Vec<Vec<String>> = info
            .members
            .iter()
            .map(|m| {
                let assigned: Vec<String> = m
                    .assignment
                    .iter()
                    .map(|a| {
                        let partitions: Vec<String> =
                            a.partitions.iter().map(u32::to_string).collect();
                        format!("{}: {}", a.topic, partitions.join(", "))
                    })
                    .collect();
                vec![m.member.clone(), m.client_host.clone(), assigned.join("; ")]
            })
            .collect();
        text.push_str(&table(&["MEMBER", "HOST", "PARTITIONS"], &rows));
        text.push('\n');
    }
    if info.offsets.is_empty() {
        text.push_str("no committed offsets\n");
        return text;
    }
    let rows: Vec<Vec<String>> = info
        .offsets
        .iter()
        .map(|o| {
            vec![
                o.topic.clone(),
                o.partition.to_string(),
                o.owner.clone().unwrap_or_else(|| "-".to_string()),
                o.committed
                    .map_or_else(|| "-".to_string(), |c| c.to_string()),
                o.end_offset.to_string(),
                o.lag.to_string(),
            ]
        })
        .collect();
    text.push_str(&table(
        &["TOPIC", "PARTITION", "MEMBER", "COMMITTED", "END", "LAG"],
        &rows,
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_describe_text_shows_members_and_lag() {
        let info = api::GroupDescription {
            group: "billing".into(),
            state: "Stable".into(),
            protocol_type: "rivulet".into(),
            protocol: "range".into(),
            generation: 2,
            topic: Some("orders".into()),
            rebalances: 2,
            members: vec![api::GroupMember {
                member: "rivulet-7-1".into(),
                client_id: "rivulet-7".into(),
                client_host: "127.0.0.1".into(),
                assignment: vec![api::Assigned {
                    topic: "orders".into(),
                    partitions: vec![0, 1],
                }],
            }],
            offsets: vec![api::GroupOffset {
                topic: "orders".into(),
                partition: 0,
                owner: Some("rivulet-7-1".into()),
                committed: Some(3),
                first_offset: 0,
                end_offset: 5,
                lag: 2,
            }],
        };
        let text = describe_text(&info);
        assert!(text.starts_with("group billing · Stable · generation 2 · 1 member"));
        assert!(
            text.contains("rivulet-7-1  127.0.0.1  orders: 0, 1"),
            "{text}"
        );
        assert!(
            text.contains("orders  0          rivulet-7-1  3          5    2"),
            "{text}"
        );
    }
}
