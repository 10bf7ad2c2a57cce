//! The blocking endpoint: timeouts, iterators, misuse inside a runtime,
//! and interplay with async endpoints in other processes.

use crate::support;

use std::time::Duration;

use lahja::blocking::Endpoint;
use lahja::{BroadcastConfig, Error};
use lahja_workspace::events::{Double, Doubled, Numbered};
use support::{Peer, TempDir, unique};

#[test]
fn request_and_wait_for_time_out() {
    let endpoint = Endpoint::run(unique("blocking")).unwrap();
    let _holder = endpoint.stream_requests::<Double>(); // subscribed, never answers
    assert!(matches!(
        endpoint.request_timeout(Double(1), Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    assert_eq!(
        endpoint.as_async().pending_requests(),
        0,
        "the timed-out request is cancelled"
    );
    assert!(matches!(
        endpoint.wait_for_timeout::<Numbered>(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    assert!(
        endpoint
            .get_subscribed_events()
            .contains(&<Double as lahja::Event>::ID)
    );
}

#[test]
fn streams_are_iterators_that_end_when_the_endpoint_stops() {
    let endpoint = Endpoint::run(unique("blocking")).unwrap();
    let numbers = endpoint.stream::<Numbered>();
    let reader = std::thread::spawn(move || numbers.map(|Numbered(n)| n).collect::<Vec<_>>());
    endpoint
        .wait_until_any_endpoint_subscribed_to::<Numbered>()
        .unwrap();
    for n in 0..3 {
        endpoint.broadcast(Numbered(n)).unwrap();
    }
    endpoint.stop();
    assert_eq!(reader.join().unwrap(), vec![0, 1, 2]);
    assert!(matches!(
        endpoint.wait_for::<Numbered>(),
        Err(Error::Lifecycle { .. })
    ));
}

#[test]
fn handlers_answer_and_a_panicking_one_drops_the_request() {
    let endpoint = Endpoint::run(unique("blocking")).unwrap();
    let _answers = endpoint.handle_requests(|Double(n)| {
        assert!(n != 0, "zero panics, on purpose");
        Doubled(n * 2)
    });
    assert_eq!(endpoint.request(Double(4)).unwrap(), Doubled(8));
    assert!(matches!(
        endpoint.request(Double(0)),
        Err(Error::RequestDropped { .. })
    ));
    assert_eq!(endpoint.request(Double(5)).unwrap(), Doubled(10));
}

#[test]
fn blocking_calls_inside_a_runtime_say_so_instead_of_deadlocking() {
    let endpoint = Endpoint::run(unique("blocking")).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert!(matches!(
            endpoint.request(Double(1)),
            Err(Error::BlockingInAsyncContext)
        ));
        assert!(matches!(
            endpoint.broadcast(Numbered(1)),
            Err(Error::BlockingInAsyncContext)
        ));
        assert!(matches!(
            endpoint.wait_until_connected_to("x"),
            Err(Error::BlockingInAsyncContext)
        ));
        assert!(matches!(
            Endpoint::run("inside"),
            Err(Error::BlockingInAsyncContext)
        ));
        let mut stream = endpoint.stream::<Numbered>();
        assert!(matches!(
            stream.try_next(),
            Err(Error::BlockingInAsyncContext)
        ));
        // Iterating there is a bug that `None` ("the stream ended") would hide.
        let iterated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| stream.next()));
        let message = iterated.expect_err("next() must not end quietly");
        let message = message.downcast_ref::<String>().unwrap();
        assert!(message.contains("inside a tokio runtime"), "{message}");
        // Never blocking, so fine anywhere.
        endpoint
            .broadcast_nowait_with(
                Numbered(1),
                BroadcastConfig::default().require_subscriber(false),
            )
            .unwrap();
        // Dropping the last clone inside a runtime must not panic either.
        drop(endpoint);
    });
}

#[test]
fn a_blocking_server_and_an_async_client_process() {
    let dir = TempDir::new();
    let name = unique("blocking-server");
    let server = Endpoint::serve(dir.config(&name)).unwrap();
    let requests = server.stream_requests::<Double>();
    let answering = std::thread::spawn(move || {
        for request in requests.take(3) {
            let answer = Doubled(request.0 * 2);
            request.respond(answer).unwrap();
        }
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = runtime.block_on(Peer::running(&unique("async-client")));
    let socket = dir.socket(&name);
    runtime.block_on(async {
        client
            .ok(&format!("connect {name} {}", socket.display()))
            .await;
        client.ok(&format!("wait-subscribed {name} double")).await;
        for n in 1..=3 {
            assert_eq!(
                client.ok(&format!("request {n}")).await,
                format!("answer {}", n * 2)
            );
        }
    });
    answering.join().unwrap();
    server.wait_until_connected_to(&client.name).unwrap();
    let mut events = server.stream::<Numbered>();
    runtime.block_on(async {
        client.ok(&format!("wait-subscribed {name} numbered")).await;
        client.ok("broadcast 9").await;
    });
    assert_eq!(events.try_next().unwrap(), Some(Numbered(9)));
}
