//! Process groups: the groups this endpoint belongs to, joining and
//! leaving them, and who is in which. Peers learn our groups like our
//! subscriptions (see [`announcements`](super::announcements)).

use super::announcements::News;
use super::{Core, Signal, State};
use crate::{Result, validate_name};

impl State {
    /// The members of `group`: this endpoint (named `me`) first if it is
    /// one, then its peers by name.
    pub(super) fn members<'a>(&'a self, me: &'a str, group: &str) -> Vec<&'a str> {
        let mut peers: Vec<&str> = self
            .peers
            .iter()
            .filter(|(_, peer)| peer.groups.contains(group))
            .map(|(name, _)| &**name)
            .collect();
        peers.sort_unstable();
        let mut all = Vec::with_capacity(peers.len() + 1);
        if self.groups.contains(group) {
            all.push(me);
        }
        all.extend(peers);
        all
    }
}

impl Core {
    /// Joins `group` (a no-op if already a member).
    pub(crate) fn join_group(&self, group: &str) -> Result<()> {
        self.change_groups(group, true)
    }

    /// Leaves `group` (a no-op if not a member).
    pub(crate) fn leave_group(&self, group: &str) -> Result<()> {
        self.change_groups(group, false)
    }

    fn change_groups(&self, group: &str, join: bool) -> Result<()> {
        validate_name(group)?;
        let news = |state: &State| {
            let changes = self.is_running() && state.groups.contains(group) != join;
            changes.then(|| {
                let others = state.groups.iter().filter(|g| *g != group).cloned();
                let joined = join.then(|| group.to_owned());
                News::Groups(others.chain(joined).collect())
            })
        };
        // Checked under the lock: a change racing `stop` fails, not lands.
        let changed = self.change_announced(news, |state| {
            if !self.is_running() {
                Err(self.lifecycle("cannot change its groups"))
            } else if join {
                Ok(state.groups.insert(group.to_owned()))
            } else {
                Ok(state.groups.remove(group))
            }
        })?;
        if changed {
            self.signal(Signal::Subscriptions);
        }
        Ok(())
    }

    /// This endpoint's groups, sorted.
    pub(crate) fn groups(&self) -> Vec<String> {
        self.state().wire_groups()
    }

    /// The groups of the connected endpoint `name` (this one included),
    /// or `None` if it is not connected.
    pub(crate) fn groups_of(&self, name: &str) -> Option<Vec<String>> {
        let state = self.state();
        if name == &*self.name {
            return Some(state.wire_groups());
        }
        let peer = state.peers.get(name)?;
        Some(peer.groups.iter().cloned().collect())
    }

    /// The connected members of `group`, this endpoint first if a member.
    pub(crate) fn group_members(&self, group: &str) -> Vec<String> {
        let state = self.state();
        let members = state.members(&self.name, group);
        members.into_iter().map(str::to_owned).collect()
    }
}
