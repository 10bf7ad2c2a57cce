//! The peer table: who is connected, what each subscribes to, and which
//! groups each belongs to.
//!
//! Transports report peers here, whatever they learn them from (today a
//! hello on a socket).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::requests::GaveUp;
use super::{Core, Signal, State};
use crate::link::Link;
use crate::{EventId, RequestId};

/// What this endpoint knows of one connected peer.
pub(crate) struct PeerEntry {
    pub(crate) link: Arc<Link>,
    pub(crate) subscriptions: HashSet<EventId>,
    pub(crate) groups: BTreeSet<String>,
}

/// How many refused peers [`Core::refused`] remembers.
const REFUSALS_KEPT: usize = 64;

/// The connected peers by name.
pub(crate) type PeerTable = HashMap<Arc<str>, PeerEntry>;

/// The first frames a new peer gets from us.
pub(crate) enum Greeting {
    /// Our hello (the server side of a socket handshake).
    Hello,
    /// Our subscriptions and groups, in case they changed since the hello
    /// we sent (the client side).
    Announcements,
}

/// What a peer said of itself when it connected.
pub(crate) struct PeerInfo {
    pub(crate) subscriptions: Vec<u64>,
    pub(crate) groups: Vec<String>,
}

impl State {
    /// Forgets a peer and closes its queue in one step under the lock, so
    /// that a request routed to it meanwhile meets a closed queue (and
    /// fails at once) instead of queueing to a connection nobody reads.
    pub(super) fn remove_peer_entry(&mut self, link: &Arc<Link>) -> bool {
        let current = self
            .peers
            .get(&link.name)
            .is_some_and(|p| Arc::ptr_eq(&p.link, link));
        if current {
            self.peers.remove(&link.name);
            self.remote_routes.clear();
            link.close();
        }
        current
    }

    /// The entry of `link`, if it is still the registered link of its
    /// name, to change: the routes worked out from it are forgotten.
    fn peer_mut(&mut self, link: &Arc<Link>) -> Option<&mut PeerEntry> {
        let peer = self
            .peers
            .get_mut(&link.name)
            .filter(|peer| Arc::ptr_eq(&peer.link, link))?;
        self.remote_routes.clear();
        Some(peer)
    }
}

impl Core {
    /// Logs that peer `name` was not added and why, and keeps the reason
    /// for [`refused`](Self::refused): the latest one per peer, for the
    /// last [`REFUSALS_KEPT`] peers.
    pub(crate) fn refuse(&self, name: &str, reason: String) {
        tracing::warn!(endpoint = %self.name, peer = %name, %reason, "refusing a peer");
        let mut refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        refusals.retain(|(refused, _)| refused != name);
        if refusals.len() == REFUSALS_KEPT {
            refusals.pop_front();
        }
        refusals.push_back((name.to_owned(), reason));
    }

    /// The peers refused so far, oldest first: (name, reason).
    pub(crate) fn refused(&self) -> Vec<(String, String)> {
        let refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        refusals.iter().cloned().collect()
    }

    /// Adds a peer. Its first frames are `greeting`, queued as it joins
    /// the table (see [`greet_and_insert`](Self::greet_and_insert)).
    pub(crate) fn register_peer(
        &self,
        link: &Arc<Link>,
        info: PeerInfo,
        greeting: Greeting,
    ) -> Result<(), String> {
        let check = |state: &State| {
            if !self.is_running() {
                return Err("the endpoint is stopping".to_owned());
            }
            if *link.name == *self.name {
                return Err("an endpoint cannot connect to itself".into());
            }
            if state.peers.contains_key(&link.name) {
                return Err(format!("`{}` is already connected", link.name));
            }
            Ok(())
        };
        let entry = PeerEntry {
            link: link.clone(),
            subscriptions: info
                .subscriptions
                .into_iter()
                .map(EventId::from_u64)
                .collect(),
            groups: info.groups.into_iter().collect(),
        };
        self.greet_and_insert(link, greeting, check, |state| {
            state.peers.insert(link.name.clone(), entry);
            state.remote_routes.clear();
        })?;
        tracing::debug!(endpoint = %self.name, peer = %link.name, "connected");
        self.signal(Signal::Connections);
        Ok(())
    }

    /// Whether a peer named `name` is connected (by any transport).
    #[cfg(feature = "zenoh")]
    pub(crate) fn has_peer(&self, name: &str) -> bool {
        self.state().peers.contains_key(name)
    }

    /// Records what peer `link` now subscribes to (ignored if it is no
    /// longer the registered link of that name).
    pub(crate) fn set_peer_subscriptions(&self, link: &Arc<Link>, ids: Vec<u64>) {
        match self.state().peer_mut(link) {
            Some(peer) => peer.subscriptions = ids.into_iter().map(EventId::from_u64).collect(),
            None => return,
        }
        self.signal(Signal::Subscriptions);
    }

    /// Records the groups peer `link` now belongs to.
    pub(crate) fn set_peer_groups(&self, link: &Arc<Link>, groups: Vec<String>) {
        match self.state().peer_mut(link) {
            Some(peer) => peer.groups = groups.into_iter().collect(),
            None => return,
        }
        self.signal(Signal::Subscriptions);
    }

    /// Forgets a peer whose connection ended: its subscriptions go, and its
    /// pending requests fail once no other target can answer.
    pub(crate) fn remove_peer(&self, link: &Arc<Link>) {
        let waiting_on_it: Vec<RequestId> = {
            let mut state = self.state();
            if !state.remove_peer_entry(link) {
                return;
            }
            state
                .pending
                .iter()
                .filter(|(_, p)| p.targets.contains(&link.name))
                .map(|(id, _)| *id)
                .collect()
        };
        link.abort();
        for id in waiting_on_it {
            self.target_gave_up(id, &link.name, GaveUp::Disconnected);
        }
        self.signal(Signal::Connections);
    }
}
