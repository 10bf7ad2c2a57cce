//! The zenoh transport across real processes, on loopback TCP with
//! multicast scouting off: peers found from tokens, events and requests
//! both ways, order and completeness under load, a killed process, a
//! stalled consumer, schema mismatch and duplicate names, and socket and
//! zenoh peers on one endpoint. (`tests/common_scenarios.rs` plays the
//! common suite over zenoh; the veth test is in `zenoh_netns`.)

use crate::support;

use lahja::{BroadcastConfig, Endpoint, EndpointOptions, Error};
use lahja_workspace::events::{Double, Doubled, Numbered};
use support::{Peer, TempDir, TestBus, disconnected, raw, subscribed, unique, within};

/// The hub: this process, on the bus.
async fn hub(bus: &TestBus) -> Endpoint {
    bus.hub_with(EndpointOptions::default()).await
}

async fn connected(hub: &Endpoint, name: &str) {
    within(
        &format!("{name} to connect over zenoh"),
        hub.wait_until_connected_to(name),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_requests_cross_processes_over_zenoh() {
    let bus = TestBus::new();
    let hub = hub(&bus).await;
    let mut a = bus.member("a").await;
    let mut b = bus.member("b").await;
    connected(&hub, &a.name).await;
    connected(&hub, &b.name).await;
    // The members found each other through the hub.
    a.ok(&format!("wait-connected {}", b.name)).await;

    a.ok("subscribe").await;
    b.ok("answer").await;
    subscribed::<Numbered>(&hub, &a.name).await;
    subscribed::<Double>(&hub, &b.name).await;
    hub.broadcast(Numbered(7)).await.unwrap();
    assert_eq!(a.line("got").await, "got 7");
    assert_eq!(hub.request(Double(21)).await.unwrap(), Doubled(42));

    // From a member to a member, and to the hub.
    let mut numbers = hub.stream_with_origin::<Numbered>();
    b.until(&format!("is-subscribed {}", a.name), |r| r == "true")
        .await;
    b.until(&format!("is-subscribed {}", hub.name()), |r| r == "true")
        .await;
    b.ok("broadcast 8").await;
    assert_eq!(a.line("got").await, "got 8");
    let (origin, Numbered(n)) = within("the hub's event", numbers.next()).await.unwrap();
    assert_eq!((&*origin, n), (b.name.as_str(), 8));
    assert_eq!(a.ok("request 5").await, "answer 10");

    // A directed event reaches only its target.
    hub.broadcast_with(Numbered(9), BroadcastConfig::to(&a.name))
        .await
        .unwrap();
    assert_eq!(a.line("got").await, "got 9");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_fails_its_pending_requests() {
    let bus = TestBus::new();
    let hub = bus.hub_with(EndpointOptions::default()).await;
    let name = unique("holder");
    let mut holder = Peer::running(&name).await;
    holder
        .ok(&format!("{} lease_ms=1000", bus.member_command()))
        .await;
    holder.ok("hold-requests").await;
    subscribed::<Double>(&hub, &name).await;
    let pending = tokio::spawn({
        let hub = hub.clone();
        async move { hub.request(Double(1)).await }
    });
    holder.line("holding 1").await;
    holder.kill().await;
    let outcome = within("the request to fail", pending).await.unwrap();
    assert!(
        matches!(outcome, Err(Error::RemoteDisconnected { .. })),
        "{outcome:?}"
    );
    assert!(!hub.is_connected_to(&name));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_from_a_current_thread_runtime_is_an_error() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcome = std::thread::spawn(move || {
        runtime.block_on(async {
            let endpoint = Endpoint::run(unique("current")).await.unwrap();
            let bus = TestBus::new();
            endpoint.join_zenoh(bus.hub_config()).await
        })
    })
    .join()
    .expect("no panic");
    match outcome {
        Err(Error::Zenoh(reason)) => assert!(reason.contains("multi-thread"), "{reason}"),
        other => panic!("expected a clear error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_already_on_the_bus_is_refused() {
    let bus = TestBus::new();
    let hub = hub(&bus).await;
    let mut first = bus.member("twin").await;
    connected(&hub, &first.name).await;
    let mut second = Peer::running(&first.name).await;
    let reply = second.reply(&bus.member_command()).await;
    assert!(
        reply.starts_with("err ConnectionAttemptRejected") && reply.contains("already on"),
        "{reply}"
    );
    // The first one is still the hub's peer.
    first.ok("subscribe").await;
    subscribed::<Numbered>(&hub, &first.name).await;
    hub.broadcast(Numbered(1)).await.unwrap();
    assert_eq!(first.line("got").await, "got 1");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_another_schema_is_refused_and_said_so() {
    let bus = TestBus::new();
    let hub = hub(&bus).await;
    let _stream = hub.stream::<Numbered>();
    let dir = TempDir::new();
    let name = unique("v2");
    let program = env!("CARGO_BIN_EXE_lahja-peer-v2");
    let path = dir.socket(&name);
    let args = [
        name.as_str(),
        path.to_str().unwrap(),
        bus.name.as_str(),
        bus.hub.as_str(),
    ];
    let (_v2, line) = support::first_line_of(program, &args).await;
    assert_eq!(line, "ready");
    within("the refusal", async {
        while !hub.refused_peers().iter().any(|(peer, _)| *peer == name) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let (_, reason) = hub
        .refused_peers()
        .into_iter()
        .find(|(peer, _)| *peer == name)
        .unwrap();
    assert!(
        reason.contains("lahja_workspace::events::Numbered"),
        "{reason}"
    );
    assert!(!hub.is_connected_to(&name));
    // A peer with the same schema still joins.
    let mut good = bus.member("good").await;
    connected(&hub, &good.name).await;
    good.ok("subscribe").await;
    subscribed::<Numbered>(&hub, &good.name).await;
    hub.broadcast(Numbered(3)).await.unwrap();
    assert_eq!(good.line("got").await, "got 3");
    assert!(!hub.is_connected_to(&name));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_and_zenoh_peers_at_once_and_each_event_arrives_once() {
    let dir = TempDir::new();
    let bus = TestBus::new();
    let name = unique("hub");
    let hub = Endpoint::serve(dir.config(&name)).await.unwrap();
    hub.join_zenoh(bus.hub_config()).await.unwrap();
    // One peer by socket only, one on zenoh only, one by both.
    let mut by_socket = Peer::running(&unique("socket")).await;
    by_socket
        .ok(&format!("connect {name} {}", dir.socket(&name).display()))
        .await;
    let mut by_zenoh = bus.member("zenoh").await;
    let mut by_both = Peer::running(&unique("both")).await;
    by_both
        .ok(&format!("connect {name} {}", dir.socket(&name).display()))
        .await;
    by_both.ok(&bus.member_command()).await;
    for peer in [&mut by_socket, &mut by_zenoh, &mut by_both] {
        peer.ok("subscribe").await;
        subscribed::<Numbered>(&hub, &peer.name).await;
    }
    // The second way in is refused: the peer is connected once.
    within("the second link to be refused", async {
        while !hub.refused_peers().iter().any(|(p, _)| *p == by_both.name) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    for n in 0..100 {
        hub.broadcast(Numbered(n)).await.unwrap();
    }
    hub.broadcast(Numbered(1000)).await.unwrap();
    for peer in [&mut by_socket, &mut by_zenoh, &mut by_both] {
        for n in (0..100).chain([1000]) {
            assert_eq!(peer.line("got").await, format!("got {n}"), "{}", peer.name);
        }
    }
    // The zenoh peer answers a request from the socket peer's side too:
    // the hub routes between its two kinds of peers only for itself, so
    // ask from the hub.
    by_zenoh.ok("answer").await;
    subscribed::<Double>(&hub, &by_zenoh.name).await;
    assert_eq!(hub.request(Double(4)).await.unwrap(), Doubled(8));
    hub.stop().await;
}

/// A peer played by hand on a raw zenoh session: it says what it likes
/// on the victim's inbox, and reports the kind of each frame it gets.
struct Forger {
    session: zenoh::Session,
    name: String,
    outbox: String,
    received: tokio::sync::mpsc::UnboundedReceiver<u8>,
    _inbox: zenoh::pubsub::Subscriber<()>,
    _token: zenoh::liveliness::LivelinessToken,
}

impl Forger {
    /// Joins `bus` as `name` (made up if `None`), speaking to `victim`.
    async fn join(bus: &TestBus, victim: &str, name: Option<&str>) -> Forger {
        let mut config = zenoh::Config::default();
        for (key, value) in [
            ("mode", "\"peer\"".to_owned()),
            ("listen/endpoints", "[]".to_owned()),
            ("connect/endpoints", format!("[{:?}]", bus.hub)),
            ("scouting/multicast/enabled", "false".to_owned()),
        ] {
            config.insert_json5(key, &value).unwrap();
        }
        let session = zenoh::open(config).await.unwrap();
        let zid = session.zid().to_string();
        let name = name.map_or_else(|| unique("forger"), str::to_owned);
        let prefix = format!("lahja/{}", bus.name);
        // The victim's session, from its token.
        let victim_zid = within("the victim's token", async {
            loop {
                let replies = session
                    .liveliness()
                    .get(format!("{prefix}/ep/{victim}/*"))
                    .await
                    .unwrap();
                if let Ok(reply) = replies.recv_async().await {
                    let key = reply.result().unwrap().key_expr().to_string();
                    return key.rsplit('/').next().unwrap().to_owned();
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
        // An inbox, so the victim's hello to us has somewhere to go.
        let (seen, received) = tokio::sync::mpsc::unbounded_channel();
        let inbox = session
            .declare_subscriber(format!("{prefix}/to/{name}/{zid}/from/*/*"))
            .callback(move |sample| {
                let bytes = sample.payload().to_bytes();
                let mut at = 0;
                while let Some(len) = bytes.get(at..at + 4) {
                    let len = u32::from_le_bytes(len.try_into().unwrap()) as usize;
                    let _ = seen.send(bytes[at + 4]);
                    at += 4 + len;
                }
            })
            .await
            .unwrap();
        let token = session
            .liveliness()
            .declare_token(format!("{prefix}/ep/{name}/{zid}"))
            .await
            .unwrap();
        Forger {
            outbox: format!("{prefix}/to/{victim}/{victim_zid}/from/{name}/{zid}"),
            session,
            name,
            received,
            _inbox: inbox,
            _token: token,
        }
    }

    async fn say(&self, message: Vec<u8>) {
        let publisher = self
            .session
            .declare_publisher(self.outbox.clone())
            .congestion_control(zenoh::qos::CongestionControl::Block)
            .await
            .unwrap();
        within("the victim's inbox to match", async {
            while !publisher.matching_status().await.unwrap().matching() {
                tokio::task::yield_now().await;
            }
        })
        .await;
        publisher.put(message).await.unwrap();
    }

    fn hello(&self) -> Vec<u8> {
        raw::hello(&self.name, &[], &[], raw::VERSION)
    }

    /// Waits for a frame of `kind` from the victim.
    async fn gets(&mut self, kind: u8) {
        within(&format!("a frame of kind {kind}"), async {
            while self.received.recv().await.expect("the inbox") != kind {}
        })
        .await
    }
}

/// 2^62 as a length prefix.
fn lie() -> Vec<u8> {
    let mut claim = vec![253];
    claim.extend_from_slice(&(1u64 << 62).to_le_bytes());
    claim
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_that_lie_close_only_the_liars_link() {
    use lahja::Event;
    let bus = TestBus::new();
    let hub = hub(&bus).await;
    let name = unique("victim");
    let mut victim = Peer::victim(&name);
    victim.ok(&format!("run {name}")).await;
    victim.ok(&bus.member_command()).await;
    victim.ok("subscribe").await;
    victim.ok("subscribe-blob").await;
    subscribed::<Numbered>(&hub, &name).await;
    let forger = Forger::join(&bus, &name, None).await;
    let numbered = |n: u64| {
        let mut body = Vec::new();
        raw::varint(&mut body, n);
        raw::frame(raw::EVENT, 0, Numbered::ID.as_u64(), 0, &body)
    };

    // Before a hello: a frame claiming 4 GiB, half a frame, an event.
    let mut huge = u32::MAX.to_le_bytes().to_vec();
    huge.extend_from_slice(&[raw::EVENT, 0]);
    forger.say(huge).await;
    let hello = forger.hello();
    forger.say(hello[..hello.len() / 2].to_vec()).await;
    forger.say(numbered(665)).await;
    // Hellos that lie: another name, a compressed body that is not snappy.
    forger
        .say(raw::hello("someone-else", &[], &[], raw::VERSION))
        .await;
    victim
        .until("refused", |refused| refused.contains("another endpoint"))
        .await;
    forger.say(raw::frame(raw::HELLO, 1, 0, 0, &lie())).await;
    victim.assert_alive();

    // A true hello makes it a peer; an event whose bytes claim 2^62 bytes
    // closes its link; what it says after that is not heard.
    forger.say(forger.hello()).await;
    victim
        .until("connected", |names| names.contains(&forger.name))
        .await;
    forger
        .say(raw::frame(
            raw::EVENT,
            0,
            lahja_workspace::events::Blob::ID.as_u64(),
            0,
            &lie(),
        ))
        .await;
    victim
        .until("connected", |names| !names.contains(&forger.name))
        .await;
    forger.say(numbered(666)).await;
    // A new hello is a new life: heard again, in order.
    forger.say([forger.hello(), numbered(667)].concat()).await;
    assert_eq!(victim.line("got").await, "got 667");
    victim.assert_alive();

    // The victim and its other peers carry on.
    hub.broadcast(Numbered(1)).await.unwrap();
    assert_eq!(victim.line("got").await, "got 1");
    assert!(hub.is_connected_to(&name));
    victim.assert_alive();
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_then_stop_delivers_everything_over_zenoh() {
    const COUNT: u64 = 20_000;
    let bus = TestBus::new();
    let producer = hub(&bus).await;
    let mut consumer = bus.member("consumer").await;
    consumer.ok(&format!("stream-check {COUNT}")).await;
    subscribed::<Numbered>(&producer, &consumer.name).await;
    for n in 0..COUNT {
        producer.broadcast(Numbered(n)).await.unwrap();
    }
    // At once: what is queued, here and in zenoh, still goes out.
    producer.stop().await;
    let report = consumer.line("in-order").await;
    assert!(
        report.starts_with(&format!("in-order {COUNT} ")),
        "{report}"
    );
    consumer
        .until("connected", |names| !names.contains(producer.name()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_peer_fails_pending_requests_at_once_and_joins_again() {
    let bus = TestBus::new();
    let hub = hub(&bus).await;
    let name = unique("holder");
    let mut holder = Peer::running(&name).await;
    holder.ok(&bus.member_command()).await;
    holder.ok("hold-requests").await;
    subscribed::<Double>(&hub, &name).await;
    let pending = tokio::spawn({
        let hub = hub.clone();
        async move { hub.request(Double(1)).await }
    });
    holder.line("holding 1").await;
    // The default lease is 10 s: a stop is seen long before that.
    holder.ok("stop").await;
    let outcome = within("the request to fail", pending).await.unwrap();
    assert!(
        matches!(outcome, Err(Error::RemoteDisconnected { .. })),
        "{outcome:?}"
    );
    // The same name joins again once it is gone: a new life, with its
    // new subscriptions.
    disconnected(&hub, &name).await;
    holder.ok(&format!("run {name}")).await;
    holder.ok(&bus.member_command()).await;
    holder.ok("answer").await;
    subscribed::<Double>(&hub, &name).await;
    assert_eq!(hub.request(Double(2)).await.unwrap(), Doubled(4));
    hub.stop().await;
}

/// An endpoint that claims a name a peer already has (it got past the
/// check when joining, as two endpoints joining at once do) is refused by
/// that peer and told so; the peer keeps the first. Once the first goes,
/// the waiting one is admitted: how a restarted process gets in before
/// its old session's lease has run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_claim_to_a_name_waits_until_the_name_is_free() {
    use lahja::Event;
    let bus = TestBus::new();
    let hub = hub(&bus).await;
    let mut original = bus.member("original").await;
    original.ok("subscribe").await;
    subscribed::<Numbered>(&hub, &original.name).await;

    let mut impostor = Forger::join(&bus, hub.name(), Some(&original.name)).await;
    impostor.gets(raw::HELLO).await;
    let subscriptions = [Numbered::ID.as_u64()];
    impostor
        .say(raw::hello(
            &original.name,
            &[],
            &subscriptions,
            raw::VERSION,
        ))
        .await;
    impostor.gets(raw::REJECT).await;
    let refused = hub.refused_peers();
    assert!(
        refused
            .iter()
            .any(|(peer, why)| *peer == original.name && why.contains("waits")),
        "{refused:?}"
    );
    // The hub keeps the first: events go to it, and only to it.
    hub.broadcast(Numbered(1)).await.unwrap();
    assert_eq!(original.line("got").await, "got 1");

    // The first goes; the second is admitted and greeted anew.
    original.ok("stop").await;
    impostor.gets(raw::HELLO).await;
    hub.wait_until_endpoint_subscribed_to::<Numbered>(&original.name)
        .await
        .unwrap();
    hub.broadcast(Numbered(2)).await.unwrap();
    impostor.gets(raw::EVENT).await;
    hub.stop().await;
}
