//! The event bus. Each module has one bounded queue of [`EVENT_BUFFER`]
//! pre-encoded event frames feeding its connection's writer; nothing else
//! buffers events for it. Publishing never blocks: a full queue drops the
//! event and counts it (the module is slow, not dead), a closed one removes
//! the subscription. Per-module order is the queue's order.

use hostd_protocol::{self as proto, Event, EventPayload, EventType, HostMessage};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;

/// The seeds' per-module event buffer, end to end.
pub const EVENT_BUFFER: usize = 100;

/// An encoded `HostMessage::Event` frame shared by every recipient.
pub type EventFrame = Arc<Vec<u8>>;

#[derive(Debug, Default)]
pub struct DeliveryStats {
    pub delivered: AtomicU64,
    pub dropped_full: AtomicU64,
    pub failed_closed: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct DeliverySnapshot {
    pub delivered: u64,
    pub dropped_full: u64,
    pub failed_closed: u64,
}

impl DeliveryStats {
    pub fn snapshot(&self) -> DeliverySnapshot {
        DeliverySnapshot {
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped_full: self.dropped_full.load(Ordering::Relaxed),
            failed_closed: self.failed_closed.load(Ordering::Relaxed),
        }
    }
}

struct Subscriber {
    types: HashSet<EventType>,
    tx: mpsc::Sender<EventFrame>,
    subscribed_once: bool,
    version: String,
}

#[derive(Default)]
struct Inner {
    subs: HashMap<String, Subscriber>,
    stats: HashMap<String, Arc<DeliveryStats>>,
    /// Modules whose ModuleLoaded has been published (they subscribed), with versions.
    loaded: BTreeMap<String, String>,
}

pub struct Bus {
    inner: RwLock<Inner>,
    max_frame: u32,
}

impl Bus {
    pub fn new(max_frame: u32) -> Bus {
        Bus { inner: RwLock::new(Inner::default()), max_frame }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection came up: its queue is where this module's events go.
    pub fn attach(&self, module: &str, version: &str) -> mpsc::Receiver<EventFrame> {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let mut inner = self.write();
        inner.stats.entry(module.to_string()).or_default();
        inner.subs.insert(
            module.to_string(),
            Subscriber { types: HashSet::new(), tx, subscribed_once: false, version: version.to_string() },
        );
        rx
    }

    /// The connection went away: no more deliveries, and it is no longer
    /// "loaded" for modules that subscribe later.
    pub fn detach(&self, module: &str) {
        let mut inner = self.write();
        inner.subs.remove(module);
        inner.loaded.remove(module);
    }

    /// Subscribe `module` to `types`. On its first subscription the module
    /// first receives ModuleLoaded for every module already loaded, then its
    /// own ModuleLoaded is published to everyone (the seeds' ordering).
    pub fn subscribe(&self, module: &str, types: &[EventType]) {
        let first = {
            let mut inner = self.write();
            let Inner { subs, stats, loaded } = &mut *inner;
            let Some(sub) = subs.get_mut(module) else { return };
            sub.types.extend(types.iter().copied());
            let first = !sub.subscribed_once;
            sub.subscribed_once = true;
            if first && sub.types.contains(&EventType::ModuleLoaded) {
                let st = stats.entry(module.to_string()).or_default().clone();
                for (name, version) in loaded.iter() {
                    let ev = Event {
                        event_type: EventType::ModuleLoaded,
                        publisher: None,
                        payload: EventPayload::ModuleLoaded { module_name: name.clone(), version: version.clone() },
                    };
                    if let Some(f) = encode_event(ev, self.max_frame) {
                        deliver(&sub.tx, f, &st);
                    }
                }
            }
            if first {
                loaded.insert(module.to_string(), sub.version.clone());
                Some(sub.version.clone())
            } else {
                None
            }
        };
        if let Some(version) = first {
            self.publish(Event {
                event_type: EventType::ModuleLoaded,
                publisher: None,
                payload: EventPayload::ModuleLoaded { module_name: module.to_string(), version },
            });
        }
    }

    pub fn unsubscribe(&self, module: &str, types: &[EventType]) {
        if let Some(sub) = self.write().subs.get_mut(module) {
            for t in types {
                sub.types.remove(t);
            }
        }
    }

    /// Deliver to every subscriber of the event's type; never blocks.
    /// Returns how many queues took it.
    pub fn publish(&self, event: Event) -> usize {
        let ty = event.event_type;
        let Some(frame) = encode_event(event, self.max_frame) else { return 0 };
        let mut closed = Vec::new();
        let mut delivered = 0;
        {
            let inner = self.read();
            for (name, sub) in inner.subs.iter().filter(|(_, s)| s.types.contains(&ty)) {
                let Some(st) = inner.stats.get(name) else { continue };
                match deliver(&sub.tx, frame.clone(), st) {
                    Delivery::Sent => delivered += 1,
                    Delivery::Full => {}
                    Delivery::Closed => closed.push(name.clone()),
                }
            }
        }
        if !closed.is_empty() {
            let mut inner = self.write();
            for name in closed {
                if inner.subs.get(&name).is_some_and(|s| s.tx.is_closed()) {
                    inner.subs.remove(&name);
                }
            }
        }
        delivered
    }

    pub fn stats(&self, module: &str) -> DeliverySnapshot {
        self.read().stats.get(module).map(|s| s.snapshot()).unwrap_or_default()
    }

    pub fn subscriptions(&self, module: &str) -> Vec<EventType> {
        let mut v: Vec<EventType> = self.read().subs.get(module).map(|s| s.types.iter().copied().collect()).unwrap_or_default();
        v.sort();
        v
    }
}

fn encode_event(event: Event, max_frame: u32) -> Option<EventFrame> {
    match proto::encode(&HostMessage::Event(event), max_frame) {
        Ok(f) => Some(Arc::new(f)),
        Err(e) => {
            tracing::warn!("event dropped: it does not encode into a frame: {e}");
            None
        }
    }
}

enum Delivery {
    Sent,
    Full,
    Closed,
}

fn deliver(tx: &mpsc::Sender<EventFrame>, frame: EventFrame, st: &DeliveryStats) -> Delivery {
    match tx.try_send(frame) {
        Ok(()) => {
            st.delivered.fetch_add(1, Ordering::Relaxed);
            Delivery::Sent
        }
        Err(mpsc::error::TrySendError::Full(_)) => {
            st.dropped_full.fetch_add(1, Ordering::Relaxed);
            Delivery::Full
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            st.failed_closed.fetch_add(1, Ordering::Relaxed);
            Delivery::Closed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(frame: &EventFrame) -> Event {
        match proto::decode::<HostMessage>(&frame[proto::FRAME_HEADER..]).expect("decodes") {
            HostMessage::Event(e) => e,
            other => panic!("not an event: {other:?}"),
        }
    }

    fn custom(n: u8) -> Event {
        Event { event_type: EventType::Custom, publisher: Some("p".into()), payload: EventPayload::Data(vec![n]) }
    }

    #[test]
    fn full_queue_drops_and_counts_closed_queue_unsubscribes() {
        let bus = Bus::new(proto::DEFAULT_MAX_FRAME);
        let mut rx = bus.attach("slow", "1.0.0");
        bus.subscribe("slow", &[EventType::Custom]);
        for i in 0..(EVENT_BUFFER + 50) {
            bus.publish(custom(i as u8));
        }
        let s = bus.stats("slow");
        assert_eq!((s.delivered, s.dropped_full), (EVENT_BUFFER as u64, 50));
        // Order is preserved for what was kept.
        for i in 0..EVENT_BUFFER {
            assert_eq!(decode(&rx.try_recv().expect("queued")).payload, EventPayload::Data(vec![i as u8]));
        }
        drop(rx);
        assert_eq!(bus.publish(custom(0)), 0);
        assert_eq!(bus.stats("slow").failed_closed, 1);
        assert!(bus.subscriptions("slow").is_empty(), "closed queue unsubscribed");
    }

    #[test]
    fn module_loaded_follows_the_seeds_ordering() {
        let bus = Bus::new(proto::DEFAULT_MAX_FRAME);
        let mut a = bus.attach("a", "1.0.0");
        bus.subscribe("a", &[EventType::ModuleLoaded]);
        // a's own ModuleLoaded reaches a (it is subscribed).
        assert_eq!(
            decode(&a.try_recv().expect("own")).payload,
            EventPayload::ModuleLoaded { module_name: "a".into(), version: "1.0.0".into() }
        );
        let mut b = bus.attach("b", "2.0.0");
        assert!(a.try_recv().is_err(), "nothing is published for b before it subscribes");
        bus.subscribe("b", &[EventType::ModuleLoaded]);
        let got: Vec<Event> = std::iter::from_fn(|| b.try_recv().ok()).map(|f| decode(&f)).collect();
        let names: Vec<String> = got
            .iter()
            .map(|e| match &e.payload {
                EventPayload::ModuleLoaded { module_name, .. } => module_name.clone(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(names, ["a", "b"], "existing modules first, then itself");
        assert!(matches!(decode(&a.try_recv().expect("b loaded")).payload, EventPayload::ModuleLoaded { ref module_name, .. } if module_name == "b"));
    }
}
