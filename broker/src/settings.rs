//! The operator's settings: a TOML file, environment variables and flags,
//! every key with a default, resolved into a [`ServerConfig`].
//!
//! Precedence, lowest first: the defaults, the file (`--config PATH` or
//! `RIVULET_CONFIG`), environment variables (`RIVULET_<SECTION>_<KEY>`), flags
//! (`--<key>`). Each layer changes only the keys it names, and [`Loader`]
//! remembers which layer set each key, so an error says where the bad value
//! came from: "`storage.fsync` = \"sometimes\" (from environment variable
//! RIVULET_STORAGE_FSYNC): ...".
//!
//! **One table, nothing typed twice.** The `settings!` macro below is the only
//! place a key is written down: its name, type, default and doc comment. From
//! it come the section structs (with serde, `deny_unknown_fields`), their
//! `Default`, and [`KEYS`], the descriptors that parse environment variables
//! and flags and generate the reference: the commented TOML that
//! `rivulet-server --print-config` prints and `deploy/rivulet.toml` holds
//! ([`commented_toml`]), and the book's config reference
//! ([`reference_markdown`]). A test fails when a committed copy differs.
//! Rejected: a clap struct, a serde struct and a hand-written table side by
//! side, which drift apart the first time someone adds a key to one of them.
//!
//! One section is different: `[auth]`, the users of access control
//! ([`AUTH_SECTION`]), is a list rather than one value per key, and is read
//! from the file only, so secrets never sit in a process's environment or
//! command line.
//!
//! The settings hold only plain values (strings, numbers, booleans; 0 meaning
//! "none" where a limit can be off) because TOML has no null and an
//! environment variable is always a string; [`Settings::server_config`] turns
//! them into typed values and names the key that does not convert.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stage6_broker::FsyncPolicy;
use thiserror::Error;

use crate::auth::AuthConfig;
use crate::kafka::KafkaConfig;
use crate::session::LoginLimits;
use stage6_broker::Config;
use stage6_broker::IoDriver;
use stage6_broker::ServerConfig;

/// One key of the settings: where it lives, what it means, how it is set.
/// Made by the `settings!` macro only; see [`KEYS`].
#[derive(Clone, Copy)]
pub struct Key {
    /// Its section: `server`, `storage`, `metrics` or `log`.
    pub section: &'static str,
    /// Its name inside the section, as the file spells it.
    pub name: &'static str,
    /// What it does, from the field's doc comment (one line per line).
    pub doc: &'static str,
    /// Whether its flag is prefixed by the section (`--log-level`) or bare
    /// (`--fsync`): bare for the server and storage keys, whose names are
    /// unique and were flags before the file existed.
    flag_prefixed: bool,
    /// The key's value in `settings`, as TOML.
    value: fn(&Settings) -> toml::Value,
    /// Sets the key from a string (an environment variable or a flag).
    set_text: fn(&mut Settings, &str) -> Result<(), String>,
    /// Sets the key from a value read from the file.
    set_toml: fn(&mut Settings, toml::Value) -> Result<(), String>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.path())
    }
}

impl Key {
    /// `section.name`, as errors and the reference name the key.
    pub fn path(&self) -> String {
        format!("{}.{}", self.section, self.name)
    }

    /// The environment variable: `RIVULET_STORAGE_FSYNC`.
    pub fn env_var(&self) -> String {
        format!(
            "RIVULET_{}_{}",
            self.section.to_uppercase(),
            self.name.to_uppercase()
        )
    }

    /// The flag's name without its dashes: `fsync`, `metrics-listen`.
    pub fn flag(&self) -> String {
        let name = self.name.replace('_', "-");
        if self.flag_prefixed {
            format!("{}-{name}", self.section)
        } else {
            name
        }
    }

    /// The key's value in `settings`, written as TOML (`"every-batch"`, `true`).
    pub fn toml_value(&self, settings: &Settings) -> String {
        (self.value)(settings).to_string()
    }

    /// The key's value in `settings` as an environment variable or flag
    /// would spell it (strings unquoted).
    pub fn text_value(&self, settings: &Settings) -> String {
        match (self.value)(settings) {
            toml::Value::String(text) => text,
            toml::Value::Boolean(on) => if on { "on" } else { "off" }.to_string(),
            other => other.to_string(),
        }
    }

    /// The doc on one line, for `--help` and the reference's tables.
    pub fn summary(&self) -> String {
        one_line(self.doc)
    }
}

/// A string form of a setting's value, as environment variables and flags
/// carry it. Booleans take `on`/`off` as well as `true`/`false`, as the
/// flags always have.
trait FromText: Sized {
    fn from_text(text: &str) -> Result<Self, String>;
}

impl FromText for bool {
    fn from_text(text: &str) -> Result<bool, String> {
        match text {
            "on" | "true" => Ok(true),
            "off" | "false" => Ok(false),
            _ => Err(format!("expected on, off, true or false, got {text:?}")),
        }
    }
}

impl FromText for String {
    fn from_text(text: &str) -> Result<String, String> {
        Ok(text.to_string())
    }
}

impl FromText for PathBuf {
    fn from_text(text: &str) -> Result<PathBuf, String> {
        Ok(PathBuf::from(text))
    }
}

macro_rules! from_text_by_from_str {
    ($($ty:ty: $what:literal),*) => {$(
        impl FromText for $ty {
            fn from_text(text: &str) -> Result<$ty, String> {
                text.parse()
                    .map_err(|error| format!("expected {}, got {text:?} ({error})", $what))
            }
        }
    )*};
}

from_text_by_from_str!(
    FsyncPolicy: "always, every-batch, interval-<N>ms or never",
    IoDriver: "auto, io-uring or polling",
    u32: "a whole number",
    u64: "a whole number",
    usize: "a whole number",
    SocketAddr: "an address like 127.0.0.1:7406"
);

fn to_toml<T: Serialize>(value: &T) -> toml::Value {
    // Every settings type is a string, number or boolean, which TOML holds.
    toml::Value::try_from(value).unwrap_or_else(|error| toml::Value::String(error.to_string()))
}

fn from_toml<T: for<'de> Deserialize<'de>>(value: toml::Value) -> Result<T, String> {
    T::deserialize(value).map_err(|error| error.to_string().trim().to_string())
}

/// Defines the section structs, [`Settings`] and [`KEYS`] from one list.
macro_rules! settings {
    ($(
        $(#[doc = $section_doc:literal])*
        [$section:ident] $Section:ident, flags prefixed: $prefixed:literal {
            $(
                $(#[doc = $doc:literal])*
                $key:ident: $ty:ty = $default:expr,
            )*
        }
    )*) => {
        $(
            $(#[doc = $section_doc])*
            #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
            #[serde(deny_unknown_fields, default)]
            pub struct $Section {
                $(
                    $(#[doc = $doc])*
                    pub $key: $ty,
                )*
            }

            impl Default for $Section {
                fn default() -> $Section {
                    $Section { $($key: $default,)* }
                }
            }
        )*

        /// Everything `rivulet-server` can be told, by section; a file holds
        /// any subset of it (`[storage]` then `fsync = "always"`).
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct Settings {
            $(
                $(#[doc = $section_doc])*
                pub $section: $Section,
            )*
        }

        /// Every section's name and doc, in file order.
        pub const SECTIONS: &[(&str, &str)] = &[
            $((stringify!($section), concat!($($section_doc, "\n"),*)),)*
        ];

        /// Every key, in file order: the one table that env parsing, flags,
        /// `--print-config` and the reference are made from.
        pub const KEYS: &[Key] = &[
            $($(
                Key {
                    section: stringify!($section),
                    name: stringify!($key),
                    doc: concat!($($doc, "\n"),*),
                    flag_prefixed: $prefixed,
                    value: |settings| to_toml(&settings.$section.$key),
                    set_text: |settings, text| {
                        settings.$section.$key = <$ty as FromText>::from_text(text)?;
                        Ok(())
                    },
                    set_toml: |settings, value| {
                        settings.$section.$key = from_toml::<$ty>(value)?;
                        Ok(())
                    },
                },
            )*)*
        ];
    };
}

// ANCHOR: settings
settings! {
    /// The broker's network side and threads.
    [server] ServerSettings, flags prefixed: false {
        /// Address every shard listens on for clients; port 0 picks a free one.
        /// Loopback by default: listen on 0.0.0.0 only behind a firewall.
        listen: SocketAddr = stage6_broker::shards::server::DEFAULT_LISTEN,
        /// Folder of the topics' files and metadata (relative to the working
        /// directory unless absolute).
        data: PathBuf = PathBuf::from("rivulet-data"),
        /// Shards: threads, each with its own io runtime and partitions;
        /// 0 is one per core but one (at least one), leaving a core to the
        /// rest of the machine.
        shards: usize = 0,
        /// Pin each shard's thread to its own core: for a machine the broker
        /// has to itself; a pinned shard cannot move off a busy core.
        pin: bool = false,
        /// auto (io_uring if the kernel allows it, else polling), io-uring or polling.
        io_driver: IoDriver = IoDriver::Auto,
        /// The most bytes one request frame may claim; larger frames are
        /// refused before anything is allocated for them.
        max_frame_len: u32 = stage6_broker::shards::frame::DEFAULT_MAX_FRAME_LEN,
        /// The most client connections open at once; one more is refused.
        max_connections: usize = 1024,
        /// The most client connections open at once from one IP address; one
        /// more is refused. 0: no limit.
        max_connections_per_peer: usize = 256,
        /// The most bytes of large requests (bodies over 64 KiB) held at once
        /// over every connection; a request that does not fit waits, unread,
        /// within the idle timeout. At least max_frame_len.
        max_request_bytes_in_flight: u64 = 256 << 20,
        /// With access control on: close a connection after this many failed
        /// logins. 0: no limit.
        max_login_failures: u32 = crate::session::DEFAULT_MAX_LOGIN_FAILURES,
        /// With access control on: refuse every login from an IP address that
        /// failed this many in the last minute, until the minute is over.
        /// 0: no limit.
        max_login_failures_per_peer: u32 = crate::session::DEFAULT_MAX_LOGIN_FAILURES_PER_PEER,
        /// Close a connection that sends nothing for this many seconds; 0 never does.
        idle_timeout_seconds: u64 = 300,
    }

    /// How partitions store records (a topic may override fsync, segment size
    /// and retention when it is created).
    [storage] StorageSettings, flags prefixed: false {
        /// Open segments with O_DIRECT (off: the same calls through the page
        /// cache). Needs a data folder on ext4, xfs or similar.
        direct_io: bool = true,
        /// When to fsync: always, every-batch, interval-250ms (any
        /// milliseconds) or never.
        fsync: FsyncPolicy = FsyncPolicy::EveryBatch,
        /// Bytes of records per segment file (allocated a few MiB ahead of its
        /// records, not all at once): a multiple of 4096, below 4 GiB.
        segment_size: u64 = Config::default().segment_size,
        /// Write buffered records once this many are waiting...
        flush_count: usize = Config::default().flush_count,
        /// ... or once they hold this many bytes: also the size of a normal
        /// write, and of each of the three buffers an active partition holds.
        flush_bytes: usize = Config::default().flush_bytes,
        /// How often each shard's saver runs (interval syncs, idle flushes,
        /// retention), in milliseconds.
        saver_interval_ms: u64 = 100,
        /// At most this many bytes of records per poll reply (one record is
        /// always returned, however large).
        max_poll_bytes: u64 = Config::default().max_poll_bytes,
        /// Delete a partition's oldest sealed segments while it holds more
        /// than this many bytes; 0 keeps everything.
        retention_bytes: u64 = 0,
        /// Delete sealed segments whose newest record is older than this many
        /// seconds; 0 keeps everything.
        retention_seconds: u64 = 0,
    }

    /// The Kafka listener: Kafka's wire protocol, on the same topics.
    [kafka] KafkaSettings, flags prefixed: true {
        /// Address Kafka clients (kcat, librdkafka, kafka-python) connect
        /// to, or "off". Loopback by default; it has no authentication, so it
        /// must be "off" when access control is on (users in the file).
        listen: String = "127.0.0.1:9092".to_string(),
        /// Create a topic that a Kafka client's Metadata or Produce names,
        /// when it does not exist (Kafka's auto.create.topics.enable).
        auto_create_topics: bool = true,
        /// Partitions of a topic a Kafka client creates without saying how
        /// many (auto-created, or CreateTopics with -1).
        default_partitions: u32 = 1,
        /// HOST:PORT that Kafka clients are told to connect to (Kafka's
        /// advertised.listeners), for a broker behind NAT or in a container;
        /// empty: the address each client reached it at.
        advertised_address: String = String::new(),
    }

    /// The Prometheus endpoint.
    [metrics] MetricsSettings, flags prefixed: true {
        /// Address of the HTTP endpoint serving GET /metrics, or "off".
        listen: String = "127.0.0.1:7407".to_string(),
    }

    /// Logs, written to stderr.
    [log] LogSettings, flags prefixed: true {
        /// A level (error, warn, info, debug, trace) or a RUST_LOG-style
        /// filter such as "info,stage6_broker::shards=debug".
        level: String = "info".to_string(),
    }
}
// ANCHOR_END: settings

/// Where a key's value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Nobody set it.
    Default,
    /// The config file at this path.
    File(PathBuf),
    /// This environment variable.
    Env(String),
    /// This flag (`--fsync`).
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => write!(f, "the default"),
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Flag(flag) => write!(f, "flag --{flag}"),
        }
    }
}

/// A setting that cannot be used, with its key and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SettingsError {
    /// A key no section has.
    #[error("unknown setting `{key}` in {origin}; {hint}")]
    Unknown {
        /// As written (`storage.fsyn`).
        key: String,
        /// Where it was written.
        origin: Origin,
        /// The keys that do exist there.
        hint: String,
    },
    /// A value of the wrong type or that does not hold.
    #[error("bad setting `{key}` = {value} (from {origin}): {reason}")]
    Invalid {
        /// `section.name`.
        key: String,
        /// The value, as TOML.
        value: String,
        /// Where it was set.
        origin: Origin,
        /// What is wrong.
        reason: String,
    },
    /// The config file cannot be read or is not TOML.
    #[error("{origin}: {reason}")]
    File {
        /// The file.
        origin: Origin,
        /// Why.
        reason: String,
    },
}

impl SettingsError {
    /// The key the error is about (`section.name`), if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            SettingsError::Unknown { key, .. } | SettingsError::Invalid { key, .. } => Some(key),
            SettingsError::File { .. } => None,
        }
    }
}

/// What `rivulet-server` runs with, resolved and checked.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The settings after every layer.
    pub settings: Settings,
    /// The broker's config made from them.
    pub server: ServerConfig,
    /// Where to serve metrics, unless off.
    pub metrics: Option<SocketAddr>,
    /// The log filter (an `EnvFilter` directive string).
    pub log_filter: String,
    /// Access control from the file's `[auth]` section; `None`: off.
    pub auth: Option<AuthConfig>,
    /// The Kafka listener, unless off.
    pub kafka: Option<KafkaConfig>,
}

/// Builds [`Settings`] layer by layer, remembering where each key was set.
#[derive(Debug, Clone, Default)]
pub struct Loader {
    settings: Settings,
    origins: HashMap<String, Origin>,
    /// The file's `[auth]` section, if it has one (see [`AUTH_SECTION`]).
    auth: Option<AuthConfig>,
}

fn key_named(section: &str, name: &str) -> Option<&'static Key> {
    KEYS.iter()
        .find(|key| key.section == section && key.name == name)
}

fn keys_of(section: &str) -> String {
    let names: Vec<_> = KEYS
        .iter()
        .filter(|key| key.section == section)
        .map(|key| key.name)
        .collect();
    format!("the keys of [{section}] are {}", names.join(", "))
}

fn sections() -> String {
    let mut names: Vec<_> = SECTIONS.iter().map(|(name, _)| *name).collect();
    names.push(AUTH_SECTION);
    format!("the sections are {}", names.join(", "))
}

impl Loader {
    /// Starts from the defaults.
    pub fn new() -> Loader {
        Loader::default()
    }

    /// The settings so far.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Where `key` (`section.name`) was last set.
    pub fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }

    /// Applies a config file's text (`path` is for messages). Checked key by
    /// key rather than with one `toml::from_str::<Settings>`, so that an
    /// error names the key in one line instead of pointing at a column.
    pub fn file(&mut self, path: &Path, text: &str) -> Result<(), SettingsError> {
        let origin = Origin::File(path.to_path_buf());
        let table: toml::Table =
            text.parse()
                .map_err(|error: toml::de::Error| SettingsError::File {
                    origin: origin.clone(),
                    reason: format!("not valid TOML: {}", error.to_string().trim()),
                })?;
        for (section, keys) in table {
            if section == AUTH_SECTION {
                let auth =
                    AuthConfig::deserialize(keys).map_err(|error| SettingsError::Invalid {
                        key: AUTH_SECTION.to_string(),
                        value: "(not shown: it holds secrets)".to_string(),
                        origin: origin.clone(),
                        reason: error.to_string().trim().to_string(),
                    })?;
                self.auth = Some(auth);
                self.origins
                    .insert(AUTH_SECTION.to_string(), origin.clone());
                continue;
            }
            let toml::Value::Table(keys) = keys else {
                let reason = if SECTIONS.iter().any(|(name, _)| *name == section) {
                    format!("`{section}` must be a section ([{section}]), not a value")
                } else {
                    format!("unknown section `{section}`; {}", sections())
                };
                return Err(SettingsError::File { origin, reason });
            };
            if !SECTIONS.iter().any(|(name, _)| *name == section) {
                let reason = format!("unknown section [{section}]; {}", sections());
                return Err(SettingsError::File { origin, reason });
            }
            for (name, value) in keys {
                let Some(key) = key_named(&section, &name) else {
                    return Err(SettingsError::Unknown {
                        key: format!("{section}.{name}"),
                        origin,
                        hint: keys_of(&section),
                    });
                };
                let shown = value.to_string();
                (key.set_toml)(&mut self.settings, value).map_err(|reason| {
                    SettingsError::Invalid {
                        key: key.path(),
                        value: shown,
                        origin: origin.clone(),
                        reason,
                    }
                })?;
                self.origins.insert(key.path(), origin.clone());
            }
        }
        Ok(())
    }

    /// Applies the environment variables of the keys (`RIVULET_<SECTION>_<KEY>`).
    /// A variable with a section's prefix that names no key is an error (a
    /// typo would otherwise be ignored in silence); other variables are not
    /// looked at.
    pub fn env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), SettingsError> {
        let mut vars: Vec<_> = vars.into_iter().collect();
        vars.sort();
        for (var, text) in vars {
            let section = SECTIONS
                .iter()
                .map(|(name, _)| *name)
                .find(|name| var.starts_with(&format!("RIVULET_{}_", name.to_uppercase())));
            let Some(section) = section else { continue };
            let origin = Origin::Env(var.clone());
            let Some(key) = KEYS.iter().find(|key| key.env_var() == var) else {
                let name = var[format!("RIVULET_{section}_").len()..].to_lowercase();
                return Err(SettingsError::Unknown {
                    key: format!("{section}.{name}"),
                    origin,
                    hint: keys_of(section),
                });
            };
            self.set_text(key, &text, origin)?;
        }
        Ok(())
    }

    /// Applies one flag's value.
    pub fn flag(&mut self, key: &Key, text: &str) -> Result<(), SettingsError> {
        self.set_text(key, text, Origin::Flag(key.flag()))
    }

    fn set_text(&mut self, key: &Key, text: &str, origin: Origin) -> Result<(), SettingsError> {
        (key.set_text)(&mut self.settings, text).map_err(|reason| SettingsError::Invalid {
            key: key.path(),
            value: format!("{text:?}"),
            origin: origin.clone(),
            reason,
        })?;
        self.origins.insert(key.path(), origin);
        Ok(())
    }

    /// Checks the settings as a whole and makes the broker's config.
    pub fn finish(self) -> Result<Resolved, SettingsError> {
        if let Some(auth) = &self.auth {
            auth.validate().map_err(|error| SettingsError::Invalid {
                key: error.key.to_string(),
                value: "(not shown: it holds secrets)".to_string(),
                origin: self.origin(AUTH_SECTION),
                reason: error.reason,
            })?;
        }
        let checked = self.settings.check();
        let (server, metrics, log_filter, kafka) = checked.map_err(|(name, reason)| {
            let value = KEYS
                .iter()
                .find(|key| key.path() == name)
                .map_or_else(String::new, |key| key.toml_value(&self.settings));
            SettingsError::Invalid {
                value,
                origin: self.origin(&name),
                key: name,
                reason,
            }
        })?;
        // Kafka clients cannot log in here (no SASL), so with [auth] the
        // listener would be a way around every permission: off when it was
        // on only by default (an [auth] file written before the listener
        // existed keeps working), refused when the operator asked for it.
        let kafka = match (&self.auth, kafka) {
            (Some(_), Some(_)) if self.origin("kafka.listen") == Origin::Default => None,
            (_, kafka) => kafka,
        };
        if self.auth.is_some() && kafka.is_some() {
            return Err(SettingsError::Invalid {
                key: "kafka.listen".to_string(),
                value: self.settings.kafka.listen.clone(),
                origin: self.origin("kafka.listen"),
                reason: "[auth] is set, and Kafka clients cannot log in here (no SASL): \
                         set it to \"off\""
                    .to_string(),
            });
        }
        // The login limits live with the users they protect.
        let auth = self.auth.map(|mut auth| {
            auth.login = self.settings.login_limits();
            auth
        });
        Ok(Resolved {
            settings: self.settings,
            auth,
            server,
            metrics,
            log_filter,
            kafka,
        })
    }
}

/// The file-only section of users and what each may do ([`AuthConfig`]).
/// It has no environment variables and no flags, so passwords and tokens
/// never appear in `ps` output or a shell's history; and it is not in
/// [`KEYS`], because it is a list of users, not one value per key.
pub const AUTH_SECTION: &str = "auth";

/// How the `[auth]` section is written, for `--print-config`, the example
/// file and the reference (commented out: access control is off by default).
pub const AUTH_EXAMPLE: &str = "\
Access control, in the config file only (no environment variable or flag,
so secrets stay out of `ps` and shell histories). Absent, every connection
may do everything. With it, a connection logs in first, as one of:
[[auth.users]]
name = \"admin\"
password = \"change-me\"
admin = true                  # create and delete streams and topics
[[auth.users]]
name = \"orders-service\"
token = \"a-long-random-token\"
produce = [\"orders\"]         # topic names, or \"*\"
consume = [\"orders\"]";

/// The most shards: a typo such as `shards = 10000000` must be an error, not
/// ten million threads.
pub const MAX_SHARDS: usize = 1024;

/// The largest `max_frame_len`: a frame's bytes are allocated once its length
/// is checked, so this bounds what one request can make the broker allocate.
pub const MAX_FRAME_LEN_LIMIT: u32 = 1 << 30;

/// A problem with one key: its `section.name` and why.
type KeyProblem = (String, String);

impl Settings {
    /// The broker's config, metrics address and log filter these settings
    /// mean; the error names the first key that does not hold.
    pub fn server_config(&self) -> Result<ServerConfig, KeyProblem> {
        self.check().map(|(server, _, _, _)| server)
    }

    /// The Kafka listener these settings mean (`None`: off).
    pub fn kafka_config(&self) -> Result<Option<KafkaConfig>, KeyProblem> {
        let kafka = &self.kafka;
        let listen = match kafka.listen.as_str() {
            "off" => return Ok(None),
            text => text.parse().map_err(|_| {
                (
                    "kafka.listen".to_string(),
                    "expected an address like 127.0.0.1:9092, or \"off\"".to_string(),
                )
            })?,
        };
        let most = stage6_broker::shards::topics::MAX_PARTITIONS;
        if !(1..=most).contains(&kafka.default_partitions) {
            return Err((
                "kafka.default_partitions".to_string(),
                format!("must be from 1 to {most}"),
            ));
        }
        let advertised = match kafka.advertised_address.rsplit_once(':') {
            None if kafka.advertised_address.is_empty() => None,
            Some((host, port)) if !host.is_empty() => match port.parse() {
                Ok(port) => Some((host.to_string(), port)),
                Err(_) => None,
            },
            _ => None,
        };
        if advertised.is_none() && !kafka.advertised_address.is_empty() {
            return Err((
                "kafka.advertised_address".to_string(),
                "expected HOST:PORT, such as kafka.example.com:9092, or empty".to_string(),
            ));
        }
        Ok(Some(KafkaConfig {
            listen,
            auto_create_topics: kafka.auto_create_topics,
            default_partitions: kafka.default_partitions,
            advertised,
        }))
    }

    #[allow(clippy::type_complexity)]
    fn check(
        &self,
    ) -> Result<
        (
            ServerConfig,
            Option<SocketAddr>,
            String,
            Option<KafkaConfig>,
        ),
        KeyProblem,
    > {
        let fail = |key: &str, reason: String| Err((key.to_string(), reason));
        let server = &self.server;
        let storage = &self.storage;
        if server.shards > MAX_SHARDS {
            return fail("server.shards", format!("at most {MAX_SHARDS}"));
        }
        let driver = server.io_driver;
        let min_frame = 4096;
        if !(min_frame..=MAX_FRAME_LEN_LIMIT).contains(&server.max_frame_len) {
            return fail(
                "server.max_frame_len",
                format!("must be from {min_frame} to {MAX_FRAME_LEN_LIMIT} bytes"),
            );
        }
        if server.max_connections == 0 {
            return fail("server.max_connections", "must be at least 1".to_string());
        }
        let in_flight = usize::try_from(server.max_request_bytes_in_flight).unwrap_or(usize::MAX);
        if in_flight < server.max_frame_len as usize {
            return fail(
                "server.max_request_bytes_in_flight",
                format!(
                    "must be at least max_frame_len ({} bytes), or a frame the length \
                     limit allows could never be read",
                    server.max_frame_len
                ),
            );
        }
        let fsync = storage.fsync;
        let storage_config = Config {
            segment_size: storage.segment_size,
            direct_io: storage.direct_io,
            fsync,
            flush_count: storage.flush_count,
            flush_bytes: storage.flush_bytes,
            saver_interval: Duration::from_millis(storage.saver_interval_ms),
            max_poll_bytes: storage.max_poll_bytes,
            retention_bytes: none_if_zero(storage.retention_bytes),
            retention_age: none_if_zero(storage.retention_seconds).map(Duration::from_secs),
            // Not a setting: how far ahead files grow is the engine's
            // measured choice, not an operator's knob.
            ..Config::default()
        };
        if let Err(error) = storage_config.validate() {
            return fail(&storage_key(error.key), error.reason);
        }
        let metrics = match self.metrics.listen.as_str() {
            "off" => None,
            text => match text.parse() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    return fail(
                        "metrics.listen",
                        "expected an address like 127.0.0.1:7407, or \"off\"".to_string(),
                    );
                }
            },
        };
        if let Err(error) = tracing_subscriber::EnvFilter::builder().parse(&self.log.level) {
            return fail("log.level", error.to_string());
        }
        let config = ServerConfig {
            listen: server.listen,
            data: server.data.clone(),
            shards: match server.shards {
                0 => stage6_broker::default_shards(stage6_broker::cores()),
                shards => shards,
            },
            pin: server.pin,
            driver,
            storage: storage_config,
            max_frame_len: server.max_frame_len,
            max_connections: server.max_connections,
            max_connections_per_peer: (server.max_connections_per_peer != 0)
                .then_some(server.max_connections_per_peer),
            max_request_bytes_in_flight: in_flight,
            idle_timeout: none_if_zero(server.idle_timeout_seconds).map(Duration::from_secs),
        };
        let kafka = self.kafka_config()?;
        Ok((config, metrics, self.log.level.clone(), kafka))
    }
}

fn none_if_zero(value: u64) -> Option<u64> {
    (value != 0).then_some(value)
}

impl Settings {
    /// How many failed logins the settings allow (used when access control is on).
    pub fn login_limits(&self) -> LoginLimits {
        let limit = |value: u32| (value != 0).then_some(value);
        LoginLimits {
            per_connection: limit(self.server.max_login_failures),
            per_peer: limit(self.server.max_login_failures_per_peer),
        }
    }
}

/// The settings key a [`stage6_broker::ConfigError`]'s key is set by (the storage
/// struct names durations by what they are, the file by their unit).
fn storage_key(config_key: &str) -> String {
    let name = match config_key {
        "saver_interval" => "saver_interval_ms",
        "retention_age" => "retention_seconds",
        other => other,
    };
    format!("storage.{name}")
}

/// The settings as a TOML file, every key with its doc as comments, its
/// environment variable and flag; keys that differ from the default say the
/// default. `title` opens the file (each line becomes a comment).
pub fn commented_toml(settings: &Settings, title: &str) -> String {
    let defaults = Settings::default();
    let mut out = String::new();
    for line in title.lines() {
        out.push_str(format!("# {line}").trim_end());
        out.push('\n');
    }
    for (section, doc) in SECTIONS {
        out.push('\n');
        for line in doc.lines() {
            out.push_str(&format!("#{line}\n"));
        }
        out.push_str(&format!("[{section}]\n"));
        for key in KEYS.iter().filter(|key| key.section == *section) {
            out.push('\n');
            for line in key.doc.lines() {
                out.push_str(&format!("#{line}\n"));
            }
            out.push_str(&format!(
                "# (environment {}, flag --{})\n",
                key.env_var(),
                key.flag()
            ));
            let value = key.toml_value(settings);
            let default = key.toml_value(&defaults);
            if value != default {
                out.push_str(&format!("# default: {default}\n"));
            }
            out.push_str(&format!("{} = {value}\n", key.name));
        }
    }
    out.push('\n');
    for line in AUTH_EXAMPLE.lines() {
        out.push_str(format!("# {line}").trim_end());
        out.push('\n');
    }
    out
}

/// The settings `deploy/rivulet.toml` ships with: the defaults, but the data
/// where the systemd unit gives the service a folder of its own.
pub fn deploy_example() -> Settings {
    let mut settings = Settings::default();
    settings.server.data = PathBuf::from("/var/lib/rivulet");
    settings
}

/// The comment that opens `deploy/rivulet.toml`.
pub const DEPLOY_TITLE: &str = "\
rivulet-server configuration, as deploy/rivulet.service expects it in
/etc/rivulet/rivulet.toml. Every key is shown with its value; a file may hold
any subset (the rest keep their defaults). Generated from
broker/src/settings.rs: `RIVULET_BLESS=1 cargo test -p rivulet-broker
--test config` rewrites it.";

/// The comment that opens `rivulet-server --print-config`.
pub const PRINT_TITLE: &str = "\
rivulet-server configuration: the settings it would run with. Save it as a
file, edit it, and pass it with --config PATH (or RIVULET_CONFIG=PATH).
Precedence, lowest first: defaults, this file, RIVULET_<SECTION>_<KEY>
environment variables, flags.";

/// The book's config reference: one table per section, from [`KEYS`].
pub fn reference_markdown() -> String {
    let defaults = Settings::default();
    let mut out = String::from(
        "<!-- Generated from broker/src/settings.rs by \
         `RIVULET_BLESS=1 cargo test -p rivulet-broker --test config`; do not edit. -->\n",
    );
    for (section, doc) in SECTIONS {
        out.push_str(&format!("\n### `[{section}]`\n\n{}\n\n", one_line(doc)));
        out.push_str("| key | default | environment variable | flag | meaning |\n");
        out.push_str("|---|---|---|---|---|\n");
        for key in KEYS.iter().filter(|key| key.section == *section) {
            out.push_str(&format!(
                "| `{}` | `{}` | `{}` | `--{}` | {} |\n",
                key.name,
                key.toml_value(&defaults),
                key.env_var(),
                key.flag(),
                key.summary().replace('|', "\\|"),
            ));
        }
    }
    let (prose, example) = AUTH_EXAMPLE.split_once("[[").unwrap_or((AUTH_EXAMPLE, ""));
    out.push_str(&format!(
        "\n### `[auth]`\n\n{}\n\n```toml\n[[{example}\n```\n",
        one_line(prose)
    ));
    out
}

fn one_line(doc: &str) -> String {
    doc.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_defaults_resolve_to_the_server_defaults() {
        let resolved = Loader::new().finish().unwrap();
        let defaults = ServerConfig::new();
        assert_eq!(resolved.server.listen, defaults.listen);
        assert_eq!(resolved.server.data, defaults.data);
        assert_eq!(resolved.server.shards, defaults.shards);
        assert_eq!(resolved.server.storage, defaults.storage);
        assert_eq!(resolved.server.max_frame_len, defaults.max_frame_len);
        assert_eq!(resolved.server.max_connections, defaults.max_connections);
        assert_eq!(
            resolved.server.max_connections_per_peer,
            defaults.max_connections_per_peer
        );
        assert_eq!(
            resolved.server.max_request_bytes_in_flight,
            defaults.max_request_bytes_in_flight
        );
        assert_eq!(resolved.settings.login_limits(), LoginLimits::default());
        assert_eq!(resolved.server.idle_timeout, defaults.idle_timeout);
        assert_eq!(resolved.metrics, Some("127.0.0.1:7407".parse().unwrap()));
        assert_eq!(resolved.log_filter, "info");
    }

    #[test]
    fn settings_printed_toml_parses_back_to_the_same_settings() {
        for settings in [Settings::default(), deploy_example()] {
            let text = commented_toml(&settings, "title");
            assert_eq!(toml::from_str::<Settings>(&text).unwrap(), settings);
            let mut loader = Loader::new();
            loader.file(Path::new("x.toml"), &text).unwrap();
            assert_eq!(loader.settings(), &settings);
        }
    }

    #[test]
    fn settings_every_key_is_documented_and_flags_are_unique() {
        let mut flags: Vec<_> = KEYS.iter().map(Key::flag).collect();
        flags.sort();
        flags.dedup();
        assert_eq!(flags.len(), KEYS.len());
        assert!(KEYS.iter().all(|key| !key.summary().is_empty()));
        for flag in [
            "listen",
            "data",
            "shards",
            "pin",
            "direct-io",
            "io-driver",
            "fsync",
        ] {
            assert!(flags.iter().any(|f| f == flag), "--{flag}");
        }
    }

    #[test]
    fn settings_layers_apply_in_order_and_remember_their_origin() {
        let mut loader = Loader::new();
        let file = "[storage]\nfsync = \"never\"\nflush_count = 7\n[server]\nshards = 3\n";
        loader.file(Path::new("r.toml"), file).unwrap();
        let env = [("RIVULET_STORAGE_FSYNC".to_string(), "always".to_string())];
        loader.env(env).unwrap();
        let shards = key_named("server", "shards").unwrap();
        loader.flag(shards, "2").unwrap();
        assert_eq!(loader.settings().storage.fsync.name(), "always");
        assert_eq!(loader.settings().storage.flush_count, 7);
        assert_eq!(loader.settings().server.shards, 2);
        assert_eq!(
            loader.origin("storage.flush_count"),
            Origin::File("r.toml".into())
        );
        assert_eq!(
            loader.origin("storage.fsync"),
            Origin::Env("RIVULET_STORAGE_FSYNC".into())
        );
        assert_eq!(
            loader.origin("server.shards"),
            Origin::Flag("shards".into())
        );

        // Other programs' variables, and the CLI's RIVULET_SERVER, are not settings.
        let others = [
            "RIVULET_PROFILE",
            "RIVULET_SERVER",
            "RIVULET_CONFIG",
            "RIVULET_LOG",
        ];
        let before = loader.settings().clone();
        loader
            .env(others.map(|name| (name.to_string(), "x".to_string())))
            .unwrap();
        assert_eq!(loader.settings(), &before);
    }

    #[test]
    fn settings_kafka_listener_is_on_by_default_off_on_request_and_never_beside_auth() {
        let kafka = Loader::new().finish().unwrap().kafka.unwrap();
        assert_eq!(kafka.listen.to_string(), "127.0.0.1:9092");
        assert!(kafka.auto_create_topics);
        assert_eq!(kafka.default_partitions, 1);

        let flag = |text: &str| KEYS.iter().find(|k| k.path() == text).unwrap();
        let mut loader = Loader::new();
        loader.flag(flag("kafka.listen"), "off").unwrap();
        assert!(loader.finish().unwrap().kafka.is_none());

        let mut loader = Loader::new();
        loader
            .flag(flag("kafka.listen"), "nine-oh-nine-two")
            .unwrap();
        let error = loader.finish().unwrap_err();
        assert_eq!(error.key(), Some("kafka.listen"));

        let mut loader = Loader::new();
        loader.flag(flag("kafka.default_partitions"), "0").unwrap();
        assert_eq!(
            loader.finish().unwrap_err().key(),
            Some("kafka.default_partitions")
        );

        // With [auth]: off when on only by default, refused when asked for.
        let users = "[[auth.users]]\nname = \"ops\"\ntoken = \"t0k3n\"\nadmin = true\n";
        let mut loader = Loader::new();
        loader.file(Path::new("r.toml"), users).unwrap();
        let resolved = loader.finish().unwrap();
        assert!(resolved.auth.is_some() && resolved.kafka.is_none());
        let mut loader = Loader::new();
        loader.file(Path::new("r.toml"), users).unwrap();
        loader.flag(flag("kafka.listen"), "127.0.0.1:9092").unwrap();
        let error = loader.finish().unwrap_err();
        assert_eq!(error.key(), Some("kafka.listen"));
        assert!(error.to_string().contains("SASL"), "{error}");
    }

    #[test]
    fn settings_auth_comes_from_the_file_and_is_checked() {
        let mut loader = Loader::new();
        let file = "[[auth.users]]\nname = \"ops\"\ntoken = \"t0k3n\"\nadmin = true\n";
        loader.file(Path::new("r.toml"), file).unwrap();
        let auth = loader.finish().unwrap().auth.unwrap();
        assert_eq!(auth.users[0].name, "ops");

        let mut loader = Loader::new();
        let file = "[[auth.users]]\nname = \"ops\"\n";
        loader.file(Path::new("r.toml"), file).unwrap();
        let error = loader.finish().unwrap_err();
        assert_eq!(error.key(), Some("auth.users"));
        assert!(error.to_string().contains("r.toml"), "{error}");

        let error = Loader::new()
            .file(Path::new("r.toml"), "[[auth.users]]\nnam = \"x\"\n")
            .unwrap_err();
        assert_eq!(error.key(), Some("auth"));
        assert!(Loader::new().finish().unwrap().auth.is_none());
    }

    #[test]
    fn settings_request_budget_holds_a_whole_frame_and_zero_turns_limits_off() {
        let mut loader = Loader::new();
        let env = [
            (
                "RIVULET_SERVER_MAX_FRAME_LEN".to_string(),
                "1048576".to_string(),
            ),
            (
                "RIVULET_SERVER_MAX_REQUEST_BYTES_IN_FLIGHT".to_string(),
                "1048575".to_string(),
            ),
        ];
        loader.env(env).unwrap();
        let error = loader.finish().unwrap_err();
        assert_eq!(error.key(), Some("server.max_request_bytes_in_flight"));

        let mut loader = Loader::new();
        let file = "[server]\nmax_connections_per_peer = 0\nmax_login_failures = 0\n\
                    max_login_failures_per_peer = 0\n\
                    [[auth.users]]\nname = \"ops\"\ntoken = \"t0k3n\"\n";
        loader.file(Path::new("r.toml"), file).unwrap();
        let resolved = loader.finish().unwrap();
        assert_eq!(resolved.server.max_connections_per_peer, None);
        let off = LoginLimits {
            per_connection: None,
            per_peer: None,
        };
        assert_eq!(resolved.auth.unwrap().login, off);
    }

    #[test]
    fn settings_errors_name_the_key_and_the_origin() {
        let mut loader = Loader::new();
        let error = loader
            .file(Path::new("r.toml"), "[storage]\nfsyn = \"never\"\n")
            .unwrap_err();
        assert_eq!(error.key(), Some("storage.fsyn"));
        assert!(error.to_string().contains("r.toml"), "{error}");

        let error = loader
            .file(Path::new("r.toml"), "[server]\nshards = \"many\"\n")
            .unwrap_err();
        assert_eq!(error.key(), Some("server.shards"));

        let env = [("RIVULET_SERVER_SHARDS".to_string(), "many".to_string())];
        let error = loader.env(env).unwrap_err();
        assert!(
            error.to_string().contains("RIVULET_SERVER_SHARDS"),
            "{error}"
        );

        let mut loader = Loader::new();
        let env = [(
            "RIVULET_STORAGE_SEGMENT_SIZE".to_string(),
            "4097".to_string(),
        )];
        loader.env(env).unwrap();
        let error = loader.finish().unwrap_err();
        assert_eq!(error.key(), Some("storage.segment_size"));
        assert!(error.to_string().contains("RIVULET_STORAGE_SEGMENT_SIZE"));
    }
}
