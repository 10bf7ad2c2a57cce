//! Gathered requests: one outcome per target instead of the first answer.

use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::Core;
use super::requests::{Outcome, Ticket, Waiter, into_response};
use super::router::Requester;
use crate::{BroadcastConfig, GatheredAnswer, Request, RequestId, Result};

/// The receiving end of a gathered request: how each target ended.
/// Dropping it forgets the request (later answers are discarded) and
/// stops a delivery still waiting for room.
pub(crate) struct Gathering {
    core: Arc<Core>,
    /// `None` when there was nobody to ask.
    id: Option<RequestId>,
    outcomes: mpsc::Receiver<(Arc<str>, Outcome)>,
    delivery: Option<AbortHandle>,
}

impl Core {
    /// Sends a request routed like `request` and gathers every target's
    /// outcome. What can be sent without waiting is sent before this
    /// returns; the rest is sent by a task.
    pub(crate) fn request_all<R: Request>(
        self: &Arc<Self>,
        request: R,
        config: &BroadcastConfig,
    ) -> Result<Gathering> {
        let route = self.route::<R>(config)?;
        let targets = route.endpoints(&self.name);
        let (tx, outcomes) = mpsc::channel(targets.len().max(1));
        let mut gathering = Gathering {
            core: self.clone(),
            id: None,
            outcomes,
            delivery: None,
        };
        if targets.is_empty() {
            // Nobody to wait for: the gathering ends at once.
            return Ok(gathering);
        }
        let id = self.register_request(R::ID, targets, Waiter::Each(tx))?;
        gathering.id = Some(id);
        let ticket = route
            .local
            .is_some()
            .then(|| Ticket::new(id, Requester::Here, self));
        let request_id = Some(id);
        let rest = self.start_delivery(&route, &request, ticket.as_ref(), request_id)?;
        if rest.needs_waiting() {
            let core = self.clone();
            let finishing = self.runtime.spawn(async move {
                core.finish_delivery(&route, rest, &request, ticket, request_id)
                    .await;
            });
            gathering.delivery = Some(finishing.abort_handle());
        } else {
            self.settle_gone(rest, id);
        }
        Ok(gathering)
    }
}

impl Gathering {
    /// The next target's outcome, typed as `R`'s response.
    pub(crate) fn poll_next<R: Request>(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<GatheredAnswer<R>>> {
        self.outcomes.poll_recv(cx).map(|next| {
            next.map(|(origin, outcome)| {
                let typed = into_response::<R>(outcome, &self.core.name);
                (origin, typed)
            })
        })
    }

    /// Stops gathering: forgets the request (later answers are
    /// discarded) and returns the targets it still waited for. Outcomes
    /// already on their way are still yielded, then the gathering ends.
    pub(crate) fn cancel(&mut self) -> Vec<Arc<str>> {
        if let Some(delivery) = self.delivery.take() {
            delivery.abort();
        }
        self.id
            .take()
            .map(|id| self.core.forget_request(id))
            .unwrap_or_default()
    }

    /// The targets that have not answered, dropped or gone yet.
    pub(crate) fn outstanding(&self) -> Vec<Arc<str>> {
        self.id
            .map(|id| self.core.pending_targets(id))
            .unwrap_or_default()
    }
}

impl Drop for Gathering {
    fn drop(&mut self) {
        self.cancel();
    }
}
