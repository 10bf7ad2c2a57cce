//! Taps: copies of what this endpoint sends and receives, for observers.
//!
//! Without a tap the hot path pays one relaxed atomic load per frame. With
//! one, each matching frame is copied into that tap's bounded channel
//! with `try_send`: a tap that is read too slowly loses copies (counted),
//! it never slows the bus.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::Core;
use crate::EventId;
use crate::link::Link;
use crate::report::{Direction, FrameKind};
use crate::wire::{Frame, Kind};

/// Copies one tap holds before it loses the next.
const TAP_CAPACITY: usize = 256;
/// Bodies larger than this are not copied (the size still is).
pub(crate) const TAP_BODY_MAX: usize = 64 << 10;

/// One copied frame.
#[derive(Clone)]
pub(crate) struct Copied {
    pub(crate) time_unix_us: u64,
    pub(crate) direction: Direction,
    pub(crate) kind: FrameKind,
    pub(crate) event: EventId,
    pub(crate) request_id: u64,
    pub(crate) origin: Arc<str>,
    pub(crate) targets: Vec<Arc<str>>,
    pub(crate) size: usize,
    /// The frame's flags and body, if it was small enough to copy.
    pub(crate) body: Option<(u8, Vec<u8>)>,
}

struct Entry {
    id: u64,
    /// `None`: every type.
    types: Option<HashSet<EventId>>,
    copies: mpsc::Sender<Copied>,
    lost: Arc<AtomicU64>,
}

/// The taps of one endpoint.
#[derive(Default)]
pub(crate) struct Taps {
    active: AtomicUsize,
    next: AtomicU64,
    entries: Mutex<Vec<Entry>>,
}

/// An observer's tap: its copies, and how many it lost. Dropping it
/// removes the tap.
pub(crate) struct TapHandle {
    pub(crate) copies: mpsc::Receiver<Copied>,
    pub(crate) lost: Arc<AtomicU64>,
    id: u64,
    core: Weak<Core>,
}

impl Drop for TapHandle {
    fn drop(&mut self) {
        if let Some(core) = self.core.upgrade() {
            let mut entries = core.taps.entries();
            entries.retain(|e| e.id != self.id);
            core.taps.active.store(entries.len(), Ordering::Release);
        }
    }
}

fn kind_of(kind: Kind) -> Option<FrameKind> {
    match kind {
        Kind::Event => Some(FrameKind::Event),
        Kind::Request => Some(FrameKind::Request),
        Kind::Response => Some(FrameKind::Response),
        _ => None,
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Taps {
    fn entries(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many taps are open.
    pub(crate) fn open(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Whether any tap is open (the hot path's only cost without one).
    pub(crate) fn any(&self) -> bool {
        self.active.load(Ordering::Relaxed) != 0
    }

    /// Copies a frame of type `event` to every tap that wants it, made by
    /// `make` once; a full tap loses the copy.
    fn offer(&self, event: EventId, make: impl FnOnce() -> Copied) {
        let entries = self.entries();
        let mut make = Some(make);
        let mut made: Option<Copied> = None;
        for entry in entries.iter() {
            if entry.types.as_ref().is_some_and(|t| !t.contains(&event)) {
                continue;
            }
            // A full tap loses this copy: do not make it.
            if entry.copies.capacity() == 0 {
                entry.lost.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if let Some(make) = make.take() {
                made = Some(make());
            }
            let Some(copy) = made.clone() else { continue };
            if entry.copies.try_send(copy).is_err() {
                entry.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Core {
    /// Opens a tap on `types` (empty: every type).
    pub(crate) fn open_tap(self: &Arc<Self>, types: Vec<u64>) -> TapHandle {
        let (tx, copies) = mpsc::channel(TAP_CAPACITY);
        let lost = Arc::new(AtomicU64::new(0));
        let id = self.taps.next.fetch_add(1, Ordering::Relaxed);
        let types = (!types.is_empty()).then(|| types.into_iter().map(EventId::from_u64).collect());
        let mut entries = self.taps.entries();
        entries.push(Entry {
            id,
            types,
            copies: tx,
            lost: lost.clone(),
        });
        self.taps.active.store(entries.len(), Ordering::Release);
        TapHandle {
            copies,
            lost,
            id,
            core: Arc::downgrade(self),
        }
    }

    /// A frame this endpoint queued to `targets` (`frame` is the whole
    /// encoded frame, header included).
    pub(crate) fn tap_sent(
        &self,
        kind: Kind,
        event: EventId,
        request_id: u64,
        frame: &[u8],
        targets: &[Arc<Link>],
    ) {
        let Some(kind) = kind_of(kind) else { return };
        let header = crate::wire::LEN_BYTES;
        let body = frame
            .get(header + crate::wire::HEADER_BYTES..)
            .unwrap_or_default();
        let flags = frame.get(header + 1).copied().unwrap_or(0);
        self.taps.offer(event, || Copied {
            time_unix_us: now_us(),
            direction: Direction::Sent,
            kind,
            event,
            request_id,
            origin: self.name.clone(),
            targets: targets.iter().map(|l| l.name.clone()).collect(),
            size: body.len(),
            body: (body.len() <= TAP_BODY_MAX).then(|| (flags, body.to_vec())),
        });
    }

    /// A frame this endpoint received from `link`.
    pub(crate) fn tap_received(&self, link: &Link, frame: &Frame<'_>) {
        let Some(kind) = kind_of(frame.kind) else {
            return;
        };
        self.taps.offer(frame.event_id, || Copied {
            time_unix_us: now_us(),
            direction: Direction::Received,
            kind,
            event: frame.event_id,
            request_id: frame.request_id,
            origin: link.name.clone(),
            targets: vec![self.name.clone()],
            size: frame.body.len(),
            body: (frame.body.len() <= TAP_BODY_MAX).then(|| (frame.flags, frame.body.to_vec())),
        });
    }
}
