//! Text payloads: JSON-like events and web server access-log lines.
//!
//! Both are records appended until the payload is full, the last one cut at
//! the payload's length, so a payload is always exactly as long as asked and
//! may end mid-record (a broker stores bytes, not records; a consumer that
//! parses them is not what is measured).
//!
//! What makes them compress differently (a codec finds repeats):
//! - **JSON events** repeat their keys and a small vocabulary, but carry a
//!   random session id, user id, product id and duration each: compressible,
//!   but every record holds a few bytes nothing earlier predicts;
//! - **log lines** come from small pools (32 clients, 8 paths each with its
//!   own response size, 4 user agents) with timestamps that barely move:
//!   most of a line repeats an earlier one, so they compress far better.
//!
//! Every record is a function of (seed, message index, record number): no
//! state crosses messages, so any message can be regenerated alone.

use std::fmt::{self, Write};

use crate::rng::{SplitMix64, TEXT_STREAM};

/// 2023-11-14T22:13:20Z, in seconds since the UNIX epoch: where every
/// workload's clock starts, so text payloads never mention the day they ran.
const EPOCH_S: u64 = 1_700_000_000;

/// A payload being filled: text written past its end is dropped.
struct Filler<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Filler<'_> {
    fn is_full(&self) -> bool {
        self.len == self.buf.len()
    }
}

impl Write for Filler<'_> {
    /// Never fails: a full payload just stops taking bytes, which is what
    /// cutting the last record means.
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let take = text.len().min(room);
        self.buf[self.len..self.len + take].copy_from_slice(&text.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

const EVENTS: [&str; 8] = [
    "page_view",
    "click",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "login",
    "logout",
];
const PAGES: [&str; 6] = [
    "/",
    "/search",
    "/cart",
    "/checkout",
    "/products/",
    "/account",
];

/// Fills `buf` with newline-separated JSON events, message `n` of `seed`:
///
/// ```text
/// {"id":"42-0","ts":1700042000,"user":"u08113","event":"click","page":"/products/311","ms":820,"session":"3f9c2a71","ok":true}
/// ```
pub(crate) fn json_events(seed: u64, n: u64, buf: &mut [u8]) {
    let mut rng = SplitMix64::for_message(seed, n, TEXT_STREAM);
    let mut out = Filler { buf, len: 0 };
    let mut record = 0u64;
    while !out.is_full() {
        // Milliseconds: a second per message, records a few ms apart.
        let ts = (EPOCH_S + n) * 1000 + record * 3;
        let page = PAGES[rng.below(PAGES.len() as u64) as usize];
        let _ = write!(
            out,
            "{{\"id\":\"{n}-{record}\",\"ts\":{ts},\"user\":\"u{:05}\",\"event\":\"{}\",\"page\":\"{page}",
            rng.below(20_000),
            EVENTS[rng.below(EVENTS.len() as u64) as usize],
        );
        if page.ends_with('/') && page.len() > 1 {
            let _ = write!(out, "{}", rng.below(1000));
        }
        let _ = writeln!(
            out,
            "\",\"ms\":{},\"session\":\"{:08x}\",\"ok\":{}}}",
            rng.below(2000),
            rng.next() as u32,
            rng.below(50) != 0,
        );
        record += 1;
    }
}

/// Client addresses of the log lines (documentation ranges, RFC 5737).
const CLIENTS: u64 = 32;
/// Requests, with the size of the response each one gets on a 200.
const REQUESTS: [(&str, &str, u32); 8] = [
    ("GET", "/", 5_120),
    ("GET", "/index.html", 5_120),
    ("GET", "/static/app.js", 48_213),
    ("GET", "/static/style.css", 9_876),
    ("GET", "/api/v1/orders", 1_534),
    ("GET", "/api/v1/products?page=2", 12_002),
    ("POST", "/api/v1/login", 87),
    ("GET", "/favicon.ico", 1_150),
];
const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleGecko/20100101 Firefox/120.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Safari/605.1.15",
    "curl/8.4.0",
    "Go-http-client/1.1",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Fills `buf` with access-log lines (the common "combined" format),
/// message `n` of `seed`:
///
/// ```text
/// 198.51.100.7 - - [14/Nov/2023:22:13:20 +0000] "GET /static/app.js HTTP/1.1" 200 48213 "-" "curl/8.4.0"
/// ```
pub(crate) fn log_lines(seed: u64, n: u64, buf: &mut [u8]) {
    let mut rng = SplitMix64::for_message(seed, n, TEXT_STREAM);
    let mut out = Filler { buf, len: 0 };
    let mut record = 0u64;
    while !out.is_full() {
        // A second per message, four lines a second within it.
        let (date, time) = civil(EPOCH_S + n + record / 4);
        let client = rng.below(CLIENTS);
        let (method, path, size) = REQUESTS[rng.below(REQUESTS.len() as u64) as usize];
        let (status, size) = match rng.below(100) {
            0 => (500, 0),
            1..=4 => (404, 153),
            5..=14 => (304, 0),
            _ => (200, size),
        };
        let _ = writeln!(
            out,
            "198.51.100.{} - - [{date}:{time} +0000] \"{method} {path} HTTP/1.1\" {status} {size} \"-\" \"{}\"",
            client * 7 + 1,
            AGENTS[rng.below(AGENTS.len() as u64) as usize],
        );
        record += 1;
    }
}

/// `14/Nov/2023` and `22:13:20` for a UNIX time, by Howard Hinnant's
/// days-to-civil algorithm (no date crate for one format).
fn civil(secs: u64) -> (String, String) {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (
        format!("{day:02}/{}/{year}", MONTHS[(month - 1) as usize]),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_clock_starts_on_the_documented_date() {
        assert_eq!(
            civil(EPOCH_S),
            ("14/Nov/2023".to_string(), "22:13:20".to_string())
        );
        assert_eq!(
            civil(951_782_400), // a leap day
            ("29/Feb/2000".to_string(), "00:00:00".to_string())
        );
    }
}
