//! Stage 2 of Rivulet: batching, a background saver, and fsync policies.
//!
//! The talk's slides "fsync", "Messages batching" and "Background saver". Stage 1
//! paid a disk flush per message; here messages wait in memory until a batch is
//! full or the saver's interval fires, are written in one call, and are synced as
//! the stream's [`FsyncPolicy`] says. Every answer says what it guarantees
//! ([`Appended::durable`]), and `flush().await` waits for durability.
//!
//! The log itself (records, index, recovery) is stage 1's, used as a dependency:
//! this stage changes only *when* bytes are written and synced.
//!
//! Modules: [`policy`] (the choices), [`batcher`] (the rules, synchronous),
//! [`stream`] (the tokio face and the saver task), [`error`].

pub mod batcher;
pub mod error;
pub mod policy;
pub mod stream;

pub use batcher::{Appended, Batcher, Status};
pub use error::Error;
pub use policy::{Config, FsyncPolicy};
pub use stage1_file_log::Message;
pub use stream::BatchingStream;
