//! The process-group part of [`Endpoint`]'s API.

use crate::bus::Condition;
use crate::{Endpoint, Event, Result};

impl Endpoint {
    /// Joins process group `group` (a no-op for a member); peers learn it
    /// like a subscription. Fails with
    /// [`Error::InvalidName`](crate::Error::InvalidName) for a name that is
    /// not a valid endpoint name, and with
    /// [`Error::Lifecycle`](crate::Error::Lifecycle) once stopped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// use lahja::{Endpoint, EndpointOptions};
    ///
    /// let options = EndpointOptions { groups: vec!["sync".into()], ..Default::default() };
    /// let endpoint = Endpoint::run_with("join-doc", options).await?;
    /// endpoint.join_group("networking").await?;
    /// assert_eq!(endpoint.groups(), ["networking", "sync"]);
    /// endpoint.leave_group("sync").await?;
    /// assert_eq!(endpoint.groups(), ["networking"]);
    /// # Ok(()) }
    /// ```
    pub async fn join_group(&self, group: &str) -> Result<()> {
        self.core().join_group(group)
    }

    /// Leaves process group `group` (a no-op if not a member).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// let endpoint = lahja::Endpoint::run("leave-doc").await?;
    /// endpoint.join_group("sync").await?;
    /// endpoint.leave_group("sync").await?;
    /// endpoint.leave_group("never-joined").await?; // fine too
    /// assert!(endpoint.groups().is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn leave_group(&self, group: &str) -> Result<()> {
        self.core().leave_group(group)
    }

    /// This endpoint's groups, sorted.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// use lahja::{Endpoint, EndpointOptions};
    ///
    /// let options = EndpointOptions { groups: vec!["b".into(), "a".into()], ..Default::default() };
    /// let endpoint = Endpoint::run_with("groups-doc", options).await?;
    /// assert_eq!(endpoint.groups(), ["a", "b"]);
    /// # Ok(()) }
    /// ```
    pub fn groups(&self) -> Vec<String> {
        self.core().groups()
    }

    /// The groups of connected endpoint `name` (this one included), sorted;
    /// `None` if it is not connected.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// let endpoint = lahja::Endpoint::run("groups-of-doc").await?;
    /// endpoint.join_group("sync").await?;
    /// assert_eq!(endpoint.groups_of("groups-of-doc"), Some(vec!["sync".to_owned()]));
    /// assert_eq!(endpoint.groups_of("elsewhere"), None);
    /// # Ok(()) }
    /// ```
    pub fn groups_of(&self, name: &str) -> Option<Vec<String>> {
        self.core().groups_of(name)
    }

    /// The connected members of `group`: this endpoint first if it is one,
    /// then its peers by name.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// let endpoint = lahja::Endpoint::run("members-doc").await?;
    /// assert!(endpoint.group_members("sync").is_empty());
    /// endpoint.join_group("sync").await?;
    /// assert_eq!(endpoint.group_members("sync"), ["members-doc"]);
    /// # Ok(()) }
    /// ```
    pub fn group_members(&self, group: &str) -> Vec<String> {
        self.core().group_members(group)
    }

    /// Whether some member of `group` (this endpoint included) subscribes
    /// to `E`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// # use lahja::Event;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// # struct Tick;
    /// let endpoint = lahja::Endpoint::run("group-subscribed-doc").await?;
    /// let _ticks = endpoint.stream::<Tick>();
    /// assert!(!endpoint.is_group_subscribed_to::<Tick>("sync")); // not a member
    /// endpoint.join_group("sync").await?;
    /// assert!(endpoint.is_group_subscribed_to::<Tick>("sync"));
    /// # Ok(()) }
    /// ```
    pub fn is_group_subscribed_to<E: Event>(&self, group: &str) -> bool {
        self.core().holds(Condition::GroupSubscribed(group, E::ID))
    }

    /// Waits until some member of `group` subscribes to `E`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// # use lahja::Event;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// # struct Tick;
    /// let endpoint = lahja::Endpoint::run("wait-group-subscribed-doc").await?;
    /// endpoint.join_group("sync").await?;
    /// let _ticks = endpoint.stream::<Tick>();
    /// endpoint.wait_until_group_subscribed_to::<Tick>("sync").await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_until_group_subscribed_to<E: Event>(&self, group: &str) -> Result<()> {
        let condition = Condition::GroupSubscribed(group, E::ID);
        self.core().wait_until(condition).await
    }

    /// Waits until `group` has at least `members` connected members (this
    /// endpoint included).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// let endpoint = lahja::Endpoint::run("wait-members-doc").await?;
    /// endpoint.join_group("sync").await?;
    /// endpoint.wait_until_group_has_members("sync", 1).await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_until_group_has_members(&self, group: &str, members: usize) -> Result<()> {
        let condition = Condition::GroupHasMembers(group, members);
        self.core().wait_until(condition).await
    }
}
