//! Who receives what: the one place that decides, for broadcasts,
//! requests, responses and frames that arrive from peers.
//!
//! Functions over the tables (this endpoint's sinks, its peers and
//! their subscriptions), pure but for [`RemoteRoutes`], the answers kept
//! for broadcasts that filter nothing; the callers act on the answer and
//! never decide themselves. A [`BroadcastConfig`] is read here and nowhere else.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::id_map::IdMap;
use super::peers::PeerTable;
use super::subscribers::{SinkEntry, SinkKind, SinkTable};
use crate::link::Link;
use crate::{BroadcastConfig, Error, EventId, RequestId, Result};

/// What a call of `broadcast_with` asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Plan<'a> {
    /// An ordinary broadcast, routed by [`targets`].
    Broadcast,
    /// A response to `request` of `requester` (this endpoint when
    /// `None`): `filter_event_id` marks one, and it goes to the pending
    /// request whatever the subscriptions.
    Respond {
        requester: Option<&'a str>,
        request: RequestId,
    },
}

/// Reads `config` as a broadcast or a response. A request ignores
/// `filter_event_id` (it is not an answer), so it skips this.
pub(crate) fn plan(config: &BroadcastConfig) -> Plan<'_> {
    match config.filter_event_id {
        Some(request) => Plan::Respond {
            requester: config.filter_endpoint.as_deref(),
            request,
        },
        None => Plan::Broadcast,
    }
}

/// Who receives one broadcast or request.
pub(crate) struct Route {
    /// This endpoint's sinks for the ID, if it receives the event.
    pub(crate) local: Option<Arc<[SinkEntry]>>,
    /// The peers that receive it.
    pub(crate) remote: Arc<[Arc<Link>]>,
}

/// The peers subscribed to each event type, for broadcasts that filter
/// nothing (most of them): worked out once per type, and forgotten
/// whenever a peer joins, leaves, or changes its subscriptions or groups.
/// Without it every broadcast walked the whole peer table, hashed the ID
/// once per peer, and built and dropped a list of links.
#[derive(Default)]
pub(crate) struct RemoteRoutes(IdMap<EventId, Arc<[Arc<Link>]>>);

impl RemoteRoutes {
    /// Forgets every route (the peer table changed).
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}

impl Route {
    /// The endpoints a request on this route waits for: this one first.
    pub(crate) fn endpoints(&self, me: &Arc<str>) -> Vec<Arc<str>> {
        let mut all = Vec::with_capacity(self.remote.len() + 1);
        if self.local.is_some() {
            all.push(me.clone());
        }
        all.extend(self.remote.iter().map(|peer| peer.name.clone()));
        all
    }
}

/// This endpoint, as routing sees it.
#[derive(Clone, Copy)]
pub(crate) struct Me<'a> {
    pub(crate) name: &'a str,
    pub(crate) groups: &'a BTreeSet<String>,
}

/// The targets of an event of `id` (wire name `name`) sent by endpoint
/// `me`: the endpoints subscribed to it that `filter_endpoint` names and
/// that are members of `filter_group` (either unset: all, `me` too),
/// leaving out peers when `internal`. With `require_subscriber`, no
/// target at all is `NoSubscribers`.
///
/// A request sink counts as a subscriber here even for a plain broadcast
/// of its type, which it does not take (see [`takes`]).
pub(crate) fn targets(
    me: Me<'_>,
    sinks: &SinkTable,
    peers: &PeerTable,
    routes: &mut RemoteRoutes,
    id: EventId,
    name: &'static str,
    config: &BroadcastConfig,
) -> Result<Route> {
    let allowed = |endpoint: &str, groups: &BTreeSet<String>| {
        let named = config.filter_endpoint.as_deref();
        let group = config.filter_group.as_deref();
        named.is_none_or(|only| only == endpoint) && group.is_none_or(|g| groups.contains(g))
    };
    let local = allowed(me.name, me.groups)
        .then(|| sinks.get(&id).cloned())
        .flatten();
    let subscribed = |peers: &PeerTable, allowed: &dyn Fn(&str, &BTreeSet<String>) -> bool| {
        peers
            .iter()
            .filter(|(peer, entry)| {
                allowed(peer, &entry.groups) && entry.subscriptions.contains(&id)
            })
            .map(|(_, entry)| entry.link.clone())
            .collect::<Arc<[_]>>()
    };
    let remote = if config.internal {
        Arc::from([])
    } else if config.filter_endpoint.is_none() && config.filter_group.is_none() {
        routes
            .0
            .entry(id)
            .or_insert_with(|| subscribed(peers, &|_, _| true))
            .clone()
    } else {
        subscribed(peers, &allowed)
    };
    if config.require_subscriber && local.is_none() && remote.is_empty() {
        return Err(Error::NoSubscribers { event: name });
    }
    Ok(Route { local, remote })
}

/// Whether a sink of `kind` takes a delivery: a request sink only takes
/// requests it can answer (`answerable`: made with `request()`); streams
/// and callbacks take every event of their type.
pub(crate) fn takes(kind: SinkKind, answerable: bool) -> bool {
    match kind {
        SinkKind::Events => true,
        SinkKind::Requests => answerable,
    }
}

/// Where a response goes.
pub(crate) enum Requester {
    /// This endpoint asked: the pending entry completes here.
    Here,
    /// A peer asked: the response goes over its link.
    Peer(Arc<Link>),
}

/// The requester named `requester` (this endpoint when `None`), or `None`
/// when no such endpoint is connected (the response is discarded).
pub(crate) fn requester(me: &str, requester: Option<&str>, peers: &PeerTable) -> Option<Requester> {
    match requester {
        None => Some(Requester::Here),
        Some(name) if name == me => Some(Requester::Here),
        Some(name) => peers
            .get(name)
            .map(|peer| Requester::Peer(peer.link.clone())),
    }
}

/// What to do with an event or request frame from a peer.
pub(crate) enum Inbound {
    /// Decode it once and offer it to these sinks.
    Deliver(Arc<[SinkEntry]>),
    /// Nobody here subscribes: drop it, and for a request tell the
    /// requester at once that it is dropped here.
    Unrouted { tell_dropped: bool },
}

/// Routes an event (or, with `is_request`, a request) of `id` from a peer.
pub(crate) fn inbound(sinks: &SinkTable, id: EventId, is_request: bool) -> Inbound {
    match sinks.get(&id) {
        Some(sinks) => Inbound::Deliver(sinks.clone()),
        None => Inbound::Unrouted {
            tell_dropped: is_request,
        },
    }
}

/// Whether an answer from `from` may complete a request waiting on
/// `targets`: only an endpoint the request was sent to may answer it.
pub(crate) fn may_answer(targets: &[Arc<str>], from: &str) -> bool {
    targets.iter().any(|target| **target == *from)
}

#[cfg(test)]
mod tests;
