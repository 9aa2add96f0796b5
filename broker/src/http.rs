//! The metrics endpoint: a tiny HTTP/1.1 server on its own thread, serving
//! `GET /metrics` (Prometheus text format) and 404 for anything else.
//!
//! It is deliberately small and deliberately apart from the shards:
//! - **its own std thread**, not a task on a shard's runtime, so a scrape
//!   (summing every shard's counters, formatting text) never takes a shard's
//!   turn, and a stuck scraper cannot stall a partition;
//! - **one connection at a time**, each closed after its response. A scraper
//!   asks a few times a minute; serving them in turn bounds the endpoint to
//!   one thread and one buffer however many connect. Rejected: a thread per
//!   connection (a flood of connections would be a flood of threads) and an
//!   async HTTP stack (a runtime and a dependency tree for a few requests a
//!   minute);
//! - **bounded**: the request head is read into at most [`MAX_REQUEST_BYTES`],
//!   each read or write waits at most [`IO_TIMEOUT`], the whole request must
//!   arrive within [`REQUEST_DEADLINE`], and the whole response must be
//!   taken within as long again; a client that is slower, larger or silent
//!   gets an error status or is dropped, and the next one is served.
//!
//! Deliberate simplifications: no keep-alive, no chunked bodies, no TLS
//! (bind it to loopback or a private network; Prometheus scrapes over
//! plain HTTP by default).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The largest request head read (request line and headers); a longer one
/// gets 431 and is closed.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// How long one read or write may wait.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a whole request head may take to arrive (a client trickling a
/// byte per second would otherwise hold the endpoint for minutes).
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// The exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A running metrics endpoint; stopped by [`MetricsEndpoint::stop`] or drop.
#[derive(Debug)]
pub struct MetricsEndpoint {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsEndpoint {
    /// Listens on `addr` (port 0 picks one) and serves `render()`'s text at
    /// `/metrics` until stopped.
    pub fn start(
        addr: SocketAddr,
        render: impl Fn() -> String + Send + 'static,
    ) -> io::Result<MetricsEndpoint> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&stopping);
        let thread = std::thread::Builder::new()
            .name("rivulet-metrics".to_string())
            .spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    match stream {
                        Ok(stream) => {
                            if let Err(error) = serve(stream, &render) {
                                tracing::debug!("metrics endpoint: {error}");
                            }
                        }
                        Err(error) => {
                            // Out of file descriptors, most likely: wait a
                            // little rather than spin.
                            tracing::warn!("metrics endpoint: accept: {error}");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            })?;
        Ok(MetricsEndpoint {
            addr,
            stopping,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits for the thread to end.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stopping.store(true, Ordering::Release);
        // A blocking `accept` only returns for a connection: make one. (The
        // alternative, a non-blocking listener polled on a timer, wakes the
        // thread all day to serve a few requests a minute.)
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        if TcpStream::connect_timeout(&wake, IO_TIMEOUT).is_ok() {
            let _ = thread.join();
        }
        // If the connection failed the thread is left to end with the
        // process; joining it could wait forever.
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.halt();
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    /// `GET /metrics` (or `HEAD`: the headers only).
    Metrics { head_only: bool },
    /// Another path.
    NotFound,
    /// Another method.
    BadMethod,
    /// Not a request line.
    Malformed,
}

fn parse_request_line(head: &[u8]) -> Asked {
    let Some(line) = head.split(|&b| b == b'\n').next() else {
        return Asked::Malformed;
    };
    let Ok(line) = std::str::from_utf8(line) else {
        return Asked::Malformed;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Asked::Malformed;
    };
    if parts.next().is_some() || !version.starts_with("HTTP/1.") {
        return Asked::Malformed;
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Asked::BadMethod,
    };
    let path = target.split('?').next().unwrap_or(target);
    if path == "/metrics" {
        Asked::Metrics { head_only }
    } else {
        Asked::NotFound
    }
}

// ANCHOR: serve
/// Reads the request head: up to the blank line, at most
/// [`MAX_REQUEST_BYTES`], within [`REQUEST_DEADLINE`]. `None` if it is too
/// large.
fn read_head(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let started = Instant::now();
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(head));
        }
        if head.len() >= MAX_REQUEST_BYTES {
            return Ok(None);
        }
        if started.elapsed() > REQUEST_DEADLINE {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request head too slow",
            ));
        }
        let room = (MAX_REQUEST_BYTES - head.len()).min(chunk.len());
        let n = stream.read(&mut chunk[..room])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before the request head ended",
            ));
        }
        head.extend_from_slice(&chunk[..n]);
    }
}

fn serve(mut stream: TcpStream, render: &dyn Fn() -> String) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let (status, body, head_only) = match read_head(&mut stream)? {
        None => ("431 Request Header Fields Too Large", String::new(), false),
        Some(head) => match parse_request_line(&head) {
            Asked::Metrics { head_only } => ("200 OK", render(), head_only),
            Asked::NotFound => ("404 Not Found", "not found: try /metrics\n".into(), false),
            Asked::BadMethod => ("405 Method Not Allowed", String::new(), false),
            Asked::Malformed => ("400 Bad Request", String::new(), false),
        },
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        response.push_str(&body);
    }
    write_within(&mut stream, response.as_bytes(), REQUEST_DEADLINE)?;
    let _ = stream.shutdown(Shutdown::Write);
    Ok(())
}

/// Writes all of `bytes` within `deadline`. Rejected: `write_all`, whose
/// timeout is per write: a scraper that reads a few bytes every second
/// would make each write succeed a little and hold the endpoint for as long
/// as the response takes at that pace.
fn write_within(stream: &mut TcpStream, mut bytes: &[u8], deadline: Duration) -> io::Result<()> {
    let started = Instant::now();
    while !bytes.is_empty() {
        if started.elapsed() > deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "response too slow"));
        }
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
// ANCHOR_END: serve

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_request_lines_are_parsed_strictly() {
        let metrics = Asked::Metrics { head_only: false };
        assert_eq!(
            parse_request_line(b"GET /metrics HTTP/1.1\r\n\r\n"),
            metrics
        );
        assert_eq!(
            parse_request_line(b"GET /metrics?x=1 HTTP/1.0\r\n"),
            metrics
        );
        assert_eq!(
            parse_request_line(b"HEAD /metrics HTTP/1.1\r\n"),
            Asked::Metrics { head_only: true }
        );
        assert_eq!(parse_request_line(b"GET / HTTP/1.1\r\n"), Asked::NotFound);
        assert_eq!(
            parse_request_line(b"POST /metrics HTTP/1.1\r\n"),
            Asked::BadMethod
        );
        assert_eq!(parse_request_line(b"GET /metrics\r\n"), Asked::Malformed);
        assert_eq!(parse_request_line(b"\xff\xfe\r\n"), Asked::Malformed);
    }

    fn get(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(request).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    #[test]
    fn http_endpoint_serves_metrics_404s_the_rest_and_refuses_huge_heads() {
        let endpoint =
            MetricsEndpoint::start("127.0.0.1:0".parse().unwrap(), || "x 1\n".into()).unwrap();
        let addr = endpoint.addr();
        let ok = get(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\nx 1\n"), "{ok}");
        assert!(get(addr, b"GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        // Exactly the limit and no end of head: the server reads it all
        // (bytes left unread would make its close a reset) and refuses it.
        let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        huge.resize(MAX_REQUEST_BYTES, b'a');
        let response = get(addr, &huge);
        assert!(response.starts_with("HTTP/1.1 431"), "{response}");
        // A client that connects and says nothing does not keep the next one out.
        let silent = TcpStream::connect(addr).unwrap();
        let ok = get(addr, b"GET /metrics HTTP/1.0\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
        drop(silent);
        endpoint.stop();
        assert!(TcpStream::connect(addr).is_err(), "stopped means closed");
    }
}
