//! The typed local subscribers behind the core's untyped [`Sink`].
//!
//! Each sink was made by a typed call (`stream::<E>()`, `subscribe::<E>()`,
//! `stream_requests::<R>()`), so it knows its type and downcasts the event
//! it is offered. Local events are cloned, never encoded; an event from a
//! peer that one stream or callback alone receives is decoded straight
//! into it.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::IncomingRequest;
use crate::bus::{Delivery, Offer, Sink, Ticket, WaitForRoom};
use crate::{Event, Request, Result, codec};

fn downcast<E: Event>(delivery: &Delivery<'_>) -> E {
    match delivery.event.downcast_ref::<E>() {
        Some(event) => event.clone(),
        // The router only offers an event to sinks of its own ID, and IDs
        // are unique per type (checked at endpoint creation).
        None => unreachable!("event routed to a sink of another type"),
    }
}

fn decode_boxed<E: Event>(body: &[u8]) -> Result<Box<dyn Any + Send + Sync>> {
    Ok(Box::new(codec::decode::<E>(body)?))
}

/// A bounded channel: `stream`, `stream_with_origin` and `wait_for`.
pub(crate) struct StreamSink<E> {
    pub(crate) tx: mpsc::Sender<(Arc<str>, E)>,
}

impl<E: Event> Sink for StreamSink<E> {
    fn decode(&self, body: &[u8]) -> Result<Box<dyn Any + Send + Sync>> {
        decode_boxed::<E>(body)
    }

    fn try_deliver(&self, delivery: &Delivery<'_>) -> Offer {
        match self.tx.try_reserve() {
            Ok(permit) => {
                permit.send((delivery.origin.clone(), downcast(delivery)));
                Offer::Delivered
            }
            Err(mpsc::error::TrySendError::Full(())) => Offer::Full,
            // The stream was dropped; its guard is removing this sink.
            Err(mpsc::error::TrySendError::Closed(())) => Offer::Delivered,
        }
    }

    fn deliver<'a>(&'a self, delivery: &'a Delivery<'a>) -> WaitForRoom<'a> {
        Box::pin(async move {
            if let Ok(permit) = self.tx.reserve().await {
                permit.send((delivery.origin.clone(), downcast(delivery)));
            }
        })
    }

    fn decode_and_deliver<'a>(
        &'a self,
        origin: &'a Arc<str>,
        body: &[u8],
    ) -> Option<Result<Option<WaitForRoom<'a>>>> {
        let event = match codec::decode::<E>(body) {
            Ok(event) => event,
            Err(error) => return Some(Err(error)),
        };
        Some(Ok(match self.tx.try_reserve() {
            Ok(permit) => {
                permit.send((origin.clone(), event));
                None
            }
            Err(mpsc::error::TrySendError::Full(())) => Some(Box::pin(async move {
                if let Ok(permit) = self.tx.reserve().await {
                    permit.send((origin.clone(), event));
                }
            })),
            Err(mpsc::error::TrySendError::Closed(())) => None,
        }))
    }
}

/// A callback from `subscribe`, called inline; a panic is contained.
pub(crate) struct CallbackSink<E> {
    pub(crate) callback: Box<dyn Fn(E) + Send + Sync>,
}

impl<E: Event> Sink for CallbackSink<E> {
    fn decode(&self, body: &[u8]) -> Result<Box<dyn Any + Send + Sync>> {
        decode_boxed::<E>(body)
    }

    fn try_deliver(&self, delivery: &Delivery<'_>) -> Offer {
        self.call(downcast::<E>(delivery), delivery.origin);
        Offer::Delivered
    }

    fn deliver<'a>(&'a self, delivery: &'a Delivery<'a>) -> WaitForRoom<'a> {
        self.try_deliver(delivery);
        Box::pin(std::future::ready(()))
    }

    fn decode_and_deliver<'a>(
        &'a self,
        origin: &'a Arc<str>,
        body: &[u8],
    ) -> Option<Result<Option<WaitForRoom<'a>>>> {
        Some(codec::decode::<E>(body).map(|event| {
            self.call(event, origin);
            None
        }))
    }
}

impl<E: Event> CallbackSink<E> {
    fn call(&self, event: E, origin: &str) {
        if catch_unwind(AssertUnwindSafe(|| (self.callback)(event))).is_err() {
            tracing::warn!(
                event = E::NAME,
                %origin,
                "a subscribe callback panicked; the endpoint goes on"
            );
        }
    }
}

/// A bounded channel of answerable requests: `stream_requests` and
/// `handle_requests`. The router offers it only requests with a ticket
/// (a plain broadcast of the request type cannot be answered).
pub(crate) struct RequestSink<R> {
    pub(crate) tx: mpsc::Sender<IncomingRequest<R>>,
}

impl<R: Request> RequestSink<R> {
    fn incoming(delivery: &Delivery<'_>, ticket: &Arc<Ticket>) -> IncomingRequest<R> {
        IncomingRequest::new(downcast(delivery), delivery.origin.clone(), ticket.clone())
    }
}

impl<R: Request> Sink for RequestSink<R> {
    fn decode(&self, body: &[u8]) -> Result<Box<dyn Any + Send + Sync>> {
        decode_boxed::<R>(body)
    }

    fn try_deliver(&self, delivery: &Delivery<'_>) -> Offer {
        let Some(ticket) = delivery.ticket else {
            return Offer::Delivered; // not offered: see `router::takes`
        };
        match self.tx.try_reserve() {
            Ok(permit) => {
                permit.send(Self::incoming(delivery, ticket));
                Offer::Delivered
            }
            Err(mpsc::error::TrySendError::Full(())) => Offer::Full,
            Err(mpsc::error::TrySendError::Closed(())) => Offer::Delivered,
        }
    }

    fn deliver<'a>(&'a self, delivery: &'a Delivery<'a>) -> WaitForRoom<'a> {
        Box::pin(async move {
            let Some(ticket) = delivery.ticket else {
                return;
            };
            if let Ok(permit) = self.tx.reserve().await {
                permit.send(Self::incoming(delivery, ticket));
            }
        })
    }
}
