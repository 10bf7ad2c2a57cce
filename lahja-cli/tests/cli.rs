//! The `lahja` tool against real endpoint processes.
//!
//! This binary is both the tests and the endpoints they look at: run with
//! `LAHJA_CLI_TEST_ENDPOINT` set, it serves one endpoint and takes
//! commands on stdin (see [`endpoint`]). Each test uses its own folder.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use lahja::{BroadcastConfig, ConnectionConfig, Endpoint, EndpointOptions, Error, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(name = "cli.Tick")]
struct Tick(u64);

/// Nobody subscribes to it: broadcasting it is `NoSubscribers` when asked.
#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(name = "cli.Lonely")]
struct Lonely;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(name = "cli.Big")]
struct Big(Vec<u8>);

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(name = "cli.Ping")]
#[request(response = Pong)]
struct Ping(u32);

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(name = "cli.Pong")]
struct Pong(u32);

/// No `Debug`: a tap shows its size, and no value.
#[derive(Event, Serialize, Deserialize, Clone)]
#[event(name = "cli.Opaque")]
struct Opaque([u8; 3]);

const PATIENCE: Duration = Duration::from_secs(30);

// ---- the endpoint side ----------------------------------------------------

/// Serves `NAME` in `DIR`, in `GROUPS` (comma-separated, may be empty),
/// subscribes to `Tick` and `Big` unless `SUBSCRIBE` is `no`, prints
/// `ready`, then runs one command per stdin line and prints its outcome:
/// `connect NAME`, `ticks N`, `lonely` (NoSubscribers or ok), `state
/// NAME` (subscription checks), `fill` (Big events until QueueFull).
fn endpoint(spec: &str) {
    let parts: Vec<&str> = spec.split(' ').collect();
    let [dir, name, groups, subscribe] = parts[..] else {
        panic!("bad spec {spec}");
    };
    let dir = PathBuf::from(dir);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let options = EndpointOptions {
            groups: groups
                .split(',')
                .filter(|g| !g.is_empty())
                .map(String::from)
                .collect(),
            queue_bytes: 256 << 10,
            // A stalled tap is closed after this: longer than any test.
            handshake_timeout: Duration::from_secs(120),
            ..EndpointOptions::default()
        };
        let config = ConnectionConfig {
            name: name.into(),
            path: dir.join(format!("{name}.sock")),
        };
        let endpoint = Endpoint::serve_with(config, options).await.unwrap();
        let _subscriptions = (subscribe != "no").then(|| {
            (
                endpoint.subscribe(|_: Tick| {}),
                endpoint.subscribe(|_: Big| {}),
                endpoint.subscribe(|_: Opaque| {}),
                endpoint.handle_requests(|Ping(n): Ping| async move { Pong(n + 1) }),
            )
        });
        // The background producer of `stream`, kept until exit.
        let mut _streaming = None;
        println!("ready");
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin());
        let mut line = String::new();
        loop {
            line.clear();
            if tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut line)
                .await
                .unwrap()
                == 0
            {
                return;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let reply = match words[..] {
                ["connect", peer] => {
                    let config = ConnectionConfig {
                        name: peer.into(),
                        path: dir.join(format!("{peer}.sock")),
                    };
                    endpoint.connect_to_endpoints([config]).await.unwrap();
                    endpoint
                        .wait_until_endpoint_subscribed_to::<Tick>(peer)
                        .await
                        .unwrap();
                    "connected".to_owned()
                }
                ["ticks", n] => {
                    for i in 0..n.parse().unwrap() {
                        endpoint.broadcast(Tick(i)).await.unwrap();
                    }
                    "sent".to_owned()
                }
                ["ping", peer] => {
                    let config = BroadcastConfig {
                        filter_endpoint: Some(peer.into()),
                        ..BroadcastConfig::default()
                    };
                    let Pong(n) = endpoint.request_with(Ping(41), config).await.unwrap();
                    format!("pong {n}")
                }
                ["opaque"] => {
                    endpoint.broadcast(Opaque([1, 2, 3])).await.unwrap();
                    "sent".to_owned()
                }
                ["stream"] => {
                    let endpoint = endpoint.clone();
                    _streaming = Some(tokio::spawn(async move {
                        let mut every = tokio::time::interval(Duration::from_millis(2));
                        for i in 0.. {
                            every.tick().await;
                            endpoint.broadcast(Tick(i)).await.unwrap();
                        }
                    }));
                    "streaming".to_owned()
                }
                ["huge"] => {
                    // Just over a tap's 64 KiB once decompressed; far
                    // smaller on the wire (it compresses well).
                    endpoint.broadcast(Big(vec![7; 64 << 10])).await.unwrap();
                    "sent".to_owned()
                }
                ["big"] => {
                    endpoint.broadcast(Big(vec![7; 8 << 10])).await.unwrap();
                    "sent".to_owned()
                }
                ["stop"] => {
                    endpoint.stop().await;
                    "stopped".to_owned()
                }
                ["lonely"] => {
                    let config = BroadcastConfig {
                        require_subscriber: true,
                        ..BroadcastConfig::default()
                    };
                    match endpoint.broadcast_with(Lonely, config).await {
                        Err(Error::NoSubscribers { .. }) => "no-subscribers".to_owned(),
                        other => format!("{other:?}"),
                    }
                }
                ["state", peer] => format!(
                    "any={} all={} connected={} peer={}",
                    endpoint.is_any_endpoint_subscribed_to::<Tick>(),
                    endpoint.are_all_endpoints_subscribed_to::<Tick>(false),
                    endpoint.get_connected_endpoints_and_subscriptions().len(),
                    endpoint.is_connected_to(peer),
                ),
                ["fill"] => loop {
                    match endpoint.broadcast_nowait(Big(vec![7; 4 << 10])) {
                        Ok(()) => {}
                        Err(Error::QueueFull { .. }) => break "full".to_owned(),
                        Err(other) => break format!("{other:?}"),
                    }
                },
                _ => format!("unknown command {line:?}"),
            };
            println!("{reply}");
        }
    });
}

// ---- the test side --------------------------------------------------------

/// One endpoint process.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn start(dir: &Path, name: &str, groups: &str, subscribe: bool) -> Peer {
        let spec = format!(
            "{} {name} {groups} {}",
            dir.display(),
            if subscribe { "yes" } else { "no" }
        );
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env("LAHJA_CLI_TEST_ENDPOINT", spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut peer = Peer {
            child,
            stdin,
            stdout,
        };
        assert_eq!(peer.line(), "ready");
        peer
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }

    /// Runs one command and returns its outcome line.
    fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.line()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the socket file stays behind, stale.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `alpha` (subscribed to everything, answering `Ping`) and `beta`
/// (subscribed to nothing), connected.
fn alpha_and_beta(dir: &Path) -> (Peer, Peer) {
    let a = Peer::start(dir, "alpha", "", true);
    let mut b = Peer::start(dir, "beta", "", false);
    assert_eq!(b.ask("connect alpha"), "connected");
    (a, b)
}

/// An observer of the endpoint at `path`, tapping every type.
fn tapping(runtime: &tokio::runtime::Runtime, path: &Path) -> lahja::introspect::Observer {
    runtime.block_on(async {
        let mut observer = lahja::introspect::Observer::connect(path).await.unwrap();
        observer.tap(&[]).await.unwrap();
        observer
    })
}

/// A fresh private folder for one test.
fn folder(test: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("lahja-cli-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

/// Runs `lahja --dir DIR ARGS...`: (exit status, stdout).
fn lahja(dir: &Path, args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_lahja"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{stdout}{}",
            if stderr.is_empty() {
                String::new()
            } else {
                format!("[stderr] {stderr}")
            }
        ),
    )
}

/// The JSON Lines `lahja ARGS... --json` prints.
fn json_lines(dir: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let (code, out) = lahja(dir, &[args, &["--json"]].concat());
    assert_eq!(code, 0, "{args:?}: {out}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Asks `lahja info NAME --json` until `accept` takes it.
fn info_until(
    dir: &Path,
    name: &str,
    accept: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let info = json_lines(dir, &["info", name]).remove(0);
        if accept(&info) {
            return info;
        }
        assert!(start.elapsed() < PATIENCE, "gave up waiting: {info:#}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn hex(id: lahja::EventId) -> String {
    format!("{:#018x}", id.as_u64())
}

fn names(values: &serde_json::Value) -> Vec<String> {
    values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect()
}

fn list_info_and_events_report_each_field() {
    let dir = folder("fields");
    let mut a = Peer::start(&dir, "alpha", "g1,g2", true);
    let mut b = Peer::start(&dir, "beta", "", false);
    assert_eq!(b.ask("connect alpha"), "connected");
    assert_eq!(b.ask("ticks 5"), "sent");

    let list = json_lines(&dir, &["list"]);
    assert_eq!(list.len(), 2, "{list:?}");
    for (entry, (name, pid)) in list.iter().zip([("alpha", a.pid()), ("beta", b.pid())]) {
        assert_eq!(entry["name"], name);
        assert_eq!(entry["pid"], pid);
        assert_eq!(entry["alive"], true);
        assert_eq!(entry["state"], "alive");
        assert_eq!(
            entry["path"],
            dir.join(format!("{name}.sock")).display().to_string()
        );
    }
    assert_eq!(list[0]["peers"], 1);
    assert_eq!(list[0]["subscriptions"], 4);
    assert_eq!(list[1]["subscriptions"], 0);

    let info = info_until(&dir, "alpha", |i| {
        i["traffic"].as_array().is_some_and(|t| !t.is_empty())
    });
    assert_eq!(info["name"], "alpha");
    assert_eq!(info["pid"], a.pid());
    assert_eq!(info["groups"], serde_json::json!(["g1", "g2"]));
    assert_eq!(names(&info["peers"]), ["beta"]);
    let subscriptions = &info["subscriptions"];
    assert_eq!(
        names(subscriptions),
        ["cli.Big", "cli.Opaque", "cli.Ping", "cli.Tick"]
    );
    assert_eq!(subscriptions[3]["id"], hex(Tick::ID));
    assert_eq!(
        info["transports"][0],
        format!("socket {}", dir.join("alpha.sock").display())
    );
    let tick = info["traffic"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "cli.Tick")
        .unwrap();
    assert_eq!(tick["received"], 5, "{info:#}");
    assert!(
        info["peers"][0]["frames_in"].as_u64().unwrap() >= 5,
        "{info:#}"
    );

    let info = json_lines(&dir, &["info", "beta"]).remove(0);
    let tick = info["traffic"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "cli.Tick")
        .unwrap();
    assert_eq!(
        (tick["sent"].as_u64(), tick["received"].as_u64()),
        (Some(5), Some(0))
    );
    assert_eq!(
        names(&info["peers"][0]["subscriptions"]),
        ["cli.Big", "cli.Opaque", "cli.Ping", "cli.Tick"]
    );

    let events = json_lines(&dir, &["events", "--window", "0"]);
    let tick = events
        .iter()
        .find(|e| e["name"] == "cli.Tick")
        .expect("cli.Tick listed");
    assert_eq!(tick["id"], hex(Tick::ID));
    assert_eq!(tick["subscribers"], serde_json::json!(["alpha"]));
    assert_eq!(tick["senders"], serde_json::json!(["beta"]));
    assert_eq!(tick["sent"], 5);
    let big = events
        .iter()
        .find(|e| e["name"] == "cli.Big")
        .expect("cli.Big listed");
    assert_eq!(big["senders"], serde_json::json!([]));

    // The same facts for people, in aligned columns.
    let (code, table) = lahja(&dir, &["list"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAME   PID"), "{table}");
    assert!(
        lines[1].starts_with(&format!("alpha  {}", a.pid())),
        "{table}"
    );
    let column = lines[0].find("STATE").unwrap();
    assert_eq!(&lines[2][column..column + 5], "alive", "{table}");
    let (code, text) = lahja(&dir, &["info", "alpha"]);
    assert_eq!(code, 0);
    for section in [
        "Peers (1)",
        "Subscriptions (4)",
        "Traffic",
        "Pending requests (0)",
        "cli.Tick",
    ] {
        assert!(text.contains(section), "{section} missing from:\n{text}");
    }
    drop(a.ask("state beta"));
}

fn observing_changes_no_outcome() {
    let dir = folder("unchanged");
    let (mut a, mut b) = alpha_and_beta(&dir);
    let before = (b.ask("lonely"), b.ask("state alpha"), a.ask("state beta"));
    assert_eq!(before.0, "no-subscribers");
    assert_eq!(before.1, "any=true all=true connected=2 peer=true");
    // Observers hold connections to both while the same questions are
    // asked again: nothing they see may differ.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let observers = runtime.block_on(async {
        let mut held = Vec::new();
        for name in ["alpha", "beta"] {
            let mut observer =
                lahja::introspect::Observer::connect(dir.join(format!("{name}.sock")))
                    .await
                    .unwrap();
            assert_eq!(observer.report().await.unwrap().name, name);
            observer.tap(&[]).await.unwrap();
            held.push(observer);
        }
        held
    });
    let during = (b.ask("lonely"), b.ask("state alpha"), a.ask("state beta"));
    assert_eq!(during, before);
    let list = json_lines(&dir, &["info", "alpha"]);
    assert_eq!(
        names(&list[0]["peers"]),
        ["beta"],
        "an observer is not a peer"
    );
    // Two observers of alpha now: the tapping one and the one asking.
    assert_eq!(
        (&list[0]["observers"], &list[0]["taps"]),
        (&2.into(), &1.into())
    );
    drop(observers);
}

/// Starts `lahja ARGS...` with its output piped, for live commands.
fn lahja_live(dir: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_lahja"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The one copy of type `name` that `lahja tap` shows from alpha while
/// `during` runs, as JSON.
fn one_copy(dir: &Path, name: &str, during: impl FnOnce()) -> serde_json::Value {
    let args = ["tap", name, "--endpoint", "alpha", "--count", "1", "--json"];
    let tap = lahja_live(dir, &args);
    wait_for_taps(dir, "alpha", 1);
    during();
    let output = tap.wait_with_output().unwrap();
    serde_json::from_str(String::from_utf8(output.stdout).unwrap().trim()).unwrap()
}

/// Waits until `lahja info NAME` shows `taps` open taps.
fn wait_for_taps(dir: &Path, name: &str, taps: u64) {
    info_until(dir, name, |i| i["taps"] == taps);
}

fn tap_shows_events_and_pairs_requests_with_responses() {
    let dir = folder("tap");
    let (a, mut b) = alpha_and_beta(&dir);
    let tap = lahja_live(&dir, &["tap", "--count", "4", "--json"]);
    wait_for_taps(&dir, "alpha", 1);
    wait_for_taps(&dir, "beta", 1);
    assert_eq!(b.ask("ticks 2"), "sent");
    assert_eq!(b.ask("ping alpha"), "pong 42");
    let output = tap.wait_with_output().unwrap();
    assert!(output.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    // Between two tapped endpoints each frame shows once, as sent.
    for (line, (kind, name, origin, value)) in lines.iter().zip([
        ("event", "cli.Tick", "beta", "Tick(0)"),
        ("event", "cli.Tick", "beta", "Tick(1)"),
        ("request", "cli.Ping", "beta", "Ping(41)"),
        ("response", "cli.Pong", "alpha", "Pong(42)"),
    ]) {
        assert_eq!(line["kind"], kind, "{line}");
        assert_eq!(line["type"], name, "{line}");
        assert_eq!(line["origin"], origin, "{line}");
        assert_eq!(line["value"], value, "{line}");
        assert_eq!(line["direction"], "sent", "{line}");
        assert!(line["size"].as_u64().unwrap() > 0, "{line}");
    }
    assert_eq!(lines[0]["targets"], serde_json::json!(["alpha"]));
    assert_eq!(lines[2]["request_id"], lines[3]["request_id"]);
    assert!(
        lines[3]["latency_ms"].as_f64().unwrap() >= 0.0,
        "paired: {}",
        lines[3]
    );
    assert!(lines[2]["latency_ms"].is_null());

    // One endpoint and one type: a type without Debug has no value.
    let line = one_copy(&dir, "cli.Opaque", || {
        assert_eq!(b.ask("ticks 3"), "sent");
        assert_eq!(b.ask("opaque"), "sent");
    });
    assert_eq!(line["type"], "cli.Opaque");
    assert_eq!(line["direction"], "received");
    assert_eq!(line["origin"], "beta");
    assert_eq!(line["size"], 3);
    assert!(line["value"].is_null(), "{line}");
    assert_eq!(line["hex"], "010203", "{line}");

    // A body over 64 KiB once decompressed is not rendered, though it
    // arrived compressed to far less.
    let line = one_copy(&dir, "cli.Big", || assert_eq!(b.ask("huge"), "sent"));
    assert!(
        line["size"].as_u64().unwrap() < 64 << 10,
        "compressed: {line}"
    );
    assert!(line["value"].is_null() && line["hex"].is_null(), "{line}");

    // A long rendering is cut at 4 KiB.
    let line = one_copy(&dir, "cli.Big", || {
        assert_eq!(b.ask("big"), "sent");
    });
    let value = line["value"].as_str().unwrap();
    assert!(value.starts_with("Big([7, 7, "), "{value}");
    assert!(
        value.ends_with('…') && value.len() <= 4096 + '…'.len_utf8(),
        "{} bytes",
        value.len()
    );
    drop(a);
}

fn a_stalled_tap_loses_copies_and_never_holds_the_bus() {
    let dir = folder("stalled");
    let (mut a, mut b) = alpha_and_beta(&dir);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut observer = tapping(&runtime, &dir.join("alpha.sock"));
    // The tap is not read while 20,000 events go by: far more than its
    // channel and socket buffer hold.
    assert_eq!(b.ask("ticks 20000"), "sent");
    let info = info_until(&dir, "alpha", |i| {
        i["traffic"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "cli.Tick" && t["received"] == 20000)
    });
    assert_eq!(info["taps"], 1, "the stalled tap is still open");
    assert_eq!(
        a.ask("state beta"),
        "any=true all=false connected=2 peer=true"
    );
    let lost = runtime.block_on(async {
        loop {
            let copy = observer.next_tapped().await.unwrap();
            if copy.lost > 0 {
                return copy.lost;
            }
        }
    });
    assert!(lost > 0);
}

fn an_observer_is_closed_when_its_endpoint_stops() {
    let dir = folder("stops");
    let mut a = Peer::start(&dir, "alpha", "", true);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut observer = tapping(&runtime, &dir.join("alpha.sock"));
    // The process lives on; only its endpoint stops.
    assert_eq!(a.ask("stop"), "stopped");
    let ended =
        runtime.block_on(async { tokio::time::timeout(PATIENCE, observer.next_tapped()).await });
    let error = ended
        .expect("the tap ends when the endpoint stops")
        .unwrap_err();
    assert!(
        error.to_string().contains("closed the connection"),
        "{error}"
    );
}

fn hz_and_top_once_measure_a_running_producer() {
    let dir = folder("rates");
    let (_a, mut b) = alpha_and_beta(&dir);
    assert_eq!(b.ask("stream"), "streaming");
    let hz = json_lines(&dir, &["hz", "cli.Tick", "--once", "--window", "0.5"]);
    assert_eq!(hz.len(), 1);
    assert_eq!(hz[0]["type"], "cli.Tick");
    assert!(hz[0]["rate"].as_f64().unwrap() > 0.0, "{}", hz[0]);
    assert!(
        hz[0]["senders"]["beta"].as_f64().unwrap() > 0.0,
        "{}",
        hz[0]
    );
    let top = json_lines(&dir, &["top", "--once", "--window", "0.5"]);
    assert_eq!(
        names(&serde_json::Value::Array(top.clone())),
        ["alpha", "beta"]
    );
    assert!(
        top[0]["received_per_s"].as_f64().unwrap() > 0.0,
        "{}",
        top[0]
    );
    assert!(top[1]["sent_per_s"].as_f64().unwrap() > 0.0, "{}", top[1]);
    let (code, text) = lahja(&dir, &["top", "--once", "--window", "0.2"]);
    assert_eq!(code, 0);
    assert!(text.contains("ENDPOINT  PID"), "{text}");
    let (code, out) = lahja(&dir, &["hz", "cli.Tick", "--window", "0"]);
    assert_eq!(code, 1, "{out}");
}

/// What a person sees: `lahja top` refreshing in a tmux pane.
fn top_refreshes_in_a_terminal() {
    let tmux = |args: &[&str]| Command::new("tmux").args(args).output();
    if tmux(&["-V"]).is_err() {
        assert!(
            std::env::var_os("LAHJA_REQUIRE_TMUX").is_none(),
            "tmux is required here"
        );
        println!("skipping top_refreshes_in_a_terminal: tmux is not installed");
        return;
    }
    let dir = folder("tmux");
    let (_a, mut b) = alpha_and_beta(&dir);
    assert_eq!(b.ask("stream"), "streaming");
    let server = format!("lahja-cli-test-{}", std::process::id());
    // The tmux server (and the `lahja top` in it) goes however the test ends.
    struct KillServer(String);
    impl Drop for KillServer {
        fn drop(&mut self) {
            let _ = Command::new("tmux")
                .args(["-L", &self.0, "kill-server"])
                .output();
        }
    }
    let _server = KillServer(server.clone());
    let command = format!(
        "{} --dir {} top --window 0.2",
        env!("CARGO_BIN_EXE_lahja"),
        dir.display()
    );
    let started = tmux(&[
        "-L",
        &server,
        "new-session",
        "-d",
        "-x",
        "120",
        "-y",
        "20",
        &command,
    ])
    .unwrap();
    assert!(started.status.success(), "{started:?}");
    let start = Instant::now();
    let pane = loop {
        let pane = tmux(&["-L", &server, "capture-pane", "-p"]).unwrap();
        let pane = String::from_utf8_lossy(&pane.stdout).into_owned();
        // A refreshed screen: one header, both rows, beta sending.
        let beta_sends = pane.lines().any(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            cells.first() == Some(&"beta") && cells.get(3).is_some_and(|rate| *rate != "0.0")
        });
        if pane.matches("ENDPOINT").count() == 1 && pane.contains("alpha") && beta_sends {
            break pane;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the pane never showed both:\n{pane}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(pane.starts_with("lahja top: 2 endpoints"), "{pane}");
}

fn send_and_request_go_through_an_endpoint_that_knows_the_type() {
    let dir = folder("send");
    let (_a, _b) = alpha_and_beta(&dir);
    let line = one_copy(&dir, "cli.Tick", || {
        let (code, out) = lahja(
            &dir,
            &["send", "cli.Tick", "--json", "7", "--endpoint", "beta"],
        );
        assert_eq!((code, out.as_str()), (0, "sent cli.Tick from beta\n"));
    });
    assert_eq!(
        (&line["origin"], &line["value"]),
        (&"beta".into(), &"Tick(7)".into()),
        "{line}"
    );

    // Answered where it is asked (alpha handles it), and across processes.
    assert_eq!(
        lahja(&dir, &["request", "cli.Ping", "--json", "41"]),
        (0, "42\n".to_owned())
    );
    let asked_by_beta = lahja(
        &dir,
        &["request", "cli.Ping", "--json", "1", "--endpoint", "beta"],
    );
    assert_eq!(asked_by_beta, (0, "2\n".to_owned()));

    for (args, says) in [
        (&["send", "cli.Ping", "--json", "1"][..], "is a request"),
        (
            &["request", "cli.Tick", "--json", "1"][..],
            "is an event, not a request",
        ),
        (
            &["send", "cli.Tick", "--json", "\"seven\""][..],
            "not a `cli.Tick`",
        ),
        (&["send", "no.Such", "--json", "1"][..], "no endpoint in"),
        (
            &["send", "lahja.Report", "--json", "{}"][..],
            "one of lahja's own types",
        ),
        (
            &["send", "cli.Tick", "--json", "1", "--endpoint", "gamma"][..],
            "cannot reach `gamma`",
        ),
    ] {
        let (code, out) = lahja(&dir, args);
        assert_eq!(code, 1, "{args:?}: {out}");
        assert!(out.contains(says), "{args:?}: {out}");
    }
}

fn check_reports_each_state() {
    let dir = folder("check");
    let (code, out) = lahja(&dir, &["check"]);
    assert_eq!(code, 2, "nothing runs: down: {out}");
    let (mut a, mut b) = alpha_and_beta(&dir);
    let (code, out) = lahja(&dir, &["check"]);
    assert_eq!((code, out.starts_with("healthy")), (0, true), "{out}");
    let (code, out) = lahja(&dir, &["check", "alpha", "gamma"]);
    assert_eq!(code, 2, "a named endpoint is missing: {out}");
    assert!(out.contains("`gamma` is not running"), "{out}");
    let (code, out) = lahja(&dir, &["check", "--json"]);
    let verdict: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (code, verdict["status"].as_str()),
        (0, Some("healthy")),
        "{out}"
    );

    // A stopped (SIGSTOP) subscriber: beta's queue to it fills up.
    let c = Peer::start(&dir, "gamma", "", true);
    assert_eq!(b.ask("connect gamma"), "connected");
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(c.pid() as i32, libc::SIGSTOP) }, 0);
    assert_eq!(b.ask("fill"), "full");
    let (code, out) = lahja(&dir, &["check"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("`beta`'s queue to `gamma` is full"), "{out}");
    assert!(out.contains("`gamma` does not answer"), "{out}");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(c.pid() as i32, libc::SIGCONT) }, 0);
    c.kill();
    b.kill();
    let (code, out) = lahja(&dir, &["check"]);
    assert_eq!(code, 1, "stale sockets: degraded: {out}");
    assert!(out.contains("`beta` left a stale socket"), "{out}");
    let (code, out) = lahja(&dir, &["check", "beta"]);
    assert_eq!(code, 2, "{out}");
    drop(a.ask("state beta"));
}

fn clean_removes_only_stale_sockets() {
    let dir = folder("clean");
    let a = Peer::start(&dir, "alpha", "", true);
    let b = Peer::start(&dir, "beta", "", true);
    std::fs::write(dir.join("plain.sock"), b"not a socket").unwrap();
    b.kill();
    assert!(dir.join("beta.sock").exists());
    let removed = json_lines(&dir, &["clean"]);
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(
        removed[0]["path"],
        dir.join("beta.sock").display().to_string()
    );
    assert!(!dir.join("beta.sock").exists());
    assert!(dir.join("alpha.sock").exists(), "a live socket stays");
    assert!(
        dir.join("plain.sock").exists(),
        "a file that is not a socket stays"
    );
    let list = json_lines(&dir, &["list"]);
    assert_eq!(names(&serde_json::Value::Array(list.clone())), ["alpha"]);
    assert_eq!(list[0]["alive"], true);
    drop(a);
}

fn every_command_has_help_with_an_example() {
    for command in [
        "list", "info", "events", "tap", "hz", "top", "check", "clean",
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_lahja"))
            .args([command, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8(output.stdout).unwrap();
        assert!(output.status.success(), "{command}");
        assert!(
            help.contains(&format!("Example:\n  lahja {command}")),
            "{command}:\n{help}"
        );
    }
}

fn main() {
    if let Ok(spec) = std::env::var("LAHJA_CLI_TEST_ENDPOINT") {
        return endpoint(&spec);
    }
    let tests: [(&str, fn()); 11] = [
        (
            "an_observer_is_closed_when_its_endpoint_stops",
            an_observer_is_closed_when_its_endpoint_stops,
        ),
        (
            "send_and_request_go_through_an_endpoint_that_knows_the_type",
            send_and_request_go_through_an_endpoint_that_knows_the_type,
        ),
        (
            "tap_shows_events_and_pairs_requests_with_responses",
            tap_shows_events_and_pairs_requests_with_responses,
        ),
        (
            "a_stalled_tap_loses_copies_and_never_holds_the_bus",
            a_stalled_tap_loses_copies_and_never_holds_the_bus,
        ),
        (
            "hz_and_top_once_measure_a_running_producer",
            hz_and_top_once_measure_a_running_producer,
        ),
        ("top_refreshes_in_a_terminal", top_refreshes_in_a_terminal),
        (
            "list_info_and_events_report_each_field",
            list_info_and_events_report_each_field,
        ),
        ("observing_changes_no_outcome", observing_changes_no_outcome),
        ("check_reports_each_state", check_reports_each_state),
        (
            "clean_removes_only_stale_sockets",
            clean_removes_only_stale_sockets,
        ),
        (
            "every_command_has_help_with_an_example",
            every_command_has_help_with_an_example,
        ),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = Vec::new();
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let outcome = std::panic::catch_unwind(test);
        println!(
            "test {name} ... {}",
            if outcome.is_ok() { "ok" } else { "FAILED" }
        );
        if outcome.is_err() {
            failed.push(name);
        }
    }
    if !failed.is_empty() {
        eprintln!("failed: {failed:?}");
        std::process::exit(101);
    }
}
