//! Large bodies in shared memory across real processes (see
//! `docs/PROTOCOL.md`, "Bodies in shared memory"): they arrive intact and
//! in order, a peer that never releases them holds back its sender, peers
//! that lie about them lose only their own connection, and a process
//! killed mid-stream leaks no shared memory in the one that survives.

use crate::support;

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use lahja::{BroadcastConfig, Endpoint, EndpointOptions, Error, Event};
use lahja_workspace::events::{Blob, Double, Doubled};
use rustix::fs::{MemfdFlags, SealFlags};
use support::{Peer, TempDir, raw, unique, within};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::UnixStream;

const MIB: usize = 1 << 20;
const SHARED: u8 = 0x02;
const RELEASED: u8 = 10;
/// The `lahja-peer` option that turns the path on (it is off by default).
const ON: &str = "shared=262144";

/// The seals lahja puts on a body.
fn seals() -> SealFlags {
    SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL
}

/// A memfd holding `bytes`, sealed with `seals`.
fn memfd(bytes: &[u8], seals: SealFlags) -> OwnedFd {
    let fd = rustix::fs::memfd_create("hostile", MemfdFlags::ALLOW_SEALING).unwrap();
    let mut rest = bytes;
    while !rest.is_empty() {
        rest = &rest[rustix::io::write(&fd, rest).unwrap()..];
    }
    rustix::fs::fcntl_add_seals(&fd, seals).unwrap();
    fd
}

/// The bincode body of a `Blob` of `bytes`.
fn blob_body(bytes: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    raw::varint(&mut body, bytes.len() as u64);
    body.extend_from_slice(bytes);
    body
}

/// A frame standing for a body of `len` bytes in shared memory.
fn stand_in(kind: u8, flags: u8, event_id: u64, len: u64) -> Vec<u8> {
    raw::frame(kind, flags, event_id, 0, &len.to_le_bytes())
}

/// Writes `bytes` with `fds` attached (SCM_RIGHTS).
async fn send_with(stream: &UnixStream, bytes: &[u8], fds: &[BorrowedFd<'_>]) {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut space =
        vec![std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    assert!(control.push(SendAncillaryMessage::ScmRights(fds)));
    let iov = [std::io::IoSlice::new(bytes)];
    let sent = loop {
        stream.writable().await.unwrap();
        let sent = stream.try_io(Interest::WRITABLE, || {
            Ok(rustix::net::sendmsg(
                stream,
                &iov,
                &mut control,
                SendFlags::NOSIGNAL,
            )?)
        });
        match sent {
            Ok(sent) => break sent,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => panic!("sendmsg: {error}"),
        }
    };
    assert_eq!(sent, bytes.len(), "a small write went in part");
}

/// Reads frames by hand, keeping the descriptors that come with them.
struct RawReader {
    stream: UnixStream,
    bytes: Vec<u8>,
    fds: VecDeque<OwnedFd>,
}

impl RawReader {
    fn new(stream: UnixStream) -> Self {
        RawReader {
            stream,
            bytes: Vec::new(),
            fds: VecDeque::new(),
        }
    }

    /// The next frame (kind, flags, event id, body), `None` at the end.
    async fn frame(&mut self) -> Option<(u8, u8, u64, Vec<u8>)> {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
        loop {
            if let Some(len) = self.bytes.first_chunk::<4>() {
                let len = u32::from_le_bytes(*len) as usize;
                if self.bytes.len() >= 4 + len {
                    let frame: Vec<u8> = self.bytes.drain(..4 + len).collect();
                    let id = u64::from_le_bytes(frame[6..14].try_into().unwrap());
                    return Some((frame[4], frame[5], id, frame[22..].to_vec()));
                }
            }
            self.stream.readable().await.unwrap();
            let mut chunk = vec![0; 64 * 1024];
            let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(8))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let mut iov = [std::io::IoSliceMut::new(&mut chunk)];
            // Through `try_io`, so that tokio forgets a readiness that is
            // gone (else `readable` would be ready for ever, and spin).
            let received = self.stream.try_io(Interest::READABLE, || {
                Ok(rustix::net::recvmsg(
                    &self.stream,
                    &mut iov,
                    &mut control,
                    RecvFlags::empty(),
                )?)
            });
            match received {
                Ok(message) if message.bytes == 0 => return None,
                Ok(message) => {
                    for ancillary in control.drain() {
                        if let RecvAncillaryMessage::ScmRights(fds) = ancillary {
                            self.fds.extend(fds);
                        }
                    }
                    self.bytes.extend_from_slice(&chunk[..message.bytes]);
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return None,
            }
        }
    }

    /// The next frame that is not a subscription or groups announcement.
    async fn next_event(&mut self) -> (u8, u8, u64, Vec<u8>) {
        within("a frame from the victim", async {
            loop {
                let frame = self
                    .frame()
                    .await
                    .expect("the victim closed the connection");
                if frame.0 != raw::SUBSCRIPTIONS && frame.0 != 8 {
                    return frame;
                }
            }
        })
        .await
    }

    /// Waits for the other side to close (whatever it sends first).
    async fn closed(&mut self) {
        within("the connection to close", async {
            while self.frame().await.is_some() {}
        })
        .await
    }
}

/// A raw connection to `path` as `name`, subscribed to `subscriptions`,
/// past the handshake.
async fn handshaken(path: &std::path::Path, name: &str, subscriptions: &[u64]) -> RawReader {
    let mut stream = UnixStream::connect(path).await.unwrap();
    stream
        .write_all(&raw::hello(name, &[], subscriptions, raw::VERSION))
        .await
        .unwrap();
    let mut reader = RawReader::new(stream);
    let (kind, ..) = within("the victim's hello", reader.frame())
        .await
        .expect("a hello");
    assert_eq!(kind, raw::HELLO);
    reader
}

/// The digests `peer` prints for the next `count` blobs, in order.
async fn digests(peer: &mut Peer, count: u64) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..count {
        seen.push(peer.line("digest ").await);
    }
    seen
}

/// What `broadcast-blobs COUNT LEN` sends, as `digest` lines.
fn expected_digests(count: u64, len: usize) -> Vec<String> {
    (0..count)
        .map(|seed| {
            let bytes = lahja_workspace::noise(len, seed);
            format!("digest {len} {}", lahja_workspace::digest(&bytes))
        })
        .collect()
}

/// One process broadcasts 1 MiB events to another process and to this
/// one: both get every byte, in order, through one memfd per event; a
/// body just over the frame limit is refused on this path too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_events_cross_processes_intact_and_in_order() {
    let dir = TempDir::new();
    let mut producer = Peer::serving_with(&unique("producer"), &dir, ON).await;
    let mut consumer = Peer::running(&unique("consumer")).await;
    let path = dir.socket(&producer.name);
    consumer
        .ok(&format!("connect {} {}", producer.name, path.display()))
        .await;
    consumer.ok("subscribe-blob-digest").await;
    let options = EndpointOptions {
        shared_memory_above: Some(256 * 1024),
        ..Default::default()
    };
    let here = Endpoint::run_with(unique("here"), options).await.unwrap();
    here.connect_to_endpoints([dir.config(&producer.name)])
        .await
        .unwrap();
    let mut blobs = here.stream::<Blob>();
    for who in [&consumer.name, here.name()] {
        producer.ok(&format!("wait-subscribed {who} blob")).await;
    }

    let count = 40;
    producer
        .send(&format!("broadcast-blobs {count} {MIB}"))
        .await;
    let mut received = Vec::new();
    for _ in 0..count {
        let Blob(bytes) = within("a blob", blobs.next()).await.unwrap();
        received.push(format!(
            "digest {} {}",
            bytes.len(),
            lahja_workspace::digest(&bytes)
        ));
    }
    let expected = expected_digests(count, MIB);
    assert_eq!(received, expected, "this process");
    assert_eq!(
        digests(&mut consumer, count).await,
        expected,
        "the other process"
    );
    assert_eq!(producer.line("ok").await, "ok ");

    // The frame limit holds on this path too: the receiver decodes into
    // its own memory. A body of exactly the limit goes; one byte more not.
    producer.ok("subscribe-blob").await;
    producer
        .ok(&format!("wait-connected {}", here.name()))
        .await;
    support::subscribed::<Blob>(&here, &producer.name).await;
    let max = EndpointOptions::default().max_frame_bytes;
    let fits = max - 18 - 5; // the header, and the length's varint
    let to = BroadcastConfig::to(producer.name.clone());
    here.broadcast_with(Blob(vec![1; fits]), to.clone())
        .await
        .unwrap();
    assert_eq!(producer.line("blob ").await, format!("blob {fits}"));
    let over = here.broadcast_with(Blob(vec![1; fits + 1]), to).await;
    assert!(matches!(over, Err(Error::FrameTooLarge { .. })), "{over:?}");
    producer.assert_alive();
}

/// By hand, as a receiver: a large event comes as a flagged frame with a
/// sealed memfd of exactly its body. Until the receiver releases it, the
/// body counts against the sender's queue for that peer (so a peer that
/// never releases holds back its sender); a release of nothing is a lie
/// that closes the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_counts_against_the_queue_until_released() {
    let dir = TempDir::new();
    let mut victim = Peer::victim_serving(&unique("victim"), &dir, ON).await;
    let path = dir.socket(&victim.name);
    let receiver = unique("receiver");
    let mut reader = handshaken(&path, &receiver, &[Blob::ID.as_u64()]).await;
    victim.ok(&format!("wait-subscribed {receiver} blob")).await;

    victim.ok(&format!("broadcast-blob {MIB}")).await;
    let (kind, flags, id, body) = reader.next_event().await;
    assert_eq!((kind, flags, id), (raw::EVENT, SHARED, Blob::ID.as_u64()));
    let expected = blob_body(&lahja_workspace::noise(MIB, 7));
    assert_eq!(body, (expected.len() as u64).to_le_bytes());
    let fd = reader.fds.pop_front().expect("the body's descriptor");
    assert!(reader.fds.is_empty());
    assert!(rustix::fs::fcntl_get_seals(&fd).unwrap().contains(seals()));
    let mut held = vec![0; expected.len() + 1];
    let read = rustix::io::pread(&fd, &mut held, 0).unwrap();
    assert_eq!(read, expected.len(), "the memfd's size");
    assert!(held[..read] == expected[..], "the memfd's bytes");

    // Not released: the victim's queue for us is full (1 MiB is over its
    // 256 KiB bound), so a broadcast that does not wait is refused...
    let refused = victim.reply(&format!("blob-nowait {MIB}")).await;
    assert!(refused.contains("QueueFull"), "{refused}");
    // ...until we release it.
    reader
        .stream
        .write_all(&raw::frame(RELEASED, 0, 0, 0, &[]))
        .await
        .unwrap();
    within("the release to free the queue", async {
        while !victim
            .reply(&format!("blob-nowait {MIB}"))
            .await
            .starts_with("ok")
        {}
    })
    .await;
    let (_, flags, ..) = reader.next_event().await;
    assert_eq!(flags, SHARED);
    assert_eq!(reader.fds.len(), 1);

    // One release for the second body, and one for nothing: a lie.
    for _ in 0..2 {
        reader
            .stream
            .write_all(&raw::frame(RELEASED, 0, 0, 0, &[]))
            .await
            .unwrap();
    }
    reader.closed().await;
    victim.assert_alive();
}

/// By hand, as a sender: every lie about a body in shared memory closes
/// that one connection, and the victim (which aborts on any panic) goes
/// on; an honest body from the same kind of peer is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lies_about_shared_bodies_close_only_their_connection() {
    let dir = TempDir::new();
    let mut victim = Peer::victim_serving(&unique("victim"), &dir, "").await;
    victim.ok("subscribe-blob").await;
    victim.ok("answer").await;
    let path = dir.socket(&victim.name);
    let blob = Blob::ID.as_u64();
    let body = blob_body(&[5; 4096]);
    let len = body.len() as u64;
    let honest = || memfd(&body, seals());
    let (pipe, _writer) = std::io::pipe().unwrap();
    let pipe = OwnedFd::from(pipe);
    let unsealed = memfd(&body, SealFlags::empty());
    let growable = memfd(&body, SealFlags::WRITE | SealFlags::SHRINK);
    let writable = memfd(&body, SealFlags::SHRINK | SealFlags::GROW);
    let short = memfd(&body[..100], seals());
    let sealed = honest();
    let many: Vec<BorrowedFd<'_>> = vec![sealed.as_fd(); 65];

    let attacks: Vec<(&str, Vec<u8>, Vec<BorrowedFd<'_>>)> = vec![
        (
            "no descriptor",
            stand_in(raw::EVENT, SHARED, blob, len),
            vec![],
        ),
        (
            "a pipe",
            stand_in(raw::EVENT, SHARED, blob, len),
            vec![pipe.as_fd()],
        ),
        (
            "an unsealed memfd",
            stand_in(raw::EVENT, SHARED, blob, len),
            vec![unsealed.as_fd()],
        ),
        (
            "a memfd that may grow",
            stand_in(raw::EVENT, SHARED, blob, len),
            vec![growable.as_fd()],
        ),
        (
            "a writable memfd",
            stand_in(raw::EVENT, SHARED, blob, len),
            vec![writable.as_fd()],
        ),
        (
            "a shorter memfd",
            stand_in(raw::EVENT, SHARED, blob, len),
            vec![short.as_fd()],
        ),
        (
            "a longer claim",
            stand_in(raw::EVENT, SHARED, blob, len + 1),
            vec![sealed.as_fd()],
        ),
        (
            "a claim of 2^62 bytes",
            stand_in(raw::EVENT, SHARED, blob, 1 << 62),
            vec![sealed.as_fd()],
        ),
        (
            "a claim over the frame limit",
            stand_in(raw::EVENT, SHARED, blob, 16 << 20),
            vec![sealed.as_fd()],
        ),
        (
            "a 4-byte length",
            raw::frame(raw::EVENT, SHARED, blob, 0, &[1, 0, 0, 0]),
            vec![sealed.as_fd()],
        ),
        (
            "65 descriptors",
            stand_in(raw::EVENT, SHARED, blob, len),
            many.clone(),
        ),
        (
            "compressed and shared",
            stand_in(raw::EVENT, SHARED | 1, blob, len),
            vec![sealed.as_fd()],
        ),
        (
            "shared subscriptions",
            stand_in(raw::SUBSCRIPTIONS, SHARED, 0, len),
            vec![sealed.as_fd()],
        ),
        (
            "a release of nothing",
            raw::frame(RELEASED, 0, 0, 0, &[]),
            vec![],
        ),
    ];
    for (attack, frame, fds) in attacks {
        let reader = handshaken(&path, &unique("liar"), &[]).await;
        let mut reader = reader;
        if fds.is_empty() {
            reader.stream.write_all(&frame).await.unwrap();
        } else {
            send_with(&reader.stream, &frame, &fds).await;
        }
        within(attack, reader.closed()).await;
        victim.assert_alive();
    }

    // The same, honest: delivered, and released.
    let mut reader = handshaken(&path, &unique("honest"), &[]).await;
    let fd = honest();
    send_with(
        &reader.stream,
        &stand_in(raw::EVENT, SHARED, blob, len),
        &[fd.as_fd()],
    )
    .await;
    assert_eq!(victim.line("blob ").await, "blob 4096");
    let (kind, ..) = reader.next_event().await;
    assert_eq!(kind, RELEASED);
    still_answers(&mut victim, &dir).await;
}

/// The victim answers an ordinary client's request.
async fn still_answers(victim: &mut Peer, dir: &TempDir) {
    let client = Endpoint::run(unique("client")).await.unwrap();
    client
        .connect_to_endpoints([dir.config(&victim.name)])
        .await
        .unwrap();
    let to = BroadcastConfig::to(victim.name.clone());
    let answer = within("the victim's answer", client.request_with(Double(21), to)).await;
    assert_eq!(answer.unwrap(), Doubled(42));
    victim.assert_alive();
}

/// SIGKILL on either side, mid-stream: the process that survives holds no
/// lahja memfd and no mapping of one once the peer is gone (the kernel
/// frees a dead process's bodies with its descriptors), and its other
/// peers get every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_mid_stream_leaks_no_shared_memory() {
    let dir = TempDir::new();
    let none_held = |reply: &str| reply.split(' ').skip(1).all(|n| n == "0");

    // The receiver dies: the sender frees what it held for it, and its
    // other receiver gets every event.
    let mut sender = Peer::serving_with(&unique("sender"), &dir, ON).await;
    let path = dir.socket(&sender.name);
    let mut doomed = Peer::running(&unique("doomed")).await;
    let mut survivor = Peer::running(&unique("survivor")).await;
    for receiver in [&mut doomed, &mut survivor] {
        receiver
            .ok(&format!("connect {} {}", sender.name, path.display()))
            .await;
        receiver.ok("subscribe-blob-digest").await;
        sender
            .ok(&format!("wait-subscribed {} blob", receiver.name))
            .await;
    }
    let count = 100;
    sender.send(&format!("broadcast-blobs {count} {MIB}")).await;
    doomed.line("digest ").await;
    doomed.kill().await;
    assert_eq!(
        digests(&mut survivor, count).await,
        expected_digests(count, MIB)
    );
    assert_eq!(sender.line("ok").await, "ok ");
    sender.until("shm-held", none_held).await;

    // The sender dies: its receiver frees what came from it.
    let mut receiver = Peer::running(&unique("receiver")).await;
    receiver
        .ok(&format!("connect {} {}", sender.name, path.display()))
        .await;
    receiver.ok("subscribe-blob-digest").await;
    sender
        .ok(&format!("wait-subscribed {} blob", receiver.name))
        .await;
    sender.send(&format!("broadcast-blobs 100000 {MIB}")).await;
    receiver.line("digest ").await;
    sender.kill().await;
    receiver
        .until("connected", |names| names.split(',').count() == 1)
        .await;
    receiver.until("shm-held", none_held).await;
    receiver.assert_alive();
    survivor.assert_alive();
}
