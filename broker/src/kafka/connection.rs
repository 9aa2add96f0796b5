//! One Kafka client's connection: read a frame, decode it with the codec,
//! serve it, write the answer, repeat.
//!
//! Kafka's framing is a big-endian `i32` length, then the request: a header
//! (API key, API version, correlation id, client id, and for newer versions
//! tagged fields) and the body. Requests are answered in order, one at a
//! time, as on Rivulet's port; a client that pipelines simply waits.
//!
//! What ends a connection: the client leaving, a length outside
//! `0..=server.max_frame_len` (checked before allocating: nobody knows where
//! the next frame starts), a header or body that does not decode (Kafka
//! closes on these too), an API this broker does not serve at all, or the
//! shard stopping (between requests). A version this broker does not serve,
//! of an API it does, is answered UNSUPPORTED_VERSION and the connection
//! stays open (`Handler::unsupported`). Every close is logged with why.

use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use compio::io::AsyncWriteExt;
use compio::net::TcpStream;
use futures_util::future::{Either, select};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use stage6_broker::shards::connection::{reserve_within, within};
use stage6_broker::shards::frame::read_body;
use stage6_broker::shards::limits::{Reservation, and_more};
use stage6_broker::shards::shard::ShardState;
use tracing::{debug, warn};

use crate::kafka::KafkaConfig;
use crate::kafka::errors::error_response;
use crate::kafka::versions::{self, api_versions};
use crate::server::Shared;

/// What one connection has: its shard, what every shard shares, the
/// listener's settings, and the address the client reached it at (what
/// Metadata advertises: an address the client can evidently reach).
pub struct Handler {
    /// The shard the connection lives on.
    pub shard: Rc<ShardState>,
    /// What every shard's connections share.
    pub shared: Arc<Shared>,
    /// The listener's settings.
    pub config: Arc<KafkaConfig>,
    /// The host and port Metadata and FindCoordinator name: the setting's,
    /// or the address this connection reached.
    pub advertised: (String, u16),
    /// The client's address, for logs.
    pub peer: SocketAddr,
}

/// What serving one request came to.
pub enum Outcome {
    /// A response frame to send.
    Reply(Vec<u8>),
    /// Nothing to send (a produce with acks=0).
    Silent,
    /// Close the connection, for this reason.
    Close(String),
}

// ANCHOR: serve
/// Serves a Kafka client's connection until it leaves, sends something
/// that cannot be trusted, or the shard stops.
pub async fn serve(
    shard: Rc<ShardState>,
    shared: Arc<Shared>,
    config: Arc<KafkaConfig>,
    mut stream: TcpStream,
    peer: SocketAddr,
) {
    let _ = stream.set_nodelay(true);
    let advertised = match &config.advertised {
        Some(advertised) => advertised.clone(),
        None => {
            let reached = stream.local_addr().unwrap_or(config.listen);
            (reached.ip().to_string(), reached.port())
        }
    };
    let mut handler = Handler {
        shard: Rc::clone(&shard),
        shared,
        config,
        advertised,
        peer,
    };
    loop {
        let read = {
            let read = pin!(read_request(&mut stream, &shard));
            let stopping = pin!(shard.stopping());
            match select(read, stopping).await {
                Either::Left((read, _)) => read,
                Either::Right(_) => return,
            }
        };
        // `_budget` is held until the request has been answered.
        let (body, _budget) = match read {
            Ok(read) => read,
            Err(Unread::Gone) => return,
            Err(Unread::Idle) => {
                debug!(%peer, "closing an idle Kafka connection");
                return;
            }
            Err(Unread::Refused(reason)) => return handler.refused(&reason),
        };
        match handler.handle(Bytes::from(body)).await {
            Outcome::Reply(frame) => {
                if stream.write_all(frame).await.0.is_err() {
                    return;
                }
            }
            Outcome::Silent => {}
            Outcome::Close(reason) => return handler.refused(&reason),
        }
    }
}
// ANCHOR_END: serve

/// Why no request was read.
enum Unread {
    /// The client left (or the socket failed).
    Gone,
    /// Nothing complete within the idle timeout.
    Idle,
    /// A frame that cannot be trusted, or no room for it in time.
    Refused(String),
}

// ANCHOR: read_request
/// The next request's bytes and their share of the request budget: the
/// length, checked before anything is allocated; room in the budget; then
/// the body, read in steps as it arrives.
async fn read_request(
    stream: &mut TcpStream,
    shard: &ShardState,
) -> Result<(Vec<u8>, Reservation), Unread> {
    let deadline = shard.idle_timeout().map(|idle| Instant::now() + idle);
    let length = within(deadline, read_body(stream, 4))
        .await
        .ok_or(Unread::Idle)?
        .map_err(|_| Unread::Gone)?;
    let length = i32::from_be_bytes([length[0], length[1], length[2], length[3]]);
    let max = shard.max_frame_len();
    let Some(length) = usize::try_from(length)
        .ok()
        .filter(|length| *length <= max as usize)
    else {
        return Err(Unread::Refused(format!(
            "a frame of {length} bytes; the limit is {max} (server.max_frame_len)"
        )));
    };
    let budget = reserve_within(shard.limits(), length, deadline)
        .await
        .ok_or_else(|| {
            Unread::Refused(format!(
                "no room for a request of {length} bytes within the idle timeout: the \
                 server's budget of request bytes in flight stayed taken"
            ))
        })?;
    let body = within(deadline, read_body(stream, length))
        .await
        .ok_or(Unread::Idle)?
        .map_err(|_| Unread::Gone)?;
    Ok((body, budget))
}
// ANCHOR_END: read_request

/// The first bytes of every request: key, version, correlation id.
const FIXED_HEADER_LEN: usize = 8;

/// A request frame, decoded as far as it can be.
#[derive(Debug)]
pub enum Decoded {
    /// A request the codec read.
    Request {
        /// Its API.
        api: ApiKey,
        /// Its version.
        version: i16,
        /// Its correlation id.
        correlation: i32,
        /// Its header (the client id is in it).
        header: RequestHeader,
        /// Its body (boxed: a request is far larger than the other answers).
        request: Box<RequestKind>,
    },
    /// A known API at a version the codec has no schema for.
    UnknownVersion {
        /// Its API.
        api: ApiKey,
        /// The version asked.
        version: i16,
        /// Its correlation id.
        correlation: i32,
    },
    /// Bytes that cannot be trusted: why.
    Malformed(String),
}

// ANCHOR: decode
/// Decodes one request frame (the bytes after the length). Never panics and
/// never allocates more than the frame could hold, whatever the bytes (the
/// codec's counts are bounded by the patch in `vendor/kafka-protocol`; the
/// decoder is fuzzed by `tests/kafka_decode.rs`).
pub fn decode(mut frame: Bytes) -> Decoded {
    let Some(fixed) = frame.first_chunk::<FIXED_HEADER_LEN>() else {
        return Decoded::Malformed(format!("a request of {} bytes", frame.len()));
    };
    let key = i16::from_be_bytes([fixed[0], fixed[1]]);
    let version = i16::from_be_bytes([fixed[2], fixed[3]]);
    let correlation = i32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let Ok(api) = ApiKey::try_from(key) else {
        return Decoded::Malformed(format!("unknown API key {key}"));
    };
    if !versions::codec_knows(api, version) {
        return Decoded::UnknownVersion {
            api,
            version,
            correlation,
        };
    }
    let header = match RequestHeader::decode(&mut frame, api.request_header_version(version)) {
        Ok(header) => header,
        Err(error) => return Decoded::Malformed(format!("{api:?} v{version} header: {error:#}")),
    };
    match RequestKind::decode(api, &mut frame, version) {
        Ok(request) => Decoded::Request {
            api,
            version,
            correlation,
            header,
            request: Box::new(request),
        },
        Err(error) => Decoded::Malformed(format!("{api:?} v{version}: {error:#}")),
    }
}
// ANCHOR_END: decode

impl Handler {
    /// Says why a connection is closed: a line a second at most, saying how
    /// many it stands for.
    fn refused(&self, reason: &str) {
        if let Some(more) = self.shared.kafka_refusals.event(Instant::now()) {
            warn!(peer = %self.peer, "closing a Kafka connection: {reason}{}", and_more(more));
        }
    }

    // ANCHOR: handle
    /// Serves one request.
    async fn handle(&mut self, frame: Bytes) -> Outcome {
        let (api, version, correlation, header, request) = match decode(frame) {
            Decoded::Request {
                api,
                version,
                correlation,
                header,
                request,
            } => (api, version, correlation, header, *request),
            // No schema to read the request with, nor to answer in its own
            // layout; Kafka's rule for ApiVersions: answer in version 0.
            Decoded::UnknownVersion {
                api,
                version,
                correlation,
            } => return self.unsupported(api, version, correlation),
            Decoded::Malformed(reason) => return Outcome::Close(reason),
        };
        if !versions::served(api, version) {
            if api == ApiKey::ApiVersions {
                // Kafka's rule: in version 0, whatever was asked.
                return self.unsupported(api, version, correlation);
            }
            return match error_response(&request, ResponseError::UnsupportedVersion.code()) {
                Some(response) => self.reply(api, version, correlation, response),
                None => Outcome::Close(format!("{api:?} is not served by this broker")),
            };
        }
        let client = header.client_id.as_ref().map_or("", |id| id.as_str());
        debug!(peer = %self.peer, client, "{api:?} v{version}");
        let response = match request {
            RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions(0)),
            RequestKind::Metadata(request) => ResponseKind::Metadata(self.metadata(request).await),
            RequestKind::FindCoordinator(request) => {
                ResponseKind::FindCoordinator(self.find_coordinator(request, version))
            }
            RequestKind::CreateTopics(request) => {
                ResponseKind::CreateTopics(self.create_topics(request).await)
            }
            RequestKind::DeleteTopics(request) => {
                ResponseKind::DeleteTopics(self.delete_topics(request, version).await)
            }
            RequestKind::Produce(request) => match self.produce(request).await {
                Some(response) => ResponseKind::Produce(response),
                None => return Outcome::Silent,
            },
            RequestKind::Fetch(request) => ResponseKind::Fetch(self.fetch(request).await),
            RequestKind::ListOffsets(request) => {
                ResponseKind::ListOffsets(self.list_offsets(request).await)
            }
            RequestKind::OffsetCommit(request) => {
                ResponseKind::OffsetCommit(self.offset_commit(request).await)
            }
            RequestKind::OffsetFetch(request) => {
                ResponseKind::OffsetFetch(self.offset_fetch(request, version).await)
            }
            RequestKind::InitProducerId(request) => {
                ResponseKind::InitProducerId(self.init_producer_id(request))
            }
            RequestKind::JoinGroup(request) => {
                ResponseKind::JoinGroup(self.join_group(request, version, client).await)
            }
            RequestKind::SyncGroup(request) => {
                ResponseKind::SyncGroup(self.sync_group(request, version).await)
            }
            RequestKind::Heartbeat(request) => {
                ResponseKind::Heartbeat(self.heartbeat(request).await)
            }
            RequestKind::LeaveGroup(request) => {
                ResponseKind::LeaveGroup(self.leave_group(request, version).await)
            }
            RequestKind::DescribeGroups(request) => {
                ResponseKind::DescribeGroups(self.describe_groups(request, version).await)
            }
            RequestKind::ListGroups(request) => {
                ResponseKind::ListGroups(self.list_groups(request, version).await)
            }
            // `served` is true only for the APIs above.
            other => return Outcome::Close(format!("{other:?} is not served by this broker")),
        };
        self.reply(api, version, correlation, response)
    }
    // ANCHOR_END: handle

    /// The answer to a version the codec has no schema for: ApiVersions in
    /// version 0 (error 35 and the table, so the client can pick again);
    /// for any other API, the response header and the error code, the one
    /// field every response's error starts with (there is no layout to
    /// follow further). The connection stays open either way.
    fn unsupported(&self, api: ApiKey, version: i16, correlation: i32) -> Outcome {
        let code = ResponseError::UnsupportedVersion.code();
        debug!(peer = %self.peer, "{api:?} v{version}: unsupported version");
        if api == ApiKey::ApiVersions {
            return self.reply(
                api,
                0,
                correlation,
                ResponseKind::ApiVersions(api_versions(code)),
            );
        }
        let mut frame = Vec::with_capacity(10);
        frame.put_i32(6);
        frame.put_i32(correlation);
        frame.put_i16(code);
        Outcome::Reply(frame)
    }

    /// `response` as a frame: length, the response header for `api` at
    /// `version`, the body.
    fn reply(
        &self,
        api: ApiKey,
        version: i16,
        correlation: i32,
        response: ResponseKind,
    ) -> Outcome {
        let mut frame = BytesMut::with_capacity(256);
        frame.put_i32(0); // the length, written once known
        let header = ResponseHeader::default().with_correlation_id(correlation);
        let encoded = header
            .encode(&mut frame, api.response_header_version(version))
            .and_then(|()| response.encode(&mut frame, version));
        if let Err(error) = encoded {
            // Our own response did not encode: a bug, said as one.
            return Outcome::Close(format!(
                "encoding the {api:?} v{version} response: {error:#}"
            ));
        }
        let Ok(length) = i32::try_from(frame.len() - 4) else {
            return Outcome::Close(format!("a {api:?} response over 2 GiB"));
        };
        frame[..4].copy_from_slice(&length.to_be_bytes());
        Outcome::Reply(Vec::from(frame))
    }
}
