//! Observers: tools that connect to an endpoint's socket to look at it.
//!
//! An observer opens with an `Observe` frame instead of a hello. The
//! endpoint answers with its hello, then answers each [`Introspect`]
//! request with a [`Report`]. An observer is never a peer: it is not in
//! the peer table, so no broadcast, wait, subscription check or request
//! routing sees it, and its frames never reach the endpoint's sinks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use super::handshake::{check_folder, check_server, read_first};
use crate::bus::Core;
use crate::report::{Introspect, Report};
use crate::wire::{self, FrameBuffer, Kind, Limits, Reject};
use crate::{EndpointOptions, Error, Event, Result};

/// Observers one endpoint serves at once; more are refused.
pub(crate) const MAX_OBSERVERS: usize = 16;

/// Serves one observer until it closes, breaks the protocol, or does not
/// take an answer within `handshake_timeout`.
pub(super) async fn serve(
    core: Arc<Core>,
    tool: String,
    mut read: OwnedReadHalf,
    mut write: OwnedWriteHalf,
    mut frames: FrameBuffer,
) {
    let patience = core.options.handshake_timeout;
    if core.observers.fetch_add(1, Ordering::AcqRel) >= MAX_OBSERVERS {
        core.observers.fetch_sub(1, Ordering::AcqRel);
        let reason = format!("already serving {MAX_OBSERVERS} observers");
        super::handshake::refuse(write, &core, Reject::Refused { reason }).await;
        return;
    }
    tracing::debug!(endpoint = %core.name, %tool, "an observer connected");
    let mut out = Vec::new();
    let served = async {
        wire::append_hello(&mut out, &core.hello(), core.limits()).map_err(|e| e.to_string())?;
        loop {
            if !out.is_empty() {
                tokio::time::timeout(patience, write.write_all(&out))
                    .await
                    .map_err(|_| "it did not read an answer in time".to_owned())?
                    .map_err(|e| e.to_string())?;
                out.clear();
            }
            let (id, request) = match frames.next_frame() {
                Ok(Some(frame))
                    if frame.kind == Kind::Request && frame.event_id == Introspect::ID =>
                {
                    let body = wire::body(&frame, core.options.max_frame_bytes)
                        .map_err(|v| v.to_string())?;
                    let question: Introspect =
                        crate::codec::decode(&body).map_err(|e| e.to_string())?;
                    (frame.request_id, question)
                }
                Ok(Some(frame)) => {
                    return Err(format!(
                        "an observer may only ask Introspect, not send {:?}",
                        frame.kind
                    ));
                }
                Ok(None) => match frames.fill(&mut read).await {
                    Ok(0) => return Ok(()),
                    Ok(_) => continue,
                    Err(error) => return Err(error.to_string()),
                },
                Err(violation) => return Err(violation.to_string()),
            };
            let Introspect {} = request;
            let report = core.report();
            wire::append_encoded(
                &mut out,
                Kind::Response,
                Report::ID,
                id,
                core.limits(),
                &report,
            )
            .map_err(|e| e.to_string())?;
        }
    };
    if let Err(reason) = served.await {
        tracing::debug!(endpoint = %core.name, %tool, %reason, "closing an observer");
    }
    core.observers.fetch_sub(1, Ordering::AcqRel);
}

/// A connection that looks at one endpoint without being its peer.
///
/// This is what the `lahja` command-line tool uses. Nothing the endpoint
/// does changes while it is observed: an observer subscribes to nothing,
/// is in no peer list, and receives nothing but answers to its questions.
///
/// ```no_run
/// # async fn run() -> lahja::Result<()> {
/// use lahja::ConnectionConfig;
/// use lahja::introspect::Observer;
///
/// let mut observer = Observer::connect(ConnectionConfig::from_name("trinity").path).await?;
/// let report = observer.report().await?;
/// println!("{} (pid {}) has {} peers", report.name, report.pid, report.peers.len());
/// # Ok(()) }
/// ```
pub struct Observer {
    name: String,
    path: PathBuf,
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
    frames: FrameBuffer,
    limits: Limits,
    timeout: Duration,
    next_request: u64,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Observer {
    /// Connects to the endpoint serving at `path`, waiting at most five
    /// seconds for it to answer.
    ///
    /// A socket nobody serves any more fails at once with
    /// [`Error::Io`] of kind `ConnectionRefused` (a stale socket file), a
    /// missing one with kind `NotFound`.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Observer> {
        Self::connect_with_timeout(path, Duration::from_secs(5)).await
    }

    /// [`connect`](Self::connect) with another limit on each answer.
    pub async fn connect_with_timeout(
        path: impl AsRef<Path>,
        timeout: Duration,
    ) -> Result<Observer> {
        let path = path.as_ref().to_path_buf();
        let rejected = |reason: String| Error::ConnectionAttemptRejected {
            endpoint: path.display().to_string(),
            reason,
        };
        let stream = UnixStream::connect(&path).await?;
        check_folder(&path).map_err(rejected)?;
        check_server(&stream).map_err(rejected)?;
        let defaults = EndpointOptions::default();
        let limits = Limits {
            compress_above: defaults.compress_above,
            max_frame: defaults.max_frame_bytes,
        };
        let (mut read, mut write) = stream.into_split();
        let mut first = Vec::new();
        wire::append_observe(&mut first, "lahja::introspect::Observer", limits)?;
        let greeting = async {
            write.write_all(&first).await.map_err(|e| e.to_string())?;
            let mut frames = FrameBuffer::new(limits.max_frame);
            let reply = read_first(&mut frames, &mut read, limits.max_frame).await?;
            Ok::<_, String>((frames, reply))
        };
        let (frames, reply) = tokio::time::timeout(timeout, greeting)
            .await
            .map_err(|_| rejected("no answer within the timeout".into()))?
            .map_err(rejected)?;
        let name = match reply {
            (Kind::Hello, body) => wire::parse_hello(&body).map_err(rejected)?.name,
            (Kind::Reject, body) => {
                let reason = match crate::codec::decode::<Reject>(&body) {
                    Ok(Reject::Refused { reason }) => reason,
                    Ok(other) => format!("{other:?}"),
                    Err(error) => format!("unreadable refusal: {error}"),
                };
                return Err(rejected(reason));
            }
            (kind, _) => return Err(rejected(format!("expected a hello, got {kind:?}"))),
        };
        Ok(Observer {
            name,
            path,
            read,
            write,
            frames,
            limits,
            timeout,
            next_request: 1,
        })
    }

    /// The observed endpoint's name, from its hello.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Asks the endpoint for a [`Report`] of itself.
    pub async fn report(&mut self) -> Result<Report> {
        let id = self.next_request;
        self.next_request += 1;
        let mut question = Vec::new();
        wire::append_encoded(
            &mut question,
            Kind::Request,
            Introspect::ID,
            id,
            self.limits,
            &Introspect {},
        )?;
        let endpoint = self.path.display().to_string();
        let answer = async {
            self.write
                .write_all(&question)
                .await
                .map_err(|e| e.to_string())?;
            loop {
                match self.frames.next_frame() {
                    Ok(Some(frame)) if frame.kind == Kind::Response && frame.request_id == id => {
                        if frame.event_id != Report::ID {
                            return Err(format!(
                                "answered with {}",
                                crate::registry::describe(frame.event_id)
                            ));
                        }
                        let body =
                            wire::body(&frame, self.limits.max_frame).map_err(|v| v.to_string())?;
                        return crate::codec::decode::<Report>(&body).map_err(|e| e.to_string());
                    }
                    Ok(Some(frame)) => return Err(format!("unexpected {:?} frame", frame.kind)),
                    Ok(None) => {}
                    Err(violation) => return Err(violation.to_string()),
                }
                match self.frames.fill(&mut self.read).await {
                    Ok(0) => return Err("the endpoint closed the connection".into()),
                    Ok(_) => {}
                    Err(error) => return Err(error.to_string()),
                }
            }
        };
        tokio::time::timeout(self.timeout, answer)
            .await
            .map_err(|_| "no report within the timeout".to_owned())
            .and_then(|r| r)
            .map_err(|reason| Error::ConnectionAttemptRejected { endpoint, reason })
    }
}
