//! Two builds that disagree on a type, across real processes, and a build
//! that links two types under one name.

use crate::support;

use lahja::{Endpoint, Error, Event};
use lahja_workspace::events::Numbered;
use support::{Peer, TempDir, unique};

/// Starts `lahja-peer-v2` serving `name`; returns once it is ready.
async fn serve_v2(name: &str, dir: &TempDir) -> tokio::process::Child {
    let path = dir.socket(name);
    let program = env!("CARGO_BIN_EXE_lahja-peer-v2");
    let (child, line) = support::first_line_of(program, &[name, path.to_str().unwrap()]).await;
    assert_eq!(line, "ready");
    child
}

#[tokio::test]
async fn a_client_refuses_a_server_built_with_another_layout() {
    let dir = TempDir::new();
    let name = unique("v2");
    let _server = serve_v2(&name, &dir).await;
    let client = Endpoint::run(unique("v1")).await.unwrap();
    match client.connect_to_endpoints([dir.config(&name)]).await {
        Err(Error::SchemaMismatch {
            endpoint,
            event,
            local,
            remote,
        }) => {
            assert_eq!(endpoint, name);
            assert_eq!(event, Numbered::NAME);
            assert_eq!(local, Numbered::SCHEMA);
            assert_ne!(remote, Numbered::SCHEMA);
        }
        other => panic!("expected SchemaMismatch, got {other:?}"),
    }
    assert!(!client.is_connected_to(&name));
}

#[tokio::test]
async fn a_server_refuses_a_client_built_with_another_layout() {
    // The v2 build serves; a v1 client process is refused during the
    // handshake, with the details of the disagreement.
    let dir = TempDir::new();
    let v2 = unique("v2");
    let _server = serve_v2(&v2, &dir).await;
    let mut v1 = Peer::running(&unique("v1-client")).await;
    let reply = v1
        .reply(&format!("connect {v2} {}", dir.socket(&v2).display()))
        .await;
    assert!(reply.starts_with("err SchemaMismatch"), "{reply}");
    assert!(reply.contains(Numbered::NAME), "{reply}");
    assert!(
        reply.contains(&format!("local: {}", Numbered::SCHEMA)),
        "{reply}"
    );
    assert_eq!(v1.ok("connected").await, v1.name);
}

#[tokio::test]
async fn two_types_with_one_name_stop_a_program_at_startup() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_lahja-duplicate-ids"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("DuplicateEventId"), "{stdout}");
    assert!(
        stdout.contains("lahja_duplicate_ids::blocks::Imported"),
        "{stdout}"
    );
    assert!(
        stdout.contains("lahja_duplicate_ids::peers::Imported"),
        "{stdout}"
    );
}
