//! One module's queue of undelivered events: `capacity` frames in
//! publication order (`[daemon] event_queue_len`, the seeds' 100), of which
//! events a module caused (its own publications, other modules'
//! publications, health reports) may fill at most `module_share`. The rest is reserved for events only hostd causes
//! (ModuleCrashed, ModuleLoaded, NodeShutdown, …), so a module flooding the
//! bus cannot push a real crash notice out of a bystander's queue.
//!
//! Offering never blocks; the connection's writer takes frames one at a
//! time, and only when the module has read what it was sent before (see
//! `conn::write_loop`), so this queue is where undelivered events wait.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// The seeds' per-module event buffer (undelivered events, end to end),
/// and how many of its slots module-caused events may fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueBounds {
    pub capacity: usize,
    pub module_share: usize,
}

impl QueueBounds {
    pub fn of(d: &crate::config::DaemonSettings) -> QueueBounds {
        QueueBounds { capacity: d.event_queue_len as usize, module_share: d.module_event_share as usize }
    }
}

impl Default for QueueBounds {
    fn default() -> Self {
        QueueBounds::of(&crate::config::DaemonSettings::default())
    }
}

/// An encoded `HostMessage::Event` frame shared by every recipient.
pub type EventFrame = Arc<Vec<u8>>;

/// Who caused an event: hostd itself, or a module (directly, by publishing,
/// or indirectly, by a request hostd turns into an event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Host,
    Module,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// The whole queue, or this cause's share of it, is full.
    Full,
    Closed,
}

#[derive(Default)]
struct State {
    frames: VecDeque<(Cause, EventFrame)>,
    from_modules: usize,
    closed: bool,
}

pub struct EventQueue {
    state: Mutex<State>,
    ready: Notify,
    bounds: QueueBounds,
}

impl EventQueue {
    pub fn new(bounds: QueueBounds) -> Arc<EventQueue> {
        Arc::new(EventQueue { state: Mutex::default(), ready: Notify::new(), bounds })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn offer(&self, cause: Cause, frame: EventFrame) -> Offer {
        let mut st = self.state();
        if st.closed {
            return Offer::Closed;
        }
        let share_full = cause == Cause::Module && st.from_modules >= self.bounds.module_share;
        if st.frames.len() >= self.bounds.capacity || share_full {
            return Offer::Full;
        }
        if cause == Cause::Module {
            st.from_modules += 1;
        }
        st.frames.push_back((cause, frame));
        drop(st);
        self.ready.notify_one();
        Offer::Queued
    }

    pub fn try_take(&self) -> Option<EventFrame> {
        let mut st = self.state();
        let (cause, frame) = st.frames.pop_front()?;
        if cause == Cause::Module {
            st.from_modules -= 1;
        }
        Some(frame)
    }

    /// The next frame, waiting for one; `None` once closed and empty.
    pub async fn take(&self) -> Option<EventFrame> {
        loop {
            let notified = self.ready.notified();
            if let Some(f) = self.try_take() {
                return Some(f);
            }
            if self.state().closed {
                return None;
            }
            notified.await;
        }
    }

    pub fn queued(&self) -> usize {
        self.state().frames.len()
    }

    pub fn close(&self) {
        self.state().closed = true;
        self.ready.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: QueueBounds = QueueBounds { capacity: 100, module_share: 75 };

    fn frame(n: u8) -> EventFrame {
        Arc::new(vec![n])
    }

    #[test]
    fn module_events_cannot_take_the_host_reserve() {
        let q = EventQueue::new(B);
        let module_taken = (0..500).filter(|i| q.offer(Cause::Module, frame(*i as u8)) == Offer::Queued).count();
        assert_eq!(module_taken, B.module_share);
        let host_taken = (0..500).filter(|i| q.offer(Cause::Host, frame(*i as u8)) == Offer::Queued).count();
        assert_eq!(host_taken, B.capacity - B.module_share);
        assert_eq!(q.queued(), B.capacity);
        // Taking a module event frees a module slot; order is publication order.
        assert_eq!(q.try_take(), Some(frame(0)));
        assert_eq!(q.offer(Cause::Module, frame(9)), Offer::Queued);
        assert_eq!(q.offer(Cause::Module, frame(9)), Offer::Full);
        q.close();
        assert_eq!(q.offer(Cause::Host, frame(1)), Offer::Closed);
    }

    #[test]
    fn host_events_may_fill_the_whole_queue() {
        let q = EventQueue::new(B);
        let taken = (0..500).filter(|_| q.offer(Cause::Host, frame(1)) == Offer::Queued).count();
        assert_eq!(taken, B.capacity);
        assert_eq!(q.offer(Cause::Module, frame(2)), Offer::Full);
    }

    #[tokio::test]
    async fn take_waits_for_an_offer_and_ends_when_closed() {
        let q = EventQueue::new(B);
        let q2 = q.clone();
        let taker = tokio::spawn(async move { (q2.take().await, q2.take().await) });
        tokio::task::yield_now().await;
        q.offer(Cause::Host, frame(7));
        tokio::task::yield_now().await;
        q.close();
        let (first, second) = taker.await.expect("joins");
        assert_eq!((first, second), (Some(frame(7)), None));
    }
}
