//! The per-user socket folder of `ConnectionConfig::from_name`. A test
//! binary of its own: it points XDG_RUNTIME_DIR, which is process-wide,
//! at a folder of its own.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use lahja::{ConnectionConfig, Endpoint, Error};

/// Removes the test's folder even when the test fails.
struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn the_socket_folder_is_made_private_and_never_someone_else_s() {
    let base = std::env::temp_dir().join(format!("lahja-xdg-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let _cleanup = Cleanup(base.clone());
    // SAFETY: no other thread of this test binary reads the environment.
    unsafe { std::env::set_var("XDG_RUNTIME_DIR", &base) };
    let folder = base.join("lahja");

    // Created 0700 when missing.
    let endpoint = Endpoint::serve(ConnectionConfig::from_name("first"))
        .await
        .unwrap();
    let mode = std::fs::metadata(&folder).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    endpoint.stop().await;

    // Ours but opened up: made private again.
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777)).unwrap();
    let endpoint = Endpoint::serve(ConnectionConfig::from_name("second"))
        .await
        .unwrap();
    let mode = std::fs::metadata(&folder).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    endpoint.stop().await;

    // Someone else's: refused (chown needs root; elsewhere this part cannot
    // be staged and the checks above stand alone).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let other = 4242;
        std::os::unix::fs::chown(&folder, Some(other), Some(other)).unwrap();
        assert_eq!(std::fs::metadata(&folder).unwrap().uid(), other);
        match Endpoint::serve(ConnectionConfig::from_name("third")).await {
            Err(Error::Bind { reason, .. }) => {
                assert!(reason.contains("not a folder of this user"), "{reason}")
            }
            other => panic!("expected Bind, got {other:?}"),
        }
        assert!(!folder.join("third.sock").exists());
    }
}
