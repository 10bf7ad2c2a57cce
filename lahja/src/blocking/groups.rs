//! The blocking endpoint's process groups and gathered requests.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Endpoint, Runtime, misuse};
use crate::{BroadcastConfig, Error, Event, GatheredAnswer, Request, Result};

impl Endpoint {
    /// Joins process group `group` ([`crate::Endpoint::join_group`]).
    ///
    /// ```
    /// use lahja::blocking::Endpoint;
    ///
    /// let endpoint = Endpoint::run("blocking-join-doc")?;
    /// endpoint.join_group("sync")?;
    /// assert_eq!(endpoint.groups(), ["sync"]);
    /// assert_eq!(endpoint.group_members("sync"), ["blocking-join-doc"]);
    /// endpoint.wait_until_group_has_members("sync", 1)?;
    /// endpoint.leave_group("sync")?;
    /// assert!(endpoint.groups_of("blocking-join-doc").unwrap().is_empty());
    /// # Ok::<(), lahja::Error>(())
    /// ```
    pub fn join_group(&self, group: &str) -> Result<()> {
        self.runtime.block_on(self.inner.join_group(group))?
    }

    /// Leaves process group `group` ([`crate::Endpoint::leave_group`]).
    pub fn leave_group(&self, group: &str) -> Result<()> {
        self.runtime.block_on(self.inner.leave_group(group))?
    }

    /// This endpoint's groups, sorted.
    pub fn groups(&self) -> Vec<String> {
        self.inner.groups()
    }

    /// The groups of connected endpoint `name` ([`crate::Endpoint::groups_of`]).
    pub fn groups_of(&self, name: &str) -> Option<Vec<String>> {
        self.inner.groups_of(name)
    }

    /// The connected members of `group` ([`crate::Endpoint::group_members`]).
    pub fn group_members(&self, group: &str) -> Vec<String> {
        self.inner.group_members(group)
    }

    /// Whether some member of `group` subscribes to `E`.
    pub fn is_group_subscribed_to<E: Event>(&self, group: &str) -> bool {
        self.inner.is_group_subscribed_to::<E>(group)
    }

    /// Blocks until some member of `group` subscribes to `E`.
    pub fn wait_until_group_subscribed_to<E: Event>(&self, group: &str) -> Result<()> {
        let wait = self.inner.wait_until_group_subscribed_to::<E>(group);
        self.runtime.block_on(wait)?
    }

    /// Blocks until `group` has at least `members` connected members.
    pub fn wait_until_group_has_members(&self, group: &str, members: usize) -> Result<()> {
        let wait = self.inner.wait_until_group_has_members(group, members);
        self.runtime.block_on(wait)?
    }

    /// Sends a request to every subscribed endpoint and iterates over
    /// every answer ([`crate::Endpoint::request_all`]).
    ///
    /// ```
    /// use lahja::Event;
    /// use lahja::blocking::Endpoint;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// #[request(response = Pong)]
    /// struct Ping;
    ///
    /// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// struct Pong;
    ///
    /// let endpoint = Endpoint::run("blocking-gather-doc")?;
    /// endpoint.handle_requests(|_: Ping| Pong).detach();
    /// let answers: Vec<_> = endpoint.request_all(Ping)?.collect();
    /// assert_eq!(answers.len(), 1);
    /// assert_eq!(&*answers[0].0, "blocking-gather-doc");
    /// # Ok::<(), lahja::Error>(())
    /// ```
    pub fn request_all<R: Request>(&self, request: R) -> Result<GatherIter<R>> {
        self.request_all_with(request, BroadcastConfig::default())
    }

    /// [`request_all`](Self::request_all) routed by `config`.
    pub fn request_all_with<R: Request>(
        &self,
        request: R,
        config: BroadcastConfig,
    ) -> Result<GatherIter<R>> {
        self.gather(request, config, None)
    }

    /// [`request_all`](Self::request_all), bounded as a whole by
    /// `timeout`: past it, each target still outstanding yields
    /// [`Error::Timeout`] (and the request is cancelled).
    pub fn request_all_timeout<R: Request>(
        &self,
        request: R,
        timeout: Duration,
    ) -> Result<GatherIter<R>> {
        self.gather(request, BroadcastConfig::default(), Some(timeout))
    }

    fn gather<R: Request>(
        &self,
        request: R,
        config: BroadcastConfig,
        timeout: Option<Duration>,
    ) -> Result<GatherIter<R>> {
        Ok(GatherIter {
            stream: Some(self.inner.request_all_with(request, config)?),
            deadline: timeout.map(|t| Instant::now() + t),
            timed_out: VecDeque::new(),
            runtime: self.runtime.clone(),
        })
    }
}

/// Every target's answer to one request, from
/// [`Endpoint::request_all`]: one `(origin, answer)` per target, then the
/// iteration ends (see [`GatherStream`](crate::GatherStream)).
///
/// # Panics
///
/// Like [`EventIter`](super::EventIter), `next` panics on a thread that
/// drives async code; [`try_next`](Self::try_next) returns
/// [`Error::BlockingInAsyncContext`] instead.
pub struct GatherIter<R> {
    /// `None` once timed out: the request is cancelled.
    stream: Option<crate::GatherStream<R>>,
    deadline: Option<Instant>,
    /// The targets that were outstanding at the deadline, to report.
    timed_out: VecDeque<Arc<str>>,
    runtime: Arc<Runtime>,
}

impl<R: Request> GatherIter<R> {
    /// The next target's answer, `Ok(None)` once every target has ended.
    pub fn try_next(&mut self) -> Result<Option<GatheredAnswer<R>>> {
        if let Some(target) = self.timed_out.pop_front() {
            return Ok(Some((target, Err(Error::Timeout))));
        }
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None);
        };
        let next = match self.deadline {
            None => self.runtime.block_on(stream.next())?,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.runtime.block_on_timeout(left, stream.next()) {
                    Err(Error::Timeout) => {
                        self.timed_out = stream.outstanding().into();
                        self.stream = None;
                        return self.try_next();
                    }
                    other => other?,
                }
            }
        };
        Ok(next)
    }
}

impl<R: Request> Iterator for GatherIter<R> {
    type Item = GatheredAnswer<R>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.try_next() {
            Ok(item) => item,
            Err(error) => misuse(error),
        }
    }
}

impl<R> fmt::Debug for GatherIter<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatherIter")
            .field("stream", &self.stream)
            .field("deadline", &self.deadline)
            .finish()
    }
}
