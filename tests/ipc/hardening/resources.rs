//! Bounded resources: peers that never read, a stop that shares one
//! patience, blocking handlers, nested schemas and bounded handlers.

use super::*;

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
