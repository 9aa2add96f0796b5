//! What `Stream::open` does to files a crash may have left half-written.
//!
//! A process killed mid-append can leave, at the end of each file, part of what
//! it was writing: the log may end inside a record (a *torn tail*), and the index,
//! written after the log, may lack entries for records that are whole. Recovery
//! restores the invariant every other method relies on:
//!
//! > the log is a sequence of whole records with offsets 0, 1, 2, ... and the
//! > index has exactly one entry per record, pointing at its first byte.
//!
//! It trusts the longest prefix of the index that is consistent (starts at 0,
//! strictly increasing, inside the log), then walks the log header by header from
//! the last trusted entry: whole records get index entries, a torn record is cut
//! off. So a healthy reopen reads one header, and a lost index is rebuilt from
//! the log. Deliberate simplification: without a checksum (stage 4 adds one), a
//! record that is whole but damaged is served as it is.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::{Error, IoContext};
use crate::index::{self, ENTRY_LEN};
use crate::message::{HEADER_LEN, Header};

/// What recovery found and changed when a stream was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Whole records in the log after recovery.
    pub messages: u64,
    /// Bytes of a torn record cut from the end of the log.
    pub log_bytes_truncated: u64,
    /// Index entries dropped because they pointed nowhere valid (or were torn).
    pub index_entries_dropped: u64,
    /// Index entries written back from a walk of the log.
    pub index_entries_rebuilt: u64,
}

/// The state of the files after recovery.
pub(crate) struct Recovered {
    pub report: RecoveryReport,
    pub log_len: u64,
}

/// Files and their paths, so every error can name the file it is about.
pub(crate) struct Files<'a> {
    pub log: &'a File,
    pub log_path: &'a Path,
    pub index: &'a File,
    pub index_path: &'a Path,
}

// ANCHOR: recover
pub(crate) fn recover(files: &Files<'_>, max_log_bytes: u64) -> Result<Recovered, Error> {
    let log_len = files.log.metadata().at(files.log_path)?.len();
    if log_len > max_log_bytes {
        return Err(corrupt(
            files,
            log_len,
            "log is longer than a u32 index can address",
        ));
    }
    let entries = index::read_all(files.index).at(files.index_path)?;
    let index_len = files.index.metadata().at(files.index_path)?.len();
    let trusted = trusted_prefix(&entries, log_len);

    // Re-check the last trusted record (it may be the torn one) and walk on.
    let (first_offset, start) = match trusted.checked_sub(1) {
        Some(last) => (last as u64, u64::from(entries[last])),
        None => (0, 0),
    };
    let walked = walk_records(files, first_offset, start, log_len)?;

    let messages = first_offset + walked.positions.len() as u64;
    if walked.end < log_len {
        files.log.set_len(walked.end).at(files.log_path)?;
    }
    // Rewrite the index from the first entry the walk produced, whether or not
    // it was there before: simpler than comparing, and a healthy reopen rewrites
    // exactly one entry.
    files
        .index
        .set_len(first_offset * ENTRY_LEN)
        .at(files.index_path)?;
    let mut tail = Vec::with_capacity(walked.positions.len() * ENTRY_LEN as usize);
    for position in &walked.positions {
        tail.extend_from_slice(&position.to_le_bytes());
    }
    let mut index = files.index;
    index.write_all(&tail).at(files.index_path)?;
    // A repair that a second crash could undo is no repair: make it stick.
    files.log.sync_all().at(files.log_path)?;
    files.index.sync_all().at(files.index_path)?;

    // Trusted entries survive, except the last one if its record was torn.
    let kept_entries = (trusted as u64).min(messages);
    Ok(Recovered {
        report: RecoveryReport {
            messages,
            log_bytes_truncated: log_len - walked.end,
            index_entries_dropped: index_len.div_ceil(ENTRY_LEN) - kept_entries,
            index_entries_rebuilt: messages - kept_entries,
        },
        log_len: walked.end,
    })
}
// ANCHOR_END: recover

/// How many leading index entries are consistent with a log of `log_len` bytes.
fn trusted_prefix(entries: &[u32], log_len: u64) -> usize {
    let mut previous: Option<u64> = None;
    for (n, &entry) in entries.iter().enumerate() {
        let position = u64::from(entry);
        let consistent = match previous {
            None => position == 0,
            Some(previous) => position >= previous + HEADER_LEN as u64,
        };
        if !consistent || position >= log_len {
            return n;
        }
        previous = Some(position);
    }
    entries.len()
}

struct Walk {
    /// Start position of each whole record found, in order.
    positions: Vec<u32>,
    /// Where the last whole record ends: the new length of the log.
    end: u64,
}

/// Walks records from `start`, expecting offsets from `first_offset`, reading
/// only headers (payloads are skipped within the read buffer, not read into memory).
fn walk_records(
    files: &Files<'_>,
    first_offset: u64,
    start: u64,
    log_len: u64,
) -> Result<Walk, Error> {
    // EXERCISE: walk_records
    // HINT: read header after header (skip payloads); stop at a record that runs past
    // HINT: log_len (a torn tail), and refuse a whole record whose offset is not the next one.
    let mut reader = BufReader::new(files.log);
    reader.seek(SeekFrom::Start(start)).at(files.log_path)?;
    let mut positions = Vec::new();
    let mut position = start;
    let mut header = [0; HEADER_LEN];
    // A record is whole when its header and its whole payload are inside the file;
    // deciding by length, not by read errors, keeps a torn tail from ever being read.
    while position + HEADER_LEN as u64 <= log_len {
        reader.read_exact(&mut header).at(files.log_path)?;
        let header = Header::from_bytes(&header);
        if position + header.record_len() > log_len {
            break;
        }
        let expected = first_offset + positions.len() as u64;
        if header.offset != expected {
            return Err(corrupt(
                files,
                position,
                &format!("record has offset {}, expected {expected}", header.offset),
            ));
        }
        let entry = u32::try_from(position)
            .map_err(|_| corrupt(files, position, "record starts past 4 GiB"))?;
        positions.push(entry);
        reader
            .seek_relative(i64::from(header.payload_len))
            .at(files.log_path)?;
        position += header.record_len();
    }
    Ok(Walk {
        positions,
        end: position,
    })
    // EXERCISE_END
}

fn corrupt(files: &Files<'_>, position: u64, reason: &str) -> Error {
    Error::Corrupt {
        path: files.log_path.to_path_buf(),
        position,
        reason: reason.to_string(),
    }
}
