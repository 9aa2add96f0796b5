//! Where the command line's results go: text for people, or JSON.
//!
//! Every write goes through here so that a closed stdout (`| head`) ends the
//! command quietly instead of panicking as `println!` does.

use std::io::Write;

use anyhow::Context;
use serde::Serialize;

/// Text or JSON on stdout.
#[derive(Debug)]
pub struct Output {
    json: bool,
}

impl Output {
    /// `json` picks JSON.
    pub fn new(json: bool) -> Output {
        Output { json }
    }

    /// Whether JSON was asked for.
    pub fn json(&self) -> bool {
        self.json
    }

    /// Prints `text` (a line or more) and flushes, so `--follow` shows each
    /// message as it comes.
    pub fn text(&self, text: &str) -> anyhow::Result<()> {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            stdout.write_all(b"\n")?;
        }
        stdout.flush()?;
        Ok(())
    }

    /// Prints `value` as one line of JSON.
    pub fn json_line<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        let line = serde_json::to_string(value).context("encoding JSON output")?;
        self.text(&line)
    }

    /// Prints `value` as JSON if asked for, else `text()`.
    pub fn either<T: Serialize>(
        &self,
        value: &T,
        text: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        if self.json {
            self.json_line(value)
        } else {
            self.text(&text())
        }
    }
}

/// Whether `error` is stdout's reader having gone away.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Rows as a table with columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, width) in cells.zip(&widths) {
            text.push_str(&format!("{cell:<width$}  "));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}
