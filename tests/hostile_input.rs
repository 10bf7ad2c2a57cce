//! Bad input on the wire. A raw socket plays the hostile peer against a
//! serving endpoint while a healthy child process keeps exchanging events
//! and requests with it, during and after each attack.
//!
//! A test binary of its own: it counts panics with a global hook and
//! captures `tracing` warnings, and no test here panics on purpose.

mod support;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use lahja::{Endpoint, EndpointOptions, Event};
use lahja_workspace::events::{Double, Doubled, Numbered, WhoAreYou};
use support::{Peer, TempDir, raw, unique, within};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

static PANICS: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the panic counter and the warning capture once per binary.
fn log() -> &'static Log {
    static LOG: OnceLock<Log> = OnceLock::new();
    LOG.get_or_init(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default_hook(info);
        }));
        let log = Log::default();
        let writer = log.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .init();
        log
    })
}

/// A warning line containing every one of `parts`.
async fn warned(parts: &[&str]) -> String {
    within(&format!("a warning with {parts:?}"), async {
        loop {
            let text = String::from_utf8_lossy(&log().0.lock().unwrap()).into_owned();
            if let Some(line) = text
                .lines()
                .find(|line| line.contains("WARN") && parts.iter().all(|p| line.contains(p)))
            {
                return line.to_owned();
            }
            tokio::task::yield_now().await;
        }
    })
    .await
}

/// The attacked endpoint and a healthy peer process connected to it.
struct Scene {
    _dir: TempDir,
    server: Endpoint,
    path: std::path::PathBuf,
    healthy: Peer,
    events: lahja::EventStream<Numbered>,
    _answers: lahja::Subscription,
    round: u64,
}

impl Scene {
    async fn new() -> Scene {
        log();
        let dir = TempDir::new();
        let name = unique("server");
        let options = EndpointOptions {
            handshake_timeout: Duration::from_millis(300),
            ..Default::default()
        };
        let server = Endpoint::serve_with(dir.config(&name), options)
            .await
            .unwrap();
        let events = server.stream::<Numbered>();
        let answers = server.handle_requests(|Double(n)| async move { Doubled(n * 2) });
        let mut healthy = Peer::running(&unique("healthy")).await;
        healthy
            .ok(&format!("connect {name} {}", dir.socket(&name).display()))
            .await;
        healthy.ok("subscribe").await;
        healthy.ok("answer-tag healthy").await;
        within(
            "healthy subscribed",
            server.wait_until_endpoint_subscribed_to::<WhoAreYou>(&healthy.name),
        )
        .await
        .unwrap();
        let path = dir.socket(&name);
        Scene {
            _dir: dir,
            server,
            path,
            healthy,
            events,
            _answers: answers,
            round: 0,
        }
    }

    /// Events and requests both ways between the server and the healthy peer.
    async fn exchange(&mut self) {
        self.round += 1;
        let n = self.round;
        let tag = within("request to healthy", self.server.request(WhoAreYou))
            .await
            .unwrap();
        assert_eq!(tag.0, "healthy");
        assert_eq!(
            self.healthy.ok(&format!("request {n}")).await,
            format!("answer {}", n * 2)
        );
        self.server.broadcast(Numbered(n)).await.unwrap();
        assert_eq!(self.healthy.line("got").await, format!("got {n}"));
        self.healthy.ok(&format!("broadcast {}", 1000 + n)).await;
        // The peer's own subscriber sees its broadcast too.
        assert_eq!(self.healthy.line("got").await, format!("got {}", 1000 + n));
        // The server's own stream also holds what it broadcast itself.
        loop {
            let event = within("event from healthy", self.events.next())
                .await
                .unwrap();
            if event == Numbered(1000 + n) {
                break;
            }
        }
        assert!(self.server.is_connected_to(&self.healthy.name));
    }

    async fn connect_raw(&self) -> UnixStream {
        UnixStream::connect(&self.path).await.unwrap()
    }

    /// A raw connection that completed the handshake as `name`, subscribed
    /// to Numbered.
    async fn handshaken(&self, name: &str) -> UnixStream {
        let mut stream = self.connect_raw().await;
        let id = Numbered::ID.as_u64();
        stream
            .write_all(&raw::hello(
                name,
                &[(id, Numbered::SCHEMA)],
                &[id],
                raw::VERSION,
            ))
            .await
            .unwrap();
        let (kind, ..) = within("server hello", raw::read_frame(&mut stream))
            .await
            .unwrap();
        assert_eq!(kind, raw::HELLO);
        within(
            "raw peer registered",
            self.server.wait_until_connected_to(name),
        )
        .await
        .unwrap();
        stream
    }

    /// The server closed the raw connection, and nobody panicked.
    async fn closed(&mut self, stream: &mut UnixStream) {
        within("connection closed", raw::read_until_closed(stream)).await;
        assert_eq!(PANICS.load(Ordering::SeqCst), 0, "something panicked");
        self.exchange().await;
    }
}

#[tokio::test]
async fn random_bytes_before_the_handshake() {
    let mut scene = Scene::new().await;
    scene.exchange().await;
    let mut stream = scene.connect_raw().await;
    stream
        .write_all(&lahja_workspace::noise(4096, 3))
        .await
        .unwrap();
    scene.exchange().await;
    scene.closed(&mut stream).await;
    warned(&["did not say hello", "peer_pid"]).await;
}

#[tokio::test]
async fn random_bytes_after_the_handshake() {
    let mut scene = Scene::new().await;
    let name = unique("noisy");
    let mut stream = scene.handshaken(&name).await;
    stream
        .write_all(&lahja_workspace::noise(4096, 5))
        .await
        .unwrap();
    scene.exchange().await;
    scene.closed(&mut stream).await;
    warned(&["closing the connection", &name]).await;
    assert!(!scene.server.is_connected_to(&name));
}

#[tokio::test]
async fn a_truncated_frame() {
    let mut scene = Scene::new().await;
    let name = unique("truncated");
    let mut stream = scene.handshaken(&name).await;
    let frame = raw::frame(raw::EVENT, 0, Numbered::ID.as_u64(), 0, &[1]);
    stream.write_all(&frame[..frame.len() - 3]).await.unwrap();
    scene.exchange().await;
    stream.shutdown().await.unwrap();
    scene.closed(&mut stream).await;
    within("raw peer removed", async {
        while scene.server.is_connected_to(&name) {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_length_prefix_above_the_maximum() {
    let mut scene = Scene::new().await;
    let name = unique("huge");
    let mut stream = scene.handshaken(&name).await;
    stream.write_all(&(1u32 << 30).to_le_bytes()).await.unwrap();
    scene.closed(&mut stream).await;
    let line = warned(&["closing the connection", &name]).await;
    assert!(line.contains("exceeds the maximum"), "{line}");
}

#[tokio::test]
async fn an_unknown_message_kind() {
    let mut scene = Scene::new().await;
    let name = unique("kind");
    let mut stream = scene.handshaken(&name).await;
    stream
        .write_all(&raw::frame(200, 0, 0, 0, b"?"))
        .await
        .unwrap();
    scene.closed(&mut stream).await;
    let line = warned(&["closing the connection", &name]).await;
    assert!(line.contains("unknown message kind 200"), "{line}");
}

#[tokio::test]
async fn an_unknown_event_id_is_dropped_and_the_connection_stays() {
    let mut scene = Scene::new().await;
    let name = unique("unknown-id");
    let mut stream = scene.handshaken(&name).await;
    stream
        .write_all(&raw::frame(raw::EVENT, 0, 0x1234_5678, 0, &[1, 2, 3]))
        .await
        .unwrap();
    let line = warned(&["unknown id", &name]).await;
    assert!(line.contains("0x0000000012345678"), "{line}");
    scene.exchange().await;
    // Still connected: it gets the server's next broadcast.
    assert!(scene.server.is_connected_to(&name));
    scene.server.broadcast(Numbered(77)).await.unwrap();
    within("the marker event", async {
        loop {
            let (kind, _, event_id, _, body) =
                raw::read_frame(&mut stream).await.expect("still open");
            assert_eq!((kind, event_id), (raw::EVENT, Numbered::ID.as_u64()));
            if body == [77] {
                break;
            }
        }
    })
    .await;
    assert_eq!(PANICS.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_known_event_whose_body_does_not_decode() {
    let mut scene = Scene::new().await;
    let name = unique("bad-body");
    let mut stream = scene.handshaken(&name).await;
    // 253 announces a u64 varint, but no bytes follow.
    let frame = raw::frame(raw::EVENT, 0, Numbered::ID.as_u64(), 0, &[253]);
    stream.write_all(&frame).await.unwrap();
    scene.closed(&mut stream).await;
    let line = warned(&["closing the connection", &name]).await;
    assert!(line.contains("does not decode"), "{line}");
}

#[tokio::test]
async fn a_compressed_flag_on_data_that_is_not_snappy() {
    let mut scene = Scene::new().await;
    let name = unique("bad-snappy");
    let mut stream = scene.handshaken(&name).await;
    let frame = raw::frame(raw::EVENT, 1, Numbered::ID.as_u64(), 0, &[0xff; 16]);
    stream.write_all(&frame).await.unwrap();
    scene.closed(&mut stream).await;
    let line = warned(&["closing the connection", &name]).await;
    assert!(line.contains("snappy"), "{line}");
}

#[tokio::test]
async fn a_hello_with_a_wrong_protocol_version() {
    let mut scene = Scene::new().await;
    let mut stream = scene.connect_raw().await;
    stream
        .write_all(&raw::hello("old", &[], &[], 0))
        .await
        .unwrap();
    scene.exchange().await;
    scene.closed(&mut stream).await;
    warned(&["did not say hello", "protocol version 0"]).await;
}

#[tokio::test]
async fn a_hello_that_never_comes() {
    let mut scene = Scene::new().await;
    let mut stream = scene.connect_raw().await;
    scene.exchange().await;
    scene.closed(&mut stream).await;
    warned(&["did not say hello", "timeout"]).await;
}

#[tokio::test]
async fn forged_responses_complete_nobody_s_request() {
    let mut scene = Scene::new().await;
    scene.healthy.ok("hold-requests").await;
    within(
        "holder subscribed",
        scene
            .server
            .wait_until_endpoint_subscribed_to::<lahja_workspace::events::Double>(
                &scene.healthy.name,
            ),
    )
    .await
    .unwrap();
    // The server's own Double handler would answer first: route to the peer.
    let request = tokio::spawn({
        let server = scene.server.clone();
        let to = lahja::BroadcastConfig::to(scene.healthy.name.clone());
        async move { server.request_with(Double(1), to).await }
    });
    scene.healthy.line("holding 1").await;

    let name = unique("forger");
    let mut stream = scene.handshaken(&name).await;
    let mut forged = Vec::new();
    raw::varint(&mut forged, 999);
    for request_id in 0..64 {
        let frame = raw::frame(raw::RESPONSE, 0, Doubled::ID.as_u64(), request_id, &forged);
        stream.write_all(&frame).await.unwrap();
    }
    // A later frame on the same connection is handled after the forged
    // ones: once the server sees this subscription change, they were read.
    let subscriptions = raw::frame(raw::SUBSCRIPTIONS, 0, 0, 0, &[0]);
    stream.write_all(&subscriptions).await.unwrap();
    within("forged frames read", async {
        while scene.server.is_endpoint_subscribed_to::<Numbered>(&name) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        !request.is_finished(),
        "a forged response completed a request"
    );
    assert!(
        scene.server.is_connected_to(&name),
        "ignored, not a protocol violation"
    );
    // The real target going away is what ends the request.
    let healthy = std::mem::replace(&mut scene.healthy, Peer::spawn("unused"));
    healthy.kill().await;
    assert!(matches!(
        within("request", request).await.unwrap(),
        Err(lahja::Error::RemoteDisconnected { .. })
    ));
    assert_eq!(PANICS.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn warnings_about_one_peer_are_rate_limited() {
    let mut scene = Scene::new().await;
    let name = unique("flood-log");
    let mut stream = scene.handshaken(&name).await;
    let frames: Vec<u8> = (0..1000u64)
        .flat_map(|n| raw::frame(raw::EVENT, 0, 0x7777_0000 + n, 0, &[1]))
        .collect();
    stream.write_all(&frames).await.unwrap();
    // A later frame is handled after the flood: once the server sees this
    // subscription change, every unknown-id frame was read.
    stream
        .write_all(&raw::frame(raw::SUBSCRIPTIONS, 0, 0, 0, &[0]))
        .await
        .unwrap();
    within("flood read", async {
        while scene.server.is_endpoint_subscribed_to::<Numbered>(&name) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    warned(&["further warnings about this peer are suppressed", &name]).await;
    let text = String::from_utf8_lossy(&log().0.lock().unwrap()).into_owned();
    let lines = text
        .lines()
        .filter(|line| line.contains("WARN") && line.contains(&name) && line.contains("unknown id"))
        .count();
    assert!(lines <= 8, "{lines} warnings about one peer");
    assert!(scene.server.is_connected_to(&name));
    scene.exchange().await;
}
