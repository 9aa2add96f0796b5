//! Accepting connections, and stopping cleanly.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

use crate::connection::{Service, serve_connection};
use crate::error::ServeError;
use crate::protocol::frame::DEFAULT_MAX_FRAME_LEN;
use crate::streams::{Streams, StreamsConfig};

/// A running server: its address, and a handle to stop it.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl Server {
    /// Opens the streams, binds `addr` (port 0 picks a free one) and starts
    /// accepting connections, each served by its own task.
    pub async fn start(addr: SocketAddr, config: StreamsConfig) -> Result<Server, ServeError> {
        let streams = Streams::open(config).await?;
        Server::serve(addr, streams, DEFAULT_MAX_FRAME_LEN).await
    }

    /// Serves any [`Service`] (stage 4 brings its own) on `addr`, with a limit
    /// on frame length.
    pub async fn serve<S: Service>(
        addr: SocketAddr,
        service: Arc<S>,
        max_frame_len: u32,
    ) -> Result<Server, ServeError> {
        let listener = TcpListener::bind(addr).await.map_err(ServeError::storage)?;
        let addr = listener.local_addr().map_err(ServeError::storage)?;
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        // A failed accept (out of descriptors, say) affects one
                        // client; the server keeps listening.
                        if let Ok((socket, _)) = accepted {
                            tokio::spawn(serve_connection(Arc::clone(&service), socket, max_frame_len));
                        }
                    }
                    _ = stopped.changed() => break,
                }
            }
            service.shutdown().await
        });
        Ok(Server { addr, stop, task })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until SIGINT (Ctrl-C) or SIGTERM arrives through `signals`, then
    /// stops as [`Server::shutdown`] does.
    pub async fn run_until_signal(self, mut signals: StopSignals) -> Result<(), ServeError> {
        signals.recv().await;
        eprintln!("stopping: writing and syncing everything");
        self.shutdown().await
    }

    /// Stops accepting, then writes and syncs every stream.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        let _ = self.stop.send(true);
        self.task
            .await
            .map_err(|error| ServeError::storage(error.to_string()))?
    }
}

/// SIGINT and SIGTERM, caught from the moment [`StopSignals::catch`] returns.
///
/// Catch them *before* saying `listening on`, not when starting to wait for
/// them: until a handler is installed, SIGTERM's default action kills the
/// process on the spot, with nothing synced and an exit by signal instead of
/// 0. A supervisor, or a test, may send it as soon as it reads that line; on
/// a busy machine the main thread can still be between the line and the
/// handler, while the connections, served by other threads, already work.
/// A signal that arrives after `catch` waits in the handler until
/// [`StopSignals::recv`] takes it.
#[derive(Debug)]
pub struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    /// Installs the handlers. Call it inside a Tokio runtime.
    pub fn catch() -> Result<StopSignals, ServeError> {
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt()).map_err(ServeError::storage)?,
            terminate: signal(SignalKind::terminate()).map_err(ServeError::storage)?,
        })
    }

    /// Waits for SIGINT or SIGTERM, whichever comes first.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
