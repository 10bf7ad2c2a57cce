//! The examples run and say what they should (lahja's test_examples.py).
//! `cargo test` builds the examples before running tests; they sit in
//! `target/<profile>/examples/`, next to this test's `deps/` folder.

use crate::support;

use std::path::PathBuf;

fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    deps.parent().unwrap().join("examples").join(name)
}

async fn run(name: &str) -> String {
    let output = support::within(
        name,
        tokio::process::Command::new(example(name))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot run example {name}: {e}"));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{name} failed: {stdout}");
    stdout
}

#[tokio::test]
async fn inter_process_ping_pong() {
    let out = run("inter_process_ping_pong").await;
    assert!(out.contains("proc1: hello, proc2 is connected"), "{out}");
    assert!(out.contains("proc2: hello, connected to proc1"), "{out}");
    assert_eq!(
        out.matches("Received via SUBSCRIBE API in proc1").count(),
        3,
        "{out}"
    );
    assert_eq!(
        out.matches("Received via SUBSCRIBE API in proc2").count(),
        3,
        "{out}"
    );
    assert_eq!(
        out.matches("Received via STREAM API in proc2").count(),
        3,
        "{out}"
    );
}

#[tokio::test]
async fn request_api() {
    let out = run("request_api").await;
    assert_eq!(out.matches("requester: Requesting").count(), 3, "{out}");
    for answer in [
        "Got answer: 10 peers",
        "Got answer: 20 peers",
        "Got answer: 30 peers",
    ] {
        assert!(out.contains(answer), "{out}");
    }
}

#[tokio::test]
async fn gathered_requests() {
    let out = run("gathered_requests").await;
    for line in [
        "coordinator: networking is [\"alpha\", \"beta\"]",
        "coordinator: alpha has 5 peers",
        "coordinator: beta has 4 peers",
        "coordinator: done",
    ] {
        assert!(out.contains(line), "{out}");
    }
    assert!(!out.contains("gamma has"), "{out}");
}

#[tokio::test]
async fn blocking_client() {
    let out = run("blocking_client").await;
    for line in [
        "client: 1 + 2 = 3",
        "client: 40 + 2 = 42",
        "client: -7 + 7 = 0",
        "server: the client said goodbye",
    ] {
        assert!(out.contains(line), "{out}");
    }
}

#[cfg(feature = "zenoh")]
#[tokio::test]
async fn across_machines() {
    let out = run("across_machines").await;
    assert!(out.contains("oracle: the asker is here"), "{out}");
    assert!(out.contains("asker: connected to the oracle"), "{out}");
    assert!(out.contains("asker: the oracle ticks"), "{out}");
    for question in ["why?", "how far?", "over zenoh?"] {
        let answer = format!(
            "asker: {question} -> you asked {} letters' worth",
            question.len()
        );
        assert!(out.contains(&answer), "{out}");
    }
    assert!(out.contains("oracle: goodbye"), "{out}");
}
