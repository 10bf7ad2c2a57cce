//! The socket file: safe binding (never steal a live socket, reclaim a
//! stale one), permissions, and removal.

use crate::{Error, Result, config};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A bound socket file, identified so that only our own file is removed.
pub(super) struct Bound {
    pub(super) listener: std::os::unix::net::UnixListener,
    pub(super) socket: SocketFile,
}

/// The socket file of a serving endpoint.
#[derive(Debug)]
pub(super) struct SocketFile {
    path: PathBuf,
    device: u64,
    inode: u64,
}

impl SocketFile {
    /// Where the socket is.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl SocketFile {
    /// Removes the file if it is still the one we bound (another endpoint
    /// may have reclaimed the path since), and the lock file with it.
    /// Never waits: if another server holds the reclaim lock, it is
    /// binding there right now, and both files are left to it (it
    /// reclaims our socket as stale; unlinking without the lock could
    /// remove the socket it just bound).
    pub(super) fn remove(&self) {
        let Some(lock) = ReclaimLock::try_take(&self.path) else {
            return;
        };
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if meta.dev() == self.device && meta.ino() == self.inode {
                let _ = std::fs::remove_file(&self.path);
            }
        }
        lock.remove();
    }
}

/// Removes `path` if it is a socket file nobody serves, with its lock
/// file; `Ok(false)` leaves it: a live socket, a server binding it right
/// now (it holds the reclaim lock), or a file that is not a socket.
pub(crate) fn remove_if_stale(path: &Path) -> std::io::Result<bool> {
    let Some(lock) = ReclaimLock::try_take(path) else {
        return Ok(false);
    };
    let stale = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => matches!(probe(path), Probe::Stale),
        _ => false,
    };
    let removed = if stale {
        std::fs::remove_file(path).map(|()| true)
    } else {
        Ok(false)
    };
    lock.remove();
    removed
}

fn bind_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Bind {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Binds `path`: creates the per-user folder of `from_name` (mode 0700),
/// reclaims a stale socket file, refuses a live one or any other file,
/// and creates the socket with mode 0600 from the start. Blocking (it
/// waits for the reclaim lock): call it off the runtime.
pub(super) fn bind(path: &Path) -> Result<Bound> {
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
    // Two servers reclaiming one stale path take turns: otherwise both
    // could see it stale, and the second would unlink the first one's
    // fresh socket (probe, unlink, bind is not atomic).
    let _turn = ReclaimLock::take(path).map_err(|e| bind_error(path, e))?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match probe(path) {
            Probe::Live => return Err(bind_error(path, "another endpoint is listening there")),
            Probe::Stale => {
                tracing::info!(path = %path.display(), "removing a stale socket file");
                std::fs::remove_file(path).map_err(|e| {
                    bind_error(path, format!("cannot remove the stale socket: {e}"))
                })?;
            }
            Probe::Gone => {}
            Probe::Failed(e) => {
                return Err(bind_error(
                    path,
                    format!("cannot probe the existing socket: {e}"),
                ));
            }
        },
        Ok(_) => {
            return Err(bind_error(
                path,
                "a file that is not a socket is in the way",
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(bind_error(path, e.to_string())),
    }
    let listener = listen_private(path).map_err(|e| bind_error(path, e.to_string()))?;
    let meta = std::fs::symlink_metadata(path).map_err(|e| bind_error(path, e.to_string()))?;
    Ok(Bound {
        listener,
        socket: SocketFile {
            path: path.to_owned(),
            device: meta.dev(),
            inode: meta.ino(),
        },
    })
}

/// A listening socket whose file is mode 0600 from the moment it exists:
/// the mode is set on the socket before `bind` creates the file (Linux
/// creates it with the socket's mode less the umask), so there is no
/// window in which another user could connect, and no `chmod` by path
/// that could follow a symlink.
fn listen_private(path: &Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    use socket2::{Domain, SockAddr, Socket, Type};
    use std::os::fd::AsRawFd;
    let address = SockAddr::unix(path)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    // SAFETY: fchmod on a descriptor we own; it has no memory effects.
    if unsafe { libc::fchmod(socket.as_raw_fd(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    socket.bind(&address)?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(std::os::fd::OwnedFd::from(socket).into())
}

/// What is behind an existing socket file.
enum Probe {
    Live,
    Stale,
    Gone,
    Failed(std::io::Error),
}

/// Connects without blocking: a full backlog (`EAGAIN`) is a live server,
/// not a reason to wait for it.
fn probe(path: &Path) -> Probe {
    use socket2::{Domain, SockAddr, Socket, Type};
    let attempt = || -> std::io::Result<()> {
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        socket.connect(&SockAddr::unix(path)?)
    };
    match attempt() {
        Ok(()) => Probe::Live,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Probe::Live,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Probe::Stale,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Probe::Gone,
        Err(e) => Probe::Failed(e),
    }
}

/// An exclusive `flock` on `<socket path>.lock`, held while a server
/// probes, reclaims and binds the path, and while a stopping server
/// removes its files. The lock file is removed only by a holder of the
/// lock, and a taker checks that the file it locked is still the one at
/// the path (else it locked a removed file, and tries again).
struct ReclaimLock {
    file: std::fs::File,
    path: PathBuf,
}

impl ReclaimLock {
    fn lock_path(socket: &Path) -> PathBuf {
        let mut name = socket.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Waits for the lock (only this user's processes can hold it: the
    /// file is ours and private, checked below).
    fn take(socket: &Path) -> std::result::Result<ReclaimLock, String> {
        Self::acquire(socket, libc::LOCK_EX)?.ok_or_else(|| "the reclaim lock is busy".to_owned())
    }

    /// Takes the lock if nobody holds it.
    fn try_take(socket: &Path) -> Option<ReclaimLock> {
        Self::acquire(socket, libc::LOCK_EX | libc::LOCK_NB)
            .ok()
            .flatten()
    }

    fn acquire(
        socket: &Path,
        mode: libc::c_int,
    ) -> std::result::Result<Option<ReclaimLock>, String> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let path = Self::lock_path(socket);
        loop {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|e| format!("cannot open the lock file {}: {e}", path.display()))?;
            let opened = file.metadata().map_err(|e| e.to_string())?;
            // SAFETY: getuid has no preconditions and cannot fail.
            let uid = unsafe { libc::getuid() };
            if opened.uid() != uid || opened.mode() & 0o077 != 0 {
                // Another user's lock file (say, in a shared folder) could
                // be held by them forever.
                return Err(format!(
                    "the lock file {} is not private to this user (owner uid {}, mode {:o})",
                    path.display(),
                    opened.uid(),
                    opened.mode() & 0o7777
                ));
            }
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), mode) } != 0 {
                let error = std::io::Error::last_os_error();
                if error.kind() == std::io::ErrorKind::WouldBlock {
                    return Ok(None);
                }
                return Err(format!("cannot lock {}: {error}", path.display()));
            }
            let locked = file.metadata().map_err(|e| e.to_string())?;
            match std::fs::symlink_metadata(&path) {
                Ok(now) if now.dev() == locked.dev() && now.ino() == locked.ino() => {
                    return Ok(Some(ReclaimLock { file, path }));
                }
                // Removed (or replaced) while we waited: lock the new one.
                _ => continue,
            }
        }
    }

    /// Removes the lock file, then releases the lock.
    fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
        drop(self.file);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The socket file is 0600 even under umask 0: the mode is set before
    /// the file exists (binding with std and chmod afterwards left a
    /// window with mode 0777 here).
    #[test]
    fn the_socket_is_private_from_the_start() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("lahja-umask-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        // SAFETY: umask has no preconditions; restored below.
        let old = unsafe { libc::umask(0) };
        let listener = listen_private(&path);
        unsafe { libc::umask(old) };
        let _listener = listener.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(mode, 0o600);
    }
}
