//! Stage 1 of Rivulet: an append-only log file with an offset index.
//!
//! The first half of the talk's "build" slides, in blocking `std::fs`:
//! a [`Message`] encoded as a record ([`Message::as_bytes`], [`Message::from_bytes`]),
//! a [`Stream`] that appends records to a log file and their positions to an index
//! file, and polls any offset back through that index. [`AppendMode`] holds the
//! talk's three versions of `append`, so each can be measured.
//!
//! Modules, in reading order: [`message`] (the record), [`index`] (positions),
//! [`stream`] (append and poll), [`recovery`] (what opening after a crash repairs),
//! [`error`].

pub mod error;
pub mod hexdump;
pub mod index;
pub mod message;
pub mod recovery;
pub mod stream;

pub use error::Error;
pub use hexdump::hexdump;
pub use message::{HEADER_LEN, Message, RecordError};
pub use recovery::RecoveryReport;
pub use stream::{AppendMode, Stream};
