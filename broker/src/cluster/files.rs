//! Small whole-file records (vote, committed log id, purged log id,
//! snapshot) written so that a crash leaves either the old or the new file.
//!
//! Write to `name.tmp`, `sync_all`, rename over `name`, fsync the folder:
//! the rename is atomic, the first fsync makes the bytes durable before the
//! name points at them, the folder fsync makes the rename itself durable.
//! The file holds a crc32c line before the JSON, so a file damaged on disk
//! is reported instead of being read as a different vote. Rejected:
//! rewriting in place (a torn write loses the vote, and a node that forgets
//! its vote can vote twice in a term, which breaks raft's safety).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Writes `value` as `dir/name`, atomically and durably.
pub fn write_atomic<T: Serialize>(dir: &Path, name: &str, value: &T) -> io::Result<()> {
    let json = serde_json::to_vec(value).map_err(io::Error::other)?;
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        writeln!(file, "{:08x}", crc32c::crc32c(&json))?;
        file.write_all(&json)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Reads `dir/name` written by [`write_atomic`]; `None` when absent.
pub fn read_atomic<T: DeserializeOwned>(dir: &Path, name: &str) -> io::Result<Option<T>> {
    let bytes = match fs::read(dir.join(name)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let damaged = || io::Error::new(io::ErrorKind::InvalidData, format!("{name}: damaged file"));
    let newline = bytes.iter().position(|b| *b == b'\n').ok_or_else(damaged)?;
    let (head, json) = (&bytes[..newline], &bytes[newline + 1..]);
    let expected = std::str::from_utf8(head)
        .ok()
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(damaged)?;
    if crc32c::crc32c(json) != expected {
        return Err(damaged());
    }
    serde_json::from_slice(json)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{name}: {e}")))
}

/// Makes the folder's entries (a rename, a new file) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
