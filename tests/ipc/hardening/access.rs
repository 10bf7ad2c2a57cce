//! Who may talk to whom: names that are not names, other users' sockets
//! and folders, binding races, requests of a previous life, full backlogs,
//! folders that appear late.

use super::*;

// ----- 10. names -----------------------------------------------------------

#[tokio::test]
async fn names_that_are_not_names_are_refused_everywhere() {
    let long = "x".repeat(256);
    for bad in ["", "a/b", "tab\there", &long] {
        match Endpoint::run(bad).await {
            Err(Error::InvalidName { name, .. }) => assert_eq!(name, bad),
            other => panic!("{bad:?}: expected InvalidName, got {other:?}"),
        }
    }
    assert!(Endpoint::run("x".repeat(255)).await.is_ok());
    let error = Endpoint::run("y".repeat(10_000))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.len() < 400,
        "the name is shortened in the message: {error}"
    );

    // A hello naming itself with a 100 kB name is refused with a reason.
    let dir = TempDir::new();
    let name = unique("named");
    let _server = Endpoint::serve(dir.config(&name)).await.unwrap();
    let hello = raw::hello(&"z".repeat(100_000), &[], &[], raw::VERSION);
    let body = support::refusal(&dir.socket(&name), &hello).await;
    let reason = String::from_utf8_lossy(&body);
    assert!(reason.contains("at most 255 bytes"), "{reason}");
    assert!(reason.len() < 400, "the name is not echoed whole");
}

/// Group names from a peer follow the same rules: a hello naming a bad
/// group is refused with a reason, and a GROUPS frame naming one closes
/// that connection. The victim goes on answering.
#[tokio::test]
async fn group_names_that_are_not_names_are_refused_from_peers() {
    let dir = TempDir::new();
    let name = unique("group-victim");
    let mut victim = Peer::victim_serving(&name, &dir, "").await;
    victim.ok("answer").await;
    let path = dir.socket(&name);
    let hello = raw::hello_in_groups(&unique("bad-group"), &[], &[], &["a/b"], raw::VERSION);
    let body = support::refusal(&path, &hello).await;
    let reason = String::from_utf8_lossy(&body);
    assert!(reason.contains("a group"), "{reason}");

    let mut stream = handshaken(&path, &unique("group-liar"), &[]).await;
    let mut groups = Vec::new();
    raw::varint(&mut groups, 2);
    raw::string(&mut groups, "fine");
    raw::string(&mut groups, &"g".repeat(300));
    stream
        .write_all(&raw::frame(raw::GROUPS, 0, 0, 0, &groups))
        .await
        .unwrap();
    within("the victim to close the liar's connection", async {
        while raw::read_frame(&mut stream).await.is_some() {}
    })
    .await;

    // A GROUPS body whose list claims 2^62 names, and a GROUPS frame
    // just over the victim's control-frame limit (max(max_frame_bytes,
    // 1 MiB): 16 MiB by default; 10 bytes of it sent): each closes that
    // connection, nothing is allocated for the claim.
    let over_the_limit = {
        let mut frame = raw::frame(raw::GROUPS, 0, 0, 0, &[0; 10]);
        let claimed = (16u32 << 20) + 1;
        frame[..4].copy_from_slice(&claimed.to_le_bytes());
        frame
    };
    for liar in [raw::frame(raw::GROUPS, 0, 0, 0, &lie()), over_the_limit] {
        let mut stream = handshaken(&path, &unique("group-liar"), &[]).await;
        stream.write_all(&liar).await.unwrap();
        within("the victim to close the liar's connection", async {
            while raw::read_frame(&mut stream).await.is_some() {}
        })
        .await;
        victim.assert_alive();
    }
    still_answers(&mut victim, &dir).await;
}

// ----- 11. whom the client talks to --------------------------------------

/// Runs `f` as root only: the checks below need another user.
fn am_root() -> bool {
    // SAFETY: getuid cannot fail.
    let root = unsafe { libc::getuid() } == 0;
    assert!(
        root,
        "these tests need root (CI runs as root) to act as another user"
    );
    root
}

/// A socket served by another user (here: nobody, uid 65534) is refused
/// before the client sends anything.
#[tokio::test]
async fn a_socket_served_by_another_user_is_refused() {
    use std::os::unix::fs::{PermissionsExt, chown};
    assert!(am_root());
    let theirs = TempDir::new();
    chown(&theirs.0, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&theirs.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let name = unique("nobody");
    // A copy nobody can run, wherever the checkout is (say, under /root).
    let program = theirs.0.join("lahja-peer");
    std::fs::copy(env!("CARGO_BIN_EXE_lahja-peer"), &program).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut command = tokio::process::Command::new(&program);
    command.uid(65534).gid(65534);
    let mut nobody = Peer::spawn_command(&name, command);
    nobody
        .ok(&format!("serve {name} {}", theirs.socket(&name).display()))
        .await;
    // Moved into a folder of ours: only SO_PEERCRED can tell.
    let ours = TempDir::new();
    std::fs::rename(theirs.socket(&name), ours.socket(&name)).unwrap();
    let client = Endpoint::run(unique("root-client")).await.unwrap();
    match client.connect_to_endpoints([ours.config(&name)]).await {
        Err(Error::ConnectionAttemptRejected { reason, .. }) => {
            assert!(reason.contains("served by uid 65534"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!client.is_connected_to(&name));
}

/// A socket in a folder of another user, or one others can write to, is
/// refused (another user could have put it there), as is the per-user
/// folder pre-created by someone else.
#[tokio::test]
async fn a_socket_in_a_folder_others_control_is_refused() {
    use std::os::unix::fs::{PermissionsExt, chown};
    assert!(am_root());
    let client = Endpoint::run(unique("careful")).await.unwrap();
    for (owner, mode, expected) in [
        (65534, 0o700, "belongs to uid 65534"),
        (0, 0o777, "writable by other users"),
        (0, 0o770, "writable by other users"),
    ] {
        let dir = TempDir::new();
        let name = unique("planted");
        let server = Endpoint::serve(dir.config(&name)).await.unwrap();
        chown(&dir.0, Some(owner), None).unwrap();
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(mode)).unwrap();
        match client.connect_to_endpoints([dir.config(&name)]).await {
            Err(Error::ConnectionAttemptRejected { reason, .. }) => {
                assert!(reason.contains(expected), "{reason}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(!server.is_connected_to(client.name()), "nothing was sent");
    }
}

// ----- 12. binding -------------------------------------------------------

/// Two servers reclaiming one stale path take turns: while one holds the
/// reclaim lock (here, the test: as if it were between its probe and its
/// bind), another waits, then finds the path live and does not steal it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_reclaiming_one_stale_path_take_turns() {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new();
    let name = unique("contested");
    let path = dir.socket(&name);
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap()); // stale
    let lock_path = format!("{}.lock", path.display());
    let lock = {
        use std::os::unix::fs::OpenOptionsExt;
        let mut open = std::fs::OpenOptions::new();
        open.create(true).truncate(false).write(true).mode(0o600);
        open.open(&lock_path).unwrap()
    };
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let serving = tokio::spawn(Endpoint::serve(dir.config(&name)));
    // The kernel shows the other server waiting for our lock.
    let inode = format!(":{} ", lock.metadata().unwrap().ino());
    support::eventually("the server to wait for the reclaim lock", || {
        std::fs::read_to_string("/proc/locks")
            .unwrap()
            .lines()
            .any(|line| line.contains("->") && line.contains(&inode))
    })
    .await;
    // Meanwhile "we" reclaim the stale path and bind it, then let go.
    std::fs::remove_file(&path).unwrap();
    let ours = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let our_inode = std::fs::metadata(&path).unwrap().ino();
    drop(lock);
    match within("serve", serving).await.unwrap() {
        Err(Error::Bind { reason, .. }) => assert!(reason.contains("listening there"), "{reason}"),
        other => panic!("expected Bind, got {other:?}"),
    }
    assert_eq!(
        std::fs::metadata(&path).unwrap().ino(),
        our_inode,
        "our socket was stolen"
    );
    drop(ours);
}

/// A lock file that is not private to us (another user could hold its
/// lock forever) makes serving a clear `Bind` error, not a hang.
#[tokio::test]
async fn a_lock_file_others_can_open_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    let name = unique("shared-lock");
    let lock_path = format!("{}.lock", dir.socket(&name).display());
    std::fs::write(&lock_path, b"").unwrap();
    std::fs::set_permissions(&lock_path, std::fs::Permissions::from_mode(0o666)).unwrap();
    match within("serve", Endpoint::serve(dir.config(&name))).await {
        Err(Error::Bind { reason, .. }) => assert!(reason.contains("not private"), "{reason}"),
        other => panic!("expected Bind, got {other:?}"),
    }
}

/// A live socket whose backlog is full and that never accepts: serving
/// there is a prompt `Bind` error (the probe does not block).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_over_a_busy_live_socket_fails_promptly() {
    let dir = TempDir::new();
    let name = unique("busy");
    let _listener = backlogged(&dir.socket(&name));
    match within("serve", Endpoint::serve(dir.config(&name))).await {
        Err(Error::Bind { reason, .. }) => assert!(reason.contains("listening there"), "{reason}"),
        other => panic!("expected Bind, got {other:?}"),
    }
}

/// Starts connecting `client` to `config` in a task and lets it make its
/// first attempt (on a current-thread runtime, a few yields run it);
/// fails the test if that attempt already gave up on `what`.
async fn connecting_in_background(
    client: &Endpoint,
    config: lahja::ConnectionConfig,
    what: &str,
) -> tokio::task::JoinHandle<lahja::Result<()>> {
    let connecting = tokio::spawn({
        let client = client.clone();
        async move { client.connect_to_endpoints([config]).await }
    });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!connecting.is_finished(), "connect gave up on {what}");
    connecting
}

/// A listener that never accepts, its backlog filled (connections kept).
fn backlogged(path: &std::path::Path) -> (socket2::Socket, Vec<socket2::Socket>) {
    use socket2::{Domain, SockAddr, Socket, Type};
    let listener = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
    listener.bind(&SockAddr::unix(path).unwrap()).unwrap();
    listener.listen(0).unwrap();
    let mut queued = Vec::new();
    loop {
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        socket.set_nonblocking(true).unwrap();
        match socket.connect(&SockAddr::unix(path).unwrap()) {
            Ok(()) => queued.push(socket),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return (listener, queued),
            Err(e) => panic!("filling the backlog: {e}"),
        }
        assert!(queued.len() < 10_000, "the backlog never filled");
    }
}

// ----- 13/14. requests in flight -----------------------------------------

/// A requester restarted under the same name gets new request IDs: an
/// answer to its previous life's request cannot complete a new one.
#[tokio::test]
async fn a_late_answer_to_a_previous_life_completes_nothing() {
    let dir = TempDir::new();
    let server_name = unique("server");
    let server = Endpoint::serve(dir.config(&server_name)).await.unwrap();
    let mut requests = server.stream_requests::<Double>();
    let name = unique("restarted");

    let first = Endpoint::run(name.clone()).await.unwrap();
    first
        .connect_to_endpoints([dir.config(&server_name)])
        .await
        .unwrap();
    let pending = tokio::spawn({
        let first = first.clone();
        async move { first.request(Double(1)).await }
    });
    let old = within("first request", requests.next()).await.unwrap();
    first.stop().await;
    let _ = within("first request ends", pending).await;
    support::eventually("first gone", || !server.is_connected_to(&name)).await;

    let second = Endpoint::run(name.clone()).await.unwrap();
    second
        .connect_to_endpoints([dir.config(&server_name)])
        .await
        .unwrap();
    within("second connected", server.wait_until_connected_to(&name))
        .await
        .unwrap();
    let asked = tokio::spawn({
        let second = second.clone();
        async move { second.request(Double(2)).await }
    });
    let new = within("second request", requests.next()).await.unwrap();
    assert_ne!(
        old.id(),
        new.id(),
        "a restarted requester reused a request id"
    );
    // The old answer, routed by name, reaches `second`, which discards it.
    server
        .broadcast_with(Doubled(999), old.config())
        .await
        .unwrap();
    new.respond(Doubled(4)).await.unwrap();
    assert_eq!(within("answer", asked).await.unwrap().unwrap(), Doubled(4));
}

// ----- 15. a full backlog is retried -------------------------------------

/// `connect` meets a full listen backlog (`EAGAIN`): it retries until the
/// server accepts, instead of failing at once.
#[tokio::test(flavor = "current_thread")]
async fn connect_retries_a_full_backlog() {
    let dir = TempDir::new();
    let name = unique("slow-acceptor");
    let (listener, queued) = backlogged(&dir.socket(&name));
    let client = Endpoint::run(unique("patient")).await.unwrap();
    let connecting = connecting_in_background(&client, dir.config(&name), "a full backlog").await;
    // Now accept: drop the queued connections, answer the client's hello.
    drop(queued);
    listener.set_nonblocking(true).unwrap();
    let listener: std::os::unix::net::UnixListener = std::os::fd::OwnedFd::from(listener).into();
    let listener = tokio::net::UnixListener::from_std(listener).unwrap();
    let server = tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            match raw::read_frame(&mut stream).await {
                Some((raw::HELLO, ..)) => {
                    stream
                        .write_all(&raw::hello(&name, &[], &[], raw::VERSION))
                        .await
                        .unwrap();
                    return raw::read_until_closed(&mut stream).await;
                }
                _ => continue, // one of the queued ones
            }
        }
    });
    within("connect", connecting).await.unwrap().unwrap();
    client.stop().await;
    within("server side", server).await.unwrap();
}

/// The client's folder check happens once it reached a server: a client
/// started before the server (and before its folder exists) still waits.
#[tokio::test(flavor = "current_thread")]
async fn connect_waits_for_a_folder_that_does_not_exist_yet() {
    let dir = TempDir::new();
    let later = TempDir(dir.0.join("created-later"));
    let name = unique("late-server");
    let client = Endpoint::run(unique("early-client")).await.unwrap();
    let config = later.config(&name);
    let connecting = connecting_in_background(&client, config, "a missing folder").await;
    std::fs::create_dir(&later.0).unwrap();
    let _server = Endpoint::serve(later.config(&name)).await.unwrap();
    within("connect", connecting).await.unwrap().unwrap();
}
