//! The answer to [`Introspect`](crate::report::Introspect): a snapshot of
//! the core's tables and counters, taken under the lock once and named
//! with the registry outside it.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use super::Core;
use crate::EventId;
use crate::report::{PeerReport, PendingRequest, Report, TypeName};

/// Milliseconds since the Unix epoch (0 before it).
fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Sorted by wire name, then ID: tables read the same way every time.
fn names(ids: &HashSet<EventId>) -> Vec<TypeName> {
    let mut names: Vec<TypeName> = ids.iter().map(|id| TypeName::of(*id)).collect();
    names.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
    names
}

impl Core {
    /// What this endpoint says of itself to a tool.
    pub(crate) fn report(&self) -> Report {
        let transports = self.services().iter().map(|s| s.describe()).collect();
        let (mut peers, subscriptions, groups, mut pending) = {
            let state = self.state();
            let peers: Vec<(PeerReport, HashSet<EventId>)> = state
                .peers
                .values()
                .map(|peer| {
                    let link = &peer.link;
                    let traffic = &link.traffic;
                    let sent = link.queue().sent();
                    let load = |n: &std::sync::atomic::AtomicU64| {
                        n.load(std::sync::atomic::Ordering::Relaxed)
                    };
                    let report = PeerReport {
                        name: link.name.to_string(),
                        connected_unix_ms: unix_ms(link.since),
                        queued_bytes: link.queue().queued() as u64,
                        queue_limit: self.options.queue_bytes as u64,
                        frames_in: load(&traffic.frames_in),
                        bytes_in: load(&traffic.bytes_in),
                        frames_out: sent.0,
                        bytes_out: sent.1,
                        subscriptions: Vec::new(),
                        groups: peer.groups.iter().cloned().collect(),
                    };
                    (report, peer.subscriptions.clone())
                })
                .collect();
            let subscriptions: HashSet<EventId> = state.sinks.keys().copied().collect();
            let pending: Vec<_> = state
                .pending
                .values()
                .map(|p| (p.since, p.event, p.targets.clone()))
                .collect();
            (
                peers,
                subscriptions,
                state.groups.iter().cloned().collect(),
                pending,
            )
        };
        pending.sort_by_key(|(since, _, _)| *since);
        peers.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        Report {
            name: self.name.to_string(),
            pid: std::process::id(),
            executable: std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            started_unix_ms: unix_ms(self.started),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            transports,
            groups,
            peers: peers
                .into_iter()
                .map(|(mut peer, ids)| {
                    peer.subscriptions = names(&ids);
                    peer
                })
                .collect(),
            subscriptions: names(&subscriptions),
            traffic: self.counters.traffic(),
            pending: pending
                .into_iter()
                .map(|(since, event, targets)| PendingRequest {
                    event: TypeName::of(event),
                    age_ms: since.elapsed().as_millis() as u64,
                    targets: targets.iter().map(|t| t.to_string()).collect(),
                })
                .collect(),
            refused: self.refused(),
            observers: self.observers.load(std::sync::atomic::Ordering::Relaxed) as u64,
            taps: self.taps.open() as u64,
        }
    }
}
