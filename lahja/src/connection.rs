//! One connection to a peer: the handshake, the reader task that
//! dispatches incoming frames, and the writer task behind [`Outgoing`].

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;
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
    /// Signalled once the tasks are started (see [`flush`](Self::flush)).
    started: Notify,
    /// Warnings logged about this peer so far.
    warnings: AtomicU32,
}

/// Whether to log one more warning about a peer.
pub(crate) enum Warning {
    Log,
    /// The last one logged; say that more are suppressed.
    Last,
    Quiet,
}

/// Warnings logged per connection before the rest go to `debug`.
const WARNINGS_PER_CONNECTION: u32 = 8;

#[derive(Default)]
struct Tasks {
    reader: Option<AbortHandle>,
    writer: Option<JoinHandle<()>>,
    writer_abort: Option<AbortHandle>,
    started: bool,
    aborted: bool,
}

impl Connection {
    pub(crate) fn new(name: Arc<str>, queue_bytes: usize) -> Arc<Self> {
        Arc::new(Connection {
            name,
            outgoing: Outgoing::new(queue_bytes),
            tasks: Mutex::new(Tasks::default()),
            started: Notify::new(),
            warnings: AtomicU32::new(0),
        })
    }

    /// Counts a warning about this peer: a hostile peer cannot flood the log.
    pub(crate) fn warning(&self) -> Warning {
        match self.warnings.fetch_add(1, Ordering::Relaxed) {
            n if n < WARNINGS_PER_CONNECTION - 1 => Warning::Log,
            n if n == WARNINGS_PER_CONNECTION - 1 => Warning::Last,
            _ => Warning::Quiet,
        }
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, Tasks> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Spawns the reader and writer tasks of a registered connection.
    pub(crate) fn start(
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
        tasks.started = true;
        self.started.notify_waiters();
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
    ///
    /// A peer is registered (and may be sent events) a moment before its
    /// tasks start: flushing then waits for the writer to exist, or the
    /// frames queued meanwhile would be dropped by the stop that follows.
    pub(crate) async fn flush(&self, patience: Duration) {
        let deadline = tokio::time::Instant::now() + patience;
        self.outgoing.close();
        let writer = loop {
            let started = self.started.notified();
            tokio::pin!(started);
            started.as_mut().enable();
            {
                let mut tasks = self.tasks();
                if tasks.started || tasks.aborted {
                    break tasks.writer.take();
                }
            }
            if tokio::time::timeout_at(deadline, started).await.is_err() {
                return;
            }
        };
        if let Some(writer) = writer {
            let _ = tokio::time::timeout_at(deadline, writer).await;
        }
    }
}

/// Reads one frame during the handshake, decompressed: a program with a
/// few hundred event types has a hello large enough to be compressed.
async fn read_first(
    frames: &mut FrameBuffer,
    read: &mut OwnedReadHalf,
    max_frame: usize,
) -> std::result::Result<(Kind, Vec<u8>), String> {
    loop {
        match frames.next_frame() {
            Ok(Some(frame)) => {
                let body = wire::body(&frame, max_frame).map_err(|v| v.to_string())?;
                return Ok((frame.kind, body.into_owned()));
            }
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

/// The first schema disagreement between our registry and a peer's table:
/// the outer shape (`Event::SCHEMA`), else the whole traced format (where
/// both sides could trace it). Returns (wire name, ours, theirs).
fn schema_mismatch(events: &[(u64, u64, u64)]) -> Option<(String, u64, u64)> {
    events.iter().find_map(|&(id, remote, remote_format)| {
        let id = crate::EventId::from_u64(id);
        let local = registry::lookup(id)?;
        if local.schema != remote {
            return Some((local.name.to_owned(), local.schema, remote));
        }
        let local_format = registry::format_of(id);
        (local_format != 0 && remote_format != 0 && local_format != remote_format).then(|| {
            (
                format!("{} (a type inside it)", local.name),
                local_format,
                remote_format,
            )
        })
    })
}

/// Whether a connect error means "try again": nobody listens yet, or the
/// listen backlog is full (`EAGAIN` on Linux).
fn retryable(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::NotFound
            | std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::WouldBlock
    )
}

/// This process's user.
fn our_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// Before anything is sent: the socket's folder must belong to us (or
/// root) and be writable by nobody else, or another user could have put
/// their own socket there for us to talk to.
fn check_folder(path: &std::path::Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => std::path::Path::new("."),
    };
    let meta = std::fs::metadata(folder)
        .map_err(|e| format!("cannot inspect the folder {}: {e}", folder.display()))?;
    let uid = our_uid();
    if meta.uid() != uid && meta.uid() != 0 {
        return Err(format!(
            "the folder {} belongs to uid {}, not to this user (uid {uid}) or root",
            folder.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "the folder {} is writable by other users (mode {:o})",
            folder.display(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// After connecting, before anything is sent: the serving process must
/// run as this user or as root.
fn check_server(stream: &UnixStream) -> std::result::Result<(), String> {
    let cred = stream
        .peer_cred()
        .map_err(|e| format!("cannot tell who serves the socket: {e}"))?;
    let uid = our_uid();
    if cred.uid() != uid && cred.uid() != 0 {
        return Err(format!(
            "the socket is served by uid {}, not by this user (uid {uid}) or root",
            cred.uid()
        ));
    }
    Ok(())
}

/// Connects to `config` (retrying until `connect_timeout`) and completes
/// the client side of the handshake.
pub(crate) async fn connect(shared: Arc<Shared>, config: ConnectionConfig) -> Result<()> {
    crate::validate_name(&config.name)?;
    let rejected = |reason: String| Error::ConnectionAttemptRejected {
        endpoint: config.name.clone(),
        reason,
    };
    let patience = shared.options.connect_timeout;
    let deadline = tokio::time::Instant::now() + patience;
    let mut backoff = Duration::from_millis(5);
    let stream = loop {
        match UnixStream::connect(&config.path).await {
            Ok(stream) => break stream,
            Err(error) if retryable(&error) => {
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
    // Checked once connected (the folder may not exist before the server
    // starts), before anything is sent.
    check_folder(&config.path).map_err(rejected)?;
    check_server(&stream).map_err(rejected)?;
    let (mut read, mut write) = stream.into_split();
    let mut hello = Vec::new();
    wire::append_hello(&mut hello, &shared.hello(), shared.limits())?;
    let patience = shared.options.handshake_timeout;
    tokio::time::timeout(
        patience,
        tokio::io::AsyncWriteExt::write_all(&mut write, &hello),
    )
    .await
    .map_err(|_| {
        rejected("the server did not take our hello within the handshake timeout".into())
    })??;

    let max_frame = shared.options.max_frame_bytes;
    let mut frames = FrameBuffer::new(max_frame);
    let reply = tokio::time::timeout(patience, read_first(&mut frames, &mut read, max_frame))
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
            crate::error::shorten(&peer.name),
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
    let max_frame = shared.options.max_frame_bytes;
    let mut frames = FrameBuffer::new(max_frame);
    let first = tokio::time::timeout(
        shared.options.handshake_timeout,
        read_first(&mut frames, &mut read, max_frame),
    )
    .await;
    let hello = match first {
        Err(_) => Err("no hello within the handshake timeout".to_owned()),
        Ok(Err(reason)) => Err(reason),
        Ok(Ok((Kind::Hello, body))) => wire::parse_hello(&body).and_then(|hello| {
            crate::validate_name(&hello.name).map_err(|e| e.to_string())?;
            Ok(hello)
        }),
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

/// Tells a refused client why, then closes; a client that does not read
/// gets at most `handshake_timeout` of patience.
async fn refuse(mut write: OwnedWriteHalf, shared: &Shared, reject: Reject) {
    let mut frame = Vec::new();
    let zero = crate::EventId::from_u64(0);
    if wire::append_encoded(&mut frame, Kind::Reject, zero, 0, shared.limits(), &reject).is_ok() {
        let send = tokio::io::AsyncWriteExt::write_all(&mut write, &frame);
        let _ = tokio::time::timeout(shared.options.handshake_timeout, send).await;
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
