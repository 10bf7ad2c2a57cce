//! One connection to a peer: the handshake, the reader task that
//! dispatches incoming frames, and the writer task behind [`Outgoing`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::task::{AbortHandle, JoinHandle};

use crate::outgoing::Outgoing;
use crate::shared::Shared;
use crate::wire::{self, FrameBuffer, Kind, Reject};
use crate::{ConnectionConfig, Error, Result, registry};

/// A registered peer connection.
pub(crate) struct Connection {
    pub(crate) name: Arc<str>,
    pub(crate) outgoing: Outgoing,
    tasks: Mutex<Tasks>,
}

#[derive(Default)]
struct Tasks {
    reader: Option<AbortHandle>,
    writer: Option<JoinHandle<()>>,
    writer_abort: Option<AbortHandle>,
    aborted: bool,
}

impl Connection {
    pub(crate) fn new(name: Arc<str>, queue_bytes: usize) -> Arc<Self> {
        Arc::new(Connection {
            name,
            outgoing: Outgoing::new(queue_bytes),
            tasks: Mutex::new(Tasks::default()),
        })
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, Tasks> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Spawns the reader and writer tasks of a registered connection.
    fn start(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        read: OwnedReadHalf,
        write: OwnedWriteHalf,
        frames: FrameBuffer,
    ) {
        let write = Arc::new(write);
        self.outgoing.attach(write.clone());
        let writer = shared.runtime.spawn({
            let connection = self.clone();
            async move { connection.outgoing.run_writer(write).await }
        });
        let reader = shared
            .runtime
            .spawn(read_loop(shared.clone(), self.clone(), read, frames));
        let mut tasks = self.tasks();
        tasks.reader = Some(reader.abort_handle());
        tasks.writer_abort = Some(writer.abort_handle());
        tasks.writer = Some(writer);
        if tasks.aborted {
            drop(tasks);
            self.abort();
        }
    }

    /// Closes the connection at once: queued frames are discarded.
    pub(crate) fn abort(&self) {
        self.outgoing.close();
        let mut tasks = self.tasks();
        tasks.aborted = true;
        for task in [tasks.reader.take(), tasks.writer_abort.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
        tasks.writer = None;
    }

    /// Sends what is queued (waiting at most `patience`), then closes the
    /// write side; the reader goes on until the peer closes or `abort`.
    pub(crate) async fn flush(&self, patience: Duration) {
        self.outgoing.close();
        let writer = self.tasks().writer.take();
        if let Some(writer) = writer {
            let _ = tokio::time::timeout(patience, writer).await;
        }
    }
}

/// Reads one frame during the handshake.
async fn read_first(
    frames: &mut FrameBuffer,
    read: &mut OwnedReadHalf,
) -> std::result::Result<(Kind, Vec<u8>), String> {
    loop {
        match frames.next_frame() {
            Ok(Some(frame)) => return Ok((frame.kind, frame.body.to_vec())),
            Ok(None) => {}
            Err(violation) => return Err(violation.to_string()),
        }
        match frames.fill(read).await {
            Ok(0) => return Err("closed before saying hello".into()),
            Ok(_) => {}
            Err(error) => return Err(error.to_string()),
        }
    }
}

/// The first schema disagreement between our registry and a peer's table.
fn schema_mismatch(events: &[(u64, u64)]) -> Option<(String, u64, u64)> {
    events.iter().find_map(|&(id, remote)| {
        let local = registry::lookup(crate::EventId::from_u64(id))?;
        (local.schema != remote).then(|| (local.name.to_owned(), local.schema, remote))
    })
}

/// Connects to `config` (retrying until `connect_timeout`) and completes
/// the client side of the handshake.
pub(crate) async fn connect(shared: Arc<Shared>, config: ConnectionConfig) -> Result<()> {
    let patience = shared.options.connect_timeout;
    let deadline = tokio::time::Instant::now() + patience;
    let mut backoff = Duration::from_millis(5);
    let stream = loop {
        match UnixStream::connect(&config.path).await {
            Ok(stream) => break stream,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                if tokio::time::Instant::now() + backoff > deadline {
                    return Err(Error::ConnectTimeout {
                        endpoint: config.name,
                        path: config.path,
                        last_error: error.to_string(),
                    });
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(100));
            }
            Err(error) => {
                return Err(Error::ConnectionAttemptRejected {
                    endpoint: config.name,
                    reason: format!("cannot connect to {}: {error}", config.path.display()),
                });
            }
        }
    };
    let rejected = |reason: String| Error::ConnectionAttemptRejected {
        endpoint: config.name.clone(),
        reason,
    };
    let (mut read, mut write) = stream.into_split();
    let mut hello = Vec::new();
    wire::append_hello(&mut hello, &shared.hello(), shared.limits())?;
    tokio::io::AsyncWriteExt::write_all(&mut write, &hello).await?;

    let mut frames = FrameBuffer::new(shared.options.max_frame_bytes);
    let reply = tokio::time::timeout(
        shared.options.handshake_timeout,
        read_first(&mut frames, &mut read),
    )
    .await
    .map_err(|_| rejected("no hello within the handshake timeout".into()))?
    .map_err(rejected)?;
    let peer = match reply {
        (Kind::Hello, body) => wire::parse_hello(&body).map_err(rejected)?,
        (Kind::Reject, body) => {
            return Err(match crate::codec::decode::<Reject>(&body) {
                Ok(Reject::Refused { reason }) => rejected(reason),
                Ok(Reject::SchemaMismatch {
                    event,
                    server_schema,
                    client_schema,
                }) => Error::SchemaMismatch {
                    endpoint: config.name.clone(),
                    event,
                    local: client_schema,
                    remote: server_schema,
                },
                Err(error) => rejected(format!("unreadable refusal: {error}")),
            });
        }
        (kind, _) => return Err(rejected(format!("expected a hello, got {kind:?}"))),
    };
    if peer.name != config.name {
        return Err(rejected(format!(
            "the endpoint at {} is `{}`, not `{}`",
            config.path.display(),
            peer.name,
            config.name
        )));
    }
    if let Some((event, local, remote)) = schema_mismatch(&peer.events) {
        return Err(Error::SchemaMismatch {
            endpoint: peer.name,
            event,
            local,
            remote,
        });
    }
    let connection = Connection::new(peer.name.into(), shared.options.queue_bytes);
    shared
        .register_peer(&connection, &peer.subscriptions, false)
        .map_err(rejected)?;
    connection.start(&shared, read, write, frames);
    Ok(())
}

/// The server side of the handshake for one accepted socket.
pub(crate) async fn accept(shared: Arc<Shared>, stream: UnixStream) {
    // Until its hello names it, a peer is known by its process id.
    let pid = stream
        .peer_cred()
        .ok()
        .and_then(|cred| cred.pid())
        .unwrap_or(0);
    let (mut read, write) = stream.into_split();
    let mut frames = FrameBuffer::new(shared.options.max_frame_bytes);
    let first = tokio::time::timeout(
        shared.options.handshake_timeout,
        read_first(&mut frames, &mut read),
    )
    .await;
    let hello = match first {
        Err(_) => Err("no hello within the handshake timeout".to_owned()),
        Ok(Err(reason)) => Err(reason),
        Ok(Ok((Kind::Hello, body))) => wire::parse_hello(&body),
        Ok(Ok((kind, _))) => Err(format!("expected a hello, got {kind:?}")),
    };
    let peer = match hello {
        Ok(peer) => peer,
        Err(reason) => {
            tracing::warn!(endpoint = %shared.name, peer_pid = pid, %reason, "dropping a connection that did not say hello");
            refuse(write, &shared, Reject::Refused { reason }).await;
            return;
        }
    };
    if let Some((event, local, remote)) = schema_mismatch(&peer.events) {
        tracing::warn!(endpoint = %shared.name, peer = %peer.name, peer_pid = pid, %event, "refusing a peer with another schema");
        refuse(
            write,
            &shared,
            Reject::SchemaMismatch {
                event,
                server_schema: local,
                client_schema: remote,
            },
        )
        .await;
        return;
    }
    let connection = Connection::new(peer.name.into(), shared.options.queue_bytes);
    match shared.register_peer(&connection, &peer.subscriptions, true) {
        Ok(()) => connection.start(&shared, read, write, frames),
        Err(reason) => {
            tracing::warn!(endpoint = %shared.name, peer = %connection.name, %reason, "refusing a connection");
            refuse(write, &shared, Reject::Refused { reason }).await;
        }
    }
}

/// Tells a refused client why, then closes.
async fn refuse(mut write: OwnedWriteHalf, shared: &Shared, reject: Reject) {
    let mut frame = Vec::new();
    let zero = crate::EventId::from_u64(0);
    if wire::append_encoded(&mut frame, Kind::Reject, zero, 0, shared.limits(), &reject).is_ok() {
        let _ = tokio::io::AsyncWriteExt::write_all(&mut write, &frame).await;
    }
}

/// Dispatches frames until the peer closes or violates the protocol, then
/// removes the peer.
async fn read_loop(
    shared: Arc<Shared>,
    connection: Arc<Connection>,
    mut read: OwnedReadHalf,
    mut frames: FrameBuffer,
) {
    let outcome: std::result::Result<(), String> = 'connection: loop {
        loop {
            match frames.next_frame() {
                Ok(Some(frame)) => {
                    if let Err(violation) = shared.handle_frame(&connection, frame).await {
                        break 'connection Err(violation.to_string());
                    }
                }
                Ok(None) => break,
                Err(violation) => break 'connection Err(violation.to_string()),
            }
        }
        match frames.fill(&mut read).await {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(error) => break Err(error.to_string()),
        }
    };
    match outcome {
        Ok(()) => {
            tracing::debug!(endpoint = %shared.name, peer = %connection.name, "peer disconnected")
        }
        Err(reason) => tracing::warn!(
            endpoint = %shared.name,
            peer = %connection.name,
            %reason,
            "closing the connection"
        ),
    }
    shared.remove_peer(&connection);
}
