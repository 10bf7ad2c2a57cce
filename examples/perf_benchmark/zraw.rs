//! The zenoh baseline (`--transport zenoh`): the same workloads on raw
//! zenoh, with the same bincode bodies but no lahja: a publisher with
//! `CongestionControl::Block` and subscribers, and `get` against a
//! queryable. Every session is a peer on 127.0.0.1 with multicast off.

use std::time::Duration;

use zenoh::Wait;
use zenoh::qos::CongestionControl;

use crate::events::{BenchEvent, Ping, Pong};
use crate::roles::consume;
use crate::stats::{Latency, cpu_us, now_ns, peak_rss_kib, report};

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).expect("encode")
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .expect("decode")
        .0
}

/// A peer session that listens on `locator`, or connects to it.
async fn open(locator: &str, listen: bool) -> zenoh::Session {
    let mut config = zenoh::Config::default();
    let endpoints = format!("[{locator:?}]");
    let (listen_on, connect_to) = if listen {
        (endpoints.as_str(), "[]")
    } else {
        ("[]", endpoints.as_str())
    };
    for (key, value) in [
        ("mode", "\"peer\""),
        ("listen/endpoints", listen_on),
        ("connect/endpoints", connect_to),
        ("scouting/multicast/enabled", "false"),
    ] {
        config.insert_json5(key, value).expect("zenoh config");
    }
    zenoh::open(config).await.expect("zenoh session")
}

/// The keys of one run: under the locator's port, so runs do not meet.
fn prefix(locator: &str) -> String {
    let port = locator.rsplit(':').next().unwrap_or("0");
    format!("bench-raw/{port}")
}

/// Producer: waits for `consumers` tokens, publishes every event with
/// Block, then waits for the consumers to leave (they leave once they have
/// every event) before it reports.
pub async fn producer(locator: &str, consumers: usize, events: u64, payload: usize) {
    let session = open(locator, true).await;
    let prefix = prefix(locator);
    let tokens = session
        .liveliness()
        .declare_subscriber(format!("{prefix}/consumer/*"))
        .history(true)
        .await
        .expect("token subscriber");
    let mut present = 0usize;
    while present < consumers {
        let sample = tokens.recv_async().await.expect("tokens");
        if sample.kind() == zenoh::sample::SampleKind::Put {
            present += 1;
        }
    }
    let publisher = session
        .declare_publisher(format!("{prefix}/events"))
        .congestion_control(CongestionControl::Block)
        .await
        .expect("publisher");
    let started = now_ns();
    let body = crate::stats::payload(payload);
    for seq in 0..events {
        let event = BenchEvent::sent_now(seq, &body);
        publisher.put(encode(&event)).await.expect("put");
    }
    let seconds = (now_ns() - started) as f64 / 1e9;
    while present > 0 {
        match tokio::time::timeout(Duration::from_secs(60), tokens.recv_async()).await {
            Ok(Ok(sample)) if sample.kind() == zenoh::sample::SampleKind::Delete => present -= 1,
            Ok(Ok(_)) => {}
            _ => break,
        }
    }
    report(&[
        ("seconds", format!("{seconds:.6}")),
        ("peak_rss_kib", peak_rss_kib().to_string()),
        ("cpu_us", format!("{:.0}", cpu_us())),
    ]);
    session.close().await.expect("close");
}

/// Consumer: subscribes, says it is there with a token, checks every event.
pub async fn consumer(locator: &str, index: usize, events: u64) {
    let session = open(locator, false).await;
    let prefix = prefix(locator);
    let subscriber = session
        .declare_subscriber(format!("{prefix}/events"))
        .with(zenoh::handlers::FifoChannel::new(4096))
        .await
        .expect("subscriber");
    let token = session
        .liveliness()
        .declare_token(format!("{prefix}/consumer/{index}"))
        .await
        .expect("token");
    consume(events, async || {
        let sample = subscriber.recv_async().await.ok()?;
        Some(decode(&sample.payload().to_bytes()))
    })
    .await;
    drop(token);
    session.close().await.expect("close");
}

/// Responder: a queryable that answers each Ping with its Pong.
pub async fn responder(locator: &str) {
    let session = open(locator, true).await;
    let key = format!("{}/ping", prefix(locator));
    let _queryable = session
        .declare_queryable(key.clone())
        .callback(move |query| {
            let bytes = query.payload().map(|p| p.to_bytes().into_owned());
            let Ping { seq, payload } = decode(&bytes.unwrap_or_default());
            let _ = query
                .reply(key.clone(), encode(&Pong { seq, payload }))
                .wait();
        })
        .await
        .expect("queryable");
    std::future::pending::<()>().await;
}

async fn ask(session: &zenoh::Session, key: &str, seq: u64, body: &[u8]) -> Option<Pong> {
    let ping = Ping {
        seq,
        payload: body.to_vec(),
    };
    let replies = session
        .get(key)
        .payload(encode(&ping))
        .timeout(Duration::from_secs(10))
        .await
        .ok()?;
    let reply = replies.recv_async().await.ok()?;
    let sample = reply.result().ok()?;
    Some(decode(&sample.payload().to_bytes()))
}

/// A session that the responder's queryable answers.
async fn requester(locator: &str) -> (zenoh::Session, String) {
    let session = open(locator, false).await;
    let key = format!("{}/ping", prefix(locator));
    while ask(&session, &key, 0, &[]).await.is_none() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (session, key)
}

/// Sequential gets; latency of each.
pub async fn roundtrip(locator: &str, count: u64, payload: usize) -> (f64, Latency, f64) {
    let (session, key) = requester(locator).await;
    let body = crate::stats::payload(payload);
    let mut samples = Vec::with_capacity(count as usize);
    let cpu = cpu_us();
    let started = now_ns();
    for seq in 0..count {
        let sent = now_ns();
        let pong = ask(&session, &key, seq, &body).await.expect("reply");
        assert_eq!(pong.seq, seq);
        samples.push(now_ns() - sent);
    }
    let rate = count as f64 / ((now_ns() - started) as f64 / 1e9);
    let cpu = (cpu_us() - cpu) / count as f64;
    session.close().await.expect("close");
    (rate, Latency::of(samples), cpu)
}

/// `count` gets from `tasks` concurrent tasks; gets/s.
pub async fn pipelined(locator: &str, count: u64, tasks: usize, payload: usize) -> (f64, f64) {
    let (session, key) = requester(locator).await;
    let per_task = count / tasks as u64;
    let cpu = cpu_us();
    let started = now_ns();
    let workers: Vec<_> = (0..tasks as u64)
        .map(|task| {
            let (session, key) = (session.clone(), key.clone());
            let body = crate::stats::payload(payload);
            tokio::spawn(async move {
                for i in 0..per_task {
                    let seq = task * per_task + i;
                    let pong = ask(&session, &key, seq, &body).await.expect("reply");
                    assert_eq!(pong.seq, seq);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    let done = per_task * tasks as u64;
    let rate = done as f64 / ((now_ns() - started) as f64 / 1e9);
    let cpu = (cpu_us() - cpu) / done as f64;
    session.close().await.expect("close");
    (rate, cpu)
}
