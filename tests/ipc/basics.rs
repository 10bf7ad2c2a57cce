//! lahja's test_basics.py across processes, both directions of a pair:
//! streams that stop early, are limited or cancelled, and `wait_for`
//! timeouts, each unsubscribing on both sides.

use crate::support;

use std::time::Duration;

use lahja::Event;
use lahja_workspace::events::Numbered;
use support::{BOTH_WAYS, TempDir, pair, within};
use tokio_stream::StreamExt;

#[tokio::test]
async fn stream_with_break() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        let mut stream = endpoint.stream::<Numbered>();
        peer.sees_subscribed(endpoint.name(), true).await;
        peer.ok("broadcast-range 0 5").await;
        let mut counted = 0;
        while let Some(_event) = within("event", stream.next()).await {
            counted += 1;
            if counted == 2 {
                break;
            }
        }
        drop(stream);
        assert_eq!(counted, 2);
        assert!(!endpoint.get_subscribed_events().contains(&Numbered::ID));
        peer.sees_subscribed(endpoint.name(), false).await;
    }
}

#[tokio::test]
async fn stream_with_num_events() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        let stream = endpoint.stream::<Numbered>().take(2);
        peer.sees_subscribed(endpoint.name(), true).await;
        peer.ok("broadcast-range 0 3").await;
        let got: Vec<_> = within("two events", stream.collect::<Vec<_>>()).await;
        assert_eq!(got, vec![Numbered(0), Numbered(1)], "{direction:?}");
        peer.sees_subscribed(endpoint.name(), false).await;
    }
}

#[tokio::test]
async fn stream_cancels_when_its_task_is_aborted() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let consumer = tokio::spawn({
            let mut stream = endpoint.stream::<Numbered>();
            async move {
                while let Some(event) = stream.next().await {
                    let _ = seen_tx.send(event);
                }
            }
        });
        peer.sees_subscribed(endpoint.name(), true).await;
        peer.ok("broadcast-range 0 2").await;
        assert_eq!(within("first", seen.recv()).await, Some(Numbered(0)));
        assert_eq!(within("second", seen.recv()).await, Some(Numbered(1)));
        consumer.abort();
        let _ = consumer.await;
        assert!(endpoint.get_subscribed_events().is_empty());
        peer.sees_subscribed(endpoint.name(), false).await;
        // The sender has nobody to send to now.
        let reply = peer.reply("broadcast 2").await;
        assert!(reply.starts_with("err NoSubscribers"), "{reply}");
        assert_eq!(seen.recv().await, None);
    }
}

#[tokio::test]
async fn wait_for_can_get_cancelled() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        let waited =
            tokio::time::timeout(Duration::from_millis(10), endpoint.wait_for::<Numbered>()).await;
        assert!(waited.is_err());
        assert!(endpoint.get_subscribed_events().is_empty());
        peer.sees_subscribed(endpoint.name(), false).await;
    }
}

#[tokio::test]
async fn wait_for_in_the_other_process() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        peer.send("wait-for").await;
        within(
            "peer waits",
            endpoint.wait_until_endpoint_subscribed_to::<Numbered>(&peer.name),
        )
        .await
        .unwrap();
        endpoint.broadcast(Numbered(11)).await.unwrap();
        assert_eq!(peer.line("ok").await, "ok waited 11", "{direction:?}");
    }
}
