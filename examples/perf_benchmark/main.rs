//! lahja's throughput, latency and CPU cost, each next to a baseline
//! measured in the same run.
//!
//! ```sh
//! cargo run --release --example perf_benchmark -- [--mode broadcast|request|roundtrip|local|stalled|tapped|all]
//!     [--transport socket|zenoh] [--consumers N] [--events N] [--payload-bytes N]
//!     [--repeat N] [--pin same,split,free] [--runtime current|multi]
//!     [--shared-memory-above N|off] [--json|--markdown]
//! examples/perf_benchmark/regenerate-readme.sh   # the README's table, from one run
//! ```
//!
//! # Method
//!
//! - **Processes.** Every role (producer, consumers, responder, request
//!   client) is a process of its own: this program re-executed with
//!   `--role`. The orchestrator only starts them and reads the one
//!   `RESULT` line each prints. Consumers check that they got every event
//!   in order; the run fails if one did not.
//! - **Baselines.** The strongest simple raw programs over tokio Unix
//!   sockets, with the same framing (u32 length, 18-byte header) and the
//!   same bincode bodies, and the same per-event harness work (stamp,
//!   encode, decode, check): for broadcast the better of two producer
//!   shapes in each repetition (a writer task per consumer behind a
//!   bounded queue, or a 64 KiB buffered writer per consumer written in
//!   place); for requests a ping-pong client and a pipelined one against a
//!   responder that flushes only when no request is buffered. With
//!   `--transport zenoh` lahja runs over zenoh and the baseline is raw
//!   zenoh (a publisher with `CongestionControl::Block`, `get` against a
//!   queryable); for `local`, `tokio::sync::broadcast`.
//! - **Runtimes.** Each role runs on a current-thread tokio runtime
//!   (`--runtime multi` for tokio's default), lahja and the baseline alike;
//!   over zenoh, which needs one, on a multi-thread runtime.
//! - **Placement.** `--pin` measures each placement in turn: `same` puts
//!   every process on CPU 0, `split` puts servers on CPU 0 and clients on
//!   CPU 1 (a round trip then crosses cores), `free` leaves it to the
//!   scheduler. Round trips are bimodal between the first two.
//! - **Repetitions.** `--repeat N` (default 5) runs everything N times,
//!   repetitions outermost, lahja and the baseline alternating who goes
//!   first. A figure is the median of its repetitions, its spread is
//!   (max - min) / median, and its ratio is the median of the
//!   per-repetition ratios (each lahja figure against the baseline of its
//!   own repetition).
//! - **CPU.** Each process reads its own user + system time
//!   (`getrusage`): per request for the client, per delivered event for
//!   the producer and consumers together.
//! - **Large events.** lahja's endpoints keep their default
//!   `shared_memory_above` (off: every body on the socket);
//!   `--shared-memory-above N|off` sets it for every lahja role, so the
//!   shared-memory path can be measured against the socket.

mod local;
mod plots;
mod raw;
mod roles;
mod stats;
#[cfg(feature = "zenoh")]
mod zraw;

use std::collections::BTreeMap;
use std::path::PathBuf;
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
        // One copy, not one call per byte (see `lahja::serde_bytes`).
        #[serde(with = "lahja::serde_bytes")]
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
        #[serde(with = "lahja::serde_bytes")]
        pub payload: Vec<u8>,
    }

    #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    #[event(name = "bench.Pong")]
    pub struct Pong {
        pub seq: u64,
        #[serde(with = "lahja::serde_bytes")]
        pub payload: Vec<u8>,
    }
}

const IN_FLIGHT: usize = 64;

/// The widths of the `fanout` sweep: consumer processes of one producer.
const FAN_OUTS: [usize; 5] = [1, 4, 16, 50, 100];

/// The sizes of the `mesh` sweep: endpoints, each connected to all others.
const MESHES: [usize; 4] = [4, 16, 32, 50];

/// The sizes of the `payloads` sweep, to one consumer.
const PAYLOADS: [usize; 7] = [64, 1 << 10, 16 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20];

/// `size` as 64 B, 16 KiB, 1 MiB...
fn bytes(size: usize) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

/// Where the role processes run.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Pin {
    /// Wherever the scheduler puts them.
    Free,
    /// Every process on CPU 0.
    Same,
    /// Servers (producer, responder) on CPU 0, clients (consumers,
    /// requester) on CPU 1.
    Split,
}

impl Pin {
    fn parse(name: &str) -> Pin {
        match name {
            "free" => Pin::Free,
            "same" => Pin::Same,
            "split" => Pin::Split,
            other => usage(&format!("unknown placement {other}")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Pin::Free => "free",
            Pin::Same => "same",
            Pin::Split => "split",
        }
    }

    /// The CPU of a server or (`client`) a client process.
    fn cpu(self, client: bool) -> Option<usize> {
        match self {
            Pin::Free => None,
            Pin::Same => Some(0),
            Pin::Split => Some(usize::from(client)),
        }
    }
}

struct Options {
    mode: String,
    zenoh: bool,
    consumers: Option<usize>,
    events: Option<u64>,
    payload: usize,
    output: Output,
    repeat: usize,
    pins: Vec<Pin>,
    runtime: String,
    /// `--shared-memory-above N|off` for every lahja role.
    shared_memory_above: Option<String>,
    /// Where to write SVG plots, if anywhere.
    plots: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq)]
enum Output {
    Text,
    Json,
    Markdown,
}

const USAGE: &str = "usage: perf_benchmark [--mode broadcast|request|roundtrip|local|stalled|tapped|fanout|payloads|all|readme] \
     [--transport socket|zenoh] [--consumers N[,N...]] [--events N] [--payload-bytes N] \
     [--repeat N] [--pin same,split,free] [--runtime current|multi] [--shared-memory-above N|off] \
     [--plots DIR] [--json|--markdown]";

fn parse_options(args: &[String]) -> Options {
    let mut options = Options {
        mode: "all".into(),
        zenoh: false,
        consumers: None,
        events: None,
        payload: 64,
        output: Output::Text,
        repeat: 5,
        pins: vec![Pin::Same, Pin::Split],
        runtime: "current".into(),
        shared_memory_above: None,
        plots: None,
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
            "--repeat" => {
                options.repeat = value()
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| usage("--repeat N (at least 1)"))
            }
            "--pin" => options.pins = value().split(',').map(Pin::parse).collect(),
            "--runtime" => match value().as_str() {
                runtime @ ("current" | "multi") => options.runtime = runtime.into(),
                other => usage(&format!("unknown runtime {other}")),
            },
            "--shared-memory-above" => {
                let above = value();
                if above != "off" && above.parse::<usize>().is_err() {
                    usage("--shared-memory-above N|off");
                }
                options.shared_memory_above = Some(above);
            }
            "--plots" => options.plots = Some(PathBuf::from(value())),
            "--json" => options.output = Output::Json,
            "--markdown" => options.output = Output::Markdown,
            other => usage(&format!("unknown option {other}")),
        }
    }
    options
}

fn usage(problem: &str) -> ! {
    eprintln!("perf_benchmark: {problem}");
    eprintln!("{USAGE}");
    std::process::exit(2)
}

/// One metric of one mode and placement, over every repetition.
struct Row {
    mode: String,
    pin: Pin,
    metric: &'static str,
    lahja: Vec<f64>,
    baseline: Vec<f64>,
    baseline_name: String,
}

impl Row {
    /// The median of the per-repetition ratios: each lahja figure against
    /// the baseline of its own repetition.
    fn ratio(&self) -> Option<f64> {
        let ratios: Vec<f64> = self
            .lahja
            .iter()
            .zip(&self.baseline)
            .map(|(lahja, baseline)| lahja / baseline)
            .collect();
        (!ratios.is_empty()).then(|| stats::median(&ratios))
    }

    /// Spread of lahja's figures: (max - min) / median, in percent.
    fn spread(&self) -> f64 {
        let min = self.lahja.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.lahja.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        100.0 * (max - min) / stats::median(&self.lahja)
    }
}

/// Role processes: pinned and on the runtime the orchestrator asked for
/// (through the environment, before any thread starts).
const CPU_VAR: &str = "LAHJA_BENCH_CPU";
const RUNTIME_VAR: &str = "LAHJA_BENCH_RUNTIME";
/// `--shared-memory-above`, for the lahja roles (see `roles::options`).
pub const SHARED_VAR: &str = "LAHJA_BENCH_SHARED_MEMORY_ABOVE";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--role") {
        if let Some(cpu) = std::env::var(CPU_VAR).ok().and_then(|v| v.parse().ok()) {
            stats::pin_to(cpu);
        }
        let multi = std::env::var(RUNTIME_VAR).as_deref() == Ok("multi");
        runtime(multi).block_on(run_role(&args[1..]));
        return;
    }
    let options = parse_options(&args);
    runtime(false).block_on(orchestrate(options));
}

fn runtime(multi_thread: bool) -> tokio::runtime::Runtime {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().expect("a tokio runtime")
}

async fn orchestrate(options: Options) {
    let folder = std::env::temp_dir().join(format!("lahja-bench-{}", std::process::id()));
    std::fs::create_dir_all(&folder).expect("temp folder");
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
        "fanout" => &["fanout"],
        "payloads" => &["payloads"],
        "mesh" => &["mesh"],
        // What the README shows: `all` and both sweeps, from one run.
        "readme" => &[
            "broadcast",
            "roundtrip",
            "request",
            "local",
            "stalled",
            "fanout",
            "payloads",
            "mesh",
        ],
        other => usage(&format!("unknown mode {other}")),
    };
    let mut bench = Bench {
        folder: folder.clone(),
        next_socket: 0,
        payload: options.payload,
        zenoh: options.zenoh,
        runtime: options.runtime.clone(),
        shared_memory_above: options.shared_memory_above.clone(),
        pin: Pin::Free,
        repetition: 0,
        rows: Vec::new(),
        quantiles: Vec::new(),
        payload_sizes: Vec::new(),
        failures: Vec::new(),
    };
    // Repetitions outermost, and lahja and the baseline alternating who
    // goes first: drift on a shared machine spreads over both.
    // `readme` with the zenoh feature measures over zenoh too, in the same
    // run: the modes that depend on the transport.
    let transports: &[bool] = match (options.zenoh, options.mode.as_str()) {
        (true, _) => &[true],
        (false, "readme") if cfg!(feature = "zenoh") => &[false, true],
        _ => &[false],
    };
    for repetition in 0..options.repeat {
        bench.repetition = repetition;
        for (placement, &pin) in options.pins.iter().enumerate() {
            bench.pin = pin;
            for (mode, zenoh) in transports
                .iter()
                .flat_map(|&zenoh| modes.iter().map(move |mode| (mode, zenoh)))
            {
                let by_socket_only = !matches!(*mode, "broadcast" | "roundtrip" | "request");
                if zenoh && by_socket_only {
                    continue;
                }
                bench.zenoh = zenoh;
                // These do not depend on placement (local is one process).
                let once = matches!(*mode, "local" | "stalled" | "tapped" | "mesh");
                if once && placement > 0 {
                    continue;
                }
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
                    // A bound, not a ratio: once is enough.
                    "stalled" if repetition == 0 => bench.stalled().await,
                    "stalled" => {}
                    "tapped" => bench.tapped(options.events.unwrap_or(1_000_000)).await,
                    "fanout" => {
                        for consumers in FAN_OUTS {
                            // About the same deliveries at every width.
                            let events = options.events.unwrap_or(4_000_000 / consumers as u64);
                            let label = format!("fan-out x{consumers}");
                            bench.broadcast_as(&label, consumers, events).await;
                        }
                    }
                    // Connection cost, not speed against a baseline: once.
                    "mesh" if repetition == 0 => {
                        for size in MESHES {
                            bench.mesh(size).await;
                        }
                    }
                    "mesh" => {}
                    "payloads" => {
                        let payload = bench.payload;
                        for size in PAYLOADS {
                            bench.payload = size;
                            // About 1 GiB each, from 64 events to 1 M.
                            let events = options
                                .events
                                .unwrap_or(((1 << 30) / size as u64).clamp(64, 1_000_000));
                            let label = format!("payload {}", bytes(size));
                            bench.broadcast_as(&label, 1, events).await;
                            bench.payload_sizes.push((label, size));
                        }
                        bench.payload = payload;
                    }
                    _ => unreachable!(),
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&folder);
    // Each mode's placements together, in the order the modes first ran.
    let modes: Vec<String> = bench.rows.iter().map(|r| r.mode.clone()).collect();
    let first = |mode: &str| modes.iter().position(|m| m == mode);
    bench.rows.sort_by_key(|r| (first(&r.mode), r.pin as u8));
    if let Some(Err(error)) = options.plots.as_ref().map(|f| draw_plots(&bench, f)) {
        bench.failures.push(format!("plots: {error}"));
    }
    match options.output {
        Output::Text => print_rows(&bench.rows),
        Output::Json => print_json(&bench.rows),
        Output::Markdown => print_markdown(&bench.rows, &options),
    }
    if !bench.failures.is_empty() {
        for failure in &bench.failures {
            eprintln!("FAILED: {failure}");
        }
        std::process::exit(1);
    }
}

async fn run_role(args: &[String]) {
    // Functions, not closures: a closure over `args` held across the
    // awaits below makes the future not provably `Send`.
    fn arg_of(args: &[String], i: usize) -> &str {
        args.get(i).map(String::as_str).unwrap_or_default()
    }
    fn num_of(args: &[String], i: usize) -> u64 {
        arg_of(args, i).parse().expect("number")
    }
    let arg = |i: usize| arg_of(args, i);
    let num = |i: usize| num_of(args, i);
    let path = PathBuf::from(arg(1));
    let meet = roles::Meet::parse(arg(1));
    match arg(0) {
        "producer" => {
            let tapped = arg(5) == "tapped";
            roles::producer(&meet, num(2) as usize, num(3), num(4) as usize, tapped).await
        }
        "consumer" => roles::consumer(&meet, num(2) as usize, num(3)).await,
        "responder" => roles::responder(&meet).await,
        "roundtrip" => {
            let (count, payload) = (num(2), num(3) as usize);
            let (rate, latency, cpu) =
                in_task(async move { roles::roundtrip(&meet, count, payload).await }).await;
            stats::report_client(rate, Some(&latency), cpu);
        }
        "pipelined" => {
            let (count, payload) = (num(2), num(3) as usize);
            let (rate, cpu) =
                in_task(async move { roles::pipelined(&meet, count, IN_FLIGHT, payload).await })
                    .await;
            stats::report_client(rate, None, cpu);
        }
        shape @ ("raw-queued" | "raw-direct") => {
            let shape = raw::Shape::ALL
                .into_iter()
                .find(|s| s.name() == shape)
                .expect("a shape");
            raw::producer(&path, shape, num(2) as usize, num(3), num(4) as usize).await
        }
        "raw-consumer" => raw::consumer(&path, num(2)).await,
        "raw-responder" => raw::responder(&path).await,
        "raw-roundtrip" => {
            let (count, payload) = (num(2), num(3) as usize);
            let (rate, latency, cpu) =
                in_task(async move { raw::roundtrip(&path, count, payload).await }).await;
            stats::report_client(rate, Some(&latency), cpu);
        }
        "raw-pipelined" => {
            let (count, payload) = (num(2), num(3) as usize);
            let (rate, cpu) =
                in_task(async move { raw::pipelined(&path, count, IN_FLIGHT, payload).await })
                    .await;
            stats::report_client(rate, None, cpu);
        }
        #[cfg(feature = "zenoh")]
        "zraw-producer" => zraw::producer(arg(1), num(2) as usize, num(3), num(4) as usize).await,
        #[cfg(feature = "zenoh")]
        "zraw-consumer" => zraw::consumer(arg(1), num(2) as usize, num(3)).await,
        #[cfg(feature = "zenoh")]
        "zraw-responder" => zraw::responder(arg(1)).await,
        #[cfg(feature = "zenoh")]
        "zraw-roundtrip" => {
            let (rate, latency, cpu) = zraw::roundtrip(arg(1), num(2), num(3) as usize).await;
            stats::report_client(rate, Some(&latency), cpu);
        }
        #[cfg(feature = "zenoh")]
        "zraw-pipelined" => {
            let (rate, cpu) = zraw::pipelined(arg(1), num(2), IN_FLIGHT, num(3) as usize).await;
            stats::report_client(rate, None, cpu);
        }
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
        "mesh" => roles::mesh(&path, num(2) as usize, num(3) as usize).await,
        other => panic!("unknown role {other}"),
    }
}

/// Runs a request client as a task, not as `block_on`'s own future: on a
/// current-thread runtime a task that wakes that future (as lahja's reader
/// does with each answer) makes it poll the driver once more, an
/// `epoll_wait` per round trip that a program whose work runs in tasks
/// does not pay. The raw clients run the same way.
async fn in_task<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    tokio::spawn(work).await.expect("the client panicked")
}

struct Bench {
    folder: PathBuf,
    next_socket: u32,
    payload: usize,
    /// Over zenoh (`--transport zenoh`), against raw zenoh.
    zenoh: bool,
    /// The role processes' tokio runtime: `current` or `multi`.
    runtime: String,
    /// `--shared-memory-above`, if given.
    shared_memory_above: Option<String>,
    /// The placement of this measurement.
    pin: Pin,
    /// Which repetition this is (from 0).
    repetition: usize,
    rows: Vec<Row>,
    /// Round-trip latency quantiles of each run: placement, who, values.
    quantiles: Vec<(Pin, &'static str, Vec<f64>)>,
    /// The payload size of each `payloads` mode label.
    payload_sizes: Vec<(String, usize)>,
    failures: Vec<String>,
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

/// One broadcast run's figures.
struct Broadcast {
    per_consumer: f64,
    total: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_delivery: f64,
    producer_rss_kib: f64,
    consumer_rss_kib: f64,
}

/// One request client's figures.
type Client = BTreeMap<String, String>;

impl Bench {
    /// A role process: this program again, with `--role`, on the CPU the
    /// placement gives a server or (`client`) a client.
    fn spawn_role(&self, args: &[String], client: bool) -> Child {
        let mut command = Command::new(std::env::current_exe().expect("current exe"));
        command
            .arg("--role")
            .args(args)
            // zenoh needs a multi-thread runtime (its raw baseline too).
            .env(
                RUNTIME_VAR,
                if self.zenoh { "multi" } else { &self.runtime },
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        match self.pin.cpu(client) {
            Some(cpu) => command.env(CPU_VAR, cpu.to_string()),
            None => command.env_remove(CPU_VAR),
        };
        if let Some(above) = &self.shared_memory_above {
            command.env(SHARED_VAR, above);
        }
        command.spawn().expect("spawn role")
    }

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

    /// Whether the baseline goes first in this repetition (they alternate).
    fn baseline_first(&self) -> bool {
        self.repetition % 2 == 1
    }

    /// Adds one repetition's figure to its row.
    fn row(
        &mut self,
        mode: &str,
        metric: &'static str,
        lahja: f64,
        baseline: Option<f64>,
        baseline_name: &str,
    ) {
        let pin = self.pin;
        let mode = &match self.zenoh && !mode.starts_with("zenoh") {
            true => format!("zenoh: {mode}"),
            false => mode.to_owned(),
        };
        let index = match self
            .rows
            .iter()
            .position(|r| r.mode == *mode && r.pin == pin && r.metric == metric)
        {
            Some(index) => index,
            None => {
                self.rows.push(Row {
                    mode: mode.to_owned(),
                    pin,
                    metric,
                    lahja: Vec::new(),
                    baseline: Vec::new(),
                    baseline_name: baseline_name.to_owned(),
                });
                self.rows.len() - 1
            }
        };
        let row = &mut self.rows[index];
        row.lahja.push(lahja);
        row.baseline.extend(baseline);
    }

    /// One producer, `consumers` consumers, lahja's or (`raw`) a baseline
    /// producer's role; a stalled tap on lahja's producer when `tapped`.
    async fn run_broadcast(
        &mut self,
        producer_role: &str,
        consumers: usize,
        events: u64,
        tapped: bool,
    ) -> Broadcast {
        let lahja = producer_role == "producer";
        let path_arg = self.place(producer_role, !lahja);
        let consumer_role = match (lahja, self.zenoh) {
            (true, _) => "consumer",
            (false, false) => "raw-consumer",
            (false, true) => "zraw-consumer",
        };
        let mut producer = self.spawn_role(
            &[
                producer_role.into(),
                path_arg.clone(),
                consumers.to_string(),
                events.to_string(),
                self.payload.to_string(),
                if tapped { "tapped" } else { "untapped" }.into(),
            ],
            false,
        );
        let mut children: Vec<Child> = (0..consumers)
            .map(|i| {
                let mut args = vec![consumer_role.to_string(), path_arg.clone()];
                if lahja || self.zenoh {
                    args.push(i.to_string());
                }
                args.push(events.to_string());
                self.spawn_role(&args, true)
            })
            .collect();
        let mut results = Vec::new();
        for child in &mut children {
            results.push(result_of(child).await);
        }
        let produced = result_of(&mut producer).await;
        for (i, result) in results.iter().enumerate() {
            let complete = field(result, "received") as u64 == events
                && result.get("in_order").map(String::as_str) == Some("true");
            if !complete {
                self.failures.push(format!(
                    "{producer_role} consumer {i} of {consumers}: {result:?}"
                ));
            }
        }
        let sum = |key: &str| results.iter().map(|r| field(r, key)).sum::<f64>();
        let mean = |key: &str| sum(key) / results.len() as f64;
        let per_consumer = mean("events_per_s");
        let deliveries = (events * consumers as u64) as f64;
        Broadcast {
            per_consumer,
            total: per_consumer * consumers as f64,
            p50_us: mean("p50_us"),
            p99_us: mean("p99_us"),
            cpu_us_per_delivery: (sum("cpu_us") + field(&produced, "cpu_us")) / deliveries,
            producer_rss_kib: field(&produced, "peak_rss_kib"),
            consumer_rss_kib: results
                .iter()
                .map(|r| field(r, "peak_rss_kib"))
                .fold(0.0, f64::max),
        }
    }

    /// The baseline's broadcast: the best (most deliveries per second) of
    /// the raw producer shapes, or raw zenoh.
    async fn raw_broadcast(&mut self, consumers: usize, events: u64) -> (Broadcast, &'static str) {
        if self.zenoh {
            let run = self
                .run_broadcast("zraw-producer", consumers, events, false)
                .await;
            return (run, "raw zenoh pub/sub");
        }
        let mut best: Option<(Broadcast, &'static str)> = None;
        for shape in raw::Shape::ALL {
            let run = self
                .run_broadcast(shape.name(), consumers, events, false)
                .await;
            if best.as_ref().is_none_or(|(b, _)| run.total > b.total) {
                best = Some((run, shape.name()));
            }
        }
        best.expect("a shape")
    }

    /// One consumer, with and without a stalled tap on the producer: the
    /// baseline here is lahja untapped, measured in the same run.
    async fn tapped(&mut self, events: u64) {
        let untapped = self.run_broadcast("producer", 1, events, false).await;
        let tapped = self.run_broadcast("producer", 1, events, true).await;
        let mode = "broadcast x1, stalled tap";
        let baseline = "lahja untapped";
        self.row(
            mode,
            "events/s per consumer",
            tapped.per_consumer,
            Some(untapped.per_consumer),
            baseline,
        );
        self.row(
            mode,
            "latency p50 (us)",
            tapped.p50_us,
            Some(untapped.p50_us),
            baseline,
        );
        self.row(
            mode,
            "producer peak RSS (KiB)",
            tapped.producer_rss_kib,
            Some(untapped.producer_rss_kib),
            baseline,
        );
    }

    async fn broadcast(&mut self, consumers: usize, events: u64) {
        self.broadcast_as(&format!("broadcast x{consumers}"), consumers, events)
            .await
    }

    /// A broadcast run, lahja's and the baseline's, in rows of mode `mode`.
    async fn broadcast_as(&mut self, mode: &str, consumers: usize, events: u64) {
        let (lahja, (raw, baseline)) = if self.baseline_first() {
            let raw = self.raw_broadcast(consumers, events).await;
            (
                self.run_broadcast("producer", consumers, events, false)
                    .await,
                raw,
            )
        } else {
            let lahja = self
                .run_broadcast("producer", consumers, events, false)
                .await;
            (lahja, self.raw_broadcast(consumers, events).await)
        };
        let megabytes = |per_s: f64| per_s * self.payload as f64 / 1e6;
        let rows = [
            (
                "events/s per consumer",
                lahja.per_consumer,
                raw.per_consumer,
            ),
            (
                "MB/s per consumer",
                megabytes(lahja.per_consumer),
                megabytes(raw.per_consumer),
            ),
            ("deliveries/s total", lahja.total, raw.total),
            ("latency p50 (us)", lahja.p50_us, raw.p50_us),
            ("latency p99 (us)", lahja.p99_us, raw.p99_us),
            (
                "CPU per delivery (us)",
                lahja.cpu_us_per_delivery,
                raw.cpu_us_per_delivery,
            ),
            (
                "producer peak RSS (KiB)",
                lahja.producer_rss_kib,
                raw.producer_rss_kib,
            ),
            (
                "consumer peak RSS (KiB)",
                lahja.consumer_rss_kib,
                raw.consumer_rss_kib,
            ),
        ];
        for (metric, lahja, raw) in rows {
            self.row(mode, metric, lahja, Some(raw), baseline);
        }
    }

    /// Runs the request client `role` (`roundtrip` or `pipelined`) against
    /// a responder process, lahja's or (`raw`) the baseline's.
    async fn request_client(&mut self, role: &str, raw: bool, count: u64) -> Client {
        let place = self.place(if raw { "raw-responder" } else { "responder" }, raw);
        let prefix = match (raw, self.zenoh) {
            (false, _) => "",
            (true, false) => "raw-",
            (true, true) => "zraw-",
        };
        let mut responder = self.spawn_role(&[format!("{prefix}responder"), place.clone()], false);
        let mut client = self.spawn_role(
            &[
                format!("{prefix}{role}"),
                place,
                count.to_string(),
                self.payload.to_string(),
            ],
            true,
        );
        let result = result_of(&mut client).await;
        let _ = responder.kill().await;
        result
    }

    /// lahja's and the baseline's `role` client, alternating who goes first.
    async fn request_clients(&mut self, role: &str, count: u64) -> (Client, Client, &'static str) {
        let (lahja, raw) = if self.baseline_first() {
            let raw = self.request_client(role, true, count).await;
            (self.request_client(role, false, count).await, raw)
        } else {
            let lahja = self.request_client(role, false, count).await;
            (lahja, self.request_client(role, true, count).await)
        };
        let baseline = match (self.zenoh, role) {
            (true, _) => "raw zenoh get",
            (false, "roundtrip") => "raw ping-pong",
            (false, _) => "raw pipelined",
        };
        (lahja, raw, baseline)
    }

    async fn roundtrip(&mut self, count: u64) {
        let (lahja, raw, baseline) = self.request_clients("roundtrip", count).await;
        let rows = [
            ("latency p50 (us)", "p50_us"),
            ("latency p90 (us)", "p90_us"),
            ("latency p99 (us)", "p99_us"),
            ("latency max (us)", "max_us"),
            ("requests/s", "per_s"),
            ("client CPU per request (us)", "cpu_us_per_request"),
        ];
        for (metric, key) in rows {
            let (lahja, raw) = (field(&lahja, key), field(&raw, key));
            self.row("roundtrip", metric, lahja, Some(raw), baseline);
        }
        let lahja_over = if self.zenoh {
            "lahja over zenoh"
        } else {
            "lahja"
        };
        for (who, result) in [(lahja_over, &lahja), (baseline, &raw)] {
            let quantiles = result
                .get("quantiles_us")
                .map(|q| q.split(';').filter_map(|v| v.parse().ok()).collect())
                .unwrap_or_default();
            self.quantiles.push((self.pin, who, quantiles));
        }
    }

    async fn request(&mut self, count: u64) {
        let (lahja, raw, baseline) = self.request_clients("pipelined", count).await;
        let rows = [
            ("requests/s", "per_s"),
            ("client CPU per request (us)", "cpu_us_per_request"),
        ];
        for (metric, key) in rows {
            let (lahja, raw) = (field(&lahja, key), field(&raw, key));
            self.row("request x64", metric, lahja, Some(raw), baseline);
        }
    }

    async fn local(&mut self, events: u64) {
        let payload = self.payload;
        let lahja = local::with_lahja(events, payload).await;
        let tokio = local::with_tokio(events, payload).await;
        self.row("local", "events/s", lahja, Some(tokio), "tokio broadcast");
    }

    /// `size` endpoint processes, each connected to every other: how long
    /// until all are (from the first spawn, so process start included),
    /// and the RSS and descriptors of each.
    async fn mesh(&mut self, size: usize) {
        let folder = self.folder.join(format!("mesh-{size}"));
        std::fs::create_dir_all(&folder).expect("mesh folder");
        let started = stats::now_ns();
        let folder_arg = folder.display().to_string();
        let mut children: Vec<Child> = (0..size)
            .map(|i| {
                let args = [
                    "mesh".into(),
                    folder_arg.clone(),
                    i.to_string(),
                    size.to_string(),
                ];
                self.spawn_role(&args, i % 2 == 1)
            })
            .collect();
        let mut results = Vec::new();
        for child in &mut children {
            results.push(result_of(child).await);
        }
        for child in &mut children {
            let stdin = child.stdin.as_mut().expect("stdin");
            let _ = stdin.write_all(b"done\n").await;
        }
        for child in &mut children {
            let _ = child.wait().await;
        }
        let last = results
            .iter()
            .map(|r| field(r, "connected_ns"))
            .fold(0.0, f64::max);
        let mean = |key: &str| results.iter().map(|r| field(r, key)).sum::<f64>() / size as f64;
        let mode = format!("mesh of {size}");
        self.row(
            &mode,
            "all connected after (ms)",
            (last - started as f64) / 1e6,
            None,
            "",
        );
        self.row(&mode, "RSS per endpoint (KiB)", mean("rss_kib"), None, "");
        self.row(&mode, "open descriptors", mean("fds"), None, "");
    }

    async fn stalled(&mut self) {
        let queue_bytes = 1 << 20;
        let capacity = 1024;
        let path = self.socket("stalled");
        let path_arg = path.display().to_string();
        let mut consumer = self.spawn_role(
            &[
                "stall-consumer".into(),
                path_arg.clone(),
                capacity.to_string(),
            ],
            true,
        );
        let mut producer = self.spawn_role(
            &[
                "stall-producer".into(),
                path_arg,
                "3".into(),
                self.payload.to_string(),
                queue_bytes.to_string(),
            ],
            false,
        );
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

/// The SVG plots of `bench` into `folder`: what it measured of each.
fn draw_plots(bench: &Bench, folder: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(folder)?;
    let mut latency = Vec::new();
    let mut placements: Vec<Pin> = bench.quantiles.iter().map(|(pin, ..)| *pin).collect();
    placements.sort_by_key(|pin| *pin as u8);
    placements.dedup();
    for pin in placements {
        let mut who: Vec<&str> = bench.quantiles.iter().map(|(_, w, _)| *w).collect();
        who.sort();
        who.dedup();
        for name in who {
            let runs: Vec<Vec<f64>> = bench
                .quantiles
                .iter()
                .filter(|(p, w, _)| *p == pin && *w == name)
                .map(|(.., q)| q.clone())
                .collect();
            latency.push(plots::Line {
                label: format!("{name}, {} CPUs", pin.name()),
                points: plots::distribution(&runs),
            });
        }
    }
    if !latency.is_empty() {
        plots::draw(
            &folder.join("roundtrip-latency.svg"),
            "Round trip latency, 64 B requests",
            (
                "latency (us, log scale)",
                "fraction of round trips at or below",
            ),
            false,
            &latency,
        )?;
    }
    let mut throughput = Vec::new();
    let mut placements: Vec<Pin> = bench.rows.iter().map(|r| r.pin).collect();
    placements.sort_by_key(|pin| *pin as u8);
    placements.dedup();
    for pin in placements {
        let rows = || {
            bench.rows.iter().filter(move |r| {
                r.pin == pin && r.metric == "MB/s per consumer" && r.mode.starts_with("payload ")
            })
        };
        let size = |mode: &str| {
            bench
                .payload_sizes
                .iter()
                .find(|(label, _)| label == mode)
                .map(|(_, size)| *size as f64)
        };
        let line = |name: &str, values: &dyn Fn(&Row) -> f64| plots::Line {
            label: format!("{name}, {} CPUs", pin.name()),
            points: rows()
                .filter_map(|r| Some((size(&r.mode)?, values(r))))
                .collect(),
        };
        let lahja = line("lahja (socket)", &|r| stats::median(&r.lahja));
        let raw = line("raw socket (best shape)", &|r| stats::median(&r.baseline));
        if !lahja.points.is_empty() {
            throughput.extend([lahja, raw]);
        }
    }
    if !throughput.is_empty() {
        plots::draw(
            &folder.join("payload-throughput.svg"),
            "Throughput to one consumer by payload size",
            ("payload (bytes, log scale)", "MB/s (log scale)"),
            true,
            &throughput,
        )?;
    }
    Ok(())
}

/// A figure with three significant digits at least.
fn figure(value: f64) -> String {
    match value.abs() {
        v if v < 10.0 => format!("{value:.3}"),
        v if v < 1000.0 => format!("{value:.1}"),
        _ => format!("{value:.0}"),
    }
}

fn print_rows(rows: &[Row]) {
    println!(
        "{:<26} {:<6} {:<28} {:>12} {:>7} {:>12} {:>7}  baseline",
        "mode", "CPUs", "metric", "lahja", "spread", "baseline", "ratio"
    );
    for row in rows {
        let baseline = match row.baseline.is_empty() {
            true => "-".into(),
            false => figure(stats::median(&row.baseline)),
        };
        let ratio = row.ratio().map_or("-".into(), |r| format!("{r:.2}"));
        println!(
            "{:<26} {:<6} {:<28} {:>12} {:>6.0}% {:>12} {:>7}  {}",
            row.mode,
            row.pin.name(),
            row.metric,
            figure(stats::median(&row.lahja)),
            row.spread(),
            baseline,
            ratio,
            row.baseline_name
        );
    }
}

/// One JSON object a line: medians, the per-repetition figures, and the
/// median of the per-repetition ratios.
fn print_json(rows: &[Row]) {
    let list = |values: &[f64]| {
        let values: Vec<String> = values.iter().map(|v| format!("{v:.3}")).collect();
        format!("[{}]", values.join(","))
    };
    for row in rows {
        let baseline = match row.baseline.is_empty() {
            true => "null".into(),
            false => format!("{:.3}", stats::median(&row.baseline)),
        };
        let ratio = row.ratio().map_or("null".into(), |r| format!("{r:.3}"));
        println!(
            "{{\"mode\":\"{}\",\"pin\":\"{}\",\"metric\":\"{}\",\"lahja\":{:.3},\"baseline\":{baseline},\"baseline_name\":\"{}\",\"ratio\":{ratio},\"lahja_runs\":{},\"baseline_runs\":{}}}",
            row.mode,
            row.pin.name(),
            row.metric,
            stats::median(&row.lahja),
            row.baseline_name,
            list(&row.lahja),
            list(&row.baseline),
        );
    }
}

/// Whether the README's table shows `metric` of `mode`: for each kind of
/// measurement the figures its goal is about.
fn in_readme(mode: &str, metric: &str) -> bool {
    let mode = mode.strip_prefix("zenoh: ").unwrap_or(mode);
    let kind = mode.split(' ').next().unwrap_or_default();
    let metrics: &[&str] = match kind {
        "broadcast" if mode.contains("tap") => &[],
        "broadcast" if mode == "broadcast x1" => &[
            "events/s per consumer",
            "latency p50 (us)",
            "latency p99 (us)",
            "CPU per delivery (us)",
        ],
        "broadcast" => &[
            "deliveries/s total",
            "latency p50 (us)",
            "CPU per delivery (us)",
        ],
        // x1 and x4 are the broadcast rows already, 64 B too.
        "fan-out" if mode == "fan-out x1" || mode == "fan-out x4" => &[],
        "fan-out" => &["deliveries/s total", "CPU per delivery (us)"],
        "payload" if mode == "payload 64 B" => &[],
        "payload" => &["MB/s per consumer", "CPU per delivery (us)"],
        "roundtrip" => &[
            "latency p50 (us)",
            "latency p99 (us)",
            "client CPU per request (us)",
        ],
        "request" => &["requests/s", "client CPU per request (us)"],
        "local" => &["events/s"],
        "stalled" => &["producer RSS growth (KiB)"],
        "mesh" => &[
            "all connected after (ms)",
            "RSS per endpoint (KiB)",
            "open descriptors",
        ],
        _ => &[],
    };
    metrics.contains(&metric)
}

/// The README's table, from this run (see `regenerate-readme.sh`).
fn print_markdown(rows: &[Row], options: &Options) {
    let repeat = options.repeat;
    println!(
        "Medians of {repeat} interleaved repetitions, {} B payloads, runtime `{}`; \
         spread is (max - min) / median of lahja's figures; ratio is the median of \
         the per-repetition ratios.\n",
        options.payload, options.runtime
    );
    println!("| workload | CPUs | metric | lahja | spread | baseline | ratio | baseline is |");
    println!("| --- | --- | --- | ---: | ---: | ---: | ---: | --- |");
    let number = |v: f64| {
        if v >= 1000.0 {
            let digits = format!("{v:.0}");
            let mut grouped = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i) % 3 == 0 {
                    grouped.push(',');
                }
                grouped.push(c);
            }
            grouped
        } else {
            figure(v)
        }
    };
    for row in rows.iter().filter(|r| in_readme(&r.mode, r.metric)) {
        let baseline = match row.baseline.is_empty() {
            true => "".into(),
            false => number(stats::median(&row.baseline)),
        };
        let ratio = row.ratio().map_or("".into(), |r| format!("{r:.2}"));
        println!(
            "| {} | {} | {} | {} | {:.0}% | {baseline} | {ratio} | {} |",
            row.mode,
            row.pin.name(),
            row.metric,
            number(stats::median(&row.lahja)),
            row.spread(),
            row.baseline_name
        );
    }
}
