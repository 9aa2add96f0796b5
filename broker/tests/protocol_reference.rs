//! The protocol reference's tables, generated from the code so that they
//! cannot drift from it, and the error messages a client reads.
//!
//! - `book/src/generated/protocol-commands.md`: every request code, from the
//!   `code` modules' constants and their doc comments (`request → reply`);
//!   each JSON command's request type is checked to be what the broker's
//!   decoder takes for that code;
//! - `protocol-statuses.md`: every status, from the `status` modules;
//! - `protocol-types.md`: every JSON body's fields (type, required or not,
//!   meaning), from the api types' JSON Schema (`schemars`, which reads
//!   serde's attributes and the doc comments), in the order the fields are
//!   declared; the engine's `PartitionInfo`, which has no schema, from its
//!   source, checked against what it serializes to;
//! - `protocol-binary.md`: the binary bodies, each layout checked by reading
//!   the real encoder's output with it, field by field, to the last byte.
//!
//! After a deliberate change to the protocol:
//! `RIVULET_BLESS=1 cargo test -p rivulet-broker --test protocol_reference`
//! rewrites the generated files.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rivulet_broker::api::{self, PollKind, TopicRef};
use rivulet_broker::requests::Request;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};
use stage6_broker::PartitionInfo;
use stage6_broker::shards::frame;
use stage6_broker::shards::protocol::{self as engine, Produced};
use stage6_broker::shards::wire::Partitioning;
use stage6_broker::storage::record;

const BLESS: &str = "RIVULET_BLESS=1 cargo test -p rivulet-broker --test protocol_reference";

/// The repository's root (one level above this crate).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn source(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap()
}

/// Compares `text` with the committed file, or rewrites it under `RIVULET_BLESS`.
fn check_generated(name: &str, text: &str) {
    let path = repo().join("book/src/generated").join(name);
    if std::env::var_os("RIVULET_BLESS").is_some() {
        std::fs::write(&path, text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{} differs from what the code generates ({BLESS} rewrites it)",
        path.display()
    );
}

fn header(from: &str) -> String {
    format!("<!-- Generated from {from} by `{BLESS}`; do not edit. -->\n\n")
}

// ---------------------------------------------------------------------------
// Reading doc comments out of the source.

/// A documented item: its name, what follows the name (a constant's value,
/// a field's type) and its doc comment, lines joined.
#[derive(Debug, Clone)]
struct Item {
    name: String,
    rest: String,
    doc: String,
}

/// Doc comment lines joined into one paragraph of text (a blank doc line is
/// a paragraph break, kept as one space in a table cell).
fn join_doc(lines: &[String]) -> String {
    lines
        .iter()
        .map(|line| line.trim())
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `pub const NAME: u16 = N;` items of `pub mod <module> {` in `text`.
fn consts_of_module(text: &str, module: &str) -> Vec<Item> {
    let start = format!("pub mod {module} {{");
    let mut lines = text.lines().skip_while(|line| line.trim() != start).skip(1);
    let mut items = Vec::new();
    let mut doc = Vec::new();
    for line in lines.by_ref() {
        let line = line.trim();
        if line == "}" {
            return items;
        }
        if let Some(text) = line.strip_prefix("///") {
            doc.push(text.to_string());
        } else if let Some(decl) = line.strip_prefix("pub const ") {
            let (name, value) = decl.split_once(':').unwrap();
            let value = value
                .split_once('=')
                .unwrap()
                .1
                .trim()
                .trim_end_matches(';');
            items.push(Item {
                name: name.trim().to_string(),
                rest: value.to_string(),
                doc: join_doc(&doc),
            });
            doc.clear();
        } else {
            doc.clear();
        }
    }
    panic!("no `{start}` closed in the source");
}

/// The fields of `pub struct <name> {` in `text`, in order, with their
/// doc comments (attributes skipped, however many lines they take).
fn struct_fields(text: &str, name: &str) -> Vec<Item> {
    let start = format!("pub struct {name} {{");
    let mut lines = text.lines().skip_while(|line| line.trim() != start).skip(1);
    let mut fields = Vec::new();
    let mut doc = Vec::new();
    let mut in_attribute = false;
    for line in lines.by_ref() {
        let line = line.trim();
        if in_attribute {
            in_attribute = !line.ends_with(")]");
            continue;
        }
        if line == "}" {
            return fields;
        }
        if let Some(text) = line.strip_prefix("///") {
            doc.push(text.to_string());
        } else if line.starts_with("#[") {
            in_attribute = !line.ends_with(']');
        } else if let Some(decl) = line.strip_prefix("pub ") {
            let (field, ty) = decl.split_once(':').unwrap();
            fields.push(Item {
                name: field.trim().to_string(),
                rest: ty.trim().trim_end_matches(',').to_string(),
                doc: join_doc(&doc),
            });
            doc.clear();
        }
    }
    panic!("no `{start}` in the source");
}

/// Each api type's name, in the order `api.rs` declares it, with the
/// `ANCHOR` region it is declared in.
fn declared_types(text: &str) -> Vec<(String, String)> {
    let mut region = String::new();
    let mut types = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.trim().strip_prefix("// ANCHOR: ") {
            region = name.trim().to_string();
        } else if line.trim().starts_with("// ANCHOR_END") {
            region.clear();
        }
        let name = line
            .strip_prefix("pub struct ")
            .or_else(|| line.strip_prefix("pub enum "))
            .map(|rest| rest.split([' ', '{', '(', ';']).next().unwrap())
            .or_else(|| {
                line.strip_prefix("pub use stage6_broker::")
                    .map(|rest| rest.trim_end_matches(';'))
            });
        if let Some(name) = name {
            types.push((name.to_string(), region.clone()));
        }
    }
    types
}

// ---------------------------------------------------------------------------
// Rendering doc text for a reader who does not read Rust.

/// The anchor of a JSON type's table, or of a binary layout.
fn type_anchor(name: &str) -> String {
    format!("type-{}", name.to_lowercase())
}

/// Binary layouts a doc comment may name by their Rust type.
fn layout_of_type(name: &str) -> Option<&'static str> {
    match name {
        "PollBy" => Some("layout-poll-by"),
        _ => None,
    }
}

/// Doc text with rustdoc links (`` [`super::X`] ``) made into links to
/// the type's table (or layout) when there is one, and code text otherwise.
fn render_doc(doc: &str, types: &BTreeSet<String>) -> String {
    let mut out = String::new();
    let mut rest = doc;
    while let Some(at) = rest.find("[`") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find("`]") else {
            out.push_str(&rest[at..]);
            rest = "";
            break;
        };
        let path = &after[..end];
        let name = path.rsplit("::").next().unwrap();
        if types.contains(name) {
            write!(out, "[`{name}`](#{})", type_anchor(name)).unwrap();
        } else if let Some(anchor) = layout_of_type(name) {
            write!(out, "[`{name}`](#{anchor})").unwrap();
        } else {
            write!(out, "`{name}`").unwrap();
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out.replace('|', "\\|")
}

// ---------------------------------------------------------------------------
// JSON bodies: the api types' JSON Schema.

/// Every api type's schema, by name, plus `PartitionInfo`'s from its source.
fn schemas() -> BTreeMap<String, Value> {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    macro_rules! add {
        ($($ty:ty),* $(,)?) => { $( generator.subschema_for::<$ty>(); )* };
    }
    add!(
        api::CreateStream,
        api::StreamName,
        api::StreamInfo,
        api::StreamList,
        api::TopicSettings,
        api::CreateTopic,
        api::TopicRef,
        api::ListTopics,
        api::TopicInfo,
        api::TopicList,
        api::StoreOffset,
        api::GetOffsets,
        api::StoredOffset,
        api::ConsumerOffsets,
        api::JoinGroup,
        api::GroupJoined,
        api::Heartbeat,
        api::LeaveGroup,
        api::GroupPoll,
        api::CommitOffset,
        api::GroupName,
        api::GroupSummary,
        api::GroupList,
        api::Assigned,
        api::GroupMember,
        api::GroupOffset,
        api::GroupDescription,
        api::Stats,
        api::Login,
        api::Empty,
    );
    let mut schemas: BTreeMap<String, Value> =
        generator.take_definitions(true).into_iter().collect();
    schemas.insert("PartitionInfo".into(), partition_info_schema());
    schemas
}

/// The engine's `PartitionInfo` (no schema of its own) from its source:
/// its fields' doc comments and types, checked against what it serializes to.
fn partition_info_schema() -> Value {
    let text = source("stages/6-broker/src/storage/partition.rs");
    let fields = struct_fields(&text, "PartitionInfo");
    let serialized = serde_json::to_value(PartitionInfo::default()).unwrap();
    let keys: BTreeSet<&str> = serialized
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let declared: BTreeSet<&str> = fields.iter().map(|field| field.name.as_str()).collect();
    assert_eq!(declared, keys, "PartitionInfo's source and its JSON differ");
    let mut properties = serde_json::Map::new();
    for field in &fields {
        let schema = match field.rest.as_str() {
            "u32" => json!({"type": "integer", "format": "uint32"}),
            "u64" => json!({"type": "integer", "format": "uint64"}),
            "Option<String>" => json!({"type": ["string", "null"]}),
            other => panic!("PartitionInfo.{}: add a JSON type for {other}", field.name),
        };
        let mut schema = schema;
        schema["description"] = Value::String(field.doc.clone());
        properties.insert(field.name.clone(), schema);
    }
    let required: Vec<&str> = fields.iter().map(|field| field.name.as_str()).collect();
    let doc = "One partition's state, from the shard that owns it.";
    json!({"type": "object", "description": doc, "properties": properties, "required": required})
}

/// A schema's JSON type as a client reads it: `string`, `integer (u32)`,
/// `array of TopicInfo`, `... or null`.
fn json_type(schema: &Value) -> String {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap();
        return format!("[`{name}`](#{})", type_anchor(name));
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => panic!("a schema without a type: {schema}"),
    };
    let nullable = types.contains(&"null");
    let base = types
        .iter()
        .find(|ty| **ty != "null")
        .copied()
        .unwrap_or("null");
    let mut text = match base {
        "integer" => {
            let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
            let rust = match format {
                "uint32" => "u32",
                "uint64" => "u64",
                "int32" => "i32",
                "int64" => "i64",
                other => panic!("an integer of format {other:?}"),
            };
            format!("integer ({rust})")
        }
        "array" => format!("array of {}", json_type(&schema["items"])),
        "string" | "boolean" | "number" => base.to_string(),
        "object" => "object".to_string(),
        other => panic!("a JSON type {other}"),
    };
    if nullable {
        text.push_str(" or null");
    }
    text
}

/// One type's table: its fields in declared order.
fn type_table(
    name: &str,
    schema: &Value,
    order: &[Item],
    types: &BTreeSet<String>,
    out: &mut String,
) {
    let description = schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("");
    writeln!(out, "<a id=\"{}\"></a>\n", type_anchor(name)).unwrap();
    writeln!(out, "#### `{name}`\n").unwrap();
    if !description.is_empty() {
        writeln!(
            out,
            "{}\n",
            render_doc(&join_doc(&[description.replace('\n', " ")]), types)
        )
        .unwrap();
    }
    if let Some(variants) = schema.get("oneOf").and_then(Value::as_array) {
        // An enum: an object with exactly one of these keys.
        writeln!(out, "An object with exactly one of these fields:\n").unwrap();
        writeln!(out, "| field | type | meaning |\n|---|---|---|").unwrap();
        for variant in variants {
            let properties = variant["properties"].as_object().unwrap();
            for (field, property) in properties {
                let meaning = variant
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                writeln!(
                    out,
                    "| `{field}` | {} | {} |",
                    json_type(property),
                    render_doc(meaning, types)
                )
                .unwrap();
            }
        }
        writeln!(out).unwrap();
        return;
    }
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if properties.is_empty() {
        writeln!(out, "No fields: the body is `{{}}`.\n").unwrap();
        return;
    }
    let required: BTreeSet<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let declared: Vec<&str> = order.iter().map(|field| field.name.as_str()).collect();
    let listed: BTreeSet<&str> = properties.keys().map(String::as_str).collect();
    assert_eq!(
        declared.iter().copied().collect::<BTreeSet<_>>(),
        listed,
        "{name}: the fields in api.rs and in the schema differ"
    );
    let request = schema.get("additionalProperties") == Some(&Value::Bool(false));
    if request {
        writeln!(
            out,
            "| field | type | required | meaning |\n|---|---|---|---|"
        )
        .unwrap();
    } else {
        writeln!(out, "| field | type | meaning |\n|---|---|---|").unwrap();
    }
    for field in declared {
        let property = &properties[field];
        let meaning = property
            .get("description")
            .and_then(Value::as_str)
            .map(|text| join_doc(&[text.replace('\n', " ")]))
            .unwrap_or_default();
        let ty = json_type(property);
        let meaning = render_doc(&meaning, types);
        if request {
            let needed = if required.contains(field) {
                "required"
            } else {
                "optional"
            };
            writeln!(out, "| `{field}` | {ty} | {needed} | {meaning} |").unwrap();
        } else {
            writeln!(out, "| `{field}` | {ty} | {meaning} |").unwrap();
        }
    }
    writeln!(out).unwrap();
}

/// `protocol-types.md`: a table per type, in `api.rs`'s order, in regions
/// named after `api.rs`'s anchors (streams, topics, offsets, groups,
/// stats_login) for the chapter to include one at a time.
fn types_markdown(schemas: &BTreeMap<String, Value>) -> String {
    let api = source("broker/src/api.rs");
    let partition = source("stages/6-broker/src/storage/partition.rs");
    let names: BTreeSet<String> = schemas.keys().cloned().collect();
    let mut out = header("the types of broker/src/api.rs (their JSON Schema)");
    let mut region = String::new();
    let mut rendered = BTreeSet::new();
    for (name, in_region) in declared_types(&api) {
        let Some(schema) = schemas.get(&name) else {
            continue;
        };
        if in_region != region {
            if !region.is_empty() {
                writeln!(out, "<!-- ANCHOR_END: {region} -->\n").unwrap();
            }
            region = in_region.clone();
            writeln!(out, "<!-- ANCHOR: {region} -->\n").unwrap();
        }
        let order = if name == "PartitionInfo" {
            struct_fields(&partition, &name)
        } else if schema.get("oneOf").is_some() || schema.get("properties").is_none() {
            Vec::new()
        } else {
            struct_fields(&api, &name)
        };
        type_table(&name, schema, &order, &names, &mut out);
        rendered.insert(name);
    }
    if !region.is_empty() {
        writeln!(out, "<!-- ANCHOR_END: {region} -->").unwrap();
    }
    assert_eq!(
        rendered, names,
        "a type with a schema is not declared in api.rs"
    );
    out
}

/// A JSON value of `schema` with every field set: what a decoder must take.
fn sample(schema: &Value, schemas: &BTreeMap<String, Value>) -> Value {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        return sample(&schemas[reference.rsplit('/').next().unwrap()], schemas);
    }
    if let Some(first) = schema
        .get("oneOf")
        .and_then(Value::as_array)
        .and_then(|v| v.first())
    {
        return sample(first, schemas);
    }
    let base = match schema.get("type") {
        Some(Value::String(one)) => one.clone(),
        Some(Value::Array(many)) => many
            .iter()
            .filter_map(Value::as_str)
            .find(|ty| *ty != "null")
            .unwrap()
            .to_string(),
        _ => return Value::Null,
    };
    match base.as_str() {
        "string" => json!("a"),
        "integer" => json!(1000),
        "boolean" => json!(true),
        "array" => json!([sample(&schema["items"], schemas)]),
        "object" => {
            let mut object = serde_json::Map::new();
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (name, property) in properties {
                    object.insert(name.clone(), sample(property, schemas));
                }
            }
            Value::Object(object)
        }
        other => panic!("a JSON type {other}"),
    }
}

// ---------------------------------------------------------------------------
// Commands and statuses, from the constants and their doc comments.

/// `protocol-commands.md`: every request code; each JSON command's request
/// type (the first link of its doc) is checked to be what the decoder takes.
fn commands_markdown(schemas: &BTreeMap<String, Value>) -> String {
    let engine = consts_of_module(&source("stages/6-broker/src/shards/protocol.rs"), "code");
    let broker = consts_of_module(&source("broker/src/api.rs"), "code");
    let real: BTreeMap<&str, u16> = [
        ("CREATE_TOPIC", api::code::CREATE_TOPIC),
        ("PRODUCE", api::code::PRODUCE),
        ("POLL", api::code::POLL),
        ("CREATE_STREAM", api::code::CREATE_STREAM),
        ("LIST_STREAMS", api::code::LIST_STREAMS),
        ("DELETE_STREAM", api::code::DELETE_STREAM),
        ("CREATE_TOPIC_NAMED", api::code::CREATE_TOPIC_NAMED),
        ("LIST_TOPICS", api::code::LIST_TOPICS),
        ("DESCRIBE_TOPIC", api::code::DESCRIBE_TOPIC),
        ("DELETE_TOPIC", api::code::DELETE_TOPIC),
        ("POLL_BY", api::code::POLL_BY),
        ("STORE_OFFSET", api::code::STORE_OFFSET),
        ("GET_OFFSETS", api::code::GET_OFFSETS),
        ("STATS", api::code::STATS),
        ("LOGIN", api::code::LOGIN),
        ("JOIN_GROUP", api::code::JOIN_GROUP),
        ("HEARTBEAT", api::code::HEARTBEAT),
        ("LEAVE_GROUP", api::code::LEAVE_GROUP),
        ("GROUP_POLL", api::code::GROUP_POLL),
        ("COMMIT_OFFSET", api::code::COMMIT_OFFSET),
        ("LIST_GROUPS", api::code::LIST_GROUPS),
        ("DESCRIBE_GROUP", api::code::DESCRIBE_GROUP),
    ]
    .into_iter()
    .collect();
    let names: BTreeSet<String> = schemas.keys().cloned().collect();
    let mut out = header(
        "the `code` modules of broker/src/api.rs and stages/6-broker/src/shards/protocol.rs",
    );
    writeln!(out, "| code | constant | body | request → ok reply |").unwrap();
    writeln!(out, "|---|---|---|---|").unwrap();
    let mut seen = BTreeSet::new();
    for item in engine.iter().chain(&broker) {
        let code: u16 = item.rest.parse().unwrap();
        assert_eq!(real.get(item.name.as_str()), Some(&code), "{}", item.name);
        seen.insert(item.name.as_str());
        let is_broker = Request::decode(code, b"{}").is_some();
        let kind = if engine.iter().any(|e| e.name == item.name) {
            assert!(
                !is_broker,
                "{}: the engine's code is the broker's",
                item.name
            );
            "binary"
        } else if item.doc.starts_with("Binary") {
            assert!(is_broker, "{}", item.name);
            "binary"
        } else {
            check_json_request(code, &item.name, &item.doc, schemas);
            "JSON"
        };
        writeln!(
            out,
            "| {code} | `{}` | {kind} | {} |",
            item.name,
            render_doc(&item.doc, &names)
        )
        .unwrap();
    }
    assert_eq!(
        seen,
        real.keys().copied().collect(),
        "the code modules and this test's list differ"
    );
    out
}

/// Checks that the broker decodes `code` from its documented request: the
/// type its doc comment names first, every field set, or `{}`.
fn check_json_request(code: u16, name: &str, doc: &str, schemas: &BTreeMap<String, Value>) {
    let body = if doc.starts_with("`{}`") {
        json!({})
    } else {
        let link = doc
            .strip_prefix("[`")
            .and_then(|rest| rest.split_once("`]"))
            .unwrap_or_else(|| panic!("{name}: its doc does not start with its request type"))
            .0;
        let ty = link.rsplit("::").next().unwrap();
        let schema = schemas
            .get(ty)
            .unwrap_or_else(|| panic!("{name}: no schema for {ty}"));
        sample(schema, schemas)
    };
    let bytes = serde_json::to_vec(&body).unwrap();
    match Request::decode(code, &bytes) {
        Some(Ok(_)) => {}
        other => panic!("{name} ({code}) does not decode its documented body {body}: {other:?}"),
    }
}

/// `protocol-statuses.md`: every status, the engine's and the broker's.
fn statuses_markdown() -> String {
    use api::status::*;
    let real: BTreeMap<&str, u16> = [
        ("OK", OK),
        ("FRAME_TOO_LARGE", FRAME_TOO_LARGE),
        ("MALFORMED", MALFORMED),
        ("UNKNOWN_COMMAND", UNKNOWN_COMMAND),
        ("TOPIC_NOT_FOUND", TOPIC_NOT_FOUND),
        ("INVALID", INVALID),
        ("STORAGE", STORAGE),
        ("PARTITION_NOT_FOUND", PARTITION_NOT_FOUND),
        ("STREAM_NOT_FOUND", STREAM_NOT_FOUND),
        ("ALREADY_EXISTS", ALREADY_EXISTS),
        ("CONSUMER_NOT_FOUND", CONSUMER_NOT_FOUND),
        ("UNAUTHENTICATED", UNAUTHENTICATED),
        ("FORBIDDEN", FORBIDDEN),
        ("TOO_MANY_CONNECTIONS", TOO_MANY_CONNECTIONS),
        ("PARTITION_FAILED", PARTITION_FAILED),
        ("REBALANCING", REBALANCING),
        ("STALE_GENERATION", STALE_GENERATION),
        ("UNKNOWN_MEMBER", UNKNOWN_MEMBER),
        ("NOT_ASSIGNED", NOT_ASSIGNED),
    ]
    .into_iter()
    .collect();
    let mut items = consts_of_module(&source("stages/6-broker/src/shards/wire.rs"), "status");
    items.extend(consts_of_module(&source("broker/src/api.rs"), "status"));
    let mut by_code = BTreeMap::new();
    for item in items {
        let code: u16 = item.rest.parse().unwrap();
        assert_eq!(real.get(item.name.as_str()), Some(&code), "{}", item.name);
        assert!(by_code.insert(code, item).is_none(), "status {code} twice");
    }
    let named: BTreeSet<&str> = by_code.values().map(|item| item.name.as_str()).collect();
    assert_eq!(
        named,
        real.keys().copied().collect(),
        "the status modules and this test differ"
    );
    let mut out =
        header("the `status` modules of stages/6-broker/src/shards/wire.rs and broker/src/api.rs");
    writeln!(
        out,
        "| status | constant | meaning | after it |\n|---|---|---|---|"
    )
    .unwrap();
    for (code, item) in by_code {
        // The statuses after which the server closes the connection say so
        // in their doc comment; every other leaves it open.
        let after = if item.doc.contains("connection is closed") {
            "closed"
        } else {
            "open"
        };
        let doc = render_doc(&item.doc, &BTreeSet::new());
        writeln!(out, "| {code} | `{}` | {doc} | {after} |", item.name).unwrap();
    }
    out
}

// ---------------------------------------------------------------------------
// Binary bodies: layouts checked against the encoders.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ty {
    U8,
    U16,
    U32,
    U64,
    /// As many bytes as the named earlier field says.
    Bytes(&'static str),
    /// Everything to the end of the body.
    Rest,
}

impl Ty {
    fn size(self) -> Option<usize> {
        match self {
            Ty::U8 => Some(1),
            Ty::U16 => Some(2),
            Ty::U32 => Some(4),
            Ty::U64 => Some(8),
            Ty::Bytes(_) | Ty::Rest => None,
        }
    }

    fn name(self) -> String {
        match self {
            Ty::U8 => "u8".into(),
            Ty::U16 => "u16".into(),
            Ty::U32 => "u32".into(),
            Ty::U64 => "u64".into(),
            Ty::Bytes(len) => format!("`{len}` bytes"),
            Ty::Rest => "to the end".into(),
        }
    }
}

/// One field of a binary body: present always, or only when an earlier
/// field has a value.
#[derive(Debug, Clone, Copy)]
struct Field {
    name: &'static str,
    ty: Ty,
    when: Option<(&'static str, u64)>,
    meaning: &'static str,
}

const fn f(name: &'static str, ty: Ty, meaning: &'static str) -> Field {
    Field {
        name,
        ty,
        when: None,
        meaning,
    }
}

const fn when(name: &'static str, ty: Ty, on: (&'static str, u64), meaning: &'static str) -> Field {
    Field {
        name,
        ty,
        when: Some(on),
        meaning,
    }
}

struct Layout {
    anchor: &'static str,
    title: &'static str,
    fields: Vec<Field>,
}

/// What a check expects of a field read with a layout.
#[derive(Debug, PartialEq)]
enum Got {
    Int(u64),
    Bytes(Vec<u8>),
}

/// Reads `bytes` with `layout`: every field present, in order, and nothing left.
fn read_with(layout: &Layout, bytes: &[u8]) -> BTreeMap<&'static str, Got> {
    let mut at = 0;
    let mut got = BTreeMap::new();
    for field in &layout.fields {
        if let Some((other, value)) = field.when
            && got.get(other) != Some(&Got::Int(value))
        {
            continue;
        }
        let value = match field.ty {
            Ty::Bytes(len) => {
                let Some(Got::Int(len)) = got.get(len) else {
                    panic!("{}: {} has no length field", layout.anchor, field.name)
                };
                let len = *len as usize;
                Got::Bytes(bytes[at..at + len].to_vec())
            }
            Ty::Rest => Got::Bytes(bytes[at..].to_vec()),
            ty => {
                let size = ty.size().unwrap();
                let mut le = [0u8; 8];
                le[..size].copy_from_slice(&bytes[at..at + size]);
                Got::Int(u64::from_le_bytes(le))
            }
        };
        at += match &value {
            Got::Bytes(read) => read.len(),
            Got::Int(_) => field.ty.size().unwrap(),
        };
        got.insert(field.name, value);
    }
    assert_eq!(
        at,
        bytes.len(),
        "{}: bytes left after the last field",
        layout.anchor
    );
    got
}

/// Checks that reading an encoder's `bytes` with `layout` finds `expected`.
fn check_layout(layout: &Layout, bytes: &[u8], expected: &[(&str, Got)]) {
    let got = read_with(layout, bytes);
    for (name, value) in expected {
        assert_eq!(
            got.get(name),
            Some(value),
            "{}: field {name} is not where the layout says",
            layout.anchor
        );
    }
}

/// The fixed-size part of a layout: the fields that are always there and
/// have a size, up to the first one that has none.
fn fixed_len(layout: &Layout) -> usize {
    layout
        .fields
        .iter()
        .filter(|field| field.when.is_none())
        .filter_map(|field| field.ty.size())
        .sum()
}

fn layout_markdown(layout: &Layout, out: &mut String) {
    writeln!(out, "<!-- ANCHOR: {} -->", layout.anchor).unwrap();
    writeln!(out, "<a id=\"{}\"></a>\n", layout.anchor).unwrap();
    writeln!(out, "{}\n", layout.title).unwrap();
    writeln!(out, "| bytes | field | type | meaning |\n|---|---|---|---|").unwrap();
    // Byte positions are known until the first field whose size or
    // presence varies; from there on a field follows the one before it.
    let mut at = Some(0usize);
    for field in &layout.fields {
        let size = field.ty.size().filter(|_| field.when.is_none());
        let bytes = match (at, size) {
            (Some(start), Some(size)) => format!("{start}..{}", start + size),
            (Some(start), None) => format!("{start}.."),
            (None, _) => "then".to_string(),
        };
        at = at.zip(size).map(|(start, size)| start + size);
        let meaning = match field.when {
            Some((other, value)) => format!("only if `{other}` is {value}: {}", field.meaning),
            None => field.meaning.to_string(),
        };
        writeln!(
            out,
            "| {bytes} | `{}` | {} | {meaning} |",
            field.name,
            field.ty.name()
        )
        .unwrap();
    }
    let fixed = fixed_len(layout);
    let names = |fixed: bool| -> Vec<String> {
        layout
            .fields
            .iter()
            .filter(|field| (field.when.is_none() && field.ty.size().is_some()) == fixed)
            .map(|field| format!("`{}`", field.name))
            .collect()
    };
    let varying = names(false);
    if varying.is_empty() {
        writeln!(out, "\n{fixed} bytes in all.").unwrap();
    } else {
        writeln!(
            out,
            "\nAlways there, and of fixed size: {} ({fixed} bytes). Varying: {}.",
            names(true).join(", "),
            varying.join(", ")
        )
        .unwrap();
    }
    writeln!(out, "<!-- ANCHOR_END: {} -->\n", layout.anchor).unwrap();
}

fn int(value: impl Into<u64>) -> Got {
    Got::Int(value.into())
}

/// `protocol-binary.md`: the binary bodies, each checked against its encoder.
fn binary_markdown() -> String {
    let mut out = header(
        "the encoders of stages/6-broker/src/shards/{frame,protocol}.rs, \
         stages/6-broker/src/storage/record.rs and broker/src/api.rs (PollBy)",
    );

    // The frame: the header the server writes, for a body of 3 bytes.
    let frame_layout = Layout {
        anchor: "layout-frame",
        title: "Every frame, both ways:",
        fields: vec![
            f(
                "frame_len",
                Ty::U32,
                "bytes after this field: 6 + the body's length",
            ),
            f(
                "code",
                Ty::U16,
                "a request's command code; a reply's status (0: ok)",
            ),
            f(
                "correlation",
                Ty::U32,
                "chosen by the client, echoed in the reply",
            ),
            f("body", Ty::Rest, "`frame_len - 6` bytes"),
        ],
    };
    let mut bytes = frame::header(0x0b0c, 0x0d0e0f10, 3).unwrap().to_vec();
    bytes.extend_from_slice(b"abc");
    check_layout(
        &frame_layout,
        &bytes,
        &[
            ("frame_len", int(9u32)),
            ("code", int(0x0b0cu16)),
            ("correlation", int(0x0d0e0f10u32)),
            ("body", Got::Bytes(b"abc".to_vec())),
        ],
    );
    assert_eq!(fixed_len(&frame_layout), frame::HEADER_LEN);
    assert_eq!(frame::MIN_FRAME_LEN as usize, frame::HEADER_LEN - 4);
    layout_markdown(&frame_layout, &mut out);

    let create = Layout {
        anchor: "layout-create-topic",
        title: "Code 10, create topic (request):",
        fields: vec![
            f("topic", Ty::U32, "the topic's id"),
            f("partitions", Ty::U32, "1 to 1024"),
        ],
    };
    check_layout(
        &create,
        &engine::encode_create_topic(0x01020304, 0x05060708),
        &[
            ("topic", int(0x01020304u32)),
            ("partitions", int(0x05060708u32)),
        ],
    );
    assert_eq!(stage6_broker::shards::topics::MAX_PARTITIONS, 1024);
    layout_markdown(&create, &mut out);

    let produce = Layout {
        anchor: "layout-produce",
        title: "Code 11, produce (request):",
        fields: vec![
            f("topic", Ty::U32, "the topic's id"),
            f(
                "partitioning",
                Ty::U8,
                "0: explicit; 1: round robin; 2: by key",
            ),
            when("partition", Ty::U32, ("partitioning", 0), "the partition"),
            when("key_len", Ty::U16, ("partitioning", 2), "the key's length"),
            when(
                "key",
                Ty::Bytes("key_len"),
                ("partitioning", 2),
                "the partition is `crc32c(key) % partitions`",
            ),
            f("count", Ty::U32, "records in the batch, at least 1"),
            f(
                "records",
                Ty::Rest,
                "`count` records back to back, in the record layout",
            ),
        ],
    };
    let mut one_record = Vec::new();
    record::encode(&mut one_record, 0, 0, 3, b"hi");
    for (partitioning, expected) in [
        (
            Partitioning::Explicit(0x01020304),
            vec![
                ("partitioning", int(0u8)),
                ("partition", int(0x01020304u32)),
            ],
        ),
        (Partitioning::RoundRobin, vec![("partitioning", int(1u8))]),
        (
            Partitioning::Key(b"user-7".to_vec()),
            vec![
                ("partitioning", int(2u8)),
                ("key_len", int(6u16)),
                ("key", Got::Bytes(b"user-7".to_vec())),
            ],
        ),
    ] {
        let mut body = engine::encode_produce_head(0x0a0b0c0d, &partitioning, 1);
        body.extend_from_slice(&one_record);
        let mut expected = expected;
        expected.push(("topic", int(0x0a0b0c0du32)));
        expected.push(("count", int(1u32)));
        expected.push(("records", Got::Bytes(one_record.clone())));
        check_layout(&produce, &body, &expected);
        // And the engine's decoder takes exactly that body.
        assert!(matches!(
            engine::Request::decode(engine::code::PRODUCE, body),
            Some(Ok(_))
        ));
    }
    layout_markdown(&produce, &mut out);

    let produced = Layout {
        anchor: "layout-produced",
        title: "Code 11's ok reply:",
        fields: vec![
            f("partition", Ty::U32, "the partition the batch went to"),
            f(
                "first_offset",
                Ty::U64,
                "the offset of its first record; the others follow, one apart",
            ),
            f("count", Ty::U32, "records appended: the batch's count"),
            f(
                "durable",
                Ty::U8,
                "1 if the records are synced to disk (see the fsync policy), else 0",
            ),
        ],
    };
    let reply = Produced {
        partition: 0x01020304,
        first_offset: 0x0102030405060708,
        count: 0x0a0b0c0d,
        durable: true,
    };
    check_layout(
        &produced,
        &reply.encode(),
        &[
            ("partition", int(0x01020304u32)),
            ("first_offset", int(0x0102030405060708u64)),
            ("count", int(0x0a0b0c0du32)),
            ("durable", int(1u8)),
        ],
    );
    layout_markdown(&produced, &mut out);

    let poll = Layout {
        anchor: "layout-poll",
        title: "Code 12, poll (request):",
        fields: vec![
            f("topic", Ty::U32, "the topic's id"),
            f("partition", Ty::U32, "the partition"),
            f("offset", Ty::U64, "the first offset wanted"),
            f(
                "count",
                Ty::U32,
                "the most records wanted (the server returns at most 1000)",
            ),
        ],
    };
    check_layout(
        &poll,
        &engine::encode_poll(0x01020304, 0x05060708, 0x1112131415161718, 0x21222324),
        &[
            ("topic", int(0x01020304u32)),
            ("partition", int(0x05060708u32)),
            ("offset", int(0x1112131415161718u64)),
            ("count", int(0x21222324u32)),
        ],
    );
    assert_eq!(stage6_broker::shards::connection::MAX_POLL_RECORDS, 1000);
    layout_markdown(&poll, &mut out);

    let polled = Layout {
        anchor: "layout-polled",
        title: "The ok reply of a poll (codes 12, 27 and 35):",
        fields: vec![
            f(
                "count",
                Ty::U32,
                "records that follow: 0 when there are none",
            ),
            f(
                "records",
                Ty::Rest,
                "`count` records back to back, as stored, in offset order",
            ),
        ],
    };
    // The reply's prefix as the server writes it: the header, then the count.
    let mut prefix = Vec::new();
    prefix.extend_from_slice(&2u32.to_le_bytes());
    let mut records = Vec::new();
    record::encode(&mut records, 5, 6, 7, b"a");
    record::encode(&mut records, 6, 6, 8, b"bc");
    prefix.extend_from_slice(&records);
    check_layout(
        &polled,
        &prefix,
        &[("count", int(2u32)), ("records", Got::Bytes(records))],
    );
    layout_markdown(&polled, &mut out);

    let poll_by = Layout {
        anchor: "layout-poll-by",
        title: "Code 27, poll by position (request):",
        fields: vec![
            f("topic", Ty::U32, "the topic's id"),
            f("partition", Ty::U32, "the partition"),
            f(
                "kind",
                Ty::U8,
                "0 offset, 1 timestamp, 2 first, 3 last, 4 next (see below)",
            ),
            f(
                "value",
                Ty::U64,
                "the kind's argument: an offset, a timestamp in µs; 0 for the others",
            ),
            f(
                "count",
                Ty::U32,
                "the most records wanted (the server returns at most 1000)",
            ),
            f(
                "consumer_len",
                Ty::U16,
                "the consumer name's length, 0 to 255",
            ),
            f(
                "consumer",
                Ty::Bytes("consumer_len"),
                "the consumer's name (UTF-8); may be empty unless `kind` is 4 or `auto_commit` is 1",
            ),
            f(
                "auto_commit",
                Ty::U8,
                "1: store the consumer's offset after the records returned, before replying; else 0",
            ),
        ],
    };
    let request = api::PollBy {
        topic: 0x01020304,
        partition: 0x05060708,
        kind: PollKind::Timestamp(0x1112131415161718),
        count: 0x21222324,
        consumer: "reader-1".into(),
        auto_commit: true,
    };
    check_layout(
        &poll_by,
        &request.encode(),
        &[
            ("topic", int(0x01020304u32)),
            ("partition", int(0x05060708u32)),
            ("kind", int(1u8)),
            ("value", int(0x1112131415161718u64)),
            ("count", int(0x21222324u32)),
            ("consumer_len", int(8u16)),
            ("consumer", Got::Bytes(b"reader-1".to_vec())),
            ("auto_commit", int(1u8)),
        ],
    );
    let empty = api::PollBy {
        consumer: String::new(),
        ..request
    };
    assert_eq!(
        empty.encode().len(),
        fixed_len(&poll_by),
        "the fixed part of a poll by position"
    );
    assert_eq!(fixed_len(&poll_by), 24);
    for (tag, kind) in [
        (0, PollKind::Offset(9)),
        (1, PollKind::Timestamp(9)),
        (2, PollKind::First),
        (3, PollKind::Last),
        (4, PollKind::Next),
    ] {
        assert_eq!(kind.tag(), tag);
    }
    layout_markdown(&poll_by, &mut out);

    let record_layout = Layout {
        anchor: "layout-record",
        title: "A record (version 1, and the header of version 2):",
        fields: vec![
            f(
                "crc32c",
                Ty::U32,
                "CRC-32C of every byte after this field, to the record's end",
            ),
            f(
                "payload_len",
                Ty::U32,
                "bits 0 to 30: the payload's length; bit 31: version 2 (key, headers, create time)",
            ),
            f("offset", Ty::U64, "set by the server"),
            f(
                "timestamp",
                Ty::U64,
                "µs since the UNIX epoch, set by the server: one per batch",
            ),
            f("id", Ty::U64, "chosen by the producer"),
            f("payload", Ty::Bytes("payload_len"), "the value (version 1)"),
        ],
    };
    let mut one = Vec::new();
    record::encode(
        &mut one,
        0x0102030405060708,
        0x1112131415161718,
        0x2122232425262728,
        b"paid",
    );
    check_layout(
        &record_layout,
        &one,
        &[
            ("crc32c", int(record::checksum_of(&one))),
            ("payload_len", int(4u32)),
            ("offset", int(0x0102030405060708u64)),
            ("timestamp", int(0x1112131415161718u64)),
            ("id", int(0x2122232425262728u64)),
            ("payload", Got::Bytes(b"paid".to_vec())),
        ],
    );
    assert_eq!(fixed_len(&record_layout), record::RECORD_HEADER_LEN);
    for (name, at) in [
        ("crc32c", record::field::CHECKSUM),
        ("payload_len", record::field::PAYLOAD_LEN),
        ("offset", record::field::OFFSET),
        ("timestamp", record::field::TIMESTAMP),
        ("id", record::field::ID),
    ] {
        let before: usize = record_layout
            .fields
            .iter()
            .take_while(|field| field.name != name)
            .filter_map(|field| field.ty.size())
            .sum();
        assert_eq!(before, at, "record field {name}");
    }
    assert_eq!(record::EXTENDED, 1 << 31);
    layout_markdown(&record_layout, &mut out);
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

#[test]
fn protocol_reference_tables_match_the_code() {
    let schemas = schemas();
    check_generated("protocol-commands.md", &commands_markdown(&schemas));
    check_generated("protocol-statuses.md", &statuses_markdown());
    check_generated("protocol-types.md", &types_markdown(&schemas));
    check_generated("protocol-binary.md", &binary_markdown());
}

// ---------------------------------------------------------------------------
// The messages a client reads.

/// An error reply's status and message.
fn refused(result: Result<impl std::fmt::Debug, rivulet_client::ClientError>) -> (u16, String) {
    match result {
        Err(rivulet_client::ClientError::Server { status, message }) => (status, message),
        other => panic!("expected an error reply, got {other:?}"),
    }
}

/// Rust's debug text for the api's enums and options, which a client must
/// never read in a message.
fn assert_plain(message: &str) {
    for debug in ["Name(", "Id(", "Some(", "None", "TopicRef", "\\\""] {
        assert!(
            !message.contains(debug),
            "Rust debug text in a client's message: {message}"
        );
    }
}

#[test]
fn protocol_error_messages_name_topics_as_the_client_wrote_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::rivulet_server(dir.path(), &[]);
    let mut client = rivulet_client::Client::connect(&server.addr().to_string()).unwrap();
    let orders = TopicRef::Name("orders".into());

    let (status, message) = refused(client.delete_topic(&orders));
    assert_eq!(status, api::status::TOPIC_NOT_FOUND);
    assert_eq!(message, r#"topic "orders" does not exist"#);
    let (status, message) = refused(client.delete_topic(&TopicRef::Id(7)));
    assert_eq!(status, api::status::TOPIC_NOT_FOUND);
    assert_eq!(message, "topic 7 does not exist");
    let (status, message) = refused(client.describe_topic(&orders));
    assert_eq!(status, api::status::TOPIC_NOT_FOUND);
    assert_eq!(message, r#"topic "orders" does not exist"#);
    let store = api::StoreOffset {
        consumer: "billing".into(),
        topic: orders.clone(),
        partition: 0,
        offset: 0,
    };
    let (status, message) = refused(client.store_offset(&store));
    assert_eq!(status, api::status::TOPIC_NOT_FOUND);
    assert_eq!(message, r#"topic "orders" does not exist; create it first"#);
    let (status, message) = refused(client.delete_stream("nowhere"));
    assert_eq!(status, api::status::STREAM_NOT_FOUND);
    assert_eq!(message, r#"stream "nowhere" does not exist"#);

    client.create_stream("shop").unwrap();
    let (status, message) = refused(client.create_stream("shop"));
    assert_eq!(status, api::status::ALREADY_EXISTS);
    assert_eq!(message, r#"stream "shop" exists already"#);

    // Every other refusal a client can provoke without access control.
    let create = |name: &str, partitions: u32| api::CreateTopic {
        stream: Some("shop".into()),
        name: name.into(),
        id: None,
        partitions,
        settings: api::TopicSettings::default(),
    };
    let info = client.create_topic(&create("orders", 2)).unwrap();
    let mut messages = vec![
        refused(client.create_topic(&create("orders", 3))).1,
        refused(client.create_topic(&create("bad name", 1))).1,
        refused(client.create_topic(&create("many", 5000))).1,
        refused(client.create_topic(&api::CreateTopic {
            settings: api::TopicSettings {
                fsync: Some("sometimes".into()),
                segment_size: Some(4097),
                ..api::TopicSettings::default()
            },
            ..create("settings", 1)
        }))
        .1,
        refused(client.poll(info.id, 9, 0, 1)).1,
        refused(client.poll(99, 0, 0, 1)).1,
        refused(client.store_offset(&api::StoreOffset {
            consumer: "billing".into(),
            topic: TopicRef::Id(info.id),
            partition: 0,
            offset: 5,
        }))
        .1,
        refused(client.get_offsets("a b", &orders)).1,
        refused(client.poll_by(&api::PollBy {
            topic: info.id,
            partition: 0,
            kind: PollKind::Next,
            count: 1,
            consumer: String::new(),
            auto_commit: false,
        }))
        .1,
        refused(client.list_topics(Some("nowhere"))).1,
        refused(client.describe_group("nobody")).1,
    ];
    // The JSON decoder's own words, on a connection of its own (it is closed).
    let mut raw = rivulet_client::Client::connect(&server.addr().to_string()).unwrap();
    let (status, message) = refused(raw.call(api::code::DELETE_TOPIC, br#"{"title":"orders"}"#));
    assert_eq!(status, api::status::MALFORMED);
    messages.push(message);
    for message in &messages {
        assert_plain(message);
    }
}
