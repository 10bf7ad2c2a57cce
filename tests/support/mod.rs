//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod raw;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Generous: only fires when something is broken.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Awaits `future`, failing the test if it takes longer than [`PATIENCE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {PATIENCE:?} waiting for {what}"),
    }
}

/// Waits (with [`PATIENCE`]) until `endpoint` sees `who` subscribed to `E`.
pub async fn subscribed<E: lahja::Event>(endpoint: &lahja::Endpoint, who: &str) {
    within(
        &format!("{who} to subscribe to {}", E::NAME),
        endpoint.wait_until_endpoint_subscribed_to::<E>(who),
    )
    .await
    .expect("the endpoint stopped while waiting");
}

/// A name no other test in this process uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `condition` (with yields, not sleeps) until it holds.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    within(what, async {
        while !condition() {
            tokio::task::yield_now().await;
        }
    })
    .await
}

/// Waits (with [`PATIENCE`]) until `endpoint` is no longer connected to
/// `name`.
pub async fn disconnected(endpoint: &lahja::Endpoint, name: &str) {
    within(&format!("{name} to be dropped"), async {
        while endpoint.is_connected_to(name) {
            // Re-checked now and then: a change between the check and the
            // wait would be missed.
            let change = endpoint.wait_until_connections_change();
            let _ = tokio::time::timeout(Duration::from_millis(50), change).await;
        }
    })
    .await
}

/// Broadcasts Numbered(0, 1, ...) without waiting until a target's queue
/// is full (a peer that stalls); returns how many went and the full
/// target. Fails if ten million fit: then the queue is not bounded.
pub async fn fill_until_full(producer: &lahja::Endpoint) -> (u64, String) {
    use lahja_workspace::events::Numbered;
    let mut sent = 0u64;
    let full = within("the queue to fill", async {
        loop {
            match producer.broadcast_nowait(Numbered(sent)) {
                Ok(()) => sent += 1,
                Err(lahja::Error::QueueFull { endpoint }) => break endpoint,
                Err(other) => panic!("{other:?}"),
            }
            assert!(
                sent < 10_000_000,
                "the queue never filled: it is not bounded"
            );
            tokio::task::yield_now().await;
        }
    })
    .await;
    (sent, full)
}

/// Broadcasts a million more Numbered from `from` in a task of its own
/// (nobody need be subscribed: the stalled peer may be dropped meanwhile).
pub fn broadcast_a_million_more(
    producer: &lahja::Endpoint,
    from: u64,
) -> tokio::task::JoinHandle<lahja::Result<()>> {
    use lahja_workspace::events::Numbered;
    let producer = producer.clone();
    tokio::spawn(async move {
        let config = lahja::BroadcastConfig::default().require_subscriber(false);
        for n in from..from + 1_000_000 {
            producer.broadcast_with(Numbered(n), config.clone()).await?;
        }
        Ok(())
    })
}

/// A folder of its own for one test's sockets, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(unique("lahja-test"));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn socket(&self, name: &str) -> std::path::PathBuf {
        self.0.join(format!("{name}.sock"))
    }

    pub fn config(&self, name: &str) -> lahja::ConnectionConfig {
        lahja::ConnectionConfig::new(name, self.socket(name))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Connects to `path`, sends `first` (a hello, usually), and returns the
/// body of the one REJECT the endpoint answers with before it closes.
pub async fn refusal(path: &std::path::Path, first: &[u8]) -> Vec<u8> {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::UnixStream::connect(path).await.unwrap();
    stream.write_all(first).await.unwrap();
    let mut frames = within("refusal", raw::read_until_closed(&mut stream)).await;
    assert_eq!(frames.len(), 1, "one REJECT, then closed");
    let (kind, body) = frames.pop().unwrap();
    assert_eq!(kind, raw::REJECT);
    body
}

/// Starts a helper binary with `args` (stdin kept open: it runs until
/// dropped) and returns it with the first line it prints.
pub async fn first_line_of(program: &str, args: &[&str]) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let line = within(
        &format!("a line from {program}"),
        tokio::io::BufReader::new(stdout).lines().next_line(),
    )
    .await
    .unwrap()
    .unwrap_or_else(|| panic!("{program} exited without a line"));
    (child, line)
}

/// A `lahja-peer` child process, scripted line by line.
pub struct Peer {
    pub name: String,
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    /// Lines read while looking for another one.
    backlog: std::collections::VecDeque<String>,
}

impl Peer {
    /// Starts the helper process.
    pub fn spawn(name: &str) -> Peer {
        Self::spawn_with(
            name,
            tokio::process::Command::new(env!("CARGO_BIN_EXE_lahja-peer")),
        )
    }

    /// Starts a victim of hostile input: a helper that aborts on any panic
    /// (even one lahja would contain), so a crash shows in its exit status.
    pub fn victim(name: &str) -> Peer {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_lahja-peer"));
        command.env("LAHJA_PEER_ABORT_ON_PANIC", "1");
        Self::spawn_with(name, command)
    }

    /// Starts a victim serving `name` in `dir` with the `key=value` options.
    pub async fn victim_serving(name: &str, dir: &TempDir, options: &str) -> Peer {
        let mut peer = Peer::victim(name);
        let path = dir.socket(name);
        peer.ok(&format!("serve {name} {} {options}", path.display()))
            .await;
        peer
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// How the process ended, if it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("wait")
    }

    /// Fails the test if the process has exited (naming how it ended).
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().expect("wait") {
            panic!("peer {} died: {status}", self.name);
        }
    }

    /// The process's resident set size in KiB.
    pub async fn rss_kib(&mut self) -> u64 {
        self.ok("rss").await.parse().expect("rss")
    }

    /// Starts a helper from a prepared command (say, as another user).
    pub fn spawn_command(name: &str, command: tokio::process::Command) -> Peer {
        Self::spawn_with(name, command)
    }

    fn spawn_with(name: &str, mut command: tokio::process::Command) -> Peer {
        use std::process::Stdio;
        use tokio::io::AsyncBufReadExt;
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start lahja-peer");
        let stdin = child.stdin.take().unwrap();
        let stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        Peer {
            name: name.to_owned(),
            child,
            stdin,
            stdout,
            backlog: Default::default(),
        }
    }

    /// Starts a peer serving `name` in `dir`.
    pub async fn serving(name: &str, dir: &TempDir) -> Peer {
        let mut peer = Peer::spawn(name);
        let path = dir.socket(name);
        peer.ok(&format!("serve {name} {}", path.display())).await;
        peer
    }

    /// Starts a peer serving `name` in `dir` with the `key=value` options.
    pub async fn serving_with(name: &str, dir: &TempDir, options: &str) -> Peer {
        let mut peer = Peer::spawn(name);
        let path = dir.socket(name);
        peer.ok(&format!("serve {name} {} {options}", path.display()))
            .await;
        peer
    }

    /// Starts a peer running `name` (not serving).
    pub async fn running(name: &str) -> Peer {
        let mut peer = Peer::spawn(name);
        peer.ok(&format!("run {name}")).await;
        peer
    }

    pub async fn send(&mut self, command: &str) {
        use tokio::io::AsyncWriteExt;
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .expect("peer stdin");
    }

    /// The next line starting with `prefix` (other lines are kept for later).
    pub async fn line(&mut self, prefix: &str) -> String {
        if let Some(i) = self.backlog.iter().position(|l| l.starts_with(prefix)) {
            return self.backlog.remove(i).unwrap();
        }
        let name = self.name.clone();
        within(&format!("`{prefix}` from peer {name}"), async {
            loop {
                match self.stdout.next_line().await.expect("peer stdout") {
                    Some(line) if line.starts_with(prefix) => return line,
                    Some(line) => self.backlog.push_back(line),
                    None => panic!("peer {name} exited while we waited for `{prefix}`"),
                }
            }
        })
        .await
    }

    /// The reply to `command`: a line starting with `ok` or `err`.
    pub async fn reply(&mut self, command: &str) -> String {
        self.send(command).await;
        let name = self.name.clone();
        within(&format!("reply to `{command}` from peer {name}"), async {
            loop {
                match self.stdout.next_line().await.expect("peer stdout") {
                    Some(line) if line.starts_with("ok") || line.starts_with("err") => return line,
                    Some(line) => self.backlog.push_back(line),
                    None => panic!("peer {name} exited before replying to `{command}`"),
                }
            }
        })
        .await
    }

    /// Runs `command`, which must succeed; returns what follows `ok`.
    pub async fn ok(&mut self, command: &str) -> String {
        let reply = self.reply(command).await;
        assert!(
            reply.starts_with("ok"),
            "peer {}: `{command}` -> {reply}",
            self.name
        );
        reply.trim_start_matches("ok").trim().to_owned()
    }

    /// Repeats `command` until its reply (after `ok`) satisfies `done`:
    /// how a test waits for the peer's view of something to change.
    pub async fn until(&mut self, command: &str, mut done: impl FnMut(&str) -> bool) {
        let name = self.name.clone();
        within(
            &format!("`{command}` on peer {name} to give the expected reply"),
            async {
                while !done(&self.ok(command).await) {
                    tokio::task::yield_now().await;
                }
            },
        )
        .await
    }

    /// Waits until this peer sees whether `endpoint` subscribes to Numbered.
    pub async fn sees_subscribed(&mut self, endpoint: &str, subscribed: bool) {
        let expected = subscribed.to_string();
        self.until(&format!("is-subscribed {endpoint}"), |reply| {
            reply == expected
        })
        .await
    }

    /// Kills the process with SIGKILL and reaps it.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill peer");
    }

    /// Asks the process to exit and waits for it.
    pub async fn exit(mut self) {
        self.send("exit").await;
        within("peer exit", self.child.wait())
            .await
            .expect("peer exit");
    }
}

/// Who serves in an endpoint pair (lahja runs its pair tests both ways).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The in-test endpoint serves; the child process connects to it.
    TestServes,
    /// The child process serves; the in-test endpoint connects to it.
    PeerServes,
}

pub const BOTH_WAYS: [Direction; 2] = [Direction::TestServes, Direction::PeerServes];

/// An in-test endpoint and a child process connected to each other.
pub async fn pair(dir: &TempDir, direction: Direction) -> (lahja::Endpoint, Peer) {
    pair_with(dir, direction, lahja::EndpointOptions::default()).await
}

pub async fn pair_with(
    dir: &TempDir,
    direction: Direction,
    options: lahja::EndpointOptions,
) -> (lahja::Endpoint, Peer) {
    let own = unique("test");
    let other = unique("peer");
    match direction {
        Direction::TestServes => {
            let endpoint = lahja::Endpoint::serve_with(dir.config(&own), options)
                .await
                .unwrap();
            let mut peer = Peer::running(&other).await;
            peer.ok(&format!("connect {own} {}", dir.socket(&own).display()))
                .await;
            within("peer connected", endpoint.wait_until_connected_to(&other))
                .await
                .unwrap();
            (endpoint, peer)
        }
        Direction::PeerServes => {
            let peer = Peer::serving(&other, dir).await;
            let endpoint = lahja::Endpoint::run_with(own, options).await.unwrap();
            endpoint
                .connect_to_endpoints([dir.config(&other)])
                .await
                .unwrap();
            (endpoint, peer)
        }
    }
}

/// A zenoh bus of one test's own (feature `zenoh`).
#[cfg(feature = "zenoh")]
mod zenoh_bus {
    use super::{Peer, unique};
    use lahja::zenoh::ZenohConfig;
    use lahja::{Endpoint, EndpointOptions};

    /// A free TCP port on 127.0.0.1 (bound and released: the moment between
    /// is the only race, and nothing else on a test machine takes ports in a
    /// loop).
    pub fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    /// One test's bus: a name of its own and the hub's locator.
    pub struct TestBus {
        pub name: String,
        pub hub: String,
    }

    impl TestBus {
        pub fn new() -> TestBus {
            TestBus {
                name: unique("bus"),
                hub: format!("tcp/127.0.0.1:{}", free_port()),
            }
        }

        /// The hub's config: it listens where the others connect.
        pub fn hub_config(&self) -> ZenohConfig {
            ZenohConfig::new(&self.name).listen(&self.hub)
        }

        /// The `lahja-peer` command that joins a member.
        pub fn member_command(&self) -> String {
            format!(
                "zenoh {} connect={} listen=tcp/127.0.0.1:0",
                self.name, self.hub
            )
        }

        /// The hub: this process, on the bus, listening where the others
        /// connect.
        pub async fn hub_with(&self, options: EndpointOptions) -> Endpoint {
            let hub = Endpoint::run_with(unique("hub"), options).await.unwrap();
            hub.join_zenoh(self.hub_config()).await.unwrap();
            hub
        }

        /// A `lahja-peer` process on the bus.
        pub async fn member(&self, prefix: &str) -> Peer {
            let name = unique(prefix);
            let mut peer = Peer::running(&name).await;
            peer.ok(&self.member_command()).await;
            peer
        }
    }
}
#[cfg(feature = "zenoh")]
#[allow(unused_imports)] // not every test binary uses it
pub use zenoh_bus::TestBus;
