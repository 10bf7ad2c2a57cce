//! What the tables say (who is connected, who subscribes to what, who is
//! in which group) and
//! waiting until they say something else.

use std::collections::HashSet;
use std::sync::Arc;

use super::{Core, Signal, State};

use crate::{EventId, RequestId, Result};

/// A question about the tables that a caller can ask or wait for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Condition<'a> {
    /// The endpoint of this name is connected (an endpoint is connected
    /// to itself).
    Connected(&'a str),
    /// The endpoint of this name (possibly this one) subscribes to the ID.
    EndpointSubscribed(&'a str, EventId),
    /// Some connected endpoint, this one included, subscribes to the ID.
    AnySubscribed(EventId),
    /// Every peer subscribes to the ID, and this endpoint too if the flag
    /// says so (vacuously true without peers and without self).
    AllSubscribed(EventId, bool),
    /// Some member of the group (this endpoint included) subscribes to the ID.
    GroupSubscribed(&'a str, EventId),
    /// The group has at least this many connected members (this endpoint
    /// included).
    GroupHasMembers(&'a str, usize),
}

impl Condition<'_> {
    /// The signal after which it may have changed.
    fn signal(self) -> Signal {
        match self {
            Condition::Connected(_) => Signal::Connections,
            _ => Signal::Subscriptions,
        }
    }

    fn holds(self, me: &str, state: &State) -> bool {
        let here = |id| state.sinks.contains_key(&id);
        match self {
            Condition::Connected(name) => name == me || state.peers.contains_key(name),
            Condition::EndpointSubscribed(name, id) if name == me => here(id),
            Condition::EndpointSubscribed(name, id) => state
                .peers
                .get(name)
                .is_some_and(|peer| peer.subscriptions.contains(&id)),
            Condition::AnySubscribed(id) => {
                here(id) || state.peers.values().any(|p| p.subscriptions.contains(&id))
            }
            Condition::AllSubscribed(id, include_self) => {
                (!include_self || here(id))
                    && state.peers.values().all(|p| p.subscriptions.contains(&id))
            }
            Condition::GroupSubscribed(group, id) => {
                (state.groups.contains(group) && here(id))
                    || state
                        .peers
                        .values()
                        .any(|p| p.groups.contains(group) && p.subscriptions.contains(&id))
            }
            Condition::GroupHasMembers(group, n) => state.members(me, group).len() >= n,
        }
    }
}

impl Core {
    /// Whether `condition` holds now.
    pub(crate) fn holds(&self, condition: Condition<'_>) -> bool {
        condition.holds(&self.name, &self.state())
    }

    /// The IDs this endpoint subscribes to.
    pub(crate) fn subscribed_ids(&self) -> HashSet<EventId> {
        self.state().sinks.keys().copied().collect()
    }

    /// This endpoint first, then its peers by name, with subscriptions.
    pub(crate) fn connected(&self) -> Vec<(String, HashSet<EventId>)> {
        let state = self.state();
        let mut peers: Vec<_> = state
            .peers
            .iter()
            .map(|(name, peer)| (name.to_string(), peer.subscriptions.clone()))
            .collect();
        peers.sort_by(|a, b| a.0.cmp(&b.0));
        let ours = state.sinks.keys().copied().collect();
        let mut all = vec![(self.name.to_string(), ours)];
        all.extend(peers);
        all
    }

    /// The targets request `id` still waits for.
    pub(crate) fn pending_targets(&self, id: RequestId) -> Vec<Arc<str>> {
        let state = self.state();
        state
            .pending
            .get(&id)
            .map(|p| p.targets.clone())
            .unwrap_or_default()
    }

    /// How many requests of this endpoint wait for an answer.
    pub(crate) fn pending_count(&self) -> usize {
        self.state().pending.len()
    }

    /// Waits until `condition` holds, re-checking after every change.
    pub(crate) async fn wait_until(&self, condition: Condition<'_>) -> Result<()> {
        let mut changes = self.signal_sender(condition.signal()).subscribe();
        loop {
            {
                let state = self.state();
                if !self.is_running() {
                    return Err(self.lifecycle("stopped while waiting"));
                }
                if condition.holds(&self.name, &state) {
                    return Ok(());
                }
            }
            // The sender lives as long as `self`, so this cannot fail.
            let _ = changes.changed().await;
        }
    }

    /// Waits for the next `signal`.
    pub(crate) async fn wait_next(&self, signal: Signal) -> Result<()> {
        let mut changes = self.signal_sender(signal).subscribe();
        if !self.is_running() {
            return Err(self.lifecycle("stopped while waiting"));
        }
        let _ = changes.changed().await;
        if !self.is_running() {
            return Err(self.lifecycle("stopped while waiting"));
        }
        Ok(())
    }
}
