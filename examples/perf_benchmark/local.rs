//! The `local` mode: one process, one producer task, one consumer.

use crate::events::BenchEvent;
use crate::stats::now_ns;

/// In-process lahja: one producer task broadcasting to one stream.
pub async fn with_lahja(events: u64, payload: usize) -> f64 {
    let endpoint = lahja::Endpoint::run("local-bench").await.expect("run");
    let mut stream = endpoint.stream::<BenchEvent>();
    let producer = tokio::spawn({
        let endpoint = endpoint.clone();
        async move {
            let body = crate::stats::payload(payload);
            for seq in 0..events {
                let event = BenchEvent {
                    seq,
                    sent_ns: 0,
                    payload: body.clone(),
                };
                endpoint.broadcast(event).await.expect("broadcast");
            }
        }
    });
    let started = now_ns();
    for seq in 0..events {
        let event = stream.next().await.expect("event");
        assert_eq!(event.seq, seq);
    }
    producer.await.expect("producer");
    events as f64 / ((now_ns() - started) as f64 / 1e9)
}

/// The same with `tokio::sync::broadcast` (its sender never waits, so the
/// producer yields while the channel is full to lose nothing).
pub async fn with_tokio(events: u64, payload: usize) -> f64 {
    let capacity = lahja::EndpointOptions::default().stream_capacity;
    let (tx, mut rx) = tokio::sync::broadcast::channel::<BenchEvent>(capacity);
    let producer = tokio::spawn(async move {
        let body = crate::stats::payload(payload);
        for seq in 0..events {
            while tx.len() >= capacity {
                tokio::task::yield_now().await;
            }
            let event = BenchEvent {
                seq,
                sent_ns: 0,
                payload: body.clone(),
            };
            tx.send(event).expect("send");
        }
    });
    let started = now_ns();
    for seq in 0..events {
        let event = rx.recv().await.expect("no lag");
        assert_eq!(event.seq, seq);
    }
    producer.await.expect("producer");
    events as f64 / ((now_ns() - started) as f64 / 1e9)
}
