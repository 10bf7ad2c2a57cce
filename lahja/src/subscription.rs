//! [`Subscription`]: the handle of a callback or request handler.

use std::fmt;

use crate::bus::SinkGuard;

/// Keeps a [`subscribe`](crate::Endpoint::subscribe) callback or a
/// [`handle_requests`](crate::Endpoint::handle_requests) handler registered.
///
/// Dropping it unsubscribes, like [`unsubscribe`](Self::unsubscribe);
/// [`detach`](Self::detach) keeps it for the endpoint's lifetime.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> lahja::Result<()> {
/// use lahja::{Endpoint, Event};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
/// struct Tick;
///
/// let endpoint = Endpoint::run("subscription-doc").await?;
/// let subscription = endpoint.subscribe(|_: Tick| println!("tick"));
/// assert!(endpoint.get_subscribed_events().contains(&Tick::ID));
/// subscription.unsubscribe();
/// assert!(endpoint.get_subscribed_events().is_empty());
/// # Ok(()) }
/// ```
#[must_use = "dropping a Subscription unsubscribes; call .detach() to keep it"]
pub struct Subscription {
    guard: SinkGuard,
}

impl Subscription {
    pub(crate) fn new(guard: SinkGuard) -> Self {
        Subscription { guard }
    }

    /// Removes the callback or handler (the same as dropping this).
    pub fn unsubscribe(self) {}

    /// Keeps the callback or handler until the endpoint stops.
    pub fn detach(self) {
        self.guard.detach();
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("event_id", &self.guard.event_id())
            .finish()
    }
}
