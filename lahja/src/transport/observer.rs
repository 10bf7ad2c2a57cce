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
use tokio::net::unix::OwnedWriteHalf;

use super::descriptors::SocketReader;

use super::handshake::{check_folder, check_server, read_first};
use crate::bus::{Copied, Core, TAP_BODY_MAX, TapHandle};
use crate::report::{Introspect, Report, SendJson, SentJson, Tap, Tapped, TypeName};
use crate::wire::{self, FrameBuffer, Kind, Limits, Reject};
use crate::{EndpointOptions, Error, Event, Result};

/// Observers one endpoint serves at once; more are refused.
pub(crate) const MAX_OBSERVERS: usize = 16;
/// The longest an endpoint waits for the answer to a `SendJson` request.
const MAX_SEND_WAIT_MS: u64 = 60_000;

/// Serves one observer until it closes, breaks the protocol, or does not
/// take an answer within `handshake_timeout`.
pub(super) async fn serve(
    core: Arc<Core>,
    tool: String,
    mut read: SocketReader,
    mut write: OwnedWriteHalf,
    mut frames: FrameBuffer,
) {
    if core.observers.fetch_add(1, Ordering::AcqRel) >= MAX_OBSERVERS {
        core.observers.fetch_sub(1, Ordering::AcqRel);
        let reason = format!("already serving {MAX_OBSERVERS} observers");
        super::handshake::refuse(write, &core, Reject::Refused { reason }).await;
        return;
    }
    tracing::debug!(endpoint = %core.name, %tool, "an observer connected");
    let served = answer(&core, &mut read, &mut write, &mut frames).await;
    if let Err(reason) = served {
        tracing::debug!(endpoint = %core.name, %tool, %reason, "closing an observer");
    }
    core.observers.fetch_sub(1, Ordering::AcqRel);
}

/// Answers an observer's questions and streams its tap, one frame at a
/// time so that nothing it asks can make us buffer more than one answer.
async fn answer(
    core: &Arc<Core>,
    read: &mut SocketReader,
    write: &mut OwnedWriteHalf,
    frames: &mut FrameBuffer,
) -> std::result::Result<(), String> {
    let patience = core.options.handshake_timeout;
    let mut out = Vec::new();
    wire::append_hello(&mut out, &core.hello(), core.limits()).map_err(|e| e.to_string())?;
    // The open tap and the request ID its copies answer.
    let mut tap: Option<(u64, TapHandle)> = None;
    loop {
        if !out.is_empty() {
            tokio::time::timeout(patience, write.write_all(&out))
                .await
                .map_err(|_| "it did not read an answer in time".to_owned())?
                .map_err(|e| e.to_string())?;
            out.clear();
        }
        if let Some(frame) = frames.next_frame().map_err(|v| v.to_string())? {
            if frame.kind != Kind::Request {
                return Err(format!(
                    "an observer may only ask, not send {:?}",
                    frame.kind
                ));
            }
            let body =
                wire::body(&frame, core.options.max_frame_bytes).map_err(|v| v.to_string())?;
            let limits = core.limits();
            if frame.event_id == Introspect::ID {
                let Introspect {} = crate::codec::decode(&body).map_err(|e| e.to_string())?;
                wire::append_encoded(
                    &mut out,
                    Kind::Response,
                    Report::ID,
                    frame.request_id,
                    limits,
                    &core.report(),
                )
                .map_err(|e| e.to_string())?;
            } else if frame.event_id == SendJson::ID {
                let question: SendJson = crate::codec::decode(&body).map_err(|e| e.to_string())?;
                let outcome = tokio::select! {
                    outcome = send_json(core, question) => outcome,
                    () = core.stopped() => return Ok(()),
                };
                let sent = SentJson { outcome };
                wire::append_encoded(
                    &mut out,
                    Kind::Response,
                    SentJson::ID,
                    frame.request_id,
                    limits,
                    &sent,
                )
                .map_err(|e| e.to_string())?;
            } else if frame.event_id == Tap::ID {
                let Tap { types } = crate::codec::decode(&body).map_err(|e| e.to_string())?;
                tap = Some((frame.request_id, core.open_tap(types)));
            } else {
                return Err(format!(
                    "an observer asked {}",
                    crate::registry::describe(frame.event_id)
                ));
            }
            continue;
        }
        tokio::select! {
            () = core.stopped() => return Ok(()),
            filled = frames.fill(read) => match filled {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(error) => return Err(error.to_string()),
            },
            Some((id, copied, lost)) = next_copy(&mut tap) => {
                let tapped = tapped(copied, lost);
                wire::append_encoded(&mut out, Kind::Response, Tapped::ID, id, core.limits(), &tapped)
                    .map_err(|e| e.to_string())?;
            }
        }
    }
}

/// Sends what a tool wrote as JSON as this endpoint: the answer as JSON.
async fn send_json(core: &Arc<Core>, question: SendJson) -> std::result::Result<String, String> {
    let SendJson {
        event,
        json,
        timeout_ms,
        request,
    } = question;
    if event.starts_with("lahja.") {
        return Err(format!(
            "`{event}` is one of lahja's own types, not for sending"
        ));
    }
    let is_request =
        crate::registry::lookup(crate::EventId::of(&event)).is_some_and(|i| i.response.is_some());
    match (request, is_request) {
        (false, true) => return Err(format!("`{event}` is a request: send it as one")),
        (true, false) => return Err(format!("`{event}` is an event, not a request")),
        _ => {}
    }
    let Some(send) = crate::registry::json_sender(crate::EventId::of(&event)) else {
        return Err(format!("`{}` does not know the type `{event}`", core.name));
    };
    let erased: Arc<dyn std::any::Any + Send + Sync> = core.clone();
    // The tool picks the wait, up to a bound: a question never holds an
    // observer's slot for long.
    let wait = Duration::from_millis(timeout_ms.clamp(1, MAX_SEND_WAIT_MS));
    match tokio::time::timeout(wait, send(erased, json)).await {
        Ok(answer) => answer,
        Err(_) => Err(format!("no answer within {timeout_ms} ms")),
    }
}

/// The next copy of the open tap (never, without one).
async fn next_copy(tap: &mut Option<(u64, TapHandle)>) -> Option<(u64, Copied, u64)> {
    match tap {
        Some((id, handle)) => {
            let copied = handle.copies.recv().await?;
            Some((*id, copied, handle.lost.load(Ordering::Relaxed)))
        }
        None => std::future::pending().await,
    }
}

/// A copy as the observer sees it, its value rendered here (off the hot
/// path) by the type's `Debug`, where this process knows the type.
fn tapped(copied: Copied, lost: u64) -> Tapped {
    // Bounded before decompressing: a small compressed body may claim
    // megabytes.
    let body = copied.body.as_ref().and_then(|(flags, body)| {
        let frame = wire::Frame {
            kind: Kind::Event,
            flags: *flags,
            event_id: copied.event,
            request_id: 0,
            body,
        };
        wire::body(&frame, TAP_BODY_MAX).ok()
    });
    let value = body
        .as_ref()
        .and_then(|body| crate::registry::render(copied.event, body));
    let hex = match (&value, &body) {
        (None, Some(body)) => Some(body.iter().take(64).map(|b| format!("{b:02x}")).collect()),
        _ => None,
    };
    Tapped {
        time_unix_us: copied.time_unix_us,
        direction: copied.direction,
        kind: copied.kind,
        event: TypeName::of(copied.event),
        request_id: copied.request_id,
        origin: copied.origin.to_string(),
        targets: copied.targets.iter().map(|t| t.to_string()).collect(),
        size: copied.size as u64,
        value,
        hex,
        lost,
    }
}

/// A connection that looks at one endpoint without being its peer.
///
/// This is what the `lahja` command-line tool uses. Nothing the endpoint
/// does changes while it is observed: an observer subscribes to nothing,
/// is in no peer list, and receives nothing but answers to its questions.
/// (Only [`send_json`](Self::send_json) and
/// [`request_json`](Self::request_json) act on the bus, and they do so as
/// the endpoint itself would.) The connection ends when the endpoint stops.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> lahja::Result<()> {
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
    read: SocketReader,
    write: OwnedWriteHalf,
    frames: FrameBuffer,
    limits: Limits,
    timeout: Duration,
    next_request: u64,
    /// The request ID of the open tap.
    tap_id: Option<u64>,
    /// The IDs of the types the endpoint knows (from its hello).
    known: std::collections::HashSet<u64>,
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
        let (read, mut write) = stream.into_split();
        let mut read = SocketReader::new(read);
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
        let hello = match reply {
            (Kind::Hello, body) => wire::parse_hello(&body).map_err(rejected)?,
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
        let known = hello.events.iter().map(|&(id, ..)| id).collect();
        let name = hello.name;
        Ok(Observer {
            name,
            path,
            read,
            write,
            frames,
            limits,
            timeout,
            next_request: 1,
            tap_id: None,
            known,
        })
    }

    /// The observed endpoint's name, from its hello.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the observed endpoint's registry has the type `id` (from
    /// its hello): only then can it send one written as JSON.
    pub fn knows(&self, id: crate::EventId) -> bool {
        self.known.contains(&id.as_u64())
    }

    /// Has the endpoint broadcast an event written as JSON, as itself
    /// (routed like `broadcast`).
    ///
    /// Fails with [`Error::ConnectionAttemptRejected`] saying why when the
    /// endpoint does not know the type, the type is a request, or the JSON
    /// is not one of it.
    pub async fn send_json(&mut self, event: &str, json: &str) -> Result<()> {
        self.ask_json(event, json, false, self.timeout)
            .await
            .map(drop)
    }

    /// Has the endpoint send a request written as JSON, as itself (routed
    /// like `request`); its response as JSON.
    ///
    /// Fails like [`send_json`](Self::send_json), and when nobody answers
    /// within `timeout`.
    pub async fn request_json(
        &mut self,
        request: &str,
        json: &str,
        timeout: Duration,
    ) -> Result<String> {
        self.ask_json(request, json, true, timeout).await
    }

    async fn ask_json(
        &mut self,
        event: &str,
        json: &str,
        request: bool,
        timeout: Duration,
    ) -> Result<String> {
        let question = SendJson {
            event: event.to_owned(),
            json: json.to_owned(),
            timeout_ms: timeout.as_millis() as u64,
            request,
        };
        let id = self.ask(SendJson::ID, &question).await?;
        let patience = timeout.saturating_add(self.timeout);
        let answer = match tokio::time::timeout(patience, self.answer::<SentJson>(id)).await {
            Ok(answer) => answer?,
            Err(_) => return Err(self.failed("no answer within the timeout".into())),
        };
        answer.outcome.map_err(|reason| self.failed(reason))
    }

    /// Asks the endpoint for a [`Report`] of itself.
    ///
    /// Only before [`tap`](Self::tap): once tapping, the connection
    /// carries copies.
    pub async fn report(&mut self) -> Result<Report> {
        let id = self.ask(Introspect::ID, &Introspect {}).await?;
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.answer::<Report>(id)).await {
            Ok(answer) => answer,
            Err(_) => Err(self.failed("no report within the timeout".into())),
        }
    }

    /// Starts copying what the endpoint sends and receives of `types`
    /// (empty: every type) to this observer; read them with
    /// [`next_tapped`](Self::next_tapped).
    ///
    /// The endpoint never waits for a tap: copies an observer does not
    /// read in time are lost, and [`Tapped::lost`] counts them.
    pub async fn tap(&mut self, types: &[crate::EventId]) -> Result<()> {
        let types = types.iter().map(|id| id.as_u64()).collect();
        self.tap_id = Some(self.ask(Tap::ID, &Tap { types }).await?);
        Ok(())
    }

    /// The next copy from the tap, waiting as long as it takes.
    pub async fn next_tapped(&mut self) -> Result<Tapped> {
        match self.tap_id {
            Some(id) => self.answer::<Tapped>(id).await,
            None => Err(self.failed("not tapping: call tap() first".into())),
        }
    }

    fn failed(&self, reason: String) -> Error {
        Error::ConnectionAttemptRejected {
            endpoint: self.path.display().to_string(),
            reason,
        }
    }

    /// Sends one question; its request ID.
    async fn ask<T: Event>(&mut self, id: crate::EventId, question: &T) -> Result<u64> {
        let request = self.next_request;
        self.next_request += 1;
        let mut frame = Vec::new();
        wire::append_encoded(
            &mut frame,
            Kind::Request,
            id,
            request,
            self.limits,
            question,
        )?;
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.write.write_all(&frame)).await {
            Ok(Ok(())) => Ok(request),
            Ok(Err(error)) => Err(self.failed(error.to_string())),
            Err(_) => Err(self.failed("the endpoint does not read".into())),
        }
    }

    /// The next answer, which must answer `request` with a `T`.
    async fn answer<T: Event>(&mut self, request: u64) -> Result<T> {
        let limits = self.limits;
        let (frames, read) = (&mut self.frames, &mut self.read);
        let answer = async {
            loop {
                if let Some(frame) = frames.next_frame().map_err(|v| v.to_string())? {
                    if frame.kind != Kind::Response || frame.request_id != request {
                        return Err(format!("unexpected {:?} frame", frame.kind));
                    }
                    if frame.event_id != T::ID {
                        let got = crate::registry::describe(frame.event_id);
                        return Err(format!("answered with {got}, not {}", T::NAME));
                    }
                    let body = wire::body(&frame, limits.max_frame).map_err(|v| v.to_string())?;
                    return crate::codec::decode::<T>(&body).map_err(|e| e.to_string());
                }
                match frames.fill(read).await {
                    Ok(0) => return Err("the endpoint closed the connection".to_owned()),
                    Ok(_) => {}
                    Err(error) => return Err(error.to_string()),
                }
            }
        };
        let answer = answer.await;
        answer.map_err(|reason| self.failed(reason))
    }
}
