//! Frames that lie, programs the size of real ones, and limits: lengths
//! claiming 2^62 bytes, 320 event types, the sender's frame limit, and
//! answers that cannot be sent.

use super::*;

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
