//! The lahja side of each workload, and the consumer check shared with
//! the baseline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lahja::{ConnectionConfig, Endpoint, EndpointOptions};

use crate::events::{BenchEvent, Ping, Pong};
use crate::stats::{Latency, cpu_us, now_ns, peak_rss_kib, report, rss_kib};

/// Where the roles meet: a socket, or a zenoh bus.
#[derive(Clone, Debug)]
pub enum Meet {
    Socket(PathBuf),
    /// A bus, and the locator the server listens on.
    #[cfg(feature = "zenoh")]
    Zenoh {
        bus: String,
        locator: String,
    },
}

impl Meet {
    /// From a role's argument: a socket path, or `zenoh|BUS|LOCATOR`.
    pub fn parse(arg: &str) -> Meet {
        #[cfg(feature = "zenoh")]
        if let Some(rest) = arg.strip_prefix("zenoh|") {
            let (bus, locator) = rest.split_once('|').expect("zenoh|BUS|LOCATOR");
            return Meet::Zenoh {
                bus: bus.to_owned(),
                locator: locator.to_owned(),
            };
        }
        Meet::Socket(PathBuf::from(arg))
    }

    /// The server's endpoint `name`: serving, or on the bus, listening.
    pub async fn serve(&self, name: &str, options: EndpointOptions) -> Endpoint {
        match self {
            Meet::Socket(path) => Endpoint::serve_with(ConnectionConfig::new(name, path), options)
                .await
                .expect("serve"),
            #[cfg(feature = "zenoh")]
            Meet::Zenoh { bus, locator } => {
                let endpoint = Endpoint::run_with(name, options).await.expect("run");
                let config = lahja::zenoh::ZenohConfig::new(bus).listen(locator);
                endpoint.join_zenoh(config).await.expect("join");
                endpoint
            }
        }
    }

    /// A client endpoint `name`, connected to `server`.
    pub async fn connect(&self, name: &str, server: &str, options: EndpointOptions) -> Endpoint {
        let endpoint = Endpoint::run_with(name, options).await.expect("run");
        match self {
            Meet::Socket(path) => endpoint
                .connect_to_endpoints([ConnectionConfig::new(server, path)])
                .await
                .expect("connect"),
            #[cfg(feature = "zenoh")]
            Meet::Zenoh { bus, locator } => {
                let config = lahja::zenoh::ZenohConfig::new(bus).connect(locator);
                endpoint.join_zenoh(config).await.expect("join");
                endpoint
                    .wait_until_connected_to(server)
                    .await
                    .expect("connect");
            }
        }
        endpoint
    }
}

/// Receives `events` events, checking order and count, and reports
/// throughput (from the first event's send time), latency and peak RSS.
pub async fn consume(events: u64, mut next: impl AsyncFnMut() -> Option<BenchEvent>) {
    let mut latencies = Vec::with_capacity(events as usize);
    let mut first_sent = 0;
    let mut in_order = true;
    let mut received = 0;
    while received < events {
        let Some(event) = next().await else { break };
        let now = now_ns();
        if received == 0 {
            first_sent = event.sent_ns;
        }
        in_order &= event.seq == received;
        latencies.push(now.saturating_sub(event.sent_ns));
        received += 1;
    }
    let seconds = (now_ns() - first_sent) as f64 / 1e9;
    let latency = Latency::of(latencies);
    report(&[
        ("received", received.to_string()),
        ("in_order", in_order.to_string()),
        ("events_per_s", format!("{:.0}", received as f64 / seconds)),
        ("p50_us", format!("{:.1}", latency.p50_us)),
        ("p99_us", format!("{:.1}", latency.p99_us)),
        ("peak_rss_kib", peak_rss_kib().to_string()),
        ("cpu_us", format!("{:.0}", cpu_us())),
    ]);
}

/// The options of the benchmark's broadcast endpoints: the defaults, but
/// frames up to 64 MiB (the payload sweep sends 16 MiB events), and
/// `shared_memory_above` as `--shared-memory-above` says.
fn options() -> EndpointOptions {
    let defaults = EndpointOptions::default();
    let shared_memory_above = match std::env::var(crate::SHARED_VAR).as_deref() {
        Ok("off") => None,
        Ok(above) => above.parse().ok().or(defaults.shared_memory_above),
        Err(_) => defaults.shared_memory_above,
    };
    EndpointOptions {
        max_frame_bytes: 64 << 20,
        shared_memory_above,
        ..defaults
    }
}

/// lahja broadcast producer: serves, waits for `consumers` subscribers,
/// broadcasts, then stops (which flushes what is queued). With `tapped`,
/// an observer taps it first and never reads (the `tapped` mode).
pub async fn producer(meet: &Meet, consumers: usize, events: u64, payload: usize, tapped: bool) {
    let endpoint = meet.serve("producer", options()).await;
    let _stalled_tap = match (tapped, meet) {
        (true, Meet::Socket(path)) => {
            let mut observer = lahja::introspect::Observer::connect(path)
                .await
                .expect("observer");
            observer.tap(&[]).await.expect("tap");
            Some(observer)
        }
        _ => None,
    };
    let names: Vec<String> = (0..consumers).map(|i| format!("consumer-{i}")).collect();
    for name in &names {
        endpoint
            .wait_until_endpoint_subscribed_to::<BenchEvent>(name)
            .await
            .expect("consumer");
    }
    let started = now_ns();
    let body = crate::stats::payload(payload);
    for seq in 0..events {
        let event = BenchEvent::sent_now(seq, &body);
        endpoint.broadcast(event).await.expect("broadcast");
    }
    endpoint.stop().await;
    let seconds = (now_ns() - started) as f64 / 1e9;
    report(&[
        ("seconds", format!("{seconds:.6}")),
        ("peak_rss_kib", peak_rss_kib().to_string()),
        ("cpu_us", format!("{:.0}", cpu_us())),
    ]);
}

/// lahja broadcast consumer: streams every event.
pub async fn consumer(meet: &Meet, index: usize, events: u64) {
    let name = format!("consumer-{index}");
    let endpoint = meet.connect(&name, "producer", options()).await;
    let mut stream = endpoint.stream::<BenchEvent>();
    consume(events, async || stream.next().await).await;
}

/// lahja responder: answers every Ping until the orchestrator kills it.
/// (Waiting for the requester to come and go would race with it.)
pub async fn responder(meet: &Meet) {
    let endpoint = meet.serve("responder", EndpointOptions::default()).await;
    let _answers =
        endpoint.handle_requests(|Ping { seq, payload }| async move { Pong { seq, payload } });
    std::future::pending::<()>().await;
}

async fn requester(meet: &Meet) -> Endpoint {
    let endpoint = meet
        .connect("requester", "responder", EndpointOptions::default())
        .await;
    endpoint
        .wait_until_endpoint_subscribed_to::<Ping>("responder")
        .await
        .expect("responder");
    endpoint
}

/// Sequential typed requests; their rate, the latency of each, and the
/// CPU time per request.
pub async fn roundtrip(meet: &Meet, count: u64, payload: usize) -> (f64, Latency, f64) {
    let endpoint = requester(meet).await;
    let body = crate::stats::payload(payload);
    let mut samples = Vec::with_capacity(count as usize);
    let cpu = cpu_us();
    let started = now_ns();
    for seq in 0..count {
        let sent = now_ns();
        let pong = endpoint
            .request(Ping {
                seq,
                payload: body.clone(),
            })
            .await
            .expect("request");
        assert_eq!(pong.seq, seq);
        samples.push(now_ns() - sent);
    }
    let rate = count as f64 / ((now_ns() - started) as f64 / 1e9);
    let cpu = (cpu_us() - cpu) / count as f64;
    endpoint.stop().await;
    (rate, Latency::of(samples), cpu)
}

/// `count` requests from `tasks` concurrent tasks; requests/s and CPU
/// time per request.
pub async fn pipelined(meet: &Meet, count: u64, tasks: usize, payload: usize) -> (f64, f64) {
    let endpoint = requester(meet).await;
    let cpu = cpu_us();
    let started = now_ns();
    let per_task = count / tasks as u64;
    let workers: Vec<_> = (0..tasks as u64)
        .map(|task| {
            let endpoint = endpoint.clone();
            let body = crate::stats::payload(payload);
            tokio::spawn(async move {
                for i in 0..per_task {
                    let seq = task * per_task + i;
                    let pong = endpoint
                        .request(Ping {
                            seq,
                            payload: body.clone(),
                        })
                        .await
                        .expect("request");
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
    endpoint.stop().await;
    (rate, cpu)
}

/// Stalled consumer, producer side: broadcasts for `seconds` to a consumer
/// that never reads, and reports whether it ended up blocked (not dropping)
/// and its RSS before and after.
pub async fn stall_producer(path: &Path, seconds: f64, payload: usize, options: EndpointOptions) {
    let endpoint = Endpoint::serve_with(ConnectionConfig::new("producer", path), options)
        .await
        .expect("serve");
    endpoint
        .wait_until_endpoint_subscribed_to::<BenchEvent>("stalled")
        .await
        .expect("consumer");
    let rss_before = rss_kib();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
    let body = crate::stats::payload(payload);
    let mut sent = 0u64;
    let mut blocked = false;
    while tokio::time::Instant::now() < deadline {
        let event = BenchEvent::sent_now(sent, &body);
        match tokio::time::timeout_at(deadline, endpoint.broadcast(event)).await {
            Ok(result) => {
                result.expect("broadcast");
                sent += 1;
            }
            Err(_) => blocked = true,
        }
    }
    report(&[
        ("sent", sent.to_string()),
        ("blocked", blocked.to_string()),
        ("rss_before_kib", rss_before.to_string()),
        ("rss_after_kib", rss_kib().to_string()),
    ]);
    // Leave without flushing to a consumer that will never read.
    std::process::exit(0);
}

/// Stalled consumer, consumer side: subscribes, never reads, and reports
/// its RSS once at the start and once when told (a line on stdin).
pub async fn stall_consumer(path: &Path, capacity: usize) {
    let options = EndpointOptions {
        stream_capacity: capacity,
        ..Default::default()
    };
    let endpoint = Endpoint::run_with("stalled", options).await.expect("run");
    let _never_read = endpoint.stream::<BenchEvent>();
    endpoint
        .connect_to_endpoints([ConnectionConfig::new("producer", path)])
        .await
        .expect("connect");
    report(&[("rss_kib", rss_kib().to_string())]);
    let mut line = String::new();
    let _ = tokio::io::AsyncBufReadExt::read_line(
        &mut tokio::io::BufReader::new(tokio::io::stdin()),
        &mut line,
    )
    .await;
    report(&[("rss_kib", rss_kib().to_string())]);
}

/// One endpoint of a mesh of `size`: serves `mesh-INDEX` in `folder`,
/// connects to every endpoint with a lower index (so each pair connects
/// once), waits until it is connected to all the others, and reports when
/// that was (on the shared clock), its RSS and its open descriptors.
pub async fn mesh(folder: &Path, index: usize, size: usize) {
    let name = |i: usize| format!("mesh-{i}");
    let config =
        |i: usize| ConnectionConfig::new(name(i), folder.join(format!("{}.sock", name(i))));
    let endpoint = Endpoint::serve_with(config(index), EndpointOptions::default())
        .await
        .expect("serve");
    endpoint
        .connect_to_endpoints((0..index).map(config))
        .await
        .expect("connect");
    for other in (0..size).filter(|&other| other != index) {
        endpoint
            .wait_until_connected_to(&name(other))
            .await
            .expect("connected");
    }
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |fds| fds.count());
    report(&[
        ("connected_ns", now_ns().to_string()),
        ("rss_kib", rss_kib().to_string()),
        ("fds", fds.to_string()),
    ]);
    // Stay until told, so every endpoint sees every other one connected.
    let mut line = String::new();
    let _ = tokio::io::AsyncBufReadExt::read_line(
        &mut tokio::io::BufReader::new(tokio::io::stdin()),
        &mut line,
    )
    .await;
    endpoint.stop().await;
}
