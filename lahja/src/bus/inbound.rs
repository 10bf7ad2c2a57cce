//! Frames from peers, as transports hand them in: events and requests to
//! local sinks, answers to the pending table, subscription updates.

use std::sync::Arc;

use super::Core;
use super::delivery::deliver_local;
use super::requests::{GaveUp, Outcome, Reply, ReplyValue, Ticket};
use super::router::{self, Inbound, Requester};
use super::subscribers::Delivery;
use crate::link::{Link, Warning};
use crate::wire::{self, Frame, Kind, Violation};
use crate::{RequestId, registry, validate_name};

impl Core {
    /// Handles one frame from `link`; a violation closes that link.
    pub(crate) async fn receive(
        self: &Arc<Self>,
        link: &Arc<Link>,
        frame: Frame<'_>,
    ) -> Result<(), Violation> {
        let max = self.options.max_frame_bytes;
        let request = RequestId(frame.request_id);
        link.traffic
            .inbound(wire::LEN_BYTES + wire::HEADER_BYTES + frame.body.len());
        if matches!(frame.kind, Kind::Event | Kind::Request | Kind::Response) {
            self.counters.received(frame.event_id, frame.body.len());
            if self.taps.any() {
                self.tap_received(link, &frame);
            }
        }
        match frame.kind {
            Kind::Event | Kind::Request => {
                let is_request = frame.kind == Kind::Request;
                // The lock is released here, before anything below may
                // take it again (closing a peer that does not read).
                let routed = router::inbound(&self.state().sinks, frame.event_id, is_request);
                let sinks = match routed {
                    Inbound::Deliver(sinks) => sinks,
                    Inbound::Unrouted { tell_dropped } => {
                        self.unrouted(link, &frame);
                        if tell_dropped {
                            self.send_dropped(link, request);
                        }
                        return Ok(());
                    }
                };
                let body = wire::body(&frame, max)?;
                let bad_body = |e: crate::Error| {
                    Violation::BadBody(format!("{}: {e}", registry::describe(frame.event_id)))
                };
                // One subscriber (the usual case) gets the decoded event
                // itself: no box, no clone.
                let alone = match &*sinks {
                    [only] if !is_request && router::takes(only.kind, false) => {
                        only.sink.decode_and_deliver(&link.name, &body)
                    }
                    _ => None,
                };
                if let Some(delivered) = alone {
                    if let Some(wait_for_room) = delivered.map_err(bad_body)? {
                        wait_for_room.await;
                    }
                    return Ok(());
                }
                let event = sinks[0].sink.decode(&body).map_err(bad_body)?;
                let ticket =
                    is_request.then(|| Ticket::new(request, Requester::Peer(link.clone()), self));
                let delivery = Delivery {
                    origin: &link.name,
                    event: &*event,
                    ticket: ticket.as_ref(),
                };
                deliver_local(&sinks, &delivery).await;
            }
            Kind::Response => {
                let reply = Reply {
                    event_id: frame.event_id,
                    value: ReplyValue::Remote(wire::body(&frame, max)?.into_owned()),
                };
                self.complete(request, &link.name, Outcome::Reply(reply));
            }
            Kind::Dropped => self.target_gave_up(request, &link.name, GaveUp::Dropped),
            Kind::Released => link
                .queue()
                .release()
                .map_err(|_| Violation::Unexpected(Kind::Released))?,
            Kind::Subscriptions => {
                let body = wire::body(&frame, max)?;
                let ids: Vec<u64> =
                    crate::codec::decode(&body).map_err(|e| Violation::BadBody(e.to_string()))?;
                self.set_peer_subscriptions(link, ids);
            }
            Kind::Groups => {
                let body = wire::body(&frame, max)?;
                let groups: Vec<String> =
                    crate::codec::decode(&body).map_err(|e| Violation::BadBody(e.to_string()))?;
                for group in &groups {
                    validate_name(group).map_err(|e| Violation::BadBody(e.to_string()))?;
                }
                self.set_peer_groups(link, groups);
            }
            Kind::Hello | Kind::Reject | Kind::Observe => {
                return Err(Violation::Unexpected(frame.kind));
            }
        }
        Ok(())
    }

    /// A well-formed event nobody here subscribes to: dropped. Unknown IDs
    /// are worth a warning (a few per link: a hostile peer cannot flood
    /// the log); known ones just raced an unsubscribe.
    fn unrouted(&self, link: &Link, frame: &Frame<'_>) {
        let id = frame.event_id;
        if registry::lookup(id).is_some() {
            tracing::debug!(
                endpoint = %self.name,
                peer = %link.name,
                event = %registry::describe(id),
                "dropping an event nobody here subscribes to"
            );
            return;
        }
        let (endpoint, peer) = (&self.name, &link.name);
        match link.warning() {
            Warning::Log => {
                tracing::warn!(%endpoint, %peer, %id, "dropping an event with an unknown id")
            }
            Warning::Last => tracing::warn!(
                %endpoint,
                %peer,
                %id,
                "dropping an event with an unknown id; further warnings about this peer are suppressed"
            ),
            Warning::Quiet => {
                tracing::debug!(%endpoint, %peer, %id, "dropping an event with an unknown id")
            }
        }
    }
}
