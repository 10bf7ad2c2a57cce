//! Finding endpoints: the socket files in a folder, and what answers at
//! each.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lahja::introspect::{Observer, Report};

/// How long one endpoint may take to answer before it counts as
/// unreachable.
const PATIENCE: Duration = Duration::from_secs(2);

/// What answers at one socket file.
pub(crate) enum State {
    Alive(Box<Report>),
    /// Nobody serves the socket: its endpoint is gone.
    Stale,
    /// Something serves it but did not answer as an endpoint should.
    Unreachable(String),
}

/// One socket file and what answers there.
pub(crate) struct Found {
    /// The file's name without `.sock`.
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    pub(crate) state: State,
}

/// The socket files `*.sock` in `dir`, sorted by name.
pub(crate) fn sockets(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let is_socket = entry.file_type().is_ok_and(|t| t.is_socket());
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".sock"));
        if let (true, Some(name)) = (is_socket, name) {
            found.push((name.to_owned(), path.clone()));
        }
    }
    found.sort();
    Ok(found)
}

/// Asks the endpoint at `path` for its report.
pub(crate) async fn probe(path: &Path) -> State {
    let answer = async {
        let mut observer = Observer::connect_with_timeout(path, PATIENCE).await?;
        observer.report().await
    };
    match answer.await {
        Ok(report) => State::Alive(Box::new(report)),
        Err(lahja::Error::Io(error))
            if matches!(
                error.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            ) =>
        {
            State::Stale
        }
        Err(error) => State::Unreachable(error.to_string()),
    }
}

/// Every socket file in `dir`, probed at the same time.
pub(crate) async fn all(dir: &Path) -> Result<Vec<Found>, String> {
    let sockets = sockets(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut probes = tokio::task::JoinSet::new();
    for (index, (name, path)) in sockets.into_iter().enumerate() {
        probes.spawn(async move {
            let state = probe(&path).await;
            (index, Found { name, path, state })
        });
    }
    let mut found: Vec<(usize, Found)> = probes.join_all().await;
    found.sort_by_key(|(index, _)| *index);
    Ok(found.into_iter().map(|(_, found)| found).collect())
}
