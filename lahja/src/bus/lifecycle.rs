//! Starting to serve, and stopping: the order in which an endpoint lets
//! go of its listeners, peers, requests, streams and waits.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Core, Signal};

/// Something a transport runs for the endpoint until it stops: a
/// listening socket, say.
pub(crate) trait Service: Send {
    /// Stops it; called once, from a synchronous context (`Drop`).
    fn stop(self: Box<Self>) -> Stopping;
    /// How peers reach the endpoint through it (`socket PATH`), for
    /// introspection.
    fn describe(&self) -> String;
}

/// What a service still does after [`Service::stop`] returned (closing a
/// network session, say): `Endpoint::stop` waits for it, `Drop` cannot.
pub(crate) type Stopping = Option<tokio::task::JoinHandle<()>>;

impl Core {
    /// Keeps `service` running until the endpoint stops (stops it at once
    /// if it already has).
    pub(crate) fn add_service(&self, service: Box<dyn Service>) {
        let mut services = self.services();
        if self.is_running() {
            services.push(service);
        } else {
            drop(services);
            drop(service.stop());
        }
    }

    /// Whether the endpoint runs and serves (listens for connections).
    pub(crate) fn is_serving(&self) -> bool {
        self.is_running() && !self.services().is_empty()
    }

    /// Sends what is queued to every peer (waiting at most `patience`).
    pub(crate) async fn flush_peers(&self, patience: Duration) {
        let peers: Vec<_> = self
            .state()
            .peers
            .values()
            .map(|p| p.link.clone())
            .collect();
        // All at once: stalled peers share one patience, not one each.
        let mut flushes = tokio::task::JoinSet::new();
        for peer in peers {
            flushes.spawn_on(async move { peer.flush(patience).await }, &self.runtime);
        }
        while flushes.join_next().await.is_some() {}
    }

    /// Resolves once the endpoint stops (at once if it has).
    pub(crate) async fn stopped(&self) {
        let mut changes = self.connections_changed.subscribe();
        while self.is_running() {
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// Stops: stops the services (the listener removes its socket file),
    /// closes every connection, ends every stream, fails every pending
    /// request, wakes every wait. Idempotent; synchronous so `Drop` can
    /// call it. Returns what the services still finish in the background.
    pub(crate) fn shutdown(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let (sinks, pending, peers) = {
            let mut state = self.state();
            if !self.is_running() {
                return Vec::new();
            }
            // Under the lock: whoever holds it next sees the stop.
            self.running.store(false, Ordering::Release);
            (
                std::mem::take(&mut state.sinks),
                std::mem::take(&mut state.pending),
                std::mem::take(&mut state.peers),
            )
        };
        let services = std::mem::take(&mut *self.services());
        let stopping = services.into_iter().filter_map(|s| s.stop()).collect();
        for peer in peers.values() {
            peer.link.abort();
        }
        for (_, pending) in pending {
            pending.waiter.stopped(pending.targets);
        }
        drop(sinks);
        self.signal(Signal::Connections);
        stopping
    }
}
