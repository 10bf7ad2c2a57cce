//! Telling peers about this endpoint: its hello, and the news of every
//! change of its subscriptions or groups.
//!
//! A change is queued to every peer inside the critical section that makes
//! it (and a new peer's first frame inside the one that adds it), so no
//! frame queued after the change reaches a peer before the news. Frames
//! are encoded outside the lock from the state as it was read, and again
//! if it changed before the lock was taken back (`State::version` counts
//! changes).

use super::peers::Greeting;
use super::{Core, State};
use crate::EventId;
use crate::link::{Link, Topic};
use crate::wire::{self, Hello, Kind};

/// What a change leads to, to tell the peers.
pub(super) enum News {
    /// Our subscribed IDs after the change.
    Subscriptions(Vec<u64>),
    /// Our groups after the change.
    Groups(Vec<String>),
}

/// Encoded news (or first frames), and the version they were encoded at.
type Encoded = Option<(u64, Vec<(Topic, Vec<u8>)>)>;

impl State {
    /// The IDs we subscribe to, as they go on the wire.
    pub(super) fn wire_ids(&self) -> Vec<u64> {
        self.sinks.keys().map(|id| id.as_u64()).collect()
    }

    /// Our groups, as they go on the wire.
    pub(super) fn wire_groups(&self) -> Vec<String> {
        self.groups.iter().cloned().collect()
    }
}

impl Core {
    /// Our hello: name, registry table, subscriptions and groups.
    pub(crate) fn hello(&self) -> Hello {
        let (ids, groups) = {
            let state = self.state();
            (state.wire_ids(), state.wire_groups())
        };
        Hello::ours(&self.name, ids, groups)
    }

    /// Applies a change under the lock; if `news` says it changes what
    /// peers know of us, every peer is told in the same critical section.
    pub(super) fn change_announced<T>(
        &self,
        news: impl Fn(&State) -> Option<News>,
        apply: impl FnOnce(&mut State) -> T,
    ) -> T {
        let mut encoded: Encoded = None;
        loop {
            let mut state = self.state();
            let Some(news) = news(&state) else {
                return apply(&mut state);
            };
            let version = state.version;
            if state.peers.is_empty() {
                encoded = None;
            } else if !matches!(&encoded, Some((v, _)) if *v == version) {
                drop(state);
                encoded = Some((version, self.news_frame(&news).into_iter().collect()));
                continue;
            }
            state.version += 1;
            if let Some((_, frames)) = &encoded {
                for peer in state.peers.values() {
                    announce(&peer.link, frames);
                }
            }
            return apply(&mut state);
        }
    }

    /// Adds `link` to the peer table with `insert`, after queueing its
    /// first frames (`greeting`) in the same critical section: every later
    /// change reaches it after them, and before its transport writes
    /// anything. Nothing happens if `check` refuses the peer.
    pub(super) fn greet_and_insert(
        &self,
        link: &Link,
        greeting: Greeting,
        check: impl Fn(&State) -> Result<(), String>,
        insert: impl FnOnce(&mut State),
    ) -> Result<(), String> {
        let mut encoded: Encoded = None;
        loop {
            let mut state = self.state();
            check(&state)?;
            let version = state.version;
            match encoded.take() {
                Some((v, frames)) if v == version => {
                    match greeting {
                        Greeting::Hello => frames.iter().for_each(|(_, f)| link.greet(f)),
                        Greeting::Announcements => announce(link, &frames),
                    }
                    insert(&mut state);
                    return Ok(());
                }
                _ => {
                    let (ids, groups) = (state.wire_ids(), state.wire_groups());
                    drop(state);
                    encoded = Some((version, self.greeting_frames(&greeting, ids, groups)?));
                }
            }
        }
    }

    /// The first frames for a new peer, from our `ids` and `groups`.
    fn greeting_frames(
        &self,
        greeting: &Greeting,
        ids: Vec<u64>,
        groups: Vec<String>,
    ) -> Result<Vec<(Topic, Vec<u8>)>, String> {
        match greeting {
            Greeting::Hello => {
                let mut frame = Vec::new();
                let hello = Hello::ours(&self.name, ids, groups);
                wire::append_hello(&mut frame, &hello, self.limits()).map_err(|e| e.to_string())?;
                Ok(vec![(Topic::Subscriptions, frame)])
            }
            Greeting::Announcements => Ok([News::Subscriptions(ids), News::Groups(groups)]
                .iter()
                .filter_map(|news| self.news_frame(news))
                .collect()),
        }
    }

    /// The frame of `news`; `None` (logged) only if it is over the
    /// control-frame limit (some 100,000 subscribed types): peers keep
    /// what they knew.
    fn news_frame(&self, news: &News) -> Option<(Topic, Vec<u8>)> {
        let mut frame = Vec::new();
        let zero = EventId::from_u64(0);
        let limits = self.limits();
        let (topic, built) = match news {
            News::Subscriptions(ids) => (
                Topic::Subscriptions,
                wire::append_encoded(&mut frame, Kind::Subscriptions, zero, 0, limits, ids),
            ),
            News::Groups(groups) => (
                Topic::Groups,
                wire::append_encoded(&mut frame, Kind::Groups, zero, 0, limits, groups),
            ),
        };
        match built {
            Ok(()) => Some((topic, frame)),
            Err(error) => {
                tracing::warn!(%error, "cannot announce a change; peers keep what they knew");
                None
            }
        }
    }
}

fn announce(link: &Link, frames: &[(Topic, Vec<u8>)]) {
    for (topic, frame) in frames {
        link.announce(*topic, frame);
    }
}
