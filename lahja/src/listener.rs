//! Listening on a Unix socket: safe binding (never steal a live socket,
//! reclaim a stale one), permissions, the accept loop, and removal.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;

use crate::shared::Shared;
use crate::{Error, Result, config, connection};

/// A bound socket file, identified so that only our own file is removed.
pub(crate) struct Bound {
    pub(crate) listener: UnixListener,
    pub(crate) socket: SocketFile,
}

/// The socket file of a serving endpoint.
#[derive(Debug)]
pub(crate) struct SocketFile {
    pub(crate) path: PathBuf,
    device: u64,
    inode: u64,
}

impl SocketFile {
    /// Removes the file if it is still the one we bound (another endpoint
    /// may have reclaimed the path since).
    pub(crate) fn remove(&self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if meta.dev() == self.device && meta.ino() == self.inode {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

fn bind_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Bind {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Binds `path`: creates the per-user folder of `from_name` (mode 0700),
/// reclaims a stale socket file, refuses a live one or any other file,
/// and makes the socket mode 0600.
pub(crate) fn bind(path: &Path) -> Result<Bound> {
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(folder) = folder {
        if folder == config::runtime_dir() {
            private_folder(folder).map_err(|reason| bind_error(path, reason))?;
        }
        if !folder.is_dir() {
            return Err(bind_error(
                path,
                format!("folder {} does not exist", folder.display()),
            ));
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => return Err(bind_error(path, "another endpoint is listening there")),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    tracing::info!(path = %path.display(), "removing a stale socket file");
                    std::fs::remove_file(path).map_err(|e| {
                        bind_error(path, format!("cannot remove the stale socket: {e}"))
                    })?;
                }
                Err(e) => {
                    return Err(bind_error(
                        path,
                        format!("cannot probe the existing socket: {e}"),
                    ));
                }
            }
        }
        Ok(_) => {
            return Err(bind_error(
                path,
                "a file that is not a socket is in the way",
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(bind_error(path, e.to_string())),
    }
    // std checks the platform's path limit and returns an error (no panic).
    let listener = std::os::unix::net::UnixListener::bind(path)
        .map_err(|e| bind_error(path, e.to_string()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| bind_error(path, format!("cannot set the socket's mode: {e}")))?;
    let meta = std::fs::symlink_metadata(path).map_err(|e| bind_error(path, e.to_string()))?;
    listener.set_nonblocking(true)?;
    Ok(Bound {
        listener: UnixListener::from_std(listener)?,
        socket: SocketFile {
            path: path.to_owned(),
            device: meta.dev(),
            inode: meta.ino(),
        },
    })
}

/// Makes sure the per-user folder of `from_name` exists, belongs to this
/// user and is mode 0700: the folder's permissions are what keeps other
/// users away from the sockets in it.
fn private_folder(folder: &Path) -> std::result::Result<(), String> {
    if !folder.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(folder)
            .map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
    }
    let meta = std::fs::symlink_metadata(folder).map_err(|e| e.to_string())?;
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    if !meta.is_dir() || meta.uid() != uid {
        return Err(format!(
            "{} is not a folder of this user (uid {uid}): refusing to put a socket there",
            folder.display()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make {} private: {e}", folder.display()))?;
    }
    Ok(())
}

/// Accepts connections until aborted; each handshake runs in its own task.
pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: UnixListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                shared
                    .runtime
                    .spawn(connection::accept(shared.clone(), stream));
            }
            Err(error) => {
                // EMFILE and friends: wait a little instead of spinning.
                tracing::warn!(endpoint = %shared.name, %error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
