//! Every routing decision as a table: inputs on the left, who receives on
//! the right.

use std::any::Any;

use super::*;
use crate::bus::peers::PeerEntry;
use crate::bus::subscribers::{Delivery, Offer, Sink, WaitForRoom};
use crate::link::Unconnected;

/// This endpoint: `me`, in no group.
fn me() -> Me<'static> {
    static NONE: BTreeSet<String> = BTreeSet::new();
    Me {
        name: "me",
        groups: &NONE,
    }
}

const X: EventId = EventId::from_u64(1);
const Y: EventId = EventId::from_u64(2);

/// A sink that is only ever routed to, never delivered to.
struct Unused;

impl Sink for Unused {
    fn decode(&self, _: &[u8]) -> Result<Box<dyn Any + Send + Sync>> {
        unreachable!("routing never decodes")
    }
    fn try_deliver(&self, _: &Delivery<'_>) -> Offer {
        unreachable!("routing never delivers")
    }
    fn deliver<'a>(&'a self, _: &'a Delivery<'a>) -> WaitForRoom<'a> {
        unreachable!("routing never delivers")
    }
}

fn sinks(ids: &[EventId]) -> SinkTable {
    ids.iter()
        .map(|&id| {
            let entry = SinkEntry {
                key: 0,
                kind: SinkKind::Events,
                sink: Arc::new(Unused),
            };
            (id, Arc::from([entry]))
        })
        .collect()
}

/// Peers by name with the IDs each subscribes to.
fn peers(table: &[(&str, &[EventId])]) -> PeerTable {
    let in_no_group: Vec<_> = table
        .iter()
        .map(|&(name, ids)| (name, ids, &[][..]))
        .collect();
    peers_in_groups(&in_no_group)
}

/// Peers by name with the IDs each subscribes to and its groups.
fn peers_in_groups(table: &[(&str, &[EventId], &[&str])]) -> PeerTable {
    table
        .iter()
        .map(|&(name, ids, groups)| {
            let link = Link::new(name.into(), 1024, Arc::new(Unconnected));
            let entry = PeerEntry {
                link,
                subscriptions: ids.iter().copied().collect(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
            };
            (Arc::from(name), entry)
        })
        .collect()
}

/// `targets` of `X`, with no route kept from an earlier call.
fn route_x(
    me: Me<'_>,
    sinks: &SinkTable,
    peers: &PeerTable,
    config: &BroadcastConfig,
) -> Result<Route> {
    targets(
        me,
        sinks,
        peers,
        &mut RemoteRoutes::default(),
        X,
        "X",
        config,
    )
}

fn config(only: Option<&str>, internal: bool, require_subscriber: bool) -> BroadcastConfig {
    BroadcastConfig {
        filter_endpoint: only.map(str::to_owned),
        filter_group: None,
        filter_event_id: None,
        internal,
        require_subscriber,
    }
}

/// What a route reaches: (this endpoint, sorted peer names), or `None`
/// for `NoSubscribers`.
type Reach = Option<(bool, Vec<&'static str>)>;

/// Subscriptions of this endpoint, peer `a` and peer `b`.
type World = (&'static [EventId], &'static [EventId], &'static [EventId]);

fn reach(route: Result<Route>) -> Option<(bool, Vec<String>)> {
    match route {
        Ok(route) => {
            let mut remote: Vec<String> = route.remote.iter().map(|p| p.name.to_string()).collect();
            remote.sort();
            Some((route.local.is_some(), remote))
        }
        Err(Error::NoSubscribers { event: "X" }) => None,
        Err(other) => panic!("unexpected error {other}"),
    }
}

/// `expected` with owned names, to compare with [`reach`].
fn owned(expected: &Reach) -> Option<(bool, Vec<String>)> {
    let (local, remote) = expected.as_ref()?;
    Some((*local, remote.iter().map(|s| s.to_string()).collect()))
}

/// Every combination of `filter_endpoint` (unset, this endpoint, a
/// subscribed peer, an unsubscribed peer, an unknown name), `internal`
/// and `require_subscriber`, with X subscribed here and by peer `a`.
#[test]
fn broadcast_targets_for_every_config() {
    let sinks = sinks(&[X]);
    let peers = peers(&[("a", &[X, Y]), ("b", &[Y])]);
    #[rustfmt::skip]
    let table: &[(Option<&str>, bool, bool, Reach)] = &[
        // filter      internal require   receives (self, peers)
        (None,         false,   true,     Some((true, vec!["a"]))),
        (None,         false,   false,    Some((true, vec!["a"]))),
        (None,         true,    true,     Some((true, vec![]))),
        (None,         true,    false,    Some((true, vec![]))),
        (Some("me"),   false,   true,     Some((true, vec![]))),
        (Some("me"),   false,   false,    Some((true, vec![]))),
        (Some("me"),   true,    true,     Some((true, vec![]))),
        (Some("me"),   true,    false,    Some((true, vec![]))),
        (Some("a"),    false,   true,     Some((false, vec!["a"]))),
        (Some("a"),    false,   false,    Some((false, vec!["a"]))),
        (Some("a"),    true,    true,     None),
        (Some("a"),    true,    false,    Some((false, vec![]))),
        (Some("b"),    false,   true,     None),
        (Some("b"),    false,   false,    Some((false, vec![]))),
        (Some("b"),    true,    true,     None),
        (Some("b"),    true,    false,    Some((false, vec![]))),
        (Some("zz"),   false,   true,     None),
        (Some("zz"),   false,   false,    Some((false, vec![]))),
        (Some("zz"),   true,    true,     None),
        (Some("zz"),   true,    false,    Some((false, vec![]))),
    ];
    for (only, internal, require, expected) in table {
        let config = config(*only, *internal, *require);
        let got = reach(route_x(me(), &sinks, &peers, &config));
        assert_eq!(got, owned(expected), "{config:?}");
    }
}

/// Every combination of `filter_group` (unset, a group with this endpoint
/// in it, one without, an unknown one), `internal` and
/// `require_subscriber`, with X subscribed here (in `g1`) and by peers
/// `a` (in `g1`, `g2`), `b` (`g2`) and `c` (no group); `d` (`g1`) does
/// not subscribe.
#[test]
fn group_targets_for_every_config() {
    let sinks = sinks(&[X]);
    let ours = BTreeSet::from(["g1".to_owned()]);
    let me = Me {
        name: "me",
        groups: &ours,
    };
    let peers = peers_in_groups(&[
        ("a", &[X], &["g1", "g2"]),
        ("b", &[X], &["g2"]),
        ("c", &[X], &[]),
        ("d", &[Y], &["g1"]),
    ]);
    #[rustfmt::skip]
    let table: &[(Option<&str>, bool, bool, Reach)] = &[
        // group     internal require   receives (self, peers)
        (None,       false,   true,     Some((true, vec!["a", "b", "c"]))),
        (None,       true,    true,     Some((true, vec![]))),
        (Some("g1"), false,   true,     Some((true, vec!["a"]))),
        (Some("g1"), false,   false,    Some((true, vec!["a"]))),
        (Some("g1"), true,    true,     Some((true, vec![]))),
        (Some("g1"), true,    false,    Some((true, vec![]))),
        (Some("g2"), false,   true,     Some((false, vec!["a", "b"]))),
        (Some("g2"), false,   false,    Some((false, vec!["a", "b"]))),
        (Some("g2"), true,    true,     None),
        (Some("g2"), true,    false,    Some((false, vec![]))),
        (Some("g3"), false,   true,     None),
        (Some("g3"), false,   false,    Some((false, vec![]))),
        (Some("g3"), true,    true,     None),
        (Some("g3"), true,    false,    Some((false, vec![]))),
    ];
    for (group, internal, require, expected) in table {
        let mut config = config(None, *internal, *require);
        config.filter_group = group.map(str::to_owned);
        let got = reach(route_x(me, &sinks, &peers, &config));
        assert_eq!(got, owned(expected), "{config:?}");
    }
}

/// A group and an endpoint name together: both must hold.
#[test]
fn a_group_and_a_name_narrow_each_other() {
    let sinks = sinks(&[X]);
    let ours = BTreeSet::from(["g1".to_owned()]);
    let me = Me {
        name: "me",
        groups: &ours,
    };
    let peers = peers_in_groups(&[("a", &[X], &["g1"]), ("b", &[X], &["g2"])]);
    #[rustfmt::skip]
    let table: &[(&str, &str, Reach)] = &[
        // name  group  receives (self, peers)
        ("a",    "g1",  Some((false, vec!["a"]))),
        ("b",    "g1",  None),
        ("me",   "g1",  Some((true, vec![]))),
        ("me",   "g2",  None),
    ];
    for (name, group, expected) in table {
        let mut config = BroadcastConfig::to(*name);
        config.filter_group = Some(group.to_string());
        let got = reach(route_x(me, &sinks, &peers, &config));
        assert_eq!(got, owned(expected), "{config:?}");
    }
}

/// Who subscribes decides when nobody is filtered out.
#[test]
fn broadcast_targets_for_every_subscriber_set() {
    #[rustfmt::skip]
    let table: &[(World, Reach)] = &[
        // here   a      b        receives (self, peers)
        ((&[X],   &[X],  &[X]),   Some((true, vec!["a", "b"]))),
        ((&[X],   &[],   &[Y]),   Some((true, vec![]))),
        ((&[],    &[X],  &[X]),   Some((false, vec!["a", "b"]))),
        ((&[],    &[X],  &[]),    Some((false, vec!["a"]))),
        ((&[Y],   &[Y],  &[]),    None),
        ((&[],    &[],   &[]),    None),
    ];
    for ((here, a, b), expected) in table {
        let sinks = sinks(here);
        let peers = peers(&[("a", a), ("b", b)]);
        let got = reach(route_x(me(), &sinks, &peers, &config(None, false, true)));
        assert_eq!(got, owned(expected), "here {here:?}, a {a:?}, b {b:?}");
    }
}

/// A request waits for the endpoints its route reaches, this one first.
#[test]
fn a_request_waits_for_every_endpoint_it_reaches() {
    let name: Arc<str> = "me".into();
    let peers = peers(&[("a", &[X]), ("b", &[X])]);
    let route = route_x(me(), &sinks(&[X]), &peers, &BroadcastConfig::default()).unwrap();
    let mut waits: Vec<String> = route
        .endpoints(&name)
        .iter()
        .map(|e| e.to_string())
        .collect();
    waits[1..].sort();
    assert_eq!(waits, ["me", "a", "b"]);
    let route = route_x(me(), &sinks(&[]), &peers, &BroadcastConfig::to("b")).unwrap();
    assert_eq!(route.endpoints(&name), [Arc::<str>::from("b")]);
}

/// `filter_event_id` makes a response, whatever else the config says.
#[test]
fn a_config_with_a_request_id_is_a_response() {
    let request = RequestId(7);
    #[rustfmt::skip]
    let table: &[(BroadcastConfig, Plan<'static>)] = &[
        (BroadcastConfig::default(), Plan::Broadcast),
        (BroadcastConfig::to("a").internal(), Plan::Broadcast),
        (BroadcastConfig { filter_event_id: Some(request), ..BroadcastConfig::default() },
         Plan::Respond { requester: None, request }),
        (BroadcastConfig { filter_event_id: Some(request), ..BroadcastConfig::to("a").internal() },
         Plan::Respond { requester: Some("a"), request }),
    ];
    for (config, expected) in table {
        assert_eq!(&plan(config), expected, "{config:?}");
    }
}

/// A response goes to this endpoint, a connected peer, or nowhere.
#[test]
fn responses_go_to_the_named_requester() {
    let peers = peers(&[("a", &[])]);
    #[rustfmt::skip]
    let table: &[(Option<&str>, Option<&str>)] = &[
        // requester  goes to
        (None,        Some("me")),
        (Some("me"),  Some("me")),
        (Some("a"),   Some("a")),
        (Some("zz"),  None),
    ];
    for (named, expected) in table {
        let got = requester("me", *named, &peers).map(|r| match r {
            Requester::Here => "me".to_owned(),
            Requester::Peer(link) => link.name.to_string(),
        });
        assert_eq!(got.as_deref(), *expected, "requester {named:?}");
    }
}

/// A frame from a peer reaches the sinks of its ID; a request nobody
/// here takes is answered with "dropped" at once.
#[test]
fn inbound_frames_reach_local_sinks_or_are_dropped() {
    let sinks = sinks(&[X]);
    #[rustfmt::skip]
    let table: &[(EventId, bool, Option<bool>)] = &[
        // id  request  Some(tell dropped) when unrouted
        (X,    false,   None),
        (X,    true,    None),
        (Y,    false,   Some(false)),
        (Y,    true,    Some(true)),
    ];
    for &(id, is_request, expected) in table {
        let got = match inbound(&sinks, id, is_request) {
            Inbound::Deliver(_) => None,
            Inbound::Unrouted { tell_dropped } => Some(tell_dropped),
        };
        assert_eq!(got, expected, "{id:?}, request {is_request}");
    }
}

/// Request sinks take only answerable requests; the others take all.
#[test]
fn which_sinks_take_which_deliveries() {
    #[rustfmt::skip]
    let table = [
        (SinkKind::Events,   false, true),
        (SinkKind::Events,   true,  true),
        (SinkKind::Requests, false, false),
        (SinkKind::Requests, true,  true),
    ];
    for (kind, answerable, expected) in table {
        assert_eq!(takes(kind, answerable), expected, "{kind:?}, {answerable}");
    }
}

/// Only an endpoint a request was sent to may answer it.
#[test]
fn only_a_target_may_answer() {
    let targets: Vec<Arc<str>> = vec!["me".into(), "a".into()];
    assert!(may_answer(&targets, "me"));
    assert!(may_answer(&targets, "a"));
    assert!(!may_answer(&targets, "b"));
    assert!(!may_answer(&[], "a"));
}

/// An unfiltered route is worked out once per type and kept until the
/// table changes (the core clears it then); a filtered one never uses it.
#[test]
fn unfiltered_remote_routes_are_kept_until_cleared() {
    let names = |route: &Route| {
        let mut names: Vec<String> = route.remote.iter().map(|p| p.name.to_string()).collect();
        names.sort();
        names
    };
    let all = BroadcastConfig::default();
    let mut routes = RemoteRoutes::default();
    let before = peers(&[("a", &[X]), ("b", &[X, Y])]);
    let first = targets(me(), &sinks(&[]), &before, &mut routes, X, "X", &all).unwrap();
    assert_eq!(names(&first), ["a", "b"]);
    // The table changed but nobody cleared: the kept route answers, the
    // same list, not walked again.
    let after = peers(&[("c", &[X])]);
    let kept = targets(me(), &sinks(&[]), &after, &mut routes, X, "X", &all).unwrap();
    assert!(Arc::ptr_eq(&first.remote, &kept.remote));
    // Another type, and any filter, read the table itself.
    let other = targets(me(), &sinks(&[]), &after, &mut routes, Y, "Y", &all);
    assert!(matches!(other, Err(Error::NoSubscribers { event: "Y" })));
    let to_c = BroadcastConfig::to("c");
    let filtered = targets(me(), &sinks(&[]), &after, &mut routes, X, "X", &to_c).unwrap();
    assert_eq!(names(&filtered), ["c"]);
    routes.clear();
    let fresh = targets(me(), &sinks(&[]), &after, &mut routes, X, "X", &all).unwrap();
    assert_eq!(names(&fresh), ["c"]);
}
