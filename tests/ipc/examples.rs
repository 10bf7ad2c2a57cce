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

/// The `lahja` tool (built by `cargo test --workspace`, the README's test
/// command, next to the examples' folder).
fn lahja_tool() -> PathBuf {
    let tool = example("x")
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("lahja");
    assert!(
        tool.exists(),
        "{} is missing: run the tests with `cargo test --workspace`",
        tool.display()
    );
    tool
}

/// `lahja --dir DIR ARGS... --json`, each line parsed.
async fn lahja_json(dir: &std::path::Path, args: &[&str]) -> Vec<serde_json::Value> {
    let output = tokio::process::Command::new(lahja_tool())
        .arg("--dir")
        .arg(dir)
        .args(args)
        .arg("--json")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "lahja {args:?}: {stdout}");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The README's session: the `lahja` tool looks at the `observed` example.
#[tokio::test]
async fn observed_through_the_lahja_tool() {
    let runtime = support::TempDir::new();
    let mut node = tokio::process::Command::new(example("observed"))
        .args(["--seconds", "60"])
        .env("XDG_RUNTIME_DIR", &runtime.0)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let dir = runtime.0.join("lahja");
    support::within("both demo endpoints alive", async {
        loop {
            if dir.exists() {
                let list = lahja_json(&dir, &["list"]).await;
                if list.len() == 2 && list.iter().all(|e| e["alive"] == true) {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let info = lahja_json(&dir, &["info", "demo-node"]).await.remove(0);
    assert_eq!(info["peers"][0]["name"], "demo-sync", "{info:#}");
    let subscriptions: Vec<&str> = info["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(subscriptions, ["demo.BlockImported", "demo.GetHeight"]);
    let blocks = lahja_json(&dir, &["tap", "demo.BlockImported", "--count", "2"]).await;
    for block in &blocks {
        assert_eq!(block["type"], "demo.BlockImported");
        assert_eq!(block["origin"], "demo-sync");
        let value = block["value"].as_str().unwrap();
        assert!(value.starts_with("BlockImported { number: "), "{value}");
    }
    // Three copies hold one whole pair, whenever the tap started.
    let copies = lahja_json(
        &dir,
        &["tap", "demo.GetHeight", "demo.Height", "--count", "3"],
    )
    .await;
    let asked = copies.iter().position(|c| c["kind"] == "request").unwrap();
    let (request, response) = (&copies[asked], &copies[asked + 1]);
    assert_eq!(response["kind"], "response", "{copies:#?}");
    assert_eq!(response["request_id"], request["request_id"]);
    assert!(response["latency_ms"].is_number(), "{copies:#?}");
    assert!(response["value"].as_str().unwrap().starts_with("Height("));
    node.kill().await.unwrap();
}
