//! Stage 3 of Rivulet: a TCP server for many streams behind `Arc<RwLock<_>>`.
//!
//! The talk's "Networking" slides: a `Server` holding streams by id, each
//! behind its own read-write lock, a length-prefixed binary protocol, and a
//! client. Storage is stage 2's batcher (and through it stage 1's log), used as
//! a dependency: this stage adds the network and the locks, nothing else.
//!
//! Modules: [`protocol`] (frames and commands), [`streams`] (the shared state
//! and its locks), [`connection`] (one client), [`server`] (accepting and
//! stopping), [`client`], [`error`].

pub mod client;
pub mod connection;
pub mod error;
pub mod process;
pub mod protocol;
pub mod server;
pub mod streams;

pub use client::{Client, ClientError, FramedClient, RequestError};
pub use error::ServeError;
pub use server::{Server, StopSignals};
pub use streams::{Streams, StreamsConfig};
