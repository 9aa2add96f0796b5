//! The load generator's adapters: one per networked stage, each a
//! [`Target`](crate::loadgen::Target) over that stage's own client.
//!
//! Every adapter can drive a server at a given address, or start one itself on
//! 127.0.0.1 ([`LocalServer`]): in this process, but on its own Tokio runtime
//! and threads, so the server's tasks never share a scheduler with the load
//! generator's. (A child process would isolate them further; it needs the
//! server binaries built first, which the ladder does.)

pub mod stage3;
pub mod stage4;
pub mod stage5;
pub mod stage6;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::Context;
use stage3_tcp_server::{ServeError, Server};

/// A server started by the load generator, on its own runtime thread, with
/// its data in a temporary folder that is removed when it stops.
#[derive(Debug)]
pub struct LocalServer {
    addr: SocketAddr,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LocalServer {
    /// Runs `start(data_dir)` on a new runtime with `threads` worker threads.
    pub fn start<F, Fut>(threads: usize, start: F) -> anyhow::Result<LocalServer>
    where
        F: FnOnce(std::path::PathBuf) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Server, ServeError>>,
    {
        LocalServer::start_on(threads, Vec::new(), start)
    }

    /// [`LocalServer::start`], every thread of the runtime (its blocking
    /// pool's too) pinned to `cores` if there are any.
    pub fn start_on<F, Fut>(
        threads: usize,
        cores: Vec<usize>,
        start: F,
    ) -> anyhow::Result<LocalServer>
    where
        F: FnOnce(std::path::PathBuf) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Server, ServeError>>,
    {
        let data = tempfile::tempdir_in(crate::bench_data_dir()).context("server data folder")?;
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if !cores.is_empty() {
            builder.on_thread_start(move || crate::cores::pin_current_thread(&cores));
        }
        let runtime = builder
            .worker_threads(threads.max(1))
            .thread_name("rivulet-server")
            .enable_all()
            .build()
            .context("server runtime")?;
        let (started, addr) = mpsc::channel();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let dir = data.path().to_path_buf();
            runtime.block_on(async move {
                match start(dir).await {
                    Ok(server) => {
                        let _ = started.send(Ok(server.addr()));
                        // Park this runtime's main task until told to stop; the
                        // server's tasks keep running on the worker threads.
                        let _ = tokio::task::spawn_blocking(move || stopped.recv()).await;
                        let _ = server.shutdown().await;
                    }
                    Err(error) => {
                        let _ = started.send(Err(error));
                    }
                }
            });
            // The server has stopped and synced: now its files can go.
            drop(data);
        });
        let addr = addr
            .recv()
            .context("server thread ended before starting")?
            .map_err(|error| anyhow::anyhow!("starting the server: {error}"))?;
        Ok(LocalServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
