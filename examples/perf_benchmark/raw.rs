//! The baseline: the same workloads over raw tokio Unix sockets with the
//! same framing (u32 length, 18-byte header, bincode body) but no lahja:
//! no routing, no registry, no subscriptions.

use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use crate::events::{BenchEvent, Ping, Pong};
use crate::stats::{Latency, cpu_us, now_ns, peak_rss_kib, report};

const HEADER: usize = 18;

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// Appends one frame carrying `value`.
pub fn append_frame<T: serde::Serialize>(out: &mut Vec<u8>, kind: u8, request_id: u64, value: &T) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    out.push(0);
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    bincode::serde::encode_into_std_write(value, out, bincode_config()).expect("encode");
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Reads one frame into `buf`; returns its request id, `None` at EOF.
async fn read_frame<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> Option<u64> {
    let mut len = [0; 4];
    reader.read_exact(&mut len).await.ok()?;
    buf.resize(u32::from_le_bytes(len) as usize, 0);
    reader.read_exact(buf).await.ok()?;
    Some(u64::from_le_bytes(buf[10..18].try_into().unwrap()))
}

fn decode<T: serde::de::DeserializeOwned>(frame: &[u8]) -> T {
    bincode::serde::decode_from_slice(&frame[HEADER..], bincode_config())
        .expect("decode")
        .0
}

pub async fn connect(path: &Path) -> UnixStream {
    loop {
        match UnixStream::connect(path).await {
            Ok(stream) => return stream,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
        }
    }
}

/// The shapes of raw producer: the benchmark keeps the faster one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// A bounded queue per consumer, drained by a writer task that flushes
    /// when its queue runs empty.
    Queued,
    /// One 64 KiB buffered writer per consumer, written in place by the
    /// producer: no task, no queue (a full buffer writes to the socket).
    Direct,
}

impl Shape {
    pub const ALL: [Shape; 2] = [Shape::Queued, Shape::Direct];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Queued => "raw-queued",
            Shape::Direct => "raw-direct",
        }
    }
}

/// Raw broadcast producer of `shape`: encodes each event once.
pub async fn producer(path: &Path, shape: Shape, consumers: usize, events: u64, payload: usize) {
    match shape {
        Shape::Queued => queued_producer(path, consumers, events, payload).await,
        Shape::Direct => direct_producer(path, consumers, events, payload).await,
    }
}

async fn direct_producer(path: &Path, consumers: usize, events: u64, payload: usize) {
    let listener = UnixListener::bind(path).expect("bind");
    let mut writers = Vec::new();
    for _ in 0..consumers {
        let (stream, _) = listener.accept().await.expect("accept");
        writers.push(BufWriter::with_capacity(64 * 1024, stream));
    }
    let started = now_ns();
    let body = crate::stats::payload(payload);
    let mut frame = Vec::with_capacity(payload + 64);
    for seq in 0..events {
        let event = BenchEvent::sent_now(seq, &body);
        frame.clear();
        append_frame(&mut frame, 4, 0, &event);
        for writer in &mut writers {
            writer.write_all(&frame).await.expect("write");
        }
    }
    for writer in &mut writers {
        writer.flush().await.expect("flush");
    }
    let seconds = (now_ns() - started) as f64 / 1e9;
    report(&[
        ("seconds", format!("{seconds:.6}")),
        ("peak_rss_kib", peak_rss_kib().to_string()),
        ("cpu_us", format!("{:.0}", cpu_us())),
    ]);
}

async fn queued_producer(path: &Path, consumers: usize, events: u64, payload: usize) {
    let listener = UnixListener::bind(path).expect("bind");
    let mut queues = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..consumers {
        let (stream, _) = listener.accept().await.expect("accept");
        let (tx, mut rx) = mpsc::channel::<Arc<Vec<u8>>>(1024);
        queues.push(tx);
        writers.push(tokio::spawn(async move {
            let mut out = BufWriter::with_capacity(64 * 1024, stream);
            while let Some(frame) = rx.recv().await {
                out.write_all(&frame).await.expect("write");
                while let Ok(frame) = rx.try_recv() {
                    out.write_all(&frame).await.expect("write");
                }
                out.flush().await.expect("flush");
            }
        }));
    }
    let started = now_ns();
    let body = crate::stats::payload(payload);
    for seq in 0..events {
        let event = BenchEvent::sent_now(seq, &body);
        let mut frame = Vec::with_capacity(payload + 64);
        append_frame(&mut frame, 4, 0, &event);
        let frame = Arc::new(frame);
        for queue in &queues {
            queue.send(frame.clone()).await.expect("queue");
        }
    }
    drop(queues);
    for writer in writers {
        writer.await.expect("writer");
    }
    let seconds = (now_ns() - started) as f64 / 1e9;
    report(&[
        ("seconds", format!("{seconds:.6}")),
        ("peak_rss_kib", peak_rss_kib().to_string()),
        ("cpu_us", format!("{:.0}", cpu_us())),
    ]);
}

/// Raw broadcast consumer: reads, decodes and checks every event.
pub async fn consumer(path: &Path, events: u64) {
    let stream = connect(path).await;
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    crate::roles::consume(events, async || {
        let mut buf = Vec::new();
        read_frame(&mut reader, &mut buf).await?;
        Some(decode::<BenchEvent>(&buf))
    })
    .await;
}

/// Raw responder: answers each Ping with a Pong, flushing only when no
/// further request is already buffered (so pipelined requests batch).
pub async fn responder(path: &Path) {
    let listener = UnixListener::bind(path).expect("bind");
    let (stream, _) = listener.accept().await.expect("accept");
    let (read, write) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let mut writer = BufWriter::with_capacity(64 * 1024, write);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while let Some(request_id) = read_frame(&mut reader, &mut buf).await {
        let ping: Ping = decode(&buf);
        out.clear();
        append_frame(
            &mut out,
            6,
            request_id,
            &Pong {
                seq: ping.seq,
                payload: ping.payload,
            },
        );
        writer.write_all(&out).await.expect("write");
        if reader.buffer().is_empty() {
            writer.flush().await.expect("flush");
        }
    }
}

/// Sequential ping-pong; returns the rate, the latency of each round trip
/// and the CPU time per round trip.
pub async fn roundtrip(path: &Path, count: u64, payload: usize) -> (f64, Latency, f64) {
    let stream = connect(path).await;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut samples = Vec::with_capacity(count as usize);
    let body = crate::stats::payload(payload);
    let cpu = cpu_us();
    let started = now_ns();
    for seq in 0..count {
        let sent = now_ns();
        out.clear();
        append_frame(
            &mut out,
            5,
            seq,
            &Ping {
                seq,
                payload: body.clone(),
            },
        );
        write.write_all(&out).await.expect("write");
        read_frame(&mut reader, &mut buf).await.expect("pong");
        let pong: Pong = decode(&buf);
        assert_eq!(pong.seq, seq);
        samples.push(now_ns() - sent);
    }
    let seconds = (now_ns() - started) as f64 / 1e9;
    let cpu = (cpu_us() - cpu) / count as f64;
    (count as f64 / seconds, Latency::of(samples), cpu)
}

/// `count` requests with up to `in_flight` outstanding; returns requests/s
/// and the CPU time per request.
pub async fn pipelined(path: &Path, count: u64, in_flight: usize, payload: usize) -> (f64, f64) {
    let stream = connect(path).await;
    let (read, write) = stream.into_split();
    let window = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let cpu = cpu_us();
    let started = now_ns();
    let sender = tokio::spawn({
        let window = window.clone();
        async move {
            let mut writer = BufWriter::with_capacity(64 * 1024, write);
            let body = crate::stats::payload(payload);
            let mut out = Vec::new();
            for seq in 0..count {
                let permit = match window.try_acquire() {
                    Ok(permit) => permit,
                    Err(_) => {
                        // About to wait: send what is buffered first.
                        writer.flush().await.expect("flush");
                        window.acquire().await.expect("window")
                    }
                };
                permit.forget();
                out.clear();
                append_frame(
                    &mut out,
                    5,
                    seq,
                    &Ping {
                        seq,
                        payload: body.clone(),
                    },
                );
                writer.write_all(&out).await.expect("write");
            }
            writer.flush().await.expect("flush");
        }
    });
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let mut buf = Vec::new();
    for _ in 0..count {
        read_frame(&mut reader, &mut buf).await.expect("pong");
        let _pong: Pong = decode(&buf);
        window.add_permits(1);
    }
    sender.await.expect("sender");
    let rate = count as f64 / ((now_ns() - started) as f64 / 1e9);
    (rate, (cpu_us() - cpu) / count as f64)
}
