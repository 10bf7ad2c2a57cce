//! The Unix-socket transport: it binds and listens, runs the handshake,
//! and for each peer makes a [`Link`](crate::link::Link) whose session
//! reads frames into the core and writes the link's queue out.
//!
//! It turns bytes into calls on [`Core`]; the core never imports it.

mod descriptors;
mod handshake;
mod observer;
mod session;
mod socket_file;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::AbortHandle;

use crate::bus::{Core, Service, Stopping};
use crate::{ConnectionConfig, Error, Result};
use socket_file::SocketFile;

pub use observer::Observer;
pub(crate) use socket_file::remove_if_stale;

/// Listens on `path` for the endpoint until it stops; the socket file is
/// removed then.
pub(crate) async fn serve(core: &Arc<Core>, path: PathBuf) -> Result<()> {
    // Binding waits on a lock file and probes a socket: off the runtime.
    let bound = tokio::task::spawn_blocking(move || socket_file::bind(&path))
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))??;
    let listener = tokio::net::UnixListener::from_std(bound.listener)?;
    let accepting = core.runtime.spawn(accept_loop(core.clone(), listener));
    core.add_service(Box::new(Listening {
        accepting: accepting.abort_handle(),
        socket: bound.socket,
    }));
    Ok(())
}

/// Connects to the endpoint of `config` and registers it as a peer.
pub(crate) async fn connect(core: Arc<Core>, config: ConnectionConfig) -> Result<()> {
    handshake::connect(core, config).await
}

/// A serving endpoint's listener.
struct Listening {
    accepting: AbortHandle,
    socket: SocketFile,
}

impl Service for Listening {
    fn stop(self: Box<Self>) -> Stopping {
        self.accepting.abort();
        self.socket.remove();
        None
    }

    fn describe(&self) -> String {
        format!("socket {}", self.socket.path().display())
    }
}

/// Accepts connections until aborted; each handshake runs in its own task.
async fn accept_loop(core: Arc<Core>, listener: tokio::net::UnixListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                core.runtime.spawn(handshake::accept(core.clone(), stream));
            }
            Err(error) => {
                // EMFILE and friends: wait a little instead of spinning.
                tracing::warn!(endpoint = %core.name, %error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
