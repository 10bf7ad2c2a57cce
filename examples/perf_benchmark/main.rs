//! lahja's throughput and latency, each next to a baseline measured in the
//! same run: the same workload over raw tokio Unix sockets with the same
//! framing and bincode bodies (or, for `local`, `tokio::sync::broadcast`).
//! With `--transport zenoh` (feature `zenoh`), lahja runs over zenoh on
//! 127.0.0.1 and the baseline is raw zenoh: a publisher with
//! `CongestionControl::Block` and subscribers, `get` against a queryable.
//!
//! ```sh
//! cargo run --release --example perf_benchmark -- [--mode broadcast|request|roundtrip|local|stalled|tapped|all]
//!     [--transport socket|zenoh] [--consumers N] [--events N] [--payload-bytes N] [--json]
//! ```
//!
//! Every role (producer, consumers, responder) is a process of its own:
//! this program re-executed with `--role`. Consumers check that they got
//! every event in order; the run fails if one did not.

mod local;
mod raw;
mod roles;
mod stats;
#[cfg(feature = "zenoh")]
mod zraw;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use stats::parse_report;

mod events {
    use lahja::Event;
    use serde::{Deserialize, Serialize};

    /// A broadcast event: its sequence number, its send time on the
    /// shared monotonic clock, and a payload.
    #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    #[event(name = "bench.Event")]
    pub struct BenchEvent {
        pub seq: u64,
        pub sent_ns: u64,
        pub payload: Vec<u8>,
    }

    impl BenchEvent {
        /// Event `seq`, stamped with the send time now.
        pub fn sent_now(seq: u64, payload: &[u8]) -> BenchEvent {
            BenchEvent {
                seq,
                sent_ns: crate::stats::now_ns(),
                payload: payload.to_vec(),
            }
        }
    }

    #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    #[event(name = "bench.Ping")]
    #[request(response = Pong)]
    pub struct Ping {
        pub seq: u64,
        pub payload: Vec<u8>,
    }

    #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    #[event(name = "bench.Pong")]
    pub struct Pong {
        pub seq: u64,
        pub payload: Vec<u8>,
    }
}

const IN_FLIGHT: usize = 64;

struct Options {
    mode: String,
    zenoh: bool,
    consumers: Option<usize>,
    events: Option<u64>,
    payload: usize,
    json: bool,
}

fn parse_options(args: &[String]) -> Options {
    let mut options = Options {
        mode: "all".into(),
        zenoh: false,
        consumers: None,
        events: None,
        payload: 64,
        json: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
                .clone()
        };
        match arg.as_str() {
            "--mode" => options.mode = value(),
            "--transport" => match value().as_str() {
                "socket" => options.zenoh = false,
                "zenoh" if cfg!(feature = "zenoh") => options.zenoh = true,
                "zenoh" => usage("--transport zenoh needs the `zenoh` feature"),
                other => usage(&format!("unknown transport {other}")),
            },
            "--consumers" => {
                options.consumers = Some(value().parse().unwrap_or_else(|_| usage("--consumers N")))
            }
            "--events" => {
                options.events = Some(value().parse().unwrap_or_else(|_| usage("--events N")))
            }
            "--payload-bytes" => {
                options.payload = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--payload-bytes N"))
            }
            "--json" => options.json = true,
            other => usage(&format!("unknown option {other}")),
        }
    }
    options
}

fn usage(problem: &str) -> ! {
    eprintln!("perf_benchmark: {problem}");
    eprintln!(
        "usage: perf_benchmark [--mode broadcast|request|roundtrip|local|stalled|tapped|all] \
         [--transport socket|zenoh] [--consumers N] [--events N] [--payload-bytes N] [--json]"
    );
    std::process::exit(2)
}

/// One line of the results.
struct Row {
    mode: String,
    metric: &'static str,
    lahja: f64,
    baseline: Option<f64>,
    baseline_name: &'static str,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--role") {
        run_role(&args[1..]).await;
        return;
    }
    let options = parse_options(&args);
    let folder = std::env::temp_dir().join(format!("lahja-bench-{}", std::process::id()));
    std::fs::create_dir_all(&folder).expect("temp folder");
    let mut bench = Bench {
        folder: folder.clone(),
        next_socket: 0,
        payload: options.payload,
        zenoh: options.zenoh,
        rows: Vec::new(),
        failures: Vec::new(),
    };
    let modes: &[&str] = match options.mode.as_str() {
        // A stalled socket and a local bus do not depend on the transport.
        "all" if options.zenoh => &["broadcast", "roundtrip", "request"],
        "all" => &["broadcast", "roundtrip", "request", "local", "stalled"],
        "broadcast" => &["broadcast"],
        "roundtrip" => &["roundtrip"],
        "request" => &["request"],
        "local" => &["local"],
        "stalled" => &["stalled"],
        "tapped" => &["tapped"],
        other => usage(&format!("unknown mode {other}")),
    };
    for mode in modes {
        match *mode {
            "broadcast" => {
                let events = options.events.unwrap_or(1_000_000);
                let fan_outs = options.consumers.map_or(vec![1, 4], |n| vec![n]);
                for consumers in fan_outs {
                    bench.broadcast(consumers, events).await;
                }
            }
            "roundtrip" => bench.roundtrip(options.events.unwrap_or(20_000)).await,
            "request" => bench.request(options.events.unwrap_or(200_000)).await,
            "local" => bench.local(options.events.unwrap_or(1_000_000)).await,
            "stalled" => bench.stalled().await,
            "tapped" => bench.tapped(options.events.unwrap_or(1_000_000)).await,
            _ => unreachable!(),
        }
    }
    let _ = std::fs::remove_dir_all(&folder);
    print_rows(&bench.rows, options.json);
    if !bench.failures.is_empty() {
        for failure in &bench.failures {
            eprintln!("FAILED: {failure}");
        }
        std::process::exit(1);
    }
}

async fn run_role(args: &[String]) {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    let num = |i: usize| arg(i).parse::<u64>().expect("number");
    let path = PathBuf::from(arg(1));
    let meet = roles::Meet::parse(arg(1));
    match arg(0) {
        "producer" => {
            let tapped = arg(5) == "tapped";
            roles::producer(&meet, num(2) as usize, num(3), num(4) as usize, tapped).await
        }
        "consumer" => roles::consumer(&meet, num(2) as usize, num(3)).await,
        "responder" => roles::responder(&meet).await,
        "raw-producer" => raw::producer(&path, num(2) as usize, num(3), num(4) as usize).await,
        "raw-consumer" => raw::consumer(&path, num(2)).await,
        "raw-responder" => raw::responder(&path).await,
        #[cfg(feature = "zenoh")]
        "zraw-producer" => zraw::producer(arg(1), num(2) as usize, num(3), num(4) as usize).await,
        #[cfg(feature = "zenoh")]
        "zraw-consumer" => zraw::consumer(arg(1), num(2) as usize, num(3)).await,
        #[cfg(feature = "zenoh")]
        "zraw-responder" => zraw::responder(arg(1)).await,
        "stall-producer" => {
            let options = lahja::EndpointOptions {
                queue_bytes: num(4) as usize,
                ..Default::default()
            };
            roles::stall_producer(
                &path,
                arg(2).parse().expect("seconds"),
                num(3) as usize,
                options,
            )
            .await
        }
        "stall-consumer" => roles::stall_consumer(&path, num(2) as usize).await,
        other => panic!("unknown role {other}"),
    }
}

struct Bench {
    folder: PathBuf,
    next_socket: u32,
    payload: usize,
    /// Over zenoh (`--transport zenoh`), against raw zenoh.
    zenoh: bool,
    rows: Vec<Row>,
    failures: Vec<String>,
}

fn spawn_role(args: &[String]) -> Child {
    Command::new(std::env::current_exe().expect("current exe"))
        .arg("--role")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn role")
}

/// The next `RESULT` line of a role process.
async fn result_of(child: &mut Child) -> BTreeMap<String, String> {
    let stdout = child.stdout.as_mut().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(result) = parse_report(&line) {
            return result;
        }
    }
    panic!("a role process ended without reporting");
}

fn field(result: &BTreeMap<String, String>, key: &str) -> f64 {
    result
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

impl Bench {
    fn socket(&mut self, label: &str) -> PathBuf {
        self.next_socket += 1;
        self.folder
            .join(format!("{label}-{}.sock", self.next_socket))
    }

    /// Where one run's roles meet, as their argument: a socket path, or
    /// over zenoh a fresh bus and locator (a bare locator for raw zenoh).
    fn place(&mut self, label: &str, raw: bool) -> String {
        if !self.zenoh {
            return self.socket(label).display().to_string();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let locator = format!("tcp/127.0.0.1:{port}");
        if raw {
            locator
        } else {
            format!("zenoh|bench-{}-{port}|{locator}", std::process::id())
        }
    }

    /// The baseline's role names and label.
    fn raw_roles(&self) -> (&'static str, &'static str, &'static str) {
        if self.zenoh {
            ("zraw-producer", "zraw-consumer", "raw zenoh pub/sub")
        } else {
            ("raw-producer", "raw-consumer", "raw queued")
        }
    }

    fn row(
        &mut self,
        mode: &str,
        metric: &'static str,
        lahja: f64,
        baseline: Option<f64>,
        baseline_name: &'static str,
    ) {
        self.rows.push(Row {
            mode: mode.to_owned(),
            metric,
            lahja,
            baseline,
            baseline_name,
        });
    }

    /// One producer, `consumers` consumers; returns (per-consumer events/s,
    /// total deliveries/s, p50, p99, producer peak RSS, max consumer RSS).
    async fn run_broadcast(&mut self, raw: bool, consumers: usize, events: u64) -> [f64; 6] {
        self.run_broadcast_tapped(raw, consumers, events, false)
            .await
    }

    /// [`run_broadcast`](Self::run_broadcast), the lahja producer tapped by
    /// an observer that never reads when `tapped`.
    async fn run_broadcast_tapped(
        &mut self,
        raw: bool,
        consumers: usize,
        events: u64,
        tapped: bool,
    ) -> [f64; 6] {
        let path_arg = self.place(if raw { "raw-broadcast" } else { "broadcast" }, raw);
        let (producer_role, consumer_role) = if raw {
            let (producer, consumer, _) = self.raw_roles();
            (producer, consumer)
        } else {
            ("producer", "consumer")
        };
        let mut producer = spawn_role(&[
            producer_role.into(),
            path_arg.clone(),
            consumers.to_string(),
            events.to_string(),
            self.payload.to_string(),
            if tapped { "tapped" } else { "untapped" }.into(),
        ]);
        let mut children: Vec<Child> = (0..consumers)
            .map(|i| {
                let mut args = vec![consumer_role.to_string(), path_arg.clone()];
                if !raw || self.zenoh {
                    args.push(i.to_string());
                }
                args.push(events.to_string());
                spawn_role(&args)
            })
            .collect();
        let mut results = Vec::new();
        for child in &mut children {
            results.push(result_of(child).await);
        }
        let produced = result_of(&mut producer).await;
        let label = if raw { "raw" } else { "lahja" };
        for (i, result) in results.iter().enumerate() {
            let complete = field(result, "received") as u64 == events
                && result.get("in_order").map(String::as_str) == Some("true");
            if !complete {
                self.failures
                    .push(format!("{label} consumer {i} of {consumers}: {result:?}"));
            }
        }
        let mean =
            |key: &str| results.iter().map(|r| field(r, key)).sum::<f64>() / results.len() as f64;
        let per_consumer = mean("events_per_s");
        [
            per_consumer,
            per_consumer * consumers as f64,
            mean("p50_us"),
            mean("p99_us"),
            field(&produced, "peak_rss_kib"),
            results
                .iter()
                .map(|r| field(r, "peak_rss_kib"))
                .fold(0.0, f64::max),
        ]
    }

    /// One consumer, with and without a stalled tap on the producer: the
    /// baseline here is lahja untapped, measured in the same run.
    async fn tapped(&mut self, events: u64) {
        let untapped = self.run_broadcast_tapped(false, 1, events, false).await;
        let tapped = self.run_broadcast_tapped(false, 1, events, true).await;
        let mode = "broadcast x1, stalled tap";
        self.row(
            mode,
            "events/s per consumer",
            tapped[0],
            Some(untapped[0]),
            "lahja untapped",
        );
        self.row(
            mode,
            "latency p50 (us)",
            tapped[2],
            Some(untapped[2]),
            "lahja untapped",
        );
        self.row(
            mode,
            "producer peak RSS (KiB)",
            tapped[4],
            Some(untapped[4]),
            "lahja untapped",
        );
    }

    async fn broadcast(&mut self, consumers: usize, events: u64) {
        let lahja = self.run_broadcast(false, consumers, events).await;
        let raw = self.run_broadcast(true, consumers, events).await;
        let mode = format!("broadcast x{consumers}");
        let baseline = self.raw_roles().2;
        self.row(
            &mode,
            "events/s per consumer",
            lahja[0],
            Some(raw[0]),
            baseline,
        );
        self.row(
            &mode,
            "deliveries/s total",
            lahja[1],
            Some(raw[1]),
            baseline,
        );
        self.row(&mode, "latency p50 (us)", lahja[2], Some(raw[2]), baseline);
        self.row(&mode, "latency p99 (us)", lahja[3], Some(raw[3]), baseline);
        self.row(
            &mode,
            "producer peak RSS (KiB)",
            lahja[4],
            Some(raw[4]),
            baseline,
        );
        self.row(
            &mode,
            "consumer peak RSS (KiB)",
            lahja[5],
            Some(raw[5]),
            baseline,
        );
    }

    /// Runs `client` against a responder process: lahja's, or the
    /// baseline's (`raw`); the client gets where they meet.
    async fn with_responder<T>(&mut self, raw: bool, client: impl AsyncFnOnce(&str) -> T) -> T {
        let place = self.place(if raw { "raw-responder" } else { "responder" }, raw);
        let role = match (raw, self.zenoh) {
            (false, _) => "responder",
            (true, false) => "raw-responder",
            (true, true) => "zraw-responder",
        };
        let mut responder = spawn_role(&[role.into(), place.clone()]);
        let result = client(&place).await;
        let _ = responder.kill().await;
        result
    }

    /// The baseline's client side, and its name.
    async fn raw_roundtrip(&mut self, count: u64) -> ((f64, stats::Latency), &'static str) {
        let payload = self.payload;
        #[cfg(feature = "zenoh")]
        if self.zenoh {
            let result = self
                .with_responder(true, async |p| zraw::roundtrip(p, count, payload).await)
                .await;
            return (result, "raw zenoh get");
        }
        let result = self
            .with_responder(true, async |p| {
                raw::roundtrip(Path::new(p), count, payload).await
            })
            .await;
        (result, "raw ping-pong")
    }

    async fn raw_pipelined(&mut self, count: u64) -> (f64, &'static str) {
        let payload = self.payload;
        #[cfg(feature = "zenoh")]
        if self.zenoh {
            let result = self
                .with_responder(true, async |p| {
                    zraw::pipelined(p, count, IN_FLIGHT, payload).await
                })
                .await;
            return (result, "raw zenoh get");
        }
        let result = self
            .with_responder(true, async |p| {
                raw::pipelined(Path::new(p), count, IN_FLIGHT, payload).await
            })
            .await;
        (result, "raw pipelined")
    }

    async fn roundtrip(&mut self, count: u64) {
        let payload = self.payload;
        let (lahja_rate, lahja) = self
            .with_responder(false, async |p| {
                roles::roundtrip(&roles::Meet::parse(p), count, payload).await
            })
            .await;
        let ((raw_rate, raw), baseline) = self.raw_roundtrip(count).await;
        let rows = [
            ("latency p50 (us)", lahja.p50_us, raw.p50_us),
            ("latency p90 (us)", lahja.p90_us, raw.p90_us),
            ("latency p99 (us)", lahja.p99_us, raw.p99_us),
            ("latency max (us)", lahja.max_us, raw.max_us),
        ];
        for (metric, lahja, raw) in rows {
            self.row("roundtrip", metric, lahja, Some(raw), baseline);
        }
        self.row(
            "roundtrip",
            "requests/s",
            lahja_rate,
            Some(raw_rate),
            baseline,
        );
    }

    async fn request(&mut self, count: u64) {
        let payload = self.payload;
        let lahja = self
            .with_responder(false, async |p| {
                roles::pipelined(&roles::Meet::parse(p), count, IN_FLIGHT, payload).await
            })
            .await;
        let (raw, baseline) = self.raw_pipelined(count).await;
        self.row("request x64", "requests/s", lahja, Some(raw), baseline);
    }

    async fn local(&mut self, events: u64) {
        let payload = self.payload;
        let lahja = local::with_lahja(events, payload).await;
        let tokio = local::with_tokio(events, payload).await;
        self.row("local", "events/s", lahja, Some(tokio), "tokio broadcast");
    }

    async fn stalled(&mut self) {
        let queue_bytes = 1 << 20;
        let capacity = 1024;
        let path = self.socket("stalled");
        let path_arg = path.display().to_string();
        let mut consumer = spawn_role(&[
            "stall-consumer".into(),
            path_arg.clone(),
            capacity.to_string(),
        ]);
        let mut producer = spawn_role(&[
            "stall-producer".into(),
            path_arg,
            "3".into(),
            self.payload.to_string(),
            queue_bytes.to_string(),
        ]);
        let consumer_before = field(&result_of(&mut consumer).await, "rss_kib");
        let produced = result_of(&mut producer).await;
        let stdin = consumer.stdin.as_mut().expect("stdin");
        stdin.write_all(b"report\n").await.expect("tell consumer");
        let consumer_after = field(&result_of(&mut consumer).await, "rss_kib");
        let event_bytes = (self.payload + 32) as f64;
        let bound_kib = (queue_bytes as f64 + capacity as f64 * event_bytes) / 1024.0;
        let producer_growth =
            field(&produced, "rss_after_kib") - field(&produced, "rss_before_kib");
        let consumer_growth = consumer_after - consumer_before;
        let blocked = produced.get("blocked").map(String::as_str) == Some("true");
        self.row(
            "stalled",
            "events sent in 3 s",
            field(&produced, "sent"),
            None,
            "",
        );
        self.row(
            "stalled",
            "producer RSS growth (KiB)",
            producer_growth,
            Some(bound_kib),
            "bound",
        );
        self.row(
            "stalled",
            "consumer RSS growth (KiB)",
            consumer_growth,
            Some(bound_kib),
            "bound",
        );
        if !blocked {
            self.failures
                .push("stalled: the producer was never blocked".into());
        }
        for (who, growth) in [("producer", producer_growth), ("consumer", consumer_growth)] {
            if growth >= 2.0 * bound_kib {
                self.failures.push(format!(
                    "stalled: {who} RSS grew {growth} KiB, bound {bound_kib} KiB"
                ));
            }
        }
        let _ = consumer.wait().await;
        let _ = producer.wait().await;
    }
}

fn print_rows(rows: &[Row], json: bool) {
    if json {
        for row in rows {
            let baseline = row.baseline.map_or("null".into(), |b| format!("{b:.3}"));
            let ratio = row
                .baseline
                .map_or("null".into(), |b| format!("{:.3}", row.lahja / b));
            println!(
                "{{\"mode\":\"{}\",\"metric\":\"{}\",\"lahja\":{:.3},\"baseline\":{baseline},\"baseline_name\":\"{}\",\"ratio\":{ratio}}}",
                row.mode, row.metric, row.lahja, row.baseline_name
            );
        }
        return;
    }
    println!(
        "{:<14} {:<26} {:>14} {:>14} {:>8}  baseline",
        "mode", "metric", "lahja", "baseline", "ratio"
    );
    for row in rows {
        let baseline = row.baseline.map_or("-".into(), |b| format!("{b:.1}"));
        let ratio = row
            .baseline
            .map_or("-".into(), |b| format!("{:.2}", row.lahja / b));
        println!(
            "{:<14} {:<26} {:>14.1} {:>14} {:>8}  {}",
            row.mode, row.metric, row.lahja, baseline, ratio, row.baseline_name
        );
    }
}
