//! Serving and connecting across processes: lahja's test_connect.py,
//! test_endpoint_connecting.py, the reverse connection, the handshake's
//! refusals and the socket file's life.

use crate::support;

use std::os::unix::fs::PermissionsExt;

use lahja::{ConnectionConfig, Endpoint, Error};
use lahja_workspace::events::Numbered;
use support::{Peer, TempDir, unique, within};

#[tokio::test]
async fn a_client_connects_to_a_serving_process_and_both_see_each_other() {
    let dir = TempDir::new();
    let server_name = unique("server");
    let mut server = Peer::serving(&server_name, &dir).await;
    let client = Endpoint::run(unique("client")).await.unwrap();
    assert!(!client.is_connected_to(&server_name));
    client
        .connect_to_endpoints([dir.config(&server_name)])
        .await
        .unwrap();
    assert!(client.is_connected_to(&server_name));
    // The server learns the client by name: the reverse connection.
    server
        .ok(&format!("wait-connected {}", client.name()))
        .await;
    let names = server.ok("connected").await;
    assert!(names.contains(client.name()), "{names}");
    let listed: Vec<String> = client
        .get_connected_endpoints_and_subscriptions()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(listed, vec![client.name().to_owned(), server_name]);
}

#[tokio::test]
async fn wait_until_connected_to_returns_once_a_background_connect_is_done() {
    let dir = TempDir::new();
    let server_name = unique("server");
    let _server = Peer::serving(&server_name, &dir).await;
    let client = Endpoint::run(unique("client")).await.unwrap();
    let waiter = tokio::spawn({
        let client = client.clone();
        let name = server_name.clone();
        async move { client.wait_until_connected_to(&name).await }
    });
    let changed = tokio::spawn({
        let client = client.clone();
        async move { client.wait_until_connections_change().await }
    });
    tokio::task::yield_now().await;
    assert!(!client.is_connected_to(&server_name));
    client
        .connect_to_endpoints([dir.config(&server_name)])
        .await
        .unwrap();
    within("connected", waiter).await.unwrap().unwrap();
    within("connections changed", changed)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_server_connects_back_to_a_client_that_serves_too() {
    // A served endpoint can also connect out: both directions work.
    let dir = TempDir::new();
    let name = unique("endpoint");
    let endpoint = Endpoint::serve(dir.config(&name)).await.unwrap();
    let mut peer = Peer::serving(&unique("peer"), &dir).await;
    peer.ok(&format!("connect {name} {}", dir.socket(&name).display()))
        .await;
    within(
        "peer connected",
        endpoint.wait_until_connected_to(&peer.name),
    )
    .await
    .unwrap();
    // Connecting back over a second connection is refused, from either side.
    let again = endpoint
        .connect_to_endpoints([dir.config(&peer.name)])
        .await;
    assert!(
        matches!(again, Err(Error::ConnectionAttemptRejected { .. })),
        "{again:?}"
    );
    let reply = peer
        .reply(&format!("connect {name} {}", dir.socket(&name).display()))
        .await;
    assert!(
        reply.starts_with("err ConnectionAttemptRejected"),
        "{reply}"
    );
}

#[tokio::test]
async fn connecting_to_itself_or_twice_is_rejected() {
    let dir = TempDir::new();
    let name = unique("self");
    let endpoint = Endpoint::serve(dir.config(&name)).await.unwrap();
    let to_self = endpoint.connect_to_endpoints([dir.config(&name)]).await;
    assert!(
        matches!(to_self, Err(Error::ConnectionAttemptRejected { .. })),
        "{to_self:?}"
    );
    // Under another name but the same socket: the hello tells.
    let disguised = endpoint
        .connect_to_endpoints([ConnectionConfig::new("someone", dir.socket(&name))])
        .await;
    assert!(
        matches!(disguised, Err(Error::ConnectionAttemptRejected { .. })),
        "{disguised:?}"
    );

    let server_name = unique("server");
    let _server = Peer::serving(&server_name, &dir).await;
    let twice = endpoint
        .connect_to_endpoints([dir.config(&server_name), dir.config(&server_name)])
        .await;
    assert!(
        matches!(twice, Err(Error::ConnectionAttemptRejected { .. })),
        "{twice:?}"
    );
    endpoint
        .connect_to_endpoints([dir.config(&server_name)])
        .await
        .unwrap();
    let again = endpoint
        .connect_to_endpoints([dir.config(&server_name)])
        .await;
    assert!(
        matches!(again, Err(Error::ConnectionAttemptRejected { .. })),
        "{again:?}"
    );
    assert_eq!(
        endpoint.get_connected_endpoints_and_subscriptions().len(),
        2
    );
}

#[tokio::test]
async fn a_peer_with_another_name_than_configured_is_rejected() {
    let dir = TempDir::new();
    let server_name = unique("server");
    let _server = Peer::serving(&server_name, &dir).await;
    let client = Endpoint::run(unique("client")).await.unwrap();
    let wrong = client
        .connect_to_endpoints([ConnectionConfig::new(
            "expected-name",
            dir.socket(&server_name),
        )])
        .await;
    match wrong {
        Err(Error::ConnectionAttemptRejected { endpoint, reason }) => {
            assert_eq!(endpoint, "expected-name");
            assert!(reason.contains(&server_name), "{reason}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(!client.is_connected_to(&server_name));
}

#[tokio::test]
async fn connect_retries_until_the_server_appears() {
    let dir = TempDir::new();
    let server_name = unique("late");
    let client = Endpoint::run(unique("client")).await.unwrap();
    let connecting = tokio::spawn({
        let client = client.clone();
        let config = dir.config(&server_name);
        async move { client.connect_to_endpoints([config]).await }
    });
    let _server = Peer::serving(&server_name, &dir).await;
    within("connect", connecting).await.unwrap().unwrap();
    assert!(client.is_connected_to(&server_name));
}

#[tokio::test]
async fn connect_gives_up_after_the_timeout() {
    let dir = TempDir::new();
    let options = lahja::EndpointOptions {
        connect_timeout: std::time::Duration::from_millis(50),
        ..Default::default()
    };
    let client = Endpoint::run_with(unique("client"), options).await.unwrap();
    let result = client.connect_to_endpoints([dir.config("nobody")]).await;
    assert!(
        matches!(result, Err(Error::ConnectTimeout { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn the_socket_file_is_private_and_removed_on_stop_and_on_drop() {
    let dir = TempDir::new();
    let name = unique("files");
    let path = dir.socket(&name);
    let endpoint = Endpoint::serve(dir.config(&name)).await.unwrap();
    assert!(endpoint.is_serving() && endpoint.is_running());
    assert_eq!(endpoint.ipc_path(), Some(path.as_path()));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    endpoint.stop().await;
    assert!(!endpoint.is_serving() && !endpoint.is_running());
    assert!(!path.exists());

    let endpoint = Endpoint::serve(dir.config(&name)).await.unwrap();
    assert!(path.exists());
    drop(endpoint);
    assert!(
        !path.exists(),
        "dropping the last clone removes the socket synchronously"
    );
}

#[tokio::test]
async fn from_name_uses_a_private_per_user_folder() {
    let name = unique("from-name");
    let config = ConnectionConfig::from_name(&name);
    let endpoint = Endpoint::serve(config.clone()).await.unwrap();
    let folder = config.path.parent().unwrap();
    let mode = std::fs::metadata(folder).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}", folder.display());
    let client = Endpoint::run(unique("client")).await.unwrap();
    client.connect_to_endpoints([config.clone()]).await.unwrap();
    endpoint.stop().await;
    assert!(!config.path.exists());
}

#[tokio::test]
async fn a_stale_socket_is_reclaimed_and_a_live_one_is_not_stolen() {
    let dir = TempDir::new();
    let name = unique("stale");
    let path = dir.socket(&name);
    // A live server in another process.
    let server = Peer::serving(&name, &dir).await;
    match Endpoint::serve(dir.config(&name)).await {
        Err(Error::Bind { path: p, reason }) => {
            assert_eq!(p, path);
            assert!(reason.contains("listening"), "{reason}");
        }
        other => panic!("a live socket was taken over: {other:?}"),
    }
    // Killed without cleanup: the file stays, stale.
    server.kill().await;
    assert!(path.exists());
    let endpoint = Endpoint::serve(dir.config(&name)).await.unwrap();
    let client = Endpoint::run(unique("client")).await.unwrap();
    client
        .connect_to_endpoints([dir.config(&name)])
        .await
        .unwrap();
    assert!(endpoint.is_serving());
}

#[tokio::test]
async fn bad_socket_paths_are_clear_bind_errors() {
    let dir = TempDir::new();
    let long = dir.0.join(format!("{}.sock", "x".repeat(200)));
    let missing = dir.0.join("no-such-folder").join("a.sock");
    let not_a_socket = dir.0.join("plain-file");
    std::fs::write(&not_a_socket, b"keep me").unwrap();
    for path in [long, missing, not_a_socket.clone()] {
        match Endpoint::serve(ConnectionConfig::new(unique("bad"), &path)).await {
            Err(Error::Bind { path: p, .. }) => assert_eq!(p, path),
            other => panic!("{}: expected Bind, got {other:?}", path.display()),
        }
    }
    assert_eq!(std::fs::read(&not_a_socket).unwrap(), b"keep me");
}

#[tokio::test]
async fn subscriptions_are_known_when_connect_returns() {
    let dir = TempDir::new();
    let server_name = unique("server");
    let mut server = Peer::serving(&server_name, &dir).await;
    server.ok("subscribe").await;
    let client = Endpoint::run(unique("client")).await.unwrap();
    client
        .connect_to_endpoints([dir.config(&server_name)])
        .await
        .unwrap();
    assert!(client.is_endpoint_subscribed_to::<Numbered>(&server_name));
    client.broadcast(Numbered(1)).await.unwrap();
    assert_eq!(server.line("got").await, "got 1");
}

/// Makes `folder` unwritable, even for root (who ignores permissions):
/// `chattr +i` there, mode 0500 otherwise. Undone when dropped.
struct Unwritable(std::path::PathBuf);

impl Unwritable {
    fn new(folder: &std::path::Path) -> Unwritable {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let status = std::process::Command::new("chattr")
                .arg("+i")
                .arg(folder)
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "chattr +i failed: as root, only an immutable folder is unwritable"
            );
        } else {
            std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o500)).unwrap();
        }
        Unwritable(folder.to_owned())
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o700));
    }
}

#[tokio::test]
async fn an_unwritable_folder_is_a_clear_bind_error() {
    let dir = TempDir::new();
    let folder = dir.0.join("locked");
    std::fs::create_dir(&folder).unwrap();
    let _locked = Unwritable::new(&folder);
    let path = folder.join("a.sock");
    match Endpoint::serve(ConnectionConfig::new(unique("locked"), &path)).await {
        Err(Error::Bind { path: p, reason }) => {
            assert_eq!(p, path);
            assert!(!reason.is_empty());
        }
        other => panic!("expected Bind, got {other:?}"),
    }
}

#[tokio::test]
async fn a_killed_server_s_path_can_be_served_again() {
    let dir = TempDir::new();
    let name = unique("phoenix");
    let server = Peer::serving(&name, &dir).await;
    server.kill().await;
    let again = Endpoint::serve(dir.config(&name)).await.unwrap();
    let mut client = Peer::running(&unique("client")).await;
    client
        .ok(&format!("connect {name} {}", dir.socket(&name).display()))
        .await;
    within("connected", again.wait_until_connected_to(&client.name))
        .await
        .unwrap();
}
