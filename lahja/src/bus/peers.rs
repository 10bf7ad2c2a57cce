//! The peer table: who is connected, what each subscribes to, and telling
//! peers what this endpoint subscribes to.
//!
//! Transports report peers here, whatever they learn them from (today a
//! hello on a socket).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::requests::GaveUp;
use super::{Core, Signal, State};
use crate::link::Link;
use crate::wire::{self, Hello, Kind};
use crate::{EventId, RequestId};

/// What this endpoint knows of one connected peer.
pub(crate) struct PeerEntry {
    pub(crate) link: Arc<Link>,
    pub(crate) subscriptions: HashSet<EventId>,
}

/// The connected peers by name.
pub(crate) type PeerTable = HashMap<Arc<str>, PeerEntry>;

/// The first frame a new peer gets from us.
pub(crate) enum Greeting {
    /// Our hello (the server side of a socket handshake).
    Hello,
    /// Our subscriptions, in case they changed since the hello we sent
    /// (the client side).
    Subscriptions,
}

impl State {
    /// The IDs we subscribe to, as they go on the wire.
    pub(super) fn wire_ids(&self) -> Vec<u64> {
        self.sinks.keys().map(|id| id.as_u64()).collect()
    }

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
            link.close();
        }
        current
    }
}

impl Core {
    /// Our hello: name, registry table and current subscriptions.
    pub(crate) fn hello(&self) -> Hello {
        let ids = self.state().wire_ids();
        Hello::ours(&self.name, ids)
    }

    /// Applies a change of our subscriptions under the lock. If
    /// `set_after` says the set of IDs changes (to the one it returns),
    /// every peer is told in the same critical section, so no frame queued
    /// after the change can reach a peer before the news. The frame is
    /// encoded outside the lock, and again if the set changed meanwhile.
    pub(super) fn change_subscriptions<T>(
        &self,
        set_after: impl Fn(&State) -> Option<Vec<u64>>,
        apply: impl FnOnce(&mut State) -> T,
    ) -> T {
        // The frame, and the version of the set it was encoded from.
        let mut encoded: Option<(u64, Option<Vec<u8>>)> = None;
        loop {
            let mut state = self.state();
            let Some(ids) = set_after(&state) else {
                return apply(&mut state);
            };
            let version = state.subscriptions_version;
            if state.peers.is_empty() {
                encoded = None;
            } else if !matches!(&encoded, Some((v, _)) if *v == version) {
                drop(state);
                encoded = Some((version, self.subscriptions_frame(&ids)));
                continue;
            }
            state.subscriptions_version += 1;
            if let Some((_, Some(frame))) = &encoded {
                for peer in state.peers.values() {
                    peer.link.announce(frame);
                }
            }
            return apply(&mut state);
        }
    }

    /// Our subscription set as a frame; `None` (logged) only if it is over
    /// the control-frame limit (some 100,000 subscribed types).
    fn subscriptions_frame(&self, ids: &[u64]) -> Option<Vec<u8>> {
        let mut frame = Vec::new();
        let zero = EventId::from_u64(0);
        match wire::append_encoded(
            &mut frame,
            Kind::Subscriptions,
            zero,
            0,
            self.limits(),
            &ids,
        ) {
            Ok(()) => Some(frame),
            Err(error) => {
                tracing::warn!(%error, "cannot announce our subscriptions; peers keep the previous set");
                None
            }
        }
    }

    /// The first frame for a new peer, from our subscriptions `ids`.
    fn greeting_frame(
        &self,
        greeting: &Greeting,
        ids: Vec<u64>,
    ) -> Result<Option<Vec<u8>>, String> {
        match greeting {
            Greeting::Hello => {
                let mut frame = Vec::new();
                let hello = Hello::ours(&self.name, ids);
                wire::append_hello(&mut frame, &hello, self.limits()).map_err(|e| e.to_string())?;
                Ok(Some(frame))
            }
            Greeting::Subscriptions => Ok(self.subscriptions_frame(&ids)),
        }
    }

    /// Adds a peer that subscribes to `subscriptions`. Its first frame is
    /// `greeting`, queued as it joins the table (so every later change of
    /// our subscriptions reaches it after that), and before its transport
    /// writes anything. Encoded outside the lock, and again if our
    /// subscriptions changed meanwhile.
    pub(crate) fn register_peer(
        &self,
        link: &Arc<Link>,
        subscriptions: &[u64],
        greeting: Greeting,
    ) -> Result<(), String> {
        let mut encoded: Option<(u64, Option<Vec<u8>>)> = None;
        loop {
            let mut state = self.state();
            if !self.is_running() {
                return Err("the endpoint is stopping".into());
            }
            if *link.name == *self.name {
                return Err("an endpoint cannot connect to itself".into());
            }
            if state.peers.contains_key(&link.name) {
                return Err(format!("`{}` is already connected", link.name));
            }
            let version = state.subscriptions_version;
            let frame = match encoded.take() {
                Some((v, frame)) if v == version => frame,
                _ => {
                    let ids = state.wire_ids();
                    drop(state);
                    encoded = Some((version, self.greeting_frame(&greeting, ids)?));
                    continue;
                }
            };
            match (&greeting, frame) {
                (Greeting::Hello, Some(frame)) => link.greet(&frame),
                (Greeting::Subscriptions, Some(frame)) => link.announce(&frame),
                (_, None) => {}
            }
            let entry = PeerEntry {
                link: link.clone(),
                subscriptions: subscriptions
                    .iter()
                    .map(|&id| EventId::from_u64(id))
                    .collect(),
            };
            state.peers.insert(link.name.clone(), entry);
            break;
        }
        tracing::debug!(endpoint = %self.name, peer = %link.name, "connected");
        self.signal(Signal::Connections);
        Ok(())
    }

    /// Records what peer `link` now subscribes to (ignored if it is no
    /// longer the registered link of that name).
    pub(crate) fn set_peer_subscriptions(&self, link: &Arc<Link>, ids: Vec<u64>) {
        {
            let mut state = self.state();
            match state.peers.get_mut(&link.name) {
                Some(peer) if Arc::ptr_eq(&peer.link, link) => {
                    peer.subscriptions = ids.into_iter().map(EventId::from_u64).collect();
                }
                _ => return,
            }
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
