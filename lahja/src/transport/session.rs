//! The tasks behind one socket link: a writer that drains the link's
//! queue and a reader that hands frames to the core.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinHandle};

use super::descriptors::SocketReader;
use crate::bus::Core;
use crate::link::{Finishing, Link, Session};
use crate::shared_memory::Mapping;
use crate::wire::{self, FrameBuffer, Violation};

/// A socket link's tasks, once started.
#[derive(Default)]
pub(super) struct SocketSession {
    tasks: Mutex<Tasks>,
    /// Signalled once the tasks are started (see [`Session::finish`]).
    started: Notify,
}

#[derive(Default)]
struct Tasks {
    reader: Option<AbortHandle>,
    writer: Option<JoinHandle<()>>,
    writer_abort: Option<AbortHandle>,
    started: bool,
    aborted: bool,
}

impl SocketSession {
    fn tasks(&self) -> MutexGuard<'_, Tasks> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Spawns the reader and writer of `link`, already registered.
    pub(super) fn start(
        &self,
        core: &Arc<Core>,
        link: &Arc<Link>,
        read: SocketReader,
        write: OwnedWriteHalf,
        frames: FrameBuffer,
    ) {
        let write = Arc::new(write);
        link.queue().attach(write.clone());
        let writer = core.runtime.spawn({
            let link = link.clone();
            async move { link.queue().run_writer(write).await }
        });
        let reader = core
            .runtime
            .spawn(read_loop(core.clone(), link.clone(), read, frames));
        let mut tasks = self.tasks();
        tasks.reader = Some(reader.abort_handle());
        tasks.writer_abort = Some(writer.abort_handle());
        tasks.writer = Some(writer);
        tasks.started = true;
        self.started.notify_waiters();
        if tasks.aborted {
            drop(tasks);
            self.abort();
        }
    }
}

impl Session for SocketSession {
    fn abort(&self) {
        let mut tasks = self.tasks();
        tasks.aborted = true;
        for task in [tasks.reader.take(), tasks.writer_abort.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
        tasks.writer = None;
    }

    /// A link is registered (and may be sent events) a moment before its
    /// tasks start: this waits for the writer to exist, or the frames
    /// queued meanwhile would be dropped by the stop that follows.
    fn finish(&self, deadline: tokio::time::Instant) -> Finishing<'_> {
        Box::pin(async move {
            let writer = loop {
                let started = self.started.notified();
                tokio::pin!(started);
                started.as_mut().enable();
                {
                    let mut tasks = self.tasks();
                    if tasks.started || tasks.aborted {
                        break tasks.writer.take();
                    }
                }
                if tokio::time::timeout_at(deadline, started).await.is_err() {
                    return;
                }
            };
            if let Some(writer) = writer {
                let _ = tokio::time::timeout_at(deadline, writer).await;
            }
        })
    }
}

/// The body in shared memory that a frame of `len` bytes stands for,
/// mapped from the next descriptor the peer sent.
fn map_shared(read: &mut SocketReader, len: usize) -> Result<Mapping, Violation> {
    let fd = read
        .take_descriptor()
        .ok_or_else(|| Violation::SharedMemory("the frame came without its descriptor".into()))?;
    Mapping::new(fd, len).map_err(Violation::SharedMemory)
}

/// Hands frames to the core until the peer closes or violates the
/// protocol, then removes the peer. A frame whose body is in shared
/// memory reaches the core with the mapped body, as if it had come on the
/// socket.
async fn read_loop(
    core: Arc<Core>,
    link: Arc<Link>,
    mut read: SocketReader,
    mut frames: FrameBuffer,
) {
    let max_frame = core.options.max_frame_bytes;
    let outcome: Result<(), String> = 'connection: loop {
        loop {
            match frames.next_frame() {
                Ok(Some(frame)) => {
                    let mapping;
                    let (frame, shared) = match frame.shared_len(max_frame) {
                        Ok(None) => (frame, false),
                        Ok(Some(len)) => match map_shared(&mut read, len) {
                            Ok(mapped) => {
                                mapping = mapped;
                                (frame.with_body(&mapping), true)
                            }
                            Err(violation) => break 'connection Err(violation.to_string()),
                        },
                        Err(violation) => break 'connection Err(violation.to_string()),
                    };
                    if let Err(violation) = core.receive(&link, frame).await {
                        break 'connection Err(violation.to_string());
                    }
                    // Decoded and handed on: the sender may count it free.
                    if shared && link.send_control(&wire::released()).is_err() {
                        break 'connection Err("the peer does not read its releases".into());
                    }
                }
                Ok(None) => break,
                Err(violation) => break 'connection Err(violation.to_string()),
            }
        }
        match frames.fill(&mut read).await {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(error) => break Err(error.to_string()),
        }
    };
    match outcome {
        Ok(()) => tracing::debug!(endpoint = %core.name, peer = %link.name, "peer disconnected"),
        Err(reason) => tracing::warn!(
            endpoint = %core.name,
            peer = %link.name,
            %reason,
            "closing the connection"
        ),
    }
    core.remove_peer(&link);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{Greeting, PeerInfo};
    use crate::wire::Kind;
    use crate::{Endpoint, Event};

    #[derive(crate::Event, serde::Serialize, serde::Deserialize, Clone, Debug)]
    struct Answer;

    /// A peer registered a moment before its tasks start, sent an event,
    /// then the endpoint stops: the stop's flush waits for the writer, so
    /// the peer still gets our hello and the event (it used to get EOF).
    #[tokio::test]
    async fn stop_flushes_a_peer_whose_tasks_have_not_started_yet() {
        let endpoint = Endpoint::run("early-stop").await.unwrap();
        let core = endpoint.core().clone();
        let session = Arc::new(SocketSession::default());
        let link = Link::new("peer".into(), 1 << 16, session.clone());
        let info = PeerInfo {
            subscriptions: vec![Answer::ID.as_u64()],
            groups: Vec::new(),
        };
        core.register_peer(&link, info, Greeting::Hello).unwrap();
        endpoint.broadcast(Answer).await.unwrap();
        let stopping = tokio::spawn({
            let endpoint = endpoint.clone();
            async move { endpoint.stop().await }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let (ours, mut theirs) = tokio::net::UnixStream::pair().unwrap();
        let (read, write) = ours.into_split();
        let read = SocketReader::new(read);
        session.start(&core, &link, read, write, FrameBuffer::new(1 << 20));
        let mut received = Vec::new();
        let patience = std::time::Duration::from_secs(20);
        let reading = tokio::io::AsyncReadExt::read_to_end(&mut theirs, &mut received);
        tokio::time::timeout(patience, reading)
            .await
            .unwrap()
            .unwrap();
        tokio::time::timeout(patience, stopping)
            .await
            .unwrap()
            .unwrap();
        let mut frames = FrameBuffer::new(1 << 20);
        frames.extend(&received);
        let kinds: Vec<Kind> =
            std::iter::from_fn(|| frames.next_frame().unwrap().map(|f| f.kind)).collect();
        assert_eq!(kinds, [Kind::Hello, Kind::Event]);
    }
}
