//! lahja's `tests/core/common` suite and its compat tests, written once as
//! scenarios and played in every mode: all roles in one process, one
//! process per role (async), one process per role alternating async and
//! blocking endpoints (both ways round, so every scenario also runs as
//! "async serving blocking" and "blocking serving async"), and with the
//! `zenoh` feature one process per role talking only over zenoh (async and
//! blocking alternating), plus socket and zenoh peers in one scenario.

use lahja::testing::{Mode, Scenario};
use lahja::{BroadcastConfig, Error, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Ping(u32);

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[request(response = Pong)]
struct Ask(u32);

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Pong(u32);

/// The compat tests' event: the payload must arrive intact.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Payload {
    text: String,
    numbers: Vec<i64>,
    nested: Option<(u8, bool)>,
}

fn no_subscribers(error: &Error) -> bool {
    matches!(error, Error::NoSubscribers { .. })
}

fn rejected(error: &Error) -> bool {
    matches!(error, Error::ConnectionAttemptRejected { .. })
}

/// Plays `scenario` in one mode per test: `<scenario>::in_process`,
/// `::processes` and `::mixed` (the names role processes re-run).
macro_rules! in_every_mode {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use super::*;
            #[test]
            fn in_process() {
                super::$scenario(concat!(stringify!($scenario), "::in_process")).run(Mode::InProcess);
            }
            #[test]
            fn processes() {
                super::$scenario(concat!(stringify!($scenario), "::processes")).run(Mode::Processes);
            }
            #[test]
            fn mixed() {
                super::$scenario(concat!(stringify!($scenario), "::mixed")).run(Mode::Mixed);
            }
            #[cfg(feature = "zenoh")]
            #[test]
            fn zenoh() {
                super::$scenario(concat!(stringify!($scenario), "::zenoh")).run(Mode::Zenoh);
            }
        }
    )*};
}

in_every_mode!(
    broadcast_from_client_to_server,
    broadcast_from_server_to_client,
    broadcast_without_listeners_throws,
    broadcast_without_listeners_explicitly_allowed,
    connecting_to_server_endpoint,
    duplicate_connection_throws,
    server_establishes_reverse_connection,
    request_response,
    request_without_subscriber_throws,
    compat_payload_arrives_intact,
);

/// The groups scenario in every mode. On one zenoh bus every role is
/// every other's peer, so there the outsider sees the members of `a` that
/// a socket would have hidden from it.
mod groups_route_to_their_members {
    use super::*;

    fn play(mode: Mode, name: &str, outsider_sees: &[&str]) {
        let test = format!("groups_route_to_their_members::{name}");
        groups_route_to_their_members(&test, outsider_sees).run(mode);
    }

    #[test]
    fn in_process() {
        play(Mode::InProcess, "in_process", &["hub"]);
    }

    #[test]
    fn processes() {
        play(Mode::Processes, "processes", &["hub"]);
    }

    #[test]
    fn mixed() {
        play(Mode::Mixed, "mixed", &["hub"]);
    }

    #[cfg(feature = "zenoh")]
    #[test]
    fn zenoh() {
        play(Mode::Zenoh, "zenoh", &["hub", "m1"]);
    }

    /// The outsider, last, connects to the hub by socket; the others are
    /// on the bus: the hub has peers of both kinds.
    #[cfg(feature = "zenoh")]
    #[test]
    fn socket_and_zenoh() {
        play(Mode::SocketAndZenoh, "socket_and_zenoh", &["hub"]);
    }
}

fn broadcast_from_client_to_server(test: &str) -> Scenario {
    let mut scenario = Scenario::new(test);
    scenario.role("server").serve().wait_for(Ping(1));
    scenario
        .role("client")
        .run()
        .connect_to("server")
        .wait_until_subscribed::<Ping>("server")
        .broadcast(Ping(1));
    scenario
}

fn broadcast_from_server_to_client(test: &str) -> Scenario {
    let mut scenario = Scenario::new(test);
    scenario
        .role("server")
        .serve()
        .wait_until_connected_to("client")
        .wait_until_subscribed::<Ping>("client")
        .broadcast(Ping(2));
    scenario
        .role("client")
        .run()
        .connect_to("server")
        .wait_for(Ping(2));
    scenario
}

fn broadcast_without_listeners_throws(test: &str) -> Scenario {
    let mut scenario = Scenario::new(test);
    // As in lahja, a checkpoint keeps the server up until the client checked.
    scenario
        .role("server")
        .serve()
        .wait_until_connected_to("client")
        .wait_checkpoint("client-checked");
    scenario
        .role("client")
        .run()
        .connect_to("server")
        .expect_broadcast_error(Ping(3), no_subscribers)
        .checkpoint("client-checked");
    scenario
}

fn broadcast_without_listeners_explicitly_allowed(test: &str) -> Scenario {
    let mut scenario = Scenario::new(test);
    scenario
        .role("server")
        .serve()
        .wait_until_connected_to("client");
    scenario
        .role("client")
        .run()
        .connect_to("server")
        .broadcast_with(
            Ping(4),
            BroadcastConfig::default().require_subscriber(false),
        );
    scenario
}

fn connecting_to_server_endpoint(test: &str) -> Scenario {
    let mut scenario = Scenario::new(test);
    scenario.role("server").serve();
    scenario
        .role("client")
        .run()
        .connect_to("server")
        .wait_until_connected_to("server");
    scenario
}

fn duplicate_connection_throws(test: &str) -> Scenario {
    let mut scenario = Scenario::new(test);
    scenario
        .role("server")
        .serve()
        .wait_until_connected_to("client");
    scenario
        .role("client")
        .run()
        .connect_to("server")
        .expect_connect_error("server", rejected);
    scenario
}

fn server_establishes_reverse_connection(test: &str) -> Scenario {
    let mut scenario = Scenario::new(test);
    scenario
        .role("server")
        .serve()
        .wait_until_connected_to("client");
    scenario.role("client").run().connect_to("server");
    scenario
}

fn request_response(test: &str) -> Scenario {
    let mut scenario = Scenario::new(test);
    scenario
        .role("server")
        .serve()
        .serve_one_request(|Ask(n): Ask| Pong(n + 1));
    scenario
        .role("client")
        .run()
        .connect_to("server")
        .wait_until_subscribed::<Ask>("server")
        .request(Ask(41), Pong(42));
    scenario
}

fn request_without_subscriber_throws(test: &str) -> Scenario {
    let mut scenario = Scenario::new(test);
    scenario
        .role("client")
        .run()
        .expect_request_error(Ask(1), no_subscribers);
    scenario
}

fn compat_payload_arrives_intact(test: &str) -> Scenario {
    let payload = Payload {
        text: "héllo, wörld".into(),
        numbers: vec![-1, 0, 1 << 40],
        nested: Some((7, true)),
    };
    let mut scenario = Scenario::new(test);
    scenario.role("server").serve().wait_for(payload.clone());
    scenario
        .role("client")
        .run()
        .connect_to("server")
        .wait_until_subscribed::<Payload>("server")
        .broadcast(payload);
    scenario
}

/// The harness itself: a wrong expectation fails, naming role and step.
fn expects_the_wrong_event(test: &str) -> Scenario {
    let mut scenario = Scenario::new(test);
    scenario.step_timeout(std::time::Duration::from_secs(2));
    scenario.role("server").serve().wait_for(Ping(2));
    scenario
        .role("client")
        .run()
        .connect_to("server")
        .wait_until_subscribed::<Ping>("server")
        .broadcast(Ping(1));
    scenario
}

mod a_wrong_expectation_fails {
    use super::*;

    fn check(test: &str, mode: Mode) {
        let failure = expects_the_wrong_event(test).try_run(mode);
        // In a role process try_run panics on failure (expected there).
        let failure = failure.expect_err("the scenario should have failed");
        assert!(failure.contains("role server"), "{failure}");
        assert!(failure.contains("step 2 (wait for"), "{failure}");
        assert!(failure.contains("Ping(1)"), "{failure}");
    }

    #[test]
    fn in_process() {
        check("a_wrong_expectation_fails::in_process", Mode::InProcess);
    }

    #[test]
    fn processes() {
        check("a_wrong_expectation_fails::processes", Mode::Processes);
    }

    #[test]
    fn mixed() {
        check("a_wrong_expectation_fails::mixed", Mode::Mixed);
    }

    #[cfg(feature = "zenoh")]
    #[test]
    fn zenoh() {
        check("a_wrong_expectation_fails::zenoh", Mode::Zenoh);
    }
}

/// Three groups over five processes: `a` = hub, m1, m2; `b` = m2, m3; `c`
/// nobody; outsider in none. A gathered request to `b` gets one answer
/// from each of its members, a broadcast to `a` reaches its subscribed
/// member, a broadcast to `c` has no subscriber, and a member that leaves
/// is seen to leave. The outsider, connected to the hub alone, sees only
/// `outsider_sees` in `a` at the end (the hub alone when it is connected
/// to the hub alone).
fn groups_route_to_their_members(test: &str, outsider_sees: &[&str]) -> Scenario {
    let mut scenario = Scenario::new(test);
    scenario
        .role("hub")
        .serve()
        .join_group("a")
        .wait_until_group_members("a", &["hub", "m1", "m2"])
        .wait_until_group_members("b", &["m2", "m3"])
        .wait_until_subscribed::<Ask>("m2")
        .wait_until_subscribed::<Ask>("m3")
        .request_all(
            Ask(1),
            BroadcastConfig::to_group("b"),
            &[("m2", Pong(2)), ("m3", Pong(2))],
        )
        .wait_until_subscribed::<Ping>("m1")
        .broadcast_with(Ping(7), BroadcastConfig::to_group("a"))
        .expect_broadcast_error_with(Ping(8), BroadcastConfig::to_group("c"), no_subscribers)
        .wait_until_group_members("a", &["hub", "m1"]);
    scenario
        .role("m1")
        .run()
        .connect_to("hub")
        .join_group("a")
        .wait_for(Ping(7));
    scenario
        .role("m2")
        .run()
        .connect_to("hub")
        .join_group("a")
        .join_group("b")
        .serve_one_request(|Ask(n): Ask| Pong(n + 1))
        .leave_group("a");
    scenario
        .role("m3")
        .run()
        .connect_to("hub")
        .join_group("b")
        .serve_one_request(|Ask(n): Ask| Pong(n + 1));
    scenario
        .role("outsider")
        .run()
        .connect_to("hub")
        .wait_until_group_has_members("a", 1)
        .wait_until_group_members("a", outsider_sees);
    scenario
}
