//! Raft messages between nodes: the client side ([`Network`], openraft's
//! `RaftNetworkFactory`, and [`Connection`], its `RaftNetwork`) and the
//! server side ([`serve`], [`dispatch`]), over tokio TCP.
//!
//! A frame is `u32 length (big endian) | JSON body`; the length is checked
//! against [`MAX_FRAME`] before anything is allocated, so a peer (or a
//! scanner that found the port) cannot make a node allocate gigabytes, and a
//! body that does not decode closes that connection, nothing else. One
//! request, one reply, in order, on a connection a client keeps while it
//! works; any error drops it and the next call reconnects. JSON because raft
//! traffic is heartbeats and small metadata commands: throughput does not
//! matter, and the frames can be read in a packet capture.
//!
//! Rejected for now: the engine's 10-byte frame on a shard-served cluster
//! port (the design's end state, step 3: one port per node for raft and
//! replica fetches), and gRPC or HTTP (a code generator or a web stack for
//! three message types).
//!
//! Errors a peer returns (`RaftError`) travel inside the reply and become
//! `RPCError::RemoteError`; a refused connection is `Unreachable`, which
//! makes openraft back off instead of retrying in a tight loop.

use std::io;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::types::{NodeId, Raft, RivuletNode, TypeConfig};

/// Longest frame accepted, checked before allocating. A snapshot chunk is
/// the largest message (openraft's default chunk is 3 MiB).
pub const MAX_FRAME: u32 = 64 << 20;

/// A raft message to a peer.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    /// Replication and heartbeats.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// An election.
    Vote(VoteRequest<NodeId>),
    /// A snapshot chunk for a follower too far behind.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
}

/// A peer's answer to a [`RaftRequest`], same variant.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftReply {
    /// Answer to [`RaftRequest::AppendEntries`].
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to [`RaftRequest::Vote`].
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to [`RaftRequest::InstallSnapshot`].
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
}

/// Writes one frame.
pub async fn write_frame<T: Serialize>(stream: &mut TcpStream, value: &T) -> io::Result<()> {
    let body = serde_json::to_vec(value).map_err(io::Error::other)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|l| *l <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    stream.write_all(&out).await
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub async fn read_frame<T: DeserializeOwned>(stream: &mut TcpStream) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len);
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes, limit {MAX_FRAME}"),
        ));
    }
    // Grow with the bytes that arrive, not with what the header claims: a
    // peer announcing 64 MiB and sending nothing costs nothing.
    let mut body = Vec::new();
    (&mut *stream)
        .take(u64::from(len))
        .read_to_end(&mut body)
        .await?;
    if body.len() != len as usize {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "frame cut short",
        ));
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Hands a request to the local raft node and wraps its answer.
pub async fn dispatch(raft: &Raft, request: RaftRequest) -> RaftReply {
    match request {
        RaftRequest::AppendEntries(rpc) => RaftReply::AppendEntries(raft.append_entries(rpc).await),
        RaftRequest::Vote(rpc) => RaftReply::Vote(raft.vote(rpc).await),
        RaftRequest::InstallSnapshot(rpc) => {
            RaftReply::InstallSnapshot(raft.install_snapshot(rpc).await)
        }
    }
}

/// Accepts peers on `listener` and serves their requests until the task is
/// dropped or aborted.
pub async fn serve(listener: TcpListener, raft: Raft) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: wait a little rather than spin.
                tracing::warn!(error = %e, "cluster port: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let raft = raft.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_stream(stream, raft).await {
                tracing::debug!(%peer, error = %e, "cluster port: connection closed");
            }
        });
    }
}

async fn serve_stream(mut stream: TcpStream, raft: Raft) -> io::Result<()> {
    stream.set_nodelay(true)?;
    while let Some(request) = read_frame::<RaftRequest>(&mut stream).await? {
        let reply = dispatch(&raft, request).await;
        write_frame(&mut stream, &reply).await?;
    }
    Ok(())
}

/// Makes a [`Connection`] to each peer openraft replicates to.
#[derive(Debug, Clone, Default)]
pub struct Network;

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &RivuletNode) -> Connection {
        Connection {
            target,
            address: node.cluster.clone(),
            stream: None,
        }
    }
}

/// One peer, reached over one TCP connection at a time.
#[derive(Debug)]
pub struct Connection {
    target: NodeId,
    address: String,
    stream: Option<TcpStream>,
}

type RpcError<E> = RPCError<NodeId, RivuletNode, E>;

impl Connection {
    async fn call<E: std::error::Error>(
        &mut self,
        request: &RaftRequest,
        ttl: Duration,
    ) -> Result<RaftReply, RpcError<E>> {
        let stream = match self.stream.take() {
            Some(stream) => stream,
            None => {
                let connect = TcpStream::connect(&self.address);
                let stream = match tokio::time::timeout(ttl, connect).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
                    Err(_) => {
                        let e = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                        return Err(RPCError::Unreachable(Unreachable::new(&e)));
                    }
                };
                stream
                    .set_nodelay(true)
                    .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
                stream
            }
        };
        let mut stream = stream;
        let exchange = async {
            write_frame(&mut stream, request).await?;
            read_frame::<RaftReply>(&mut stream).await?.ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed the connection")
            })
        };
        match tokio::time::timeout(ttl, exchange).await {
            Ok(Ok(reply)) => {
                self.stream = Some(stream);
                Ok(reply)
            }
            Ok(Err(e)) => Err(RPCError::Network(NetworkError::new(&e))),
            Err(_) => {
                let e = io::Error::new(io::ErrorKind::TimedOut, "raft request timed out");
                Err(RPCError::Network(NetworkError::new(&e)))
            }
        }
    }

    fn unexpected<E: std::error::Error>(&self) -> RpcError<E> {
        let e = io::Error::new(io::ErrorKind::InvalidData, "reply of the wrong kind");
        RPCError::Network(NetworkError::new(&e))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError<RaftError<NodeId>>> {
        match self
            .call(&RaftRequest::AppendEntries(rpc), option.hard_ttl())
            .await?
        {
            RaftReply::AppendEntries(Ok(reply)) => Ok(reply),
            RaftReply::AppendEntries(Err(e)) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<RaftError<NodeId, InstallSnapshotError>>>
    {
        match self
            .call(&RaftRequest::InstallSnapshot(rpc), option.hard_ttl())
            .await?
        {
            RaftReply::InstallSnapshot(Ok(reply)) => Ok(reply),
            RaftReply::InstallSnapshot(Err(e)) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError<RaftError<NodeId>>> {
        match self
            .call(&RaftRequest::Vote(rpc), option.hard_ttl())
            .await?
        {
            RaftReply::Vote(Ok(reply)) => Ok(reply),
            RaftReply::Vote(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            _ => Err(self.unexpected()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected pair of streams on loopback.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn hostile_frames_are_errors_not_panics() {
        // Over the limit: refused from the header alone.
        let (mut a, mut b) = pair().await;
        a.write_all(&(MAX_FRAME + 1).to_be_bytes()).await.unwrap();
        let e = read_frame::<RaftRequest>(&mut b).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);

        // Not JSON of a request.
        let (mut a, mut b) = pair().await;
        a.write_all(&5u32.to_be_bytes()).await.unwrap();
        a.write_all(b"hello").await.unwrap();
        let e = read_frame::<RaftRequest>(&mut b).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);

        // A length, then the peer goes away.
        let (mut a, mut b) = pair().await;
        a.write_all(&1000u32.to_be_bytes()).await.unwrap();
        a.write_all(b"{").await.unwrap();
        drop(a);
        let e = read_frame::<RaftRequest>(&mut b).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);

        // A clean close between frames is the end, not an error.
        let (a, mut b) = pair().await;
        drop(a);
        assert!(read_frame::<RaftRequest>(&mut b).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn frames_round_trip() {
        let (mut a, mut b) = pair().await;
        let vote = VoteRequest::new(openraft::Vote::new(3, 2), None);
        write_frame(&mut a, &RaftRequest::Vote(vote.clone()))
            .await
            .unwrap();
        match read_frame::<RaftRequest>(&mut b).await.unwrap() {
            Some(RaftRequest::Vote(got)) => assert_eq!(got, vote),
            other => panic!("{other:?}"),
        }
    }
}
