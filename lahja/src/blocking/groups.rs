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
        // Never waits, so it works inside callbacks too.
        self.inner.core().join_group(group)
    }

    /// Leaves process group `group` ([`crate::Endpoint::leave_group`]).
    pub fn leave_group(&self, group: &str) -> Result<()> {
        self.inner.core().leave_group(group)
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
    ///
    /// ```
    /// use std::time::Duration;
    /// use lahja::{Error, Event};
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
    /// let endpoint = Endpoint::run("blocking-deadline-doc")?;
    /// let _never_answered = endpoint.stream_requests::<Ping>();
    /// let mut answers = endpoint.request_all_timeout(Ping, Duration::from_millis(10))?;
    /// let (_, answer) = answers.next().unwrap();
    /// assert!(matches!(answer, Err(Error::Timeout)));
    /// assert!(answers.next().is_none());
    /// # Ok::<(), lahja::Error>(())
    /// ```
    pub fn request_all_timeout<R: Request>(
        &self,
        request: R,
        timeout: Duration,
    ) -> Result<GatherIter<R>> {
        self.gather(request, BroadcastConfig::default(), Some(timeout))
    }

    /// [`request_all_timeout`](Self::request_all_timeout) routed by `config`.
    pub fn request_all_with_timeout<R: Request>(
        &self,
        request: R,
        config: BroadcastConfig,
        timeout: Duration,
    ) -> Result<GatherIter<R>> {
        self.gather(request, config, Some(timeout))
    }

    fn gather<R: Request>(
        &self,
        request: R,
        config: BroadcastConfig,
        timeout: Option<Duration>,
    ) -> Result<GatherIter<R>> {
        Ok(GatherIter {
            stream: self.inner.request_all_with(request, config)?,
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
    stream: crate::GatherStream<R>,
    /// Cleared once passed: the request is cancelled then.
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
        let Some(deadline) = self.deadline else {
            return self.runtime.block_on(self.stream.next());
        };
        let left = deadline.saturating_duration_since(Instant::now());
        match self.runtime.block_on_timeout(left, self.stream.next()) {
            Err(Error::Timeout) => {
                // Forgetting the request takes the targets still waited for
                // in one step; outcomes already sent are still read below.
                self.timed_out = self.stream.cancel().into();
                self.deadline = None;
                self.try_next()
            }
            other => other,
        }
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
