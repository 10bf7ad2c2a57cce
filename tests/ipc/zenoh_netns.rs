//! Two machines, as close as one machine gets: two network namespaces
//! joined by a veth pair, an endpoint in each, talking over zenoh on TCP.
//! Cutting the link (the veth down) fails pending requests and removes
//! the peer within the lease; bringing it back reconnects them, and each
//! knows the other's subscriptions again.
//!
//! Creating namespaces needs root. Without it the test says so and passes,
//! unless `LAHJA_REQUIRE_NETNS` is set (`.ci/run` sets it): then it fails.

use crate::support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{Peer, unique};

/// The lease both endpoints use: how long a silent link lives.
const LEASE: Duration = Duration::from_millis(1000);

/// Runs `ip ARGS`, failing the test if it fails.
fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {args:?}: {status}");
}

/// Two namespaces and the veth pair between them; deleted when dropped.
struct TwoHosts {
    names: [String; 2],
    links: [String; 2],
    addresses: [String; 2],
}

impl TwoHosts {
    fn new() -> TwoHosts {
        let tag = std::process::id() % 16_384;
        let names = [unique("lahja-a"), unique("lahja-b")];
        // Interface names are at most 15 bytes.
        let links = [format!("lva{tag}"), format!("lvb{tag}")];
        // A /30 of its own per process (the namespaces reach nothing else).
        let (third, fourth) = (tag / 64, (tag % 64) * 4);
        let addresses = [1, 2].map(|host| format!("10.213.{third}.{}", fourth + host));
        let hosts = TwoHosts {
            names,
            links,
            addresses,
        };
        for name in &hosts.names {
            ip(&["netns", "add", name]);
            ip(&["-n", name, "link", "set", "lo", "up"]);
        }
        ip(&[
            "link",
            "add",
            &hosts.links[0],
            "netns",
            &hosts.names[0],
            "type",
            "veth",
            "peer",
            "name",
            &hosts.links[1],
            "netns",
            &hosts.names[1],
        ]);
        for i in 0..2 {
            let address = format!("{}/30", hosts.addresses[i]);
            ip(&[
                "-n",
                &hosts.names[i],
                "addr",
                "add",
                &address,
                "dev",
                &hosts.links[i],
            ]);
            ip(&["-n", &hosts.names[i], "link", "set", &hosts.links[i], "up"]);
        }
        hosts
    }

    /// A `lahja-peer` in host `i`.
    fn peer(&self, i: usize, name: &str) -> Peer {
        let mut command = tokio::process::Command::new("ip");
        command.args([
            "netns",
            "exec",
            &self.names[i],
            env!("CARGO_BIN_EXE_lahja-peer"),
        ]);
        Peer::spawn_command(name, command)
    }

    /// Brings host `i`'s end of the link down or up.
    fn set_link(&self, i: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.names[i], "link", "set", &self.links[i], state]);
    }
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        for name in &self.names {
            // Deleting a namespace deletes the veth end inside it too.
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// Whether this process may create network namespaces.
fn may_create_namespaces() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root && std::env::var_os("LAHJA_REQUIRE_NETNS").is_some() {
        panic!("LAHJA_REQUIRE_NETNS is set but this test does not run as root");
    }
    if !root {
        eprintln!("zenoh_netns: skipped, creating network namespaces needs root");
    }
    root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_namespaces_over_a_veth_pair_survive_a_cut_link() {
    if !may_create_namespaces() {
        return;
    }
    let hosts = TwoHosts::new();
    let bus = unique("veth-bus");
    let lease = format!("lease_ms={}", LEASE.as_millis());
    let server = format!("tcp/{}:7447", hosts.addresses[0]);

    let (a_name, b_name) = (unique("a"), unique("b"));
    let mut a = hosts.peer(0, &a_name);
    a.ok(&format!("run {a_name}")).await;
    a.ok(&format!("zenoh {bus} listen={server} {lease}")).await;
    let mut b = hosts.peer(1, &b_name);
    b.ok(&format!("run {b_name}")).await;
    b.ok(&format!("zenoh {bus} connect={server} {lease}")).await;

    // Events and requests both ways across the link.
    a.ok("subscribe").await;
    a.ok("hold-requests").await;
    b.ok("answer").await;
    b.ok(&format!("wait-subscribed {a_name} numbered")).await;
    b.ok("broadcast 1").await;
    assert_eq!(a.line("got").await, "got 1");
    a.ok(&format!("wait-subscribed {b_name} double")).await;
    assert_eq!(a.ok(&format!("request 3 to={b_name}")).await, "answer 6");

    // A request waits on the far side when the link is cut: it fails,
    // and the peer goes, within about the lease.
    b.ok(&format!("wait-subscribed {a_name} double")).await;
    b.send(&format!("request 5 to={a_name}")).await;
    a.line("holding 1").await;
    let cut = Instant::now();
    hosts.set_link(0, false);
    let reply = b.line("err").await;
    let failed_after = cut.elapsed();
    assert!(reply.contains("RemoteDisconnected"), "{reply}");
    b.until("connected", |names| !names.contains(&a_name)).await;
    let removed_after = cut.elapsed();
    eprintln!(
        "cut link: request failed after {failed_after:?}, peer removed after {removed_after:?}"
    );
    // Generous: only a peer kept until some much later timeout fails it.
    assert!(
        removed_after < 3 * LEASE + Duration::from_secs(2),
        "the peer outlived the lease: {removed_after:?}"
    );
    a.until("connected", |names| !names.contains(&b_name)).await;

    // The link comes back: they reconnect and know each other's
    // subscriptions again.
    hosts.set_link(0, true);
    b.ok(&format!("wait-subscribed {a_name} numbered")).await;
    b.ok("broadcast 2").await;
    assert_eq!(a.line("got").await, "got 2");
    a.ok(&format!("wait-subscribed {b_name} double")).await;
    assert_eq!(a.ok(&format!("request 4 to={b_name}")).await, "answer 8");
    a.exit().await;
    b.exit().await;
}
