//! What opening a partition does to files a crash may have left half-written.
//!
//! The same invariant as stage 1's recovery, for wire records:
//!
//! > the log is a sequence of whole records with offsets 0, 1, 2, ... and the
//! > index has exactly one entry per record, pointing at its first byte,
//!
//! restored the same way: trust the longest consistent prefix of the index
//! (stage 1's `index` module reads it), then walk the log header by header from
//! the last trusted entry, cutting off a torn tail and writing back the
//! entries the index lacks. What is new is the checksum. Every walked record is
//! verified, and a record whose checksum fails is judged by what follows it:
//!
//! - nothing valid after it: it is the **torn tail** of a write that did not
//!   finish (or did not reach the disk whole), so it is cut off, like a record
//!   whose length runs past the end of the file;
//! - a valid record after it: the damage is in the **middle** of data that
//!   was once whole, which no crash of ours explains. Recovery refuses with
//!   [`Error::Corrupt`] and leaves both files untouched for an operator.
//!
//! Deliberate simplifications: only the walked records are verified (a healthy
//! reopen walks one; a full scrub would read the whole log on every start), so
//! damage further back is found by the client's checksum on poll, not here.
//! And the walk follows length fields: a flipped bit in a length can make the
//! records after it unreadable, which this rule takes for a torn tail, as stage
//! 1 did. Stage 6 verifies records as it serves them.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use stage1_file_log::RecoveryReport;
use stage1_file_log::index::{self, ENTRY_LEN};
use stage4_partitions::protocol::record::RECORD_HEADER_LEN;

use crate::error::{Error, IoContext};
use crate::view::{Header, RecordView};

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
        let reason = "log is longer than a u32 index can address";
        return Err(corrupt(files, log_len, reason));
    }
    let entries = index::read_all(files.index).at(files.index_path)?;
    let index_len = files.index.metadata().at(files.index_path)?.len();
    let trusted = trusted_prefix(&entries, log_len);

    // Re-check the last trusted record (it may be the torn one) and walk on.
    let (first_offset, start) = match trusted.checked_sub(1) {
        Some(last) => (last as u64, u64::from(entries[last])),
        None => (0, 0),
    };
    // Everything is read and judged before anything is changed: a corrupt log
    // returns here with both files as they were.
    let walked = walk_records(files, first_offset, start, log_len)?;

    let messages = first_offset + walked.positions.len() as u64;
    if walked.end < log_len {
        files.log.set_len(walked.end).at(files.log_path)?;
    }
    let mut tail = Vec::with_capacity(walked.positions.len() * ENTRY_LEN as usize);
    for position in &walked.positions {
        tail.extend_from_slice(&position.to_le_bytes());
    }
    let index_start = first_offset * ENTRY_LEN;
    let index_end = index_start + tail.len() as u64;
    files.index.set_len(index_end).at(files.index_path)?;
    files
        .index
        .write_all_at(&tail, index_start)
        .at(files.index_path)?;
    // A repair that a second crash could undo is no repair: make it stick.
    files.log.sync_all().at(files.log_path)?;
    files.index.sync_all().at(files.index_path)?;

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

/// How many leading index entries are consistent with a log of `log_len`
/// bytes: the first at 0, each at least a record header after the one before,
/// all inside the log. (Stage 1's rule, with this record's 32-byte minimum.)
fn trusted_prefix(entries: &[u32], log_len: u64) -> usize {
    let mut previous: Option<u64> = None;
    for (n, &entry) in entries.iter().enumerate() {
        let position = u64::from(entry);
        let consistent = match previous {
            None => position == 0,
            Some(previous) => position >= previous + RECORD_HEADER_LEN as u64,
        };
        if !consistent || position >= log_len {
            return n;
        }
        previous = Some(position);
    }
    entries.len()
}

struct Walk {
    /// Start position of each whole, valid record found, in order.
    positions: Vec<u32>,
    /// Where the last of them ends: the new length of the log.
    end: u64,
}

/// What was found where a record should start.
enum Found {
    /// Whole, and its checksum matches.
    Valid { offset: u64, len: u64 },
    /// Whole, and its checksum does not match.
    BadChecksum { len: u64 },
    /// Its header or payload runs past the end of the log.
    Torn,
}

// ANCHOR: walk_records
/// Walks records from `start`, expecting offsets from `first_offset`.
fn walk_records(
    files: &Files<'_>,
    first_offset: u64,
    start: u64,
    log_len: u64,
) -> Result<Walk, Error> {
    let mut reader = BufReader::new(files.log);
    reader.seek(SeekFrom::Start(start)).at(files.log_path)?;
    let mut buffer = Vec::new();
    let mut positions = Vec::new();
    let mut position = start;
    while position < log_len {
        let (offset, len) =
            match read_record(&mut reader, position, log_len, &mut buffer).at(files.log_path)? {
                Found::Valid { offset, len } => (offset, len),
                Found::Torn => break,
                Found::BadChecksum { len } => {
                    if valid_record_after(files, position + len, log_len)? {
                        let reason = "checksum mismatch, with valid records after it";
                        return Err(corrupt(files, position, reason));
                    }
                    break; // the torn tail: cut from here
                }
            };
        let expected = first_offset + positions.len() as u64;
        if offset != expected {
            let reason = format!("record has offset {offset}, expected {expected}");
            return Err(corrupt(files, position, &reason));
        }
        let entry = u32::try_from(position)
            .map_err(|_| corrupt(files, position, "record starts past 4 GiB"))?;
        positions.push(entry);
        position += len;
    }
    Ok(Walk {
        positions,
        end: position,
    })
}
// ANCHOR_END: walk_records

/// Whether any whole record with a valid checksum starts at or after `from`,
/// following length fields. Reads with `pread`, leaving the walk's reader alone.
fn valid_record_after(files: &Files<'_>, mut from: u64, log_len: u64) -> Result<bool, Error> {
    let mut buffer = Vec::new();
    while from < log_len {
        let mut reader = PositionedReader {
            file: files.log,
            at: from,
        };
        match read_record(&mut reader, from, log_len, &mut buffer).at(files.log_path)? {
            Found::Valid { .. } => return Ok(true),
            Found::BadChecksum { len } => from += len,
            Found::Torn => return Ok(false),
        }
    }
    Ok(false)
}

/// Reads the record at `position` (where `reader` is) into `buffer`, deciding
/// by lengths, not by read errors, whether it is whole: a torn tail is never read.
fn read_record(
    reader: &mut impl Read,
    position: u64,
    log_len: u64,
    buffer: &mut Vec<u8>,
) -> std::io::Result<Found> {
    if position + RECORD_HEADER_LEN as u64 > log_len {
        return Ok(Found::Torn);
    }
    let mut header: Header = [0; RECORD_HEADER_LEN];
    reader.read_exact(&mut header)?;
    let payload_len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let len = RECORD_HEADER_LEN as u64 + u64::from(payload_len);
    if position + len > log_len {
        return Ok(Found::Torn);
    }
    // Sized by a length already checked against the file: never more than is there.
    buffer.clear();
    buffer.extend_from_slice(&header);
    buffer.resize(len as usize, 0);
    reader.read_exact(&mut buffer[RECORD_HEADER_LEN..])?;
    let Ok((record, _)) = RecordView::parse(buffer, 0) else {
        return Ok(Found::Torn); // cannot happen: the buffer is exactly the record
    };
    Ok(match record.verify() {
        Ok(()) => Found::Valid {
            offset: record.offset(),
            len,
        },
        Err(_) => Found::BadChecksum { len },
    })
}

/// `Read` over `pread`, from a position, without moving any shared cursor.
struct PositionedReader<'a> {
    file: &'a File,
    at: u64,
}

impl std::io::Read for PositionedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

fn corrupt(files: &Files<'_>, position: u64, reason: &str) -> Error {
    Error::Corrupt {
        path: files.log_path.to_path_buf(),
        position,
        reason: reason.to_string(),
    }
}
