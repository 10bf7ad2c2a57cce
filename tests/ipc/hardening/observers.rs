//! Observers that lie or hoard: an OBSERVE frame or a question whose
//! lengths claim 2^62 bytes, frames an observer may not send, and more
//! observers than an endpoint serves. Each closes only that observer's
//! connection; the victim lives and answers.

use super::*;
use lahja::introspect::{Introspect, Tap};

/// An OBSERVE frame (kind 9) with this body after magic and version.
fn observe_with(rest: &[u8]) -> Vec<u8> {
    let mut body = b"LAHJ".to_vec();
    body.extend_from_slice(&raw::VERSION.to_le_bytes());
    body.extend_from_slice(rest);
    raw::frame(raw::OBSERVE, 0, 0, 0, &body)
}

/// An observer connected by hand: the victim has answered with its hello.
async fn observing(path: &std::path::Path) -> UnixStream {
    let mut stream = UnixStream::connect(path).await.unwrap();
    let mut tool = Vec::new();
    raw::string(&mut tool, "a hand-written tool");
    stream.write_all(&observe_with(&tool)).await.unwrap();
    let (kind, ..) = within("the victim's hello", raw::read_frame(&mut stream))
        .await
        .expect("a hello");
    assert_eq!(kind, raw::HELLO);
    stream
}

#[tokio::test]
async fn hostile_observers_close_only_their_own_connection() {
    let dir = TempDir::new();
    let name = unique("victim");
    let mut victim = Peer::victim_serving(&name, &dir, "").await;
    victim.ok("answer").await;
    let path = dir.socket(&name);

    // The tool's name claims 2^62 bytes: refused like a lying hello.
    support::refusal(&path, &observe_with(&lie())).await;
    victim.assert_alive();

    // Frames an observer may not send, and questions that lie.
    let mut junk = Vec::new();
    raw::varint(&mut junk, 7);
    let attacks = [
        (
            "an event",
            raw::frame(raw::EVENT, 0, Blob::ID.as_u64(), 0, &lie()),
        ),
        (
            "a hello after OBSERVE",
            raw::hello("x", &[], &[], raw::VERSION),
        ),
        (
            "a Tap whose type list claims 2^62 IDs",
            raw::frame(raw::REQUEST, 0, Tap::ID.as_u64(), 1, &lie()),
        ),
        (
            "an Introspect with trailing bytes",
            raw::frame(raw::REQUEST, 0, Introspect::ID.as_u64(), 1, &junk),
        ),
        (
            "a request for a user type",
            raw::frame(raw::REQUEST, 0, Echo::ID.as_u64(), 1, &[0]),
        ),
    ];
    for (what, frame) in attacks {
        let mut stream = observing(&path).await;
        stream.write_all(&frame).await.unwrap();
        let answers = within(what, raw::read_until_closed(&mut stream)).await;
        assert!(answers.is_empty(), "{what}: {answers:?}");
        victim.assert_alive();
    }

    // A compressed OBSERVE is read like a compressed hello, and a
    // well-formed question is answered.
    let mut tool = Vec::new();
    raw::string(&mut tool, &"a tool with a long name ".repeat(20));
    let plain = observe_with(&tool);
    let squeezed = snap::raw::Encoder::new()
        .compress_vec(&plain[22..])
        .unwrap();
    let mut stream = UnixStream::connect(&path).await.unwrap();
    stream
        .write_all(&raw::frame(raw::OBSERVE, 1, 0, 0, &squeezed))
        .await
        .unwrap();
    let (kind, ..) = within("a hello", raw::read_frame(&mut stream))
        .await
        .unwrap();
    assert_eq!(kind, raw::HELLO);
    let question = raw::frame(raw::REQUEST, 0, Introspect::ID.as_u64(), 9, &[]);
    stream.write_all(&question).await.unwrap();
    let (kind, _, event_id, request_id, _) = within("a report", raw::read_frame(&mut stream))
        .await
        .unwrap();
    assert_eq!((kind, request_id), (raw::RESPONSE, 9));
    assert_eq!(event_id, lahja::introspect::Report::ID.as_u64());
    drop(stream);

    // 16 observers at once are served; the 17th is refused and says why.
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(observing(&path).await);
    }
    let mut tool = Vec::new();
    raw::string(&mut tool, "one too many");
    let reason = support::refusal(&path, &observe_with(&tool)).await;
    assert!(String::from_utf8_lossy(&reason).contains("already serving 16 observers"));
    drop(held);
    still_answers(&mut victim, &dir).await;
    // Once they are gone, a new observer is served again.
    support::within("an observer served again", async {
        loop {
            let mut stream = UnixStream::connect(&path).await.unwrap();
            let mut tool = Vec::new();
            raw::string(&mut tool, "later");
            stream.write_all(&observe_with(&tool)).await.unwrap();
            if raw::read_frame(&mut stream)
                .await
                .is_some_and(|f| f.0 == raw::HELLO)
            {
                return;
            }
        }
    })
    .await;
}
