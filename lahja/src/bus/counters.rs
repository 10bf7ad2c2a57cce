//! Traffic counters per event type, for introspection.
//!
//! The hot path pays a lookup in a table built once per process and a few
//! relaxed atomic adds: no lock, no allocation. Types the registry does
//! not know share one slot.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use super::id_map::IdMap;
use crate::report::{TypeName, TypeTraffic};
use crate::{EventId, registry};

/// The counters of one event type. What senders and what readers write
/// sit on cache lines of their own: threads that broadcast and threads
/// that read sockets do not bounce one line between them.
#[derive(Default)]
struct Slot {
    out: Outbound,
    inbound: Inbound,
}

#[derive(Default)]
#[repr(align(64))]
struct Outbound {
    sent: AtomicU64,
    bytes_sent: AtomicU64,
    dropped_full: AtomicU64,
}

#[derive(Default)]
#[repr(align(64))]
struct Inbound {
    received: AtomicU64,
    bytes_received: AtomicU64,
}

/// One endpoint's counters, one slot per registered type and one for the
/// rest.
pub(crate) struct Counters {
    slots: Box<[Slot]>,
}

/// Every registered ID with its slot, in registry order; built once.
fn slots_of() -> &'static (Vec<EventId>, IdMap<EventId, usize>) {
    static INDEX: OnceLock<(Vec<EventId>, IdMap<EventId, usize>)> = OnceLock::new();
    INDEX.get_or_init(|| {
        let ids: Vec<EventId> = registry::all().map(|info| info.id).collect();
        let index = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        (ids, index)
    })
}

impl Counters {
    pub(crate) fn new() -> Self {
        let slots = (0..=slots_of().0.len()).map(|_| Slot::default()).collect();
        Counters { slots }
    }

    fn slot(&self, id: EventId) -> &Slot {
        let index = slots_of().1.get(&id).copied();
        &self.slots[index.unwrap_or(self.slots.len() - 1)]
    }

    /// One frame of type `id`, `bytes` long, went out to peers.
    pub(crate) fn sent(&self, id: EventId, bytes: usize) {
        let out = &self.slot(id).out;
        out.sent.fetch_add(1, Ordering::Relaxed);
        out.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// One frame of type `id`, `bytes` long, came in from a peer.
    pub(crate) fn received(&self, id: EventId, bytes: usize) {
        let inbound = &self.slot(id).inbound;
        inbound.received.fetch_add(1, Ordering::Relaxed);
        inbound
            .bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A `broadcast_nowait` of type `id` was refused: a queue was full.
    pub(crate) fn dropped_full(&self, id: EventId) {
        self.slot(id)
            .out
            .dropped_full
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Every type with any traffic (unknown types as one entry, ID 0).
    pub(crate) fn traffic(&self) -> Vec<TypeTraffic> {
        let ids = &slots_of().0;
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| {
                let event = match ids.get(i) {
                    Some(id) => TypeName::of(*id),
                    None => TypeName { id: 0, name: None },
                };
                let traffic = TypeTraffic {
                    event,
                    sent: slot.out.sent.load(Ordering::Relaxed),
                    bytes_sent: slot.out.bytes_sent.load(Ordering::Relaxed),
                    received: slot.inbound.received.load(Ordering::Relaxed),
                    bytes_received: slot.inbound.bytes_received.load(Ordering::Relaxed),
                    dropped_full: slot.out.dropped_full.load(Ordering::Relaxed),
                };
                (traffic.sent + traffic.received + traffic.dropped_full > 0).then_some(traffic)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_type_and_lumps_unknown_ids() {
        let counters = Counters::new();
        let known = registry::all()
            .next()
            .expect("lahja registers its own types")
            .id;
        counters.sent(known, 10);
        counters.sent(known, 5);
        counters.received(EventId::of("no.such.Type"), 7);
        counters.dropped_full(known);
        let traffic = counters.traffic();
        assert_eq!(traffic.len(), 2, "{traffic:?}");
        let mine = traffic
            .iter()
            .find(|t| t.event.id == known.as_u64())
            .unwrap();
        assert_eq!((mine.sent, mine.bytes_sent, mine.dropped_full), (2, 15, 1));
        let unknown = traffic.iter().find(|t| t.event.id == 0).unwrap();
        assert_eq!((unknown.received, unknown.bytes_received), (1, 7));
    }
}
