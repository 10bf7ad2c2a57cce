//! The handshake's refusals, with a raw socket playing the other side from
//! the written protocol (docs/PROTOCOL.md).

use crate::support;

use std::time::Duration;

use lahja::{Endpoint, EndpointOptions, Error, Event};
use lahja_workspace::events::Numbered;
use support::raw;
use support::{Peer, TempDir, unique, within};
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};

async fn serving(dir: &TempDir) -> (Endpoint, std::path::PathBuf) {
    let name = unique("server");
    let options = EndpointOptions {
        handshake_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let endpoint = Endpoint::serve_with(dir.config(&name), options)
        .await
        .unwrap();
    (endpoint, dir.socket(&name))
}

#[tokio::test]
async fn a_hand_written_hello_is_accepted_and_events_flow() {
    let dir = TempDir::new();
    let (endpoint, path) = serving(&dir).await;
    let mut stream = UnixStream::connect(&path).await.unwrap();
    let id = Numbered::ID.as_u64();
    stream
        .write_all(&raw::hello(
            "raw",
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
    within("connected", endpoint.wait_until_connected_to("raw"))
        .await
        .unwrap();
    assert!(endpoint.is_endpoint_subscribed_to::<Numbered>("raw"));
    endpoint.broadcast(Numbered(300)).await.unwrap();
    let (kind, flags, event_id, _, body) =
        within("event", raw::read_frame(&mut stream)).await.unwrap();
    assert_eq!((kind, flags, event_id), (raw::EVENT, 0, id));
    let mut expected = Vec::new();
    raw::varint(&mut expected, 300);
    assert_eq!(body, expected, "a tuple struct of one u64 is its varint");
}

#[tokio::test]
async fn a_client_with_another_schema_is_refused_with_the_details() {
    let dir = TempDir::new();
    let (endpoint, path) = serving(&dir).await;
    let mut stream = UnixStream::connect(&path).await.unwrap();
    let wrong = Numbered::SCHEMA ^ 1;
    stream
        .write_all(&raw::hello(
            "mismatched",
            &[(Numbered::ID.as_u64(), wrong)],
            &[],
            raw::VERSION,
        ))
        .await
        .unwrap();
    let frames = within("refusal", raw::read_until_closed(&mut stream)).await;
    assert_eq!(frames.len(), 1, "one REJECT, then closed");
    let (kind, body) = &frames[0];
    assert_eq!(*kind, raw::REJECT);
    let mut expected = vec![1]; // variant SchemaMismatch
    raw::string(&mut expected, Numbered::NAME);
    raw::varint(&mut expected, Numbered::SCHEMA);
    raw::varint(&mut expected, wrong);
    assert_eq!(*body, expected);
    assert!(!endpoint.is_connected_to("mismatched"));
}

#[tokio::test]
async fn a_server_with_another_schema_is_refused_by_the_client() {
    let dir = TempDir::new();
    let path = dir.socket("raw-server");
    let listener = UnixListener::bind(&path).unwrap();
    let wrong = Numbered::SCHEMA.wrapping_add(1);
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let (kind, ..) = raw::read_frame(&mut stream).await.unwrap();
        assert_eq!(kind, raw::HELLO);
        let hello = raw::hello(
            "raw-server",
            &[(Numbered::ID.as_u64(), wrong)],
            &[],
            raw::VERSION,
        );
        stream.write_all(&hello).await.unwrap();
        raw::read_until_closed(&mut stream).await
    });
    let client = Endpoint::run(unique("client")).await.unwrap();
    match client
        .connect_to_endpoints([dir.config("raw-server")])
        .await
    {
        Err(Error::SchemaMismatch {
            endpoint,
            event,
            local,
            remote,
        }) => {
            assert_eq!(endpoint, "raw-server");
            assert_eq!(event, Numbered::NAME);
            assert_eq!((local, remote), (Numbered::SCHEMA, wrong));
        }
        other => panic!("expected SchemaMismatch, got {other:?}"),
    }
    assert!(within("client closed", server).await.unwrap().is_empty());
    assert!(!client.is_connected_to("raw-server"));
}

#[tokio::test]
async fn schema_mismatch_reported_to_a_client_process() {
    // A client that declares another layout is refused with SchemaMismatch
    // naming the type, as the client sees it.
    let dir = TempDir::new();
    let path = dir.socket("raw-server");
    let listener = UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        raw::read_frame(&mut stream).await.unwrap();
        let mut reject = vec![1];
        raw::string(&mut reject, Numbered::NAME);
        raw::varint(&mut reject, 11);
        raw::varint(&mut reject, 22);
        stream
            .write_all(&raw::frame(raw::REJECT, 0, 0, 0, &reject))
            .await
            .unwrap();
    });
    let mut peer = Peer::running(&unique("client")).await;
    let reply = peer
        .reply(&format!("connect raw-server {}", path.display()))
        .await;
    assert!(reply.starts_with("err SchemaMismatch"), "{reply}");
    assert!(
        reply.contains("local: 22") && reply.contains("remote: 11"),
        "{reply}"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn a_wrong_protocol_version_is_refused_with_a_reason() {
    let dir = TempDir::new();
    let (_endpoint, path) = serving(&dir).await;
    // A newer peer, and one of the previous version (before groups).
    for version in [raw::VERSION + 1, raw::VERSION - 1] {
        let body = support::refusal(&path, &raw::hello("other", &[], &[], version)).await;
        let reason = String::from_utf8_lossy(&body);
        let theirs = format!("protocol version {version}");
        let ours = format!("speaks {}", raw::VERSION);
        assert!(
            reason.contains(&theirs) && reason.contains(&ours),
            "{reason}"
        );
    }
}

#[tokio::test]
async fn anything_but_a_hello_first_is_dropped() {
    let dir = TempDir::new();
    let (endpoint, path) = serving(&dir).await;
    let mut stream = UnixStream::connect(&path).await.unwrap();
    let event = raw::frame(raw::EVENT, 0, Numbered::ID.as_u64(), 0, &[1]);
    stream.write_all(&event).await.unwrap();
    let frames = within("refusal", raw::read_until_closed(&mut stream)).await;
    assert!(frames.iter().all(|(kind, _)| *kind == raw::REJECT));
    assert_eq!(
        endpoint.get_connected_endpoints_and_subscriptions().len(),
        1
    );
}

#[tokio::test]
async fn a_hello_that_never_comes_is_timed_out() {
    let dir = TempDir::new();
    let (endpoint, path) = serving(&dir).await;
    let mut silent = UnixStream::connect(&path).await.unwrap();
    // The server gives up after its 300 ms handshake timeout.
    let frames = within("timeout", raw::read_until_closed(&mut silent)).await;
    assert!(frames.iter().all(|(kind, _)| *kind == raw::REJECT));
    // Meanwhile and after, real clients connect fine.
    let client = Endpoint::run(unique("client")).await.unwrap();
    client
        .connect_to_endpoints([lahja::ConnectionConfig::new(endpoint.name(), path)])
        .await
        .unwrap();
}
