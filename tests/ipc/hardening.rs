//! Outside the friendly path: frames that lie, programs the size of real
//! ones, peers that never read, names that are not names, other users'
//! sockets, and a fuzzer speaking the protocol to a live endpoint.
//!
//! Victims are `lahja-peer` processes that abort on any panic, so a crash
//! shows in their exit status; after each abuse an ordinary client still
//! gets answers from them.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lahja::{BroadcastConfig, Endpoint, EndpointOptions, Error, Event};
use lahja_workspace::events::{
    Blob, Double, Doubled, Echo, Nested, Numbered, Rich, Tag, WhoAreYou,
};
use support::{Peer, TempDir, raw, subscribed, unique, within};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

/// A length prefix claiming 2^62 bytes (or elements), with nothing behind it.
fn lie() -> Vec<u8> {
    let mut claim = vec![253];
    claim.extend_from_slice(&(1u64 << 62).to_le_bytes());
    claim
}

/// A raw connection to `path` that completed the handshake as `name`,
/// subscribed to `subscriptions`.
async fn handshaken(path: &std::path::Path, name: &str, subscriptions: &[u64]) -> UnixStream {
    let mut stream = UnixStream::connect(path).await.unwrap();
    stream
        .write_all(&raw::hello(name, &[], subscriptions, raw::VERSION))
        .await
        .unwrap();
    let (kind, ..) = within("the victim's hello", raw::read_frame(&mut stream))
        .await
        .expect("a hello");
    assert_eq!(kind, raw::HELLO);
    stream
}

/// Sends `blob` to `peer` (which never reads) until its queue is full.
async fn fill_queue(endpoint: &Endpoint, peer: &str, blob: Blob) {
    let to = BroadcastConfig::to(peer);
    within("a full queue", async {
        while endpoint
            .broadcast_nowait_with(blob.clone(), to.clone())
            .is_ok()
        {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// The victim is alive and answers an ordinary client's request.
async fn still_answers(victim: &mut Peer, dir: &TempDir) {
    victim.assert_alive();
    let client = Endpoint::run(unique("client")).await.unwrap();
    within(
        "connecting to the victim",
        client.connect_to_endpoints([dir.config(&victim.name)]),
    )
    .await
    .unwrap();
    let to = BroadcastConfig::to(victim.name.clone());
    let answer = within("the victim's answer", client.request_with(Double(21), to)).await;
    assert_eq!(answer.unwrap(), Doubled(42));
    client.stop().await;
    victim.assert_alive();
}

// ----- 1. lengths that lie -----------------------------------------------

/// Every kind of frame whose body holds a length (the hello's name, the
/// fields of events, requests and responses, a refusal's reason) claims
/// 2^62 bytes: each closes that one connection, nothing aborts.
#[tokio::test]
async fn lying_lengths_in_every_kind_of_frame_do_not_kill_the_victim() {
    let dir = TempDir::new();
    let name = unique("victim");
    let mut victim = Peer::victim_serving(&name, &dir, "").await;
    for command in ["answer", "subscribe-blob", "subscribe-rich"] {
        victim.ok(command).await;
    }
    let path = dir.socket(&name);

    // A 37-byte hello whose name claims 2^62 bytes.
    let mut body = b"LAHJ".to_vec();
    body.extend_from_slice(&raw::VERSION.to_le_bytes());
    body.extend_from_slice(&lie());
    support::refusal(&path, &raw::frame(raw::HELLO, 0, 0, 0, &body)).await;
    victim.assert_alive();

    // Events and requests whose fields claim 2^62 bytes or elements.
    let mut rich = vec![0]; // text: ""
    rich.extend_from_slice(&lie()); // list: 2^62 u64s
    let attacks = [
        (raw::EVENT, Blob::ID.as_u64(), lie()),
        (raw::EVENT, Rich::ID.as_u64(), rich),
        (raw::REQUEST, Echo::ID.as_u64(), lie()),
    ];
    for (kind, id, body) in attacks {
        let mut stream = handshaken(&path, &unique("liar"), &[]).await;
        stream
            .write_all(&raw::frame(kind, 0, id, 1, &body))
            .await
            .unwrap();
        within("connection closed", raw::read_until_closed(&mut stream)).await;
        victim.assert_alive();
    }

    // A response whose string claims 2^62 bytes fails that request only.
    let liar = unique("liar");
    let mut stream = handshaken(&path, &liar, &[WhoAreYou::ID.as_u64()]).await;
    victim
        .until("connected", |names| names.contains(&liar))
        .await;
    victim.send(&format!("request-who to={liar}")).await;
    let request_id = within("the victim's request", async {
        loop {
            let (kind, _, event_id, request_id, _) = raw::read_frame(&mut stream).await.unwrap();
            if kind == raw::REQUEST && event_id == WhoAreYou::ID.as_u64() {
                return request_id;
            }
        }
    })
    .await;
    stream
        .write_all(&raw::frame(
            raw::RESPONSE,
            0,
            Tag::ID.as_u64(),
            request_id,
            &lie(),
        ))
        .await
        .unwrap();
    let reply = victim.line("err").await;
    assert!(reply.contains("Codec"), "{reply}");
    victim.assert_alive();

    // A server whose refusal's reason claims 2^62 bytes.
    let fake = unique("fake-server");
    let listener = tokio::net::UnixListener::bind(dir.socket(&fake)).unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        raw::read_frame(&mut stream).await.unwrap();
        let mut reason = vec![0]; // Reject::Refused
        reason.extend_from_slice(&lie());
        stream
            .write_all(&raw::frame(raw::REJECT, 0, 0, 0, &reason))
            .await
            .unwrap();
    });
    let reply = victim
        .reply(&format!("connect {fake} {}", dir.socket(&fake).display()))
        .await;
    assert!(reply.contains("unreadable refusal"), "{reply}");
    within("fake server", server).await.unwrap();

    still_answers(&mut victim, &dir).await;
}

// ----- 2. a program the size of Trinity ----------------------------------

/// Three processes with 320 event types each (their hellos are
/// compressed) connect in a triangle, subscribe to every type, broadcast
/// one of each and answer each other's requests.
#[tokio::test]
async fn processes_with_three_hundred_event_types_connect_and_talk() {
    let dir = TempDir::new();
    let names: Vec<String> = (0..3).map(|i| unique(&format!("big{i}"))).collect();
    let mut peers = Vec::new();
    for name in &names {
        let mut peer = Peer::serving(name, &dir).await;
        peer.ok("many-subscribe").await;
        peer.ok("many-answer").await;
        peers.push(peer);
    }
    for (i, j) in [(1, 0), (2, 0), (2, 1)] {
        let (target, path) = (&names[j], dir.socket(&names[j]));
        peers[i]
            .ok(&format!("connect {target} {}", path.display()))
            .await;
    }
    // The test process, with its own registry, joins too.
    let observer = Endpoint::run(unique("observer")).await.unwrap();
    observer
        .connect_to_endpoints([dir.config(&names[0])])
        .await
        .unwrap();
    for (i, peer) in peers.iter_mut().enumerate() {
        for (j, other) in names.iter().enumerate() {
            if i != j {
                peer.ok(&format!("many-wait-subscribed {other}")).await;
            }
        }
    }
    for peer in &mut peers {
        peer.ok("many-broadcast").await;
    }
    let expected = (3 * lahja_workspace::many::EVENTS_PER_BROADCASTER).to_string();
    for peer in &mut peers {
        peer.until("many-count", |count| count == expected).await;
    }
    for (i, j) in [(0, 1), (1, 2), (2, 0)] {
        let answers = peers[i].ok(&format!("many-request {}", names[j])).await;
        assert_eq!(answers, "32");
    }
}

// ----- 3. the frame limit is the sender's --------------------------------

/// 20 MiB of zeros compresses to under 1 MiB, but the receiver would hold
/// 20 MiB: the sender refuses it, nothing is sent, the connection stays.
#[tokio::test]
async fn a_compressible_event_over_the_limit_is_refused_by_its_sender() {
    let dir = TempDir::new();
    let (endpoint, mut peer) = support::pair(&dir, support::Direction::PeerServes).await;
    peer.ok("subscribe-blob").await;
    subscribed::<Blob>(&endpoint, &peer.name).await;
    match endpoint.broadcast(Blob(vec![0; 20 << 20])).await {
        Err(Error::FrameTooLarge { bytes, max, .. }) => {
            assert!(bytes > 20 << 20);
            assert_eq!(max, 16 << 20);
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    endpoint.broadcast(Blob(vec![0; 100])).await.unwrap();
    assert_eq!(peer.line("blob").await, "blob 100");
    // And from the other side: the peer's own refusal.
    let _blobs = endpoint.stream::<Blob>();
    peer.ok(&format!("wait-subscribed {} blob", endpoint.name()))
        .await;
    let reply = peer
        .reply(&format!("broadcast-blob {} kind=zeros", 20 << 20))
        .await;
    assert!(reply.contains("FrameTooLarge"), "{reply}");
    assert!(endpoint.is_connected_to(&peer.name));
}

// ----- 4. answers that cannot be sent ------------------------------------

/// A handler whose answer is over the responder's frame limit: the
/// requester gets `RequestDropped` at once instead of waiting forever.
#[tokio::test]
async fn an_answer_too_large_to_send_fails_the_request_at_once() {
    let dir = TempDir::new();
    let name = unique("responder");
    let mut peer = Peer::serving_with(&name, &dir, "max_frame=65536").await;
    peer.ok("answer-double-size").await;
    let endpoint = Endpoint::run(unique("requester")).await.unwrap();
    endpoint
        .connect_to_endpoints([dir.config(&name)])
        .await
        .unwrap();
    subscribed::<Echo>(&endpoint, &name).await;
    let small = within("a small echo", endpoint.request(Echo(vec![1; 100]))).await;
    assert_eq!(small.unwrap().0.len(), 200);
    let big = within(
        "the oversized answer's fate",
        endpoint.request(Echo(lahja_workspace::noise(40_000, 1))),
    )
    .await;
    assert!(matches!(big, Err(Error::RequestDropped { .. })), "{big:?}");
    assert_eq!(endpoint.pending_requests(), 0);
}

/// A `respond()` cancelled while waiting for room in a full queue: the
/// requester is told its request was dropped.
#[tokio::test]
async fn a_respond_cancelled_while_waiting_for_room_tells_the_requester() {
    let dir = TempDir::new();
    let name = unique("server");
    let options = EndpointOptions {
        queue_bytes: 4096,
        ..Default::default()
    };
    let server = Endpoint::serve_with(dir.config(&name), options)
        .await
        .unwrap();
    let mut requests = server.stream_requests::<Double>();
    let requester = unique("stalled-requester");
    let mut stream = handshaken(&dir.socket(&name), &requester, &[Blob::ID.as_u64()]).await;
    within(
        "raw peer connected",
        server.wait_until_connected_to(&requester),
    )
    .await
    .unwrap();
    let mut body = Vec::new();
    raw::varint(&mut body, 5);
    stream
        .write_all(&raw::frame(raw::REQUEST, 0, Double::ID.as_u64(), 77, &body))
        .await
        .unwrap();
    let incoming = within("the request", requests.next()).await.unwrap();
    // Fill the queue to the stalled requester (it never reads meanwhile),
    // to the last byte: an empty blob's frame is as large as the answer's.
    for blob in [Blob(lahja_workspace::noise(2000, 3)), Blob(Vec::new())] {
        fill_queue(&server, &requester, blob).await;
    }
    let respond = incoming.respond(Doubled(10));
    let cancelled = tokio::time::timeout(Duration::from_millis(50), respond).await;
    assert!(
        cancelled.is_err(),
        "the queue was full: respond had to wait"
    );
    // Now read everything: a DROPPED for request 77 is among the frames.
    let dropped = within("DROPPED for the request", async {
        loop {
            let (kind, _, _, request_id, _) = raw::read_frame(&mut stream).await.unwrap();
            assert_ne!(kind, raw::RESPONSE, "the cancelled answer was sent");
            if kind == 7 && request_id == 77 {
                return true;
            }
        }
    })
    .await;
    assert!(dropped);
}

// ----- 5. peers that never read ------------------------------------------

/// A raw peer sends millions of requests nobody answers and never reads
/// the DROPPED replies: the victim closes that connection at the hard
/// cap, its memory stays bounded, and other peers are unaffected.
#[tokio::test]
async fn a_peer_that_never_reads_cannot_grow_the_victim_s_memory() {
    let dir = TempDir::new();
    let name = unique("victim");
    let mut victim = Peer::victim_serving(&name, &dir, "").await;
    victim.ok("answer").await;
    let before = victim.rss_kib().await;
    let mut stream = handshaken(&dir.socket(&name), &unique("flooder"), &[]).await;
    let mut body = Vec::new();
    raw::varint(&mut body, 1);
    // Tag is never answered by the victim: each one earns a DROPPED.
    let frame = raw::frame(raw::REQUEST, 0, WhoAreYou::ID.as_u64(), 0, &body);
    let batch: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * 10_000)
        .collect();
    let mut sent = 0u64;
    let outcome = within("the victim to cut the flooder off", async {
        while sent < 3_000_000 {
            stream.write_all(&batch).await?;
            sent += 10_000;
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
    assert!(
        outcome.is_err(),
        "3 million requests written: the victim kept reading a peer that never reads"
    );
    victim.assert_alive();
    let after = victim.rss_kib().await;
    let growth_kib = after.saturating_sub(before);
    eprintln!(
        "victim RSS {before} -> {after} KiB after {sent} requests from a peer that never reads"
    );
    assert!(
        growth_kib < 16 * 1024,
        "RSS grew by {growth_kib} KiB after {sent} unanswered requests"
    );
    still_answers(&mut victim, &dir).await;
}

// ----- 6. stop() shares one patience -------------------------------------

/// Three stalled peers with full queues: `stop()` flushes them at once,
/// so it takes one `handshake_timeout`, not three.
#[tokio::test]
async fn stop_flushes_stalled_peers_concurrently() {
    let dir = TempDir::new();
    let name = unique("stopper");
    let patience = Duration::from_secs(3);
    let options = EndpointOptions {
        handshake_timeout: patience,
        ..Default::default()
    };
    let server = Endpoint::serve_with(dir.config(&name), options)
        .await
        .unwrap();
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let peer = unique("stalled");
        let stream = handshaken(&dir.socket(&name), &peer, &[Blob::ID.as_u64()]).await;
        within("stalled peer", server.wait_until_connected_to(&peer))
            .await
            .unwrap();
        stalled.push((peer, stream));
    }
    let blob = Blob(lahja_workspace::noise(64 * 1024, 9));
    for (peer, _) in &stalled {
        fill_queue(&server, peer, blob.clone()).await;
    }
    let started = std::time::Instant::now();
    // One after the other this took 3 × patience; together, one.
    let bound = patience * 2;
    let stopped = tokio::time::timeout(bound, server.stop()).await;
    eprintln!(
        "stop() with 3 stalled peers took {:?} (patience {patience:?})",
        started.elapsed()
    );
    assert!(
        stopped.is_ok(),
        "stop() took over {bound:?} (started {:?} ago)",
        started.elapsed()
    );
}

// ----- 7. blocking handlers use their endpoint ---------------------------

/// A blocking handler (documented as running where it may block) calls
/// `broadcast` and `request_timeout` on a clone of its own endpoint.
#[test]
fn a_blocking_handler_can_use_its_own_endpoint() {
    let endpoint = lahja::blocking::Endpoint::run(unique("blocking")).unwrap();
    endpoint
        .handle_requests(|WhoAreYou| Tag("me".into()))
        .detach();
    let events = endpoint.stream::<Numbered>();
    let inside = endpoint.clone();
    endpoint
        .handle_requests(move |Double(n)| {
            inside
                .broadcast(Numbered(n))
                .expect("broadcast inside a handler");
            let tag = inside
                .request_timeout(WhoAreYou, support::PATIENCE)
                .expect("request inside a handler");
            Doubled(n * 2 + tag.0.len() as u64)
        })
        .detach();
    assert_eq!(endpoint.request(Double(5)).unwrap(), Doubled(12));
    let mut events = events;
    assert_eq!(events.next(), Some(Numbered(5)));
    endpoint.stop();
}

/// A blocking call from a `subscribe` callback that a blocking handler's
/// broadcast runs inline: that thread drives async code then, so the call
/// returns `BlockingInAsyncContext` (as documented), not tokio's panic.
#[test]
fn a_callback_run_from_a_blocking_handler_gets_the_error_not_a_panic() {
    let endpoint = lahja::blocking::Endpoint::run(unique("callback-in-handler")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let inside = endpoint.clone();
    endpoint
        .subscribe(move |Numbered(_)| {
            let nested = inside.broadcast_with(
                Tag("x".into()),
                BroadcastConfig::default().require_subscriber(false),
            );
            tx.send(format!("{nested:?}")).unwrap();
        })
        .detach();
    let handler_side = endpoint.clone();
    endpoint
        .handle_requests(move |Double(n)| {
            handler_side.broadcast(Numbered(n)).unwrap();
            Doubled(n)
        })
        .detach();
    assert_eq!(endpoint.request(Double(1)).unwrap(), Doubled(1));
    let seen = rx.recv_timeout(support::PATIENCE).unwrap();
    assert_eq!(seen, "Err(BlockingInAsyncContext)");
    endpoint.stop();
}

// ----- 8. the schema check looks inside ----------------------------------

/// Starts `lahja-nested-v2` (whose `Nested` swaps the fields of its inner
/// struct) in `mode`; returns it and its first line.
async fn nested_v2(mode: &str, name: &str, dir: &TempDir) -> (tokio::process::Child, String) {
    let path = dir.socket(name);
    let program = env!("CARGO_BIN_EXE_lahja-nested-v2");
    support::first_line_of(program, &[mode, name, path.to_str().unwrap()]).await
}

/// Two builds whose shared event differs only inside a nested struct are
/// refused, both ways, though their outer schemas are the same.
#[tokio::test]
async fn builds_that_differ_inside_a_nested_type_are_refused() {
    let dir = TempDir::new();
    let name = unique("nested-v2");
    let (_server, ready) = nested_v2("serve", &name, &dir).await;
    assert_eq!(ready, "ready");
    let client = Endpoint::run(unique("nested-v1")).await.unwrap();
    match client.connect_to_endpoints([dir.config(&name)]).await {
        Err(Error::SchemaMismatch {
            endpoint, event, ..
        }) => {
            assert_eq!(endpoint, name);
            assert!(event.contains(Nested::NAME), "{event}");
        }
        other => panic!("expected SchemaMismatch, got {other:?}"),
    }

    let server_name = unique("nested-v1-server");
    let server = Endpoint::serve(dir.config(&server_name)).await.unwrap();
    let _stream = server.stream::<Nested>();
    let (_client, reply) = nested_v2("connect", &server_name, &dir).await;
    assert!(reply.starts_with("err SchemaMismatch"), "{reply}");
    assert!(reply.contains(Nested::NAME), "{reply}");
    assert!(!server.is_connected_to("nested-v2-client"));
}

// ----- 9. bounded handlers -----------------------------------------------

/// A gate that handlers wait on, counting how many wait at once.
struct Gate {
    in_flight: AtomicUsize,
    most: AtomicUsize,
    open: tokio::sync::Semaphore,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            in_flight: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            open: tokio::sync::Semaphore::new(0),
        }
    }

    fn enter(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Twenty requests reach a handler limited to four at once: never more
/// than four run, the rest wait in the stream, and all are answered.
#[tokio::test(flavor = "current_thread")]
async fn handle_requests_runs_at_most_the_configured_number_at_once() {
    let options = EndpointOptions {
        max_concurrent_handlers: 4,
        ..Default::default()
    };
    let endpoint = Endpoint::run_with(unique("bounded"), options)
        .await
        .unwrap();
    let gate = Arc::new(Gate::new());
    let _handler = endpoint.handle_requests({
        let gate = gate.clone();
        move |Double(n)| {
            let gate = gate.clone();
            async move {
                gate.enter();
                gate.open.acquire().await.unwrap().forget();
                gate.leave();
                Doubled(n * 2)
            }
        }
    });
    let requests: Vec<_> = (0..20)
        .map(|n| {
            tokio::spawn({
                let endpoint = endpoint.clone();
                async move { endpoint.request(Double(n)).await }
            })
        })
        .collect();
    // Every request is registered and so delivered to the stream (it has
    // room for all): unbounded, all twenty handlers would be running.
    support::eventually("20 pending requests", || endpoint.pending_requests() == 20).await;
    support::eventually("4 handlers running", || {
        gate.in_flight.load(Ordering::SeqCst) == 4
    })
    .await;
    gate.open.add_permits(20);
    for (n, request) in requests.into_iter().enumerate() {
        let answer = within("an answer", request).await.unwrap().unwrap();
        assert_eq!(answer, Doubled(n as u64 * 2));
    }
    assert_eq!(gate.most.load(Ordering::SeqCst), 4);
}

/// The same bound for the blocking endpoint's thread-pool handlers.
#[test]
fn blocking_handlers_are_bounded_too() {
    let options = EndpointOptions {
        max_concurrent_handlers: 3,
        ..Default::default()
    };
    let endpoint =
        lahja::blocking::Endpoint::run_with(unique("bounded-blocking"), options).unwrap();
    let state = Arc::new((
        std::sync::Mutex::new((0usize, 0usize, false)),
        std::sync::Condvar::new(),
    ));
    endpoint
        .handle_requests({
            let state = state.clone();
            move |Double(n)| {
                let (lock, changed) = &*state;
                let mut guard = lock.lock().unwrap();
                guard.0 += 1;
                guard.1 = guard.1.max(guard.0);
                changed.notify_all();
                let mut guard = changed.wait_while(guard, |s| !s.2).unwrap();
                guard.0 -= 1;
                Doubled(n * 2)
            }
        })
        .detach();
    let callers: Vec<_> = (0..12)
        .map(|n| {
            let endpoint = endpoint.clone();
            std::thread::spawn(move || endpoint.request(Double(n)))
        })
        .collect();
    let (lock, changed) = &*state;
    // Every request delivered to the stream, and the handlers that may run
    // are running: unbounded, all twelve would be.
    let deadline = std::time::Instant::now() + support::PATIENCE;
    while endpoint.as_async().pending_requests() < 12 || lock.lock().unwrap().0 < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "requests or handlers never started"
        );
        std::thread::yield_now();
    }
    lock.lock().unwrap().2 = true;
    changed.notify_all();
    for caller in callers {
        caller.join().unwrap().unwrap();
    }
    assert_eq!(lock.lock().unwrap().1, 3);
    endpoint.stop();
}

// ----- 10. names -----------------------------------------------------------

#[tokio::test]
async fn names_that_are_not_names_are_refused_everywhere() {
    let long = "x".repeat(256);
    for bad in ["", "a/b", "tab\there", &long] {
        match Endpoint::run(bad).await {
            Err(Error::InvalidName { name, .. }) => assert_eq!(name, bad),
            other => panic!("{bad:?}: expected InvalidName, got {other:?}"),
        }
    }
    assert!(Endpoint::run("x".repeat(255)).await.is_ok());
    let error = Endpoint::run("y".repeat(10_000))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.len() < 400,
        "the name is shortened in the message: {error}"
    );

    // A hello naming itself with a 100 kB name is refused with a reason.
    let dir = TempDir::new();
    let name = unique("named");
    let _server = Endpoint::serve(dir.config(&name)).await.unwrap();
    let hello = raw::hello(&"z".repeat(100_000), &[], &[], raw::VERSION);
    let body = support::refusal(&dir.socket(&name), &hello).await;
    let reason = String::from_utf8_lossy(&body);
    assert!(reason.contains("at most 255 bytes"), "{reason}");
    assert!(reason.len() < 400, "the name is not echoed whole");
}

// ----- 11. whom the client talks to --------------------------------------

/// Runs `f` as root only: the checks below need another user.
fn am_root() -> bool {
    // SAFETY: getuid cannot fail.
    let root = unsafe { libc::getuid() } == 0;
    assert!(
        root,
        "these tests need root (CI runs as root) to act as another user"
    );
    root
}

/// A socket served by another user (here: nobody, uid 65534) is refused
/// before the client sends anything.
#[tokio::test]
async fn a_socket_served_by_another_user_is_refused() {
    use std::os::unix::fs::{PermissionsExt, chown};
    assert!(am_root());
    let theirs = TempDir::new();
    chown(&theirs.0, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&theirs.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let name = unique("nobody");
    // A copy nobody can run, wherever the checkout is (say, under /root).
    let program = theirs.0.join("lahja-peer");
    std::fs::copy(env!("CARGO_BIN_EXE_lahja-peer"), &program).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut command = tokio::process::Command::new(&program);
    command.uid(65534).gid(65534);
    let mut nobody = Peer::spawn_command(&name, command);
    nobody
        .ok(&format!("serve {name} {}", theirs.socket(&name).display()))
        .await;
    // Moved into a folder of ours: only SO_PEERCRED can tell.
    let ours = TempDir::new();
    std::fs::rename(theirs.socket(&name), ours.socket(&name)).unwrap();
    let client = Endpoint::run(unique("root-client")).await.unwrap();
    match client.connect_to_endpoints([ours.config(&name)]).await {
        Err(Error::ConnectionAttemptRejected { reason, .. }) => {
            assert!(reason.contains("served by uid 65534"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!client.is_connected_to(&name));
}

/// A socket in a folder of another user, or one others can write to, is
/// refused (another user could have put it there), as is the per-user
/// folder pre-created by someone else.
#[tokio::test]
async fn a_socket_in_a_folder_others_control_is_refused() {
    use std::os::unix::fs::{PermissionsExt, chown};
    assert!(am_root());
    let client = Endpoint::run(unique("careful")).await.unwrap();
    for (owner, mode, expected) in [
        (65534, 0o700, "belongs to uid 65534"),
        (0, 0o777, "writable by other users"),
        (0, 0o770, "writable by other users"),
    ] {
        let dir = TempDir::new();
        let name = unique("planted");
        let server = Endpoint::serve(dir.config(&name)).await.unwrap();
        chown(&dir.0, Some(owner), None).unwrap();
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(mode)).unwrap();
        match client.connect_to_endpoints([dir.config(&name)]).await {
            Err(Error::ConnectionAttemptRejected { reason, .. }) => {
                assert!(reason.contains(expected), "{reason}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(!server.is_connected_to(client.name()), "nothing was sent");
    }
}

// ----- 12. binding -------------------------------------------------------

/// Two servers reclaiming one stale path take turns: while one holds the
/// reclaim lock (here, the test: as if it were between its probe and its
/// bind), another waits, then finds the path live and does not steal it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_reclaiming_one_stale_path_take_turns() {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new();
    let name = unique("contested");
    let path = dir.socket(&name);
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap()); // stale
    let lock_path = format!("{}.lock", path.display());
    let lock = {
        use std::os::unix::fs::OpenOptionsExt;
        let mut open = std::fs::OpenOptions::new();
        open.create(true).truncate(false).write(true).mode(0o600);
        open.open(&lock_path).unwrap()
    };
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let serving = tokio::spawn(Endpoint::serve(dir.config(&name)));
    // The kernel shows the other server waiting for our lock.
    let inode = format!(":{} ", lock.metadata().unwrap().ino());
    support::eventually("the server to wait for the reclaim lock", || {
        std::fs::read_to_string("/proc/locks")
            .unwrap()
            .lines()
            .any(|line| line.contains("->") && line.contains(&inode))
    })
    .await;
    // Meanwhile "we" reclaim the stale path and bind it, then let go.
    std::fs::remove_file(&path).unwrap();
    let ours = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let our_inode = std::fs::metadata(&path).unwrap().ino();
    drop(lock);
    match within("serve", serving).await.unwrap() {
        Err(Error::Bind { reason, .. }) => assert!(reason.contains("listening there"), "{reason}"),
        other => panic!("expected Bind, got {other:?}"),
    }
    assert_eq!(
        std::fs::metadata(&path).unwrap().ino(),
        our_inode,
        "our socket was stolen"
    );
    drop(ours);
}

/// A lock file that is not private to us (another user could hold its
/// lock forever) makes serving a clear `Bind` error, not a hang.
#[tokio::test]
async fn a_lock_file_others_can_open_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    let name = unique("shared-lock");
    let lock_path = format!("{}.lock", dir.socket(&name).display());
    std::fs::write(&lock_path, b"").unwrap();
    std::fs::set_permissions(&lock_path, std::fs::Permissions::from_mode(0o666)).unwrap();
    match within("serve", Endpoint::serve(dir.config(&name))).await {
        Err(Error::Bind { reason, .. }) => assert!(reason.contains("not private"), "{reason}"),
        other => panic!("expected Bind, got {other:?}"),
    }
}

/// A live socket whose backlog is full and that never accepts: serving
/// there is a prompt `Bind` error (the probe does not block).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_over_a_busy_live_socket_fails_promptly() {
    let dir = TempDir::new();
    let name = unique("busy");
    let _listener = backlogged(&dir.socket(&name));
    match within("serve", Endpoint::serve(dir.config(&name))).await {
        Err(Error::Bind { reason, .. }) => assert!(reason.contains("listening there"), "{reason}"),
        other => panic!("expected Bind, got {other:?}"),
    }
}

/// Starts connecting `client` to `config` in a task and lets it make its
/// first attempt (on a current-thread runtime, a few yields run it);
/// fails the test if that attempt already gave up on `what`.
async fn connecting_in_background(
    client: &Endpoint,
    config: lahja::ConnectionConfig,
    what: &str,
) -> tokio::task::JoinHandle<lahja::Result<()>> {
    let connecting = tokio::spawn({
        let client = client.clone();
        async move { client.connect_to_endpoints([config]).await }
    });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!connecting.is_finished(), "connect gave up on {what}");
    connecting
}

/// A listener that never accepts, its backlog filled (connections kept).
fn backlogged(path: &std::path::Path) -> (socket2::Socket, Vec<socket2::Socket>) {
    use socket2::{Domain, SockAddr, Socket, Type};
    let listener = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
    listener.bind(&SockAddr::unix(path).unwrap()).unwrap();
    listener.listen(0).unwrap();
    let mut queued = Vec::new();
    loop {
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        socket.set_nonblocking(true).unwrap();
        match socket.connect(&SockAddr::unix(path).unwrap()) {
            Ok(()) => queued.push(socket),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return (listener, queued),
            Err(e) => panic!("filling the backlog: {e}"),
        }
        assert!(queued.len() < 10_000, "the backlog never filled");
    }
}

// ----- 13/14. requests in flight -----------------------------------------

/// A requester restarted under the same name gets new request IDs: an
/// answer to its previous life's request cannot complete a new one.
#[tokio::test]
async fn a_late_answer_to_a_previous_life_completes_nothing() {
    let dir = TempDir::new();
    let server_name = unique("server");
    let server = Endpoint::serve(dir.config(&server_name)).await.unwrap();
    let mut requests = server.stream_requests::<Double>();
    let name = unique("restarted");

    let first = Endpoint::run(name.clone()).await.unwrap();
    first
        .connect_to_endpoints([dir.config(&server_name)])
        .await
        .unwrap();
    let pending = tokio::spawn({
        let first = first.clone();
        async move { first.request(Double(1)).await }
    });
    let old = within("first request", requests.next()).await.unwrap();
    first.stop().await;
    let _ = within("first request ends", pending).await;
    support::eventually("first gone", || !server.is_connected_to(&name)).await;

    let second = Endpoint::run(name.clone()).await.unwrap();
    second
        .connect_to_endpoints([dir.config(&server_name)])
        .await
        .unwrap();
    within("second connected", server.wait_until_connected_to(&name))
        .await
        .unwrap();
    let asked = tokio::spawn({
        let second = second.clone();
        async move { second.request(Double(2)).await }
    });
    let new = within("second request", requests.next()).await.unwrap();
    assert_ne!(
        old.id(),
        new.id(),
        "a restarted requester reused a request id"
    );
    // The old answer, routed by name, reaches `second`, which discards it.
    server
        .broadcast_with(Doubled(999), old.config())
        .await
        .unwrap();
    new.respond(Doubled(4)).await.unwrap();
    assert_eq!(within("answer", asked).await.unwrap().unwrap(), Doubled(4));
}

// ----- 15. a full backlog is retried -------------------------------------

/// `connect` meets a full listen backlog (`EAGAIN`): it retries until the
/// server accepts, instead of failing at once.
#[tokio::test(flavor = "current_thread")]
async fn connect_retries_a_full_backlog() {
    let dir = TempDir::new();
    let name = unique("slow-acceptor");
    let (listener, queued) = backlogged(&dir.socket(&name));
    let client = Endpoint::run(unique("patient")).await.unwrap();
    let connecting = connecting_in_background(&client, dir.config(&name), "a full backlog").await;
    // Now accept: drop the queued connections, answer the client's hello.
    drop(queued);
    listener.set_nonblocking(true).unwrap();
    let listener: std::os::unix::net::UnixListener = std::os::fd::OwnedFd::from(listener).into();
    let listener = tokio::net::UnixListener::from_std(listener).unwrap();
    let server = tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            match raw::read_frame(&mut stream).await {
                Some((raw::HELLO, ..)) => {
                    stream
                        .write_all(&raw::hello(&name, &[], &[], raw::VERSION))
                        .await
                        .unwrap();
                    return raw::read_until_closed(&mut stream).await;
                }
                _ => continue, // one of the queued ones
            }
        }
    });
    within("connect", connecting).await.unwrap().unwrap();
    client.stop().await;
    within("server side", server).await.unwrap();
}

// ----- fuzzing a live endpoint -------------------------------------------

mod fuzz {
    //! Random frames of every kind, for known and unknown IDs, with random
    //! compression flags and lengths, sent after a valid handshake to a
    //! victim process that aborts on any panic, while a well-behaved peer
    //! keeps getting answers. `LAHJA_FUZZ_CASES` raises the case budget
    //! (CI runs 256); `LAHJA_FUZZ_SEED` picks the seed (printed on failure).

    use super::*;
    use lahja_workspace::events::{Choice, Inner};
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    /// IDs the victim knows (most of which it subscribes to or answers),
    /// and some it does not.
    fn event_id() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(Numbered::ID.as_u64()),
            Just(Blob::ID.as_u64()),
            Just(Rich::ID.as_u64()),
            Just(Double::ID.as_u64()),
            Just(Echo::ID.as_u64()),
            Just(WhoAreYou::ID.as_u64()),
            Just(Doubled::ID.as_u64()),
            Just(Tag::ID.as_u64()),
            Just(0u64),
            any::<u64>(),
        ]
    }

    fn rich() -> impl Strategy<Value = Rich> {
        (
            ".{0,20}",
            proptest::collection::vec(any::<u64>(), 0..8),
            proptest::option::of((any::<u32>(), any::<u32>())),
            prop_oneof![
                Just(Choice::Plain),
                ".{0,8}".prop_map(Choice::Text),
                (
                    any::<i32>(),
                    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8))
                )
                    .prop_map(|(x, y)| Choice::Point { x, y }),
            ],
            proptest::collection::vec(proptest::collection::vec(".{0,4}", 0..3), 0..3),
        )
            .prop_map(|(text, list, maybe, choice, nested)| Rich {
                text,
                list,
                maybe: maybe.map(|(a, b)| Inner { a, b }),
                choice,
                nested,
            })
    }

    fn encoded<T: serde::Serialize>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
    }

    /// A body: random bytes, a valid value (mutated or not), or a lie.
    fn body() -> impl Strategy<Value = Vec<u8>> {
        let valid = prop_oneof![
            rich().prop_map(|r| encoded(&r)),
            any::<u64>().prop_map(|n| encoded(&n)),
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(|b| encoded(&b)),
        ];
        let mutated = (
            valid.clone(),
            proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        )
            .prop_map(|(mut body, edits)| {
                for (at, byte) in edits {
                    if !body.is_empty() {
                        let len = body.len();
                        body[at % len] = byte;
                    }
                }
                body
            });
        let lie = (proptest::collection::vec(any::<u8>(), 0..4), any::<u64>()).prop_map(
            |(prefix, claim)| {
                let mut body = prefix;
                body.push(253);
                body.extend_from_slice(&(claim | 1 << 40).to_le_bytes());
                body
            },
        );
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            valid,
            mutated,
            lie,
        ]
    }

    /// How the length prefix is written.
    #[derive(Debug, Clone)]
    enum Length {
        True,
        /// Any value: too short, too long, over the maximum.
        Claim(u32),
    }

    #[derive(Debug, Clone)]
    struct RawFrame {
        kind: u8,
        flags: u8,
        event_id: u64,
        request_id: u64,
        body: Vec<u8>,
        compress: bool,
        length: Length,
    }

    impl RawFrame {
        fn bytes(&self) -> Vec<u8> {
            let body = if self.compress {
                snap::raw::Encoder::new().compress_vec(&self.body).unwrap()
            } else {
                self.body.clone()
            };
            let mut frame =
                raw::frame(self.kind, self.flags, self.event_id, self.request_id, &body);
            if let Length::Claim(len) = self.length {
                frame[..4].copy_from_slice(&len.to_le_bytes());
            }
            frame
        }
    }

    fn frame() -> impl Strategy<Value = RawFrame> {
        (
            prop_oneof![8 => 3u8..=7, 1 => Just(1u8), 1 => Just(2u8), 1 => any::<u8>()],
            prop_oneof![6 => Just(0u8), 3 => Just(1u8), 1 => any::<u8>()],
            event_id(),
            prop_oneof![Just(0u64), any::<u64>()],
            body(),
            any::<bool>(),
            prop_oneof![9 => Just(Length::True), 1 => any::<u32>().prop_map(Length::Claim)],
        )
            .prop_map(
                |(kind, flags, event_id, request_id, body, compress, length)| RawFrame {
                    kind,
                    flags,
                    event_id,
                    request_id,
                    body,
                    compress,
                    length,
                },
            )
    }

    fn attack() -> impl Strategy<Value = (Vec<u64>, Vec<RawFrame>)> {
        (
            proptest::collection::vec(event_id(), 0..4),
            proptest::collection::vec(frame(), 1..16),
        )
    }

    fn env_number(name: &str, default: u64) -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    #[test]
    fn random_frames_never_crash_a_live_endpoint() {
        let cases = env_number("LAHJA_FUZZ_CASES", 256);
        let seed = env_number("LAHJA_FUZZ_SEED", 0x1a4a);
        let mut seed_bytes = [0u8; 32];
        seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
        let mut runner = TestRunner::new_with_rng(Config::default(), rng);
        let strategy = attack();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let dir = TempDir::new();
            let name = unique("fuzzed");
            let mut victim = Peer::victim_serving(&name, &dir, "").await;
            for command in [
                "answer",
                "answer-tag fuzzed",
                "subscribe",
                "subscribe-blob",
                "subscribe-rich",
            ] {
                victim.ok(command).await;
            }
            let healthy = Endpoint::run(unique("healthy")).await.unwrap();
            healthy
                .connect_to_endpoints([dir.config(&name)])
                .await
                .unwrap();
            subscribed::<Double>(&healthy, &name).await;
            let before = victim.rss_kib().await;
            let to = BroadcastConfig::to(name.clone());
            for case in 0..cases {
                let (subscriptions, frames) = strategy.new_tree(&mut runner).unwrap().current();
                let what = format!("case {case} (LAHJA_FUZZ_SEED={seed}): {frames:?}");
                let attacker = format!("attacker-{case}");
                let mut stream = handshaken(&dir.socket(&name), &attacker, &subscriptions).await;
                let bytes: Vec<u8> = frames.iter().flat_map(RawFrame::bytes).collect();
                // The victim may close first (a violation): then writes fail.
                let _ = stream.write_all(&bytes).await;
                let _ = stream.shutdown().await;
                within(
                    &format!("the victim to close after {what}"),
                    raw::read_until_closed(&mut stream),
                )
                .await;
                if let Some(status) = victim.exited() {
                    panic!("the victim died ({status}) on {what}");
                }
                let answer = within(&what, healthy.request_with(Double(case), to.clone())).await;
                assert_eq!(answer.unwrap(), Doubled(case * 2), "{what}");
            }
            let after = victim.rss_kib().await;
            eprintln!("fuzzed victim RSS {before} -> {after} KiB over {cases} cases");
            let growth = after.saturating_sub(before);
            assert!(
                growth < 64 * 1024,
                "RSS grew by {growth} KiB over {cases} cases"
            );
            still_answers(&mut victim, &dir).await;
        });
    }
}

/// The client's folder check happens once it reached a server: a client
/// started before the server (and before its folder exists) still waits.
#[tokio::test(flavor = "current_thread")]
async fn connect_waits_for_a_folder_that_does_not_exist_yet() {
    let dir = TempDir::new();
    let later = TempDir(dir.0.join("created-later"));
    let name = unique("late-server");
    let client = Endpoint::run(unique("early-client")).await.unwrap();
    let config = later.config(&name);
    let connecting = connecting_in_background(&client, config, "a missing folder").await;
    std::fs::create_dir(&later.0).unwrap();
    let _server = Endpoint::serve(later.config(&name)).await.unwrap();
    within("connect", connecting).await.unwrap().unwrap();
}
