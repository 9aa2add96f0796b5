//! The talk's example, run for real: append "hello" and "world" to a fresh
//! stream, show the log's bytes, and poll them back through the index.
//!
//! Usage: `stage1-demo [DIR]` (DIR must not exist yet, or be empty; by default a
//! fresh folder under the system's temporary directory).

use std::path::PathBuf;

use anyhow::{Context, bail};
use stage1_file_log::{AppendMode, Message, Stream, hexdump, stream::LOG_FILE};

fn main() -> anyhow::Result<()> {
    let dir = match std::env::args_os().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("rivulet-stage1-demo-{}", std::process::id())),
    };
    if dir.exists() && dir.read_dir()?.next().is_some() {
        bail!(
            "{} is not empty; the demo needs a fresh directory",
            dir.display()
        );
    }

    let mut stream = Stream::open(1, &dir, AppendMode::SyncEveryAppend)?;
    for (id, payload) in [(1, "hello"), (2, "world")] {
        let offset = stream.append(Message::new(id, payload))?;
        println!("appended {payload:?} (id {id}) at offset {offset}");
    }

    let log = dir.join(LOG_FILE);
    let bytes = std::fs::read(&log).with_context(|| format!("reading {}", log.display()))?;
    println!("\n{} ({} bytes):", log.display(), bytes.len());
    print!("{}", hexdump(&bytes));

    println!("\npoll(offset 0, count 10):");
    for message in stream.poll(0, 10)? {
        let text = String::from_utf8_lossy(&message.payload);
        println!(
            "  offset {} id {} payload {text:?}",
            message.offset, message.id
        );
    }
    println!("\nfiles kept in {} for you to inspect", dir.display());
    Ok(())
}
