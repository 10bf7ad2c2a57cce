//! The socket handshake, both sides: hellos are exchanged and checked
//! (name, protocol version, schemas, the peer's user) before a link is
//! registered with the core and its session started.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;

use super::descriptors::SocketReader;
use super::session::SocketSession;
use crate::bus::{Core, Greeting, PeerInfo};
use crate::link::Link;
use crate::wire::{self, FrameBuffer, Kind, Reject};
use crate::{ConnectionConfig, Error, Result};

/// Reads one frame during the handshake, decompressed: a program with a
/// few hundred event types has a hello large enough to be compressed.
pub(super) async fn read_first(
    frames: &mut FrameBuffer,
    read: &mut SocketReader,
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
pub(super) fn check_folder(path: &std::path::Path) -> std::result::Result<(), String> {
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
pub(super) fn check_server(stream: &UnixStream) -> std::result::Result<(), String> {
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
pub(super) async fn connect(core: Arc<Core>, config: ConnectionConfig) -> Result<()> {
    crate::validate_name(&config.name)?;
    let rejected = |reason: String| Error::ConnectionAttemptRejected {
        endpoint: config.name.clone(),
        reason,
    };
    let patience = core.options.connect_timeout;
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
    let (read, mut write) = stream.into_split();
    let mut read = SocketReader::new(read);
    let mut hello = Vec::new();
    wire::append_hello(&mut hello, &core.hello(), core.limits())?;
    let patience = core.options.handshake_timeout;
    tokio::time::timeout(
        patience,
        tokio::io::AsyncWriteExt::write_all(&mut write, &hello),
    )
    .await
    .map_err(|_| {
        rejected("the server did not take our hello within the handshake timeout".into())
    })??;

    let max_frame = core.options.max_frame_bytes;
    let mut frames = FrameBuffer::new(max_frame);
    let reply = tokio::time::timeout(patience, read_first(&mut frames, &mut read, max_frame))
        .await
        .map_err(|_| rejected("no hello within the handshake timeout".into()))?
        .map_err(rejected)?;
    let peer = match reply {
        (Kind::Hello, body) => wire::parse_hello(&body)
            .and_then(wire::Hello::with_valid_groups)
            .map_err(rejected)?,
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
    if let Some((event, local, remote)) = peer.schema_mismatch() {
        let error = Error::SchemaMismatch {
            endpoint: peer.name,
            event,
            local,
            remote,
        };
        core.refuse(&config.name, error.to_string());
        return Err(error);
    }
    let (session, link) = new_link(&core, peer.name);
    core.register_peer(
        &link,
        peer_info(peer.subscriptions, peer.groups),
        Greeting::Announcements,
    )
    .map_err(rejected)?;
    session.start(&core, &link, read, write, frames);
    Ok(())
}

/// The server side of the handshake for one accepted socket.
pub(super) async fn accept(core: Arc<Core>, stream: UnixStream) {
    // Until its hello names it, a peer is known by its process id.
    let pid = stream
        .peer_cred()
        .ok()
        .and_then(|cred| cred.pid())
        .unwrap_or(0);
    let (read, write) = stream.into_split();
    let mut read = SocketReader::new(read);
    let max_frame = core.options.max_frame_bytes;
    let mut frames = FrameBuffer::new(max_frame);
    let first = tokio::time::timeout(
        core.options.handshake_timeout,
        read_first(&mut frames, &mut read, max_frame),
    )
    .await;
    let hello = match first {
        Err(_) => Err("no hello within the handshake timeout".to_owned()),
        Ok(Err(reason)) => Err(reason),
        Ok(Ok((Kind::Hello, body))) => wire::parse_hello(&body).and_then(|hello| {
            crate::validate_name(&hello.name).map_err(|e| e.to_string())?;
            hello.with_valid_groups()
        }),
        Ok(Ok((Kind::Observe, body))) => match wire::parse_observe(&body) {
            Ok(tool) => return super::observer::serve(core, tool, read, write, frames).await,
            Err(reason) => Err(reason),
        },
        Ok(Ok((kind, _))) => Err(format!("expected a hello, got {kind:?}")),
    };
    let peer = match hello {
        Ok(peer) => peer,
        Err(reason) => {
            tracing::warn!(endpoint = %core.name, peer_pid = pid, %reason, "dropping a connection that did not say hello");
            refuse(write, &core, Reject::Refused { reason }).await;
            return;
        }
    };
    if let Some((event, local, remote)) = peer.schema_mismatch() {
        let error = Error::SchemaMismatch {
            endpoint: peer.name.clone(),
            event: event.clone(),
            local,
            remote,
        };
        core.refuse(&peer.name, format!("{error} (peer pid {pid})"));
        refuse(
            write,
            &core,
            Reject::SchemaMismatch {
                event,
                server_schema: local,
                client_schema: remote,
            },
        )
        .await;
        return;
    }
    let (session, link) = new_link(&core, peer.name);
    match core.register_peer(
        &link,
        peer_info(peer.subscriptions, peer.groups),
        Greeting::Hello,
    ) {
        Ok(()) => session.start(&core, &link, read, write, frames),
        Err(reason) => {
            tracing::warn!(endpoint = %core.name, peer = %link.name, %reason, "refusing a connection");
            refuse(write, &core, Reject::Refused { reason }).await;
        }
    }
}

fn peer_info(subscriptions: Vec<u64>, groups: Vec<String>) -> PeerInfo {
    PeerInfo {
        subscriptions,
        groups,
    }
}

/// A link to peer `name` carried by a socket session not yet started.
fn new_link(core: &Core, name: String) -> (Arc<SocketSession>, Arc<Link>) {
    let session = Arc::new(SocketSession::default());
    // Every peer of this protocol version takes bodies in shared memory;
    // whether to send any is this endpoint's choice.
    let shares_memory = core.options.shared_memory_above.is_some();
    let link = Link::sharing(
        name.into(),
        core.options.queue_bytes,
        session.clone(),
        shares_memory,
    );
    (session, link)
}

/// Tells a refused client why, then closes; a client that does not read
/// gets at most `handshake_timeout` of patience.
pub(super) async fn refuse(mut write: OwnedWriteHalf, core: &Core, reject: Reject) {
    let mut frame = Vec::new();
    let zero = crate::EventId::from_u64(0);
    if wire::append_encoded(&mut frame, Kind::Reject, zero, 0, core.limits(), &reject).is_ok() {
        let send = tokio::io::AsyncWriteExt::write_all(&mut write, &frame);
        let _ = tokio::time::timeout(core.options.handshake_timeout, send).await;
    }
}
