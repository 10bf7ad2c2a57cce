//! Joining a bus: the session, our token, the discovery of peers from
//! theirs, the hello each way, and each sender's inbox, which hands its
//! frames to the core in order.
//!
//! Endpoints are told apart by name *and* zenoh session ([`Instance`]), so
//! the frames of two processes that claim one name never mix. A name is
//! one peer: the first instance whose hello is accepted has it; another
//! one is refused (and told so with a REJECT) and waits. When the peer
//! that had the name goes, a waiting instance is admitted: that is how a
//! process restarted before its old session's lease ran out gets in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ::zenoh::bytes::ZBytes;
use ::zenoh::liveliness::LivelinessToken;
use ::zenoh::pubsub::{Publisher, Subscriber};
use ::zenoh::qos::CongestionControl;
use ::zenoh::sample::{Sample, SampleKind};
use tokio::runtime::RuntimeFlavor;
use tokio::sync::OnceCell;
use tokio::task::AbortHandle;

use super::ZenohConfig;
use super::keys::{Instance, Keys};
use super::session::{Outbox, ZenohSession};
use crate::bus::{Core, Greeting, PeerInfo, Service, Stopping};
use crate::link::Link;
use crate::wire::{self, FrameBuffer, Hello, Kind, Reject};
use crate::{Error, Result};

/// Messages from one sender waiting for its inbox task. A full inbox
/// blocks zenoh's receive of that link: that is how a consumer that does
/// not keep up slows its producer, with memory bounded.
const INBOX_MESSAGES: usize = 4;

/// Endpoints known at one time (from their tokens or messages): made-up
/// senders cannot grow memory without bound.
const MAX_REMOTES: usize = 4096;

/// Joins the bus of `config` for `core` until the endpoint stops.
pub(crate) async fn join(core: &Arc<Core>, config: ZenohConfig) -> Result<()> {
    // Both the caller's runtime and the endpoint's (where its tasks run).
    let current = tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor());
    let multi_thread = |flavor| flavor == RuntimeFlavor::MultiThread;
    if !current.is_ok_and(multi_thread) || !multi_thread(core.runtime.runtime_flavor()) {
        return Err(Error::Zenoh(
            "zenoh needs a multi-thread tokio runtime: use `#[tokio::main]` \
             (not `flavor = \"current_thread\"`), or a runtime built with \
             `Builder::new_multi_thread`"
                .into(),
        ));
    }
    if !core.is_running() {
        return Err(core.lifecycle("cannot join a zenoh bus"));
    }
    // Checked before a session opens: a bad bus name is the caller's error.
    Keys::new(config.bus(), &core.name, "0")?;
    let zenoh_config = config.zenoh_config()?;
    let connects = zenoh_config
        .get_json("connect/endpoints")
        .is_ok_and(|endpoints| endpoints.contains('/'));
    let session = ::zenoh::open(zenoh_config)
        .await
        .map_err(|e| Error::Zenoh(format!("cannot open a session: {e}")))?;
    let keys = Keys::new(config.bus(), &core.name, &session.zid().to_string())?;
    if connects {
        // Whom we connect to tells us who is on the bus: the name check
        // below needs them.
        let first = wait_for_a_peer(&session);
        let _ = tokio::time::timeout(core.options.connect_timeout, first).await;
    }
    // Without a locator to connect to there is nobody to ask yet.
    let checked = match connects {
        true => refuse_taken_name(core, &session, &keys, config.bus()).await,
        false => Ok(()),
    };
    if let Err(error) = checked {
        close_later(core, session);
        return Err(error);
    }
    let bus = Arc::new(Bus {
        core: core.clone(),
        session,
        keys,
        remotes: Mutex::new(HashMap::new()),
        inboxes: Mutex::new(HashMap::new()),
        stopped: std::sync::atomic::AtomicBool::new(false),
    });
    match bus.clone().declare().await {
        Ok(joined) => {
            core.add_service(Box::new(joined));
            Ok(())
        }
        Err(error) => {
            close_later(core, bus.session.clone());
            Err(Error::Zenoh(error.to_string()))
        }
    }
}

/// Waits until the session has a link to at least one other zenoh node.
async fn wait_for_a_peer(session: &::zenoh::Session) {
    let mut backoff = std::time::Duration::from_millis(1);
    while session.info().peers_zid().await.next().is_none()
        && session.info().routers_zid().await.next().is_none()
    {
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(std::time::Duration::from_millis(20));
    }
}

/// How long joining watches for another endpoint with our name, after the
/// first link: zenoh's gossip links a new peer to the rest of the bus
/// within moments, and only then are their tokens known here. A
/// duplicate found later is refused by each peer instead (see the module
/// docs).
const NAME_WATCH: std::time::Duration = std::time::Duration::from_millis(250);

/// An endpoint named like us already on the bus refuses our joining.
async fn refuse_taken_name(
    core: &Core,
    session: &::zenoh::Session,
    keys: &Keys,
    bus: &str,
) -> Result<()> {
    let failed =
        |e: ::zenoh::Error| Error::Zenoh(format!("cannot look for our name on the bus: {e}"));
    let tokens = session
        .liveliness()
        .declare_subscriber(keys.tokens_of(&core.name))
        .history(true)
        .await
        .map_err(failed)?;
    let taken = async {
        while let Ok(sample) = tokens.recv_async().await {
            if sample.kind() == SampleKind::Put {
                return true;
            }
        }
        false
    };
    if tokio::time::timeout(NAME_WATCH, taken).await == Ok(true) {
        return Err(Error::ConnectionAttemptRejected {
            endpoint: core.name.to_string(),
            reason: format!("an endpoint with this name is already on the zenoh bus `{bus}`"),
        });
    }
    Ok(())
}

/// Closes `session` on the endpoint's runtime: dropping the last handle
/// of a session blocks in place, which a current-thread caller cannot.
fn close_later(core: &Core, session: ::zenoh::Session) {
    core.runtime.spawn(async move {
        if let Err(error) = session.close().await {
            tracing::debug!(%error, "closing the zenoh session");
        }
    });
}

/// One endpoint's presence on a bus.
struct Bus {
    core: Arc<Core>,
    session: ::zenoh::Session,
    keys: Keys,
    /// The endpoints whose token we saw or who greeted us.
    remotes: Mutex<HashMap<Instance, Arc<Remote>>>,
    /// Each sender's inbox task.
    inboxes: Mutex<HashMap<Instance, Inbox>>,
    /// Set once the endpoint leaves: late messages start nothing.
    stopped: std::sync::atomic::AtomicBool,
}

/// Another endpoint on the bus.
struct Remote {
    instance: Instance,
    /// Our publisher to it, once our hello went out (tried again on the
    /// next occasion if it could not).
    outbox: OnceCell<Arc<Outbox>>,
    /// What it is to us.
    standing: Mutex<Standing>,
}

/// Whether a remote endpoint is our peer.
#[derive(Default)]
enum Standing {
    /// Not (or no longer) a peer: its frames are not heard.
    #[default]
    Stranger,
    /// A peer.
    Peer(Peer),
    /// Refused because another instance has its name: admitted when that
    /// one goes. Its hello, and the latest SUBSCRIPTIONS and GROUPS it
    /// sent since, are kept for then.
    Waiting { hello: Hello, news: Vec<Vec<u8>> },
}

/// A sender accepted as a peer.
#[derive(Clone)]
struct Peer {
    link: Arc<Link>,
    session: Arc<ZenohSession>,
}

/// The queue of one sender's messages, and the task that reads it.
struct Inbox {
    messages: flume::Sender<ZBytes>,
    task: AbortHandle,
}

/// What stays declared while the endpoint is on the bus.
struct Joined {
    bus: Arc<Bus>,
    inbox: Subscriber<()>,
    tokens: Subscriber<()>,
    token: LivelinessToken,
}

impl Service for Joined {
    fn describe(&self) -> String {
        format!("zenoh {}", self.bus.keys.bus())
    }

    /// Leaves the bus in the background: undeclaring and closing are
    /// zenoh calls that block in place, which a current-thread caller
    /// (`Drop` may run anywhere) cannot.
    fn stop(self: Box<Self>) -> Stopping {
        let Joined {
            bus,
            inbox,
            tokens,
            token,
        } = *self;
        {
            // Under the inboxes' lock: `take` sees the flag, or its inbox
            // is aborted here.
            let mut inboxes = bus.inboxes();
            bus.stopped
                .store(true, std::sync::atomic::Ordering::Release);
            for (_, inbox) in inboxes.drain() {
                inbox.task.abort();
            }
        }
        locked(&bus.remotes).clear();
        let session = bus.session.clone();
        let leaving = bus.core.runtime.spawn(async move {
            // Our token goes first: peers drop us at once, not at the lease.
            drop((token, tokens, inbox));
            if let Err(error) = session.close().await {
                tracing::debug!(%error, "closing the zenoh session");
            }
        });
        Some(leaving)
    }
}

/// A poisoned lock here only means a bug elsewhere: carry on.
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Bus {
    fn inboxes(&self) -> MutexGuard<'_, HashMap<Instance, Inbox>> {
        locked(&self.inboxes)
    }

    /// Subscribes to our inbox and the bus's tokens, then says we are here.
    async fn declare(self: Arc<Self>) -> ::zenoh::Result<Joined> {
        let inbox = self
            .session
            .declare_subscriber(self.keys.inbox())
            .callback({
                let bus = self.clone();
                move |sample| bus.take(sample)
            })
            .await?;
        let tokens = self
            .session
            .liveliness()
            .declare_subscriber(self.keys.tokens())
            .history(true)
            .callback({
                let bus = self.clone();
                move |sample| bus.on_token(&sample)
            })
            .await?;
        let token = self
            .session
            .liveliness()
            .declare_token(self.keys.token())
            .await?;
        Ok(Joined {
            bus: self,
            inbox,
            tokens,
            token,
        })
    }

    /// A token appeared (an endpoint to greet) or went (an endpoint
    /// gone). A zenoh callback, so it is handled in the order zenoh
    /// delivers it relative to samples.
    fn on_token(self: &Arc<Self>, sample: &Sample) {
        if self.stopped.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let Some(instance) = self.keys.token_owner(sample.key_expr().as_str()) else {
            return;
        };
        if instance == *self.keys.me() {
            return;
        }
        if *instance.name == *self.core.name {
            if sample.kind() == SampleKind::Put {
                let reason = format!(
                    "another endpoint with this endpoint's name is on the bus (zenoh session {})",
                    instance.zid
                );
                self.core.refuse(&instance.name, reason);
            }
            return;
        }
        match sample.kind() {
            SampleKind::Put => {
                let Some(remote) = self.remote(&instance) else {
                    return;
                };
                let bus = self.clone();
                self.core
                    .runtime
                    .spawn(async move { bus.greet(&remote).await });
            }
            SampleKind::Delete => self.forget(&instance),
        }
    }

    /// The remote endpoint `instance`, known from its token or its first
    /// message from now on (`None` past [`MAX_REMOTES`]).
    fn remote(&self, instance: &Instance) -> Option<Arc<Remote>> {
        let mut remotes = locked(&self.remotes);
        if let Some(remote) = remotes.get(instance) {
            return Some(remote.clone());
        }
        if remotes.len() >= MAX_REMOTES {
            // Not a warning: a flood of made-up senders would flood the log.
            tracing::debug!(endpoint = %self.core.name, peer = %instance.name, "too many endpoints on the bus; ignoring one more");
            return None;
        }
        let remote = Arc::new(Remote {
            instance: instance.clone(),
            outbox: OnceCell::new(),
            standing: Mutex::new(Standing::Stranger),
        });
        remotes.insert(instance.clone(), remote.clone());
        Some(remote)
    }

    /// `instance` left the bus. Its inbox reads what it sent before it
    /// left, then removes the peer.
    fn forget(&self, instance: &Instance) {
        let remote = locked(&self.remotes).remove(instance);
        // Dropping our end of its queue ends the inbox once it is empty.
        let inbox = self.inboxes().remove(instance);
        if inbox.is_none() {
            // It never sent anything, so it was nobody's peer; but it may
            // have been the one a waiting instance waited for.
            drop(remote);
            self.admit_waiting(&instance.name);
        }
    }

    /// Opens our outbox to `remote` and sends our hello, once it works.
    async fn greet(&self, remote: &Remote) -> Option<Arc<Outbox>> {
        let opened = remote
            .outbox
            .get_or_try_init(|| async { self.open_outbox(&remote.instance).await.map(Arc::new) })
            .await;
        match opened {
            Ok(outbox) => Some(outbox.clone()),
            Err(reason) => {
                let peer = &remote.instance.name;
                tracing::debug!(endpoint = %self.core.name, %peer, %reason, "cannot greet");
                None
            }
        }
    }

    async fn open_outbox(&self, to: &Instance) -> std::result::Result<Outbox, String> {
        let publisher = self
            .session
            .declare_publisher(self.keys.outbox(to))
            .congestion_control(CongestionControl::Block)
            .await
            .map_err(|e| e.to_string())?;
        // Data sent before zenoh here knows of the peer's subscriber would
        // go nowhere: wait for it.
        let patience = self.core.options.handshake_timeout;
        tokio::time::timeout(patience, wait_until_matched(&publisher))
            .await
            .map_err(|_| "its inbox did not appear within the handshake timeout".to_owned())??;
        let outbox = Outbox(publisher);
        outbox
            .put(&self.hello_frame()?)
            .map_err(|e| e.to_string())?;
        Ok(outbox)
    }

    fn hello_frame(&self) -> std::result::Result<Vec<u8>, String> {
        let mut hello = Vec::new();
        wire::append_hello(&mut hello, &self.core.hello(), self.core.limits())
            .map_err(|e| e.to_string())?;
        Ok(hello)
    }

    /// A message on our inbox (a zenoh callback): to its sender's queue,
    /// waiting while that is full.
    fn take(self: &Arc<Self>, sample: Sample) {
        let Some(sender) = self.keys.sender(sample.key_expr().as_str()) else {
            return;
        };
        let messages = {
            let mut inboxes = self.inboxes();
            if self.stopped.load(std::sync::atomic::Ordering::Acquire) {
                return;
            }
            match inboxes.get(&sender) {
                Some(inbox) => inbox.messages.clone(),
                None => {
                    // Its token may not be here yet: zenoh sends a token to
                    // us when it learns we are interested, which can be after
                    // the sender's first frames. Bounded by MAX_REMOTES.
                    let Some(remote) = self.remote(&sender) else {
                        return;
                    };
                    let (messages, queue) = flume::bounded(INBOX_MESSAGES);
                    let task = self
                        .core
                        .runtime
                        .spawn(self.clone().read_inbox(remote, queue));
                    let inbox = Inbox {
                        messages: messages.clone(),
                        task: task.abort_handle(),
                    };
                    inboxes.insert(sender, inbox);
                    messages
                }
            }
        };
        // Err only once the inbox is gone: the sender left or we stopped.
        let _ = messages.send(sample.payload().clone());
    }

    /// Hands the frames of `remote`'s messages to the core in order,
    /// until it leaves the bus; then removes its peer.
    async fn read_inbox(self: Arc<Self>, remote: Arc<Remote>, queue: flume::Receiver<ZBytes>) {
        let mut frames = FrameBuffer::new(self.core.options.max_frame_bytes);
        while let Ok(message) = queue.recv_async().await {
            frames.extend(&message.to_bytes());
            if let Err(reason) = self.read_frames(&remote, &mut frames).await {
                frames.clear();
                let peer = &remote.instance.name;
                if matches!(*locked(&remote.standing), Standing::Peer(_)) {
                    tracing::warn!(endpoint = %self.core.name, %peer, %reason, "closing the zenoh link");
                    // Told, so that it does not go on sending to (or
                    // waiting on) an endpoint that no longer hears it.
                    if let Some(outbox) = remote.outbox.get() {
                        self.tell_refused(outbox, &reason);
                    }
                } else {
                    // Not a peer: a flood of these must not flood the log.
                    tracing::debug!(endpoint = %self.core.name, %peer, %reason, "ignoring a bad message");
                }
                self.drop_peer(&remote);
            }
        }
        tracing::debug!(endpoint = %self.core.name, peer = %remote.instance.name, "left the bus");
        self.drop_peer(&remote);
    }

    /// `remote` is no longer a peer (if it was): the core forgets it, and
    /// an instance waiting for its name may take it.
    fn drop_peer(&self, remote: &Remote) {
        let before = std::mem::take(&mut *locked(&remote.standing));
        if let Standing::Peer(peer) = before {
            self.core.remove_peer(&peer.link);
            self.admit_waiting(&remote.instance.name);
        }
    }

    /// The frames of one message. A message holds whole frames.
    async fn read_frames(
        &self,
        remote: &Remote,
        frames: &mut FrameBuffer,
    ) -> std::result::Result<(), String> {
        let max = self.core.options.max_frame_bytes;
        while let Some(frame) = frames.next_frame().map_err(|v| v.to_string())? {
            if frame.kind == Kind::Hello {
                let body = wire::body(&frame, max).map_err(|v| v.to_string())?;
                let body = body.into_owned();
                // It said hello again: a new life under the same session.
                self.drop_peer(remote);
                self.greeted_by(remote, &body).await;
                continue;
            }
            let standing = match &mut *locked(&remote.standing) {
                Standing::Peer(peer) if !peer.session.is_aborted() => Some(peer.clone()),
                Standing::Waiting { news, .. } if is_news(frame.kind) => {
                    // Only the latest of each kind matters.
                    news.retain(|f| f.get(wire::LEN_BYTES) != Some(&(frame.kind as u8)));
                    news.push(frame.to_bytes());
                    None
                }
                _ => None,
            };
            match standing {
                Some(peer) if frame.kind == Kind::Reject => {
                    let reason = refusal_reason(&frame, max);
                    self.core.refuse(&remote.instance.name, reason);
                    drop(peer);
                    self.drop_peer(remote);
                }
                Some(peer) => self
                    .core
                    .receive(&peer.link, frame)
                    .await
                    .map_err(|v| v.to_string())?,
                // Not a peer: what it sends is not heard.
                None => {}
            }
        }
        match frames.pending() {
            0 => Ok(()),
            n => Err(format!("a message ended {n} bytes into a frame")),
        }
    }

    /// `remote`'s hello: checked, then it is a peer, or waits for its name.
    async fn greeted_by(&self, remote: &Remote, body: &[u8]) {
        let core = &self.core;
        let name = &remote.instance.name;
        let hello = match wire::parse_hello(body).and_then(Hello::with_valid_groups) {
            Ok(hello) => hello,
            Err(reason) => return core.refuse(name, reason),
        };
        if hello.name != *name {
            let named = crate::error::shorten(&hello.name);
            return core.refuse(name, format!("its hello names another endpoint, `{named}`"));
        }
        if let Some((event, local, remote)) = hello.schema_mismatch() {
            let error = Error::SchemaMismatch {
                endpoint: hello.name,
                event,
                local,
                remote,
            };
            return core.refuse(name, error.to_string());
        }
        if self.greet(remote).await.is_none() {
            return core.refuse(name, "our hello could not be sent to it".into());
        }
        self.admit(remote, hello, Vec::new(), Greeting::Announcements);
    }

    /// Makes `remote` a peer with what its `hello` and later `news` said,
    /// unless another instance has its name: then it waits, told so.
    fn admit(&self, remote: &Remote, hello: Hello, news: Vec<Vec<u8>>, greeting: Greeting) {
        let core = &self.core;
        let Some(outbox) = remote.outbox.get().cloned() else {
            return;
        };
        let name = &remote.instance.name;
        let session = Arc::new(ZenohSession::default());
        let link = Link::new(
            name.as_str().into(),
            core.options.queue_bytes,
            session.clone(),
        );
        let info = PeerInfo {
            subscriptions: hello.subscriptions.clone(),
            groups: hello.groups.clone(),
        };
        if let Err(reason) = core.register_peer(&link, info, greeting) {
            if core.has_peer(name) {
                // Its name is another instance's (or a socket peer's):
                // say so, so it does not wait on us, and wait for the name.
                let zid = &remote.instance.zid;
                core.refuse(
                    name,
                    format!("{reason} (zenoh session {zid} waits for the name)"),
                );
                self.tell_refused(&outbox, &reason);
                *locked(&remote.standing) = Standing::Waiting { hello, news };
            } else {
                core.refuse(name, reason);
            }
            return;
        }
        session.start(core, &link, outbox);
        *locked(&remote.standing) = Standing::Peer(Peer {
            link: link.clone(),
            session,
        });
        // What it announced while it waited.
        for frame in news {
            let mut frames = FrameBuffer::new(core.options.max_frame_bytes);
            frames.extend(&frame);
            if let Ok(Some(frame)) = frames.next_frame() {
                let receiving = core.receive(&link, frame);
                // SUBSCRIPTIONS and GROUPS are handled without waiting.
                if let Some(Err(violation)) = now_or_never(receiving) {
                    tracing::warn!(endpoint = %core.name, peer = %name, %violation, "closing the zenoh link");
                    core.remove_peer(&link);
                }
            }
        }
    }

    /// Sends `outbox`'s endpoint a REJECT saying why it is not our peer.
    fn tell_refused(&self, outbox: &Outbox, reason: &str) {
        let mut frame = Vec::new();
        let reject = Reject::Refused {
            reason: reason.to_owned(),
        };
        let zero = crate::EventId::from_u64(0);
        let limits = self.core.limits();
        if wire::append_encoded(&mut frame, Kind::Reject, zero, 0, limits, &reject).is_ok() {
            let _ = outbox.put(&frame);
        }
    }

    /// The peer that had `name` went: an instance waiting for it (whose
    /// token is still here) is admitted, greeted anew since we told it no.
    fn admit_waiting(&self, name: &str) {
        let waiting: Vec<Arc<Remote>> = locked(&self.remotes)
            .values()
            .filter(|r| r.instance.name == name)
            .filter(|r| matches!(*locked(&r.standing), Standing::Waiting { .. }))
            .cloned()
            .collect();
        for remote in waiting {
            let taken = {
                let mut standing = locked(&remote.standing);
                match &*standing {
                    Standing::Waiting { .. } => std::mem::take(&mut *standing),
                    _ => continue,
                }
            };
            let Standing::Waiting { hello, news } = taken else {
                continue;
            };
            self.admit(&remote, hello, news, Greeting::Hello);
            if matches!(*locked(&remote.standing), Standing::Peer(_)) {
                break;
            }
        }
    }
}

/// Whether a frame of `kind` says what a peer is (subscriptions, groups).
fn is_news(kind: Kind) -> bool {
    matches!(kind, Kind::Subscriptions | Kind::Groups)
}

/// The reason in a REJECT frame, or what is wrong with it.
fn refusal_reason(frame: &wire::Frame<'_>, max: usize) -> String {
    let decoded = wire::body(frame, max)
        .map_err(|v| v.to_string())
        .and_then(|body| crate::codec::decode::<Reject>(&body).map_err(|e| e.to_string()));
    match decoded {
        Ok(Reject::Refused { reason }) => format!("it refused us: {reason}"),
        Ok(other) => format!("it refused us: {other:?}"),
        Err(error) => format!("it refused us with an unreadable REJECT: {error}"),
    }
}

/// Polls `future` once: its output if it is ready.
fn now_or_never<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

/// Waits until some subscriber matches `publisher`'s key.
async fn wait_until_matched(publisher: &Publisher<'static>) -> std::result::Result<(), String> {
    let listener = publisher
        .matching_listener()
        .await
        .map_err(|e| e.to_string())?;
    if publisher
        .matching_status()
        .await
        .map_err(|e| e.to_string())?
        .matching()
    {
        return Ok(());
    }
    while let Ok(status) = listener.recv_async().await {
        if status.matching() {
            return Ok(());
        }
    }
    Err("the session closed".into())
}
