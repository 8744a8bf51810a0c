//! The event bus. Each connected module has one [`EventQueue`] of
//! pre-encoded event frames feeding its connection's writer; nothing else
//! holds undelivered events for it (the writer takes one only when the
//! module has read what it was sent before). Publishing never blocks: a
//! full queue drops the event and counts it (the module is slow, not dead).
//! Per-module order is the queue's order.
//!
//! ModuleLoaded, per the seeds: a module is announced once its start-up is
//! complete, which is its first SubscribeEvents (after that subscription's
//! replay), or — for a module that does not subscribe —
//! `daemon.announce_after_ms` after its handshake. Every subscription that
//! adds ModuleLoaded first receives ModuleLoaded for every module already
//! announced. Start-up events (ConfigLoaded, NodeStartupCompleted) are kept
//! and handed to each module hostd started during start-up when it
//! subscribes to them, however late, so no start-up module misses them for
//! having subscribed a moment after they were published.

use super::event_queue::{Cause, EventFrame, EventQueue, Offer, QueueBounds};
use hostd_protocol::{self as proto, Event, EventPayload, EventType, HostMessage};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

#[derive(Debug, Default)]
pub struct DeliveryStats {
    pub delivered: AtomicU64,
    pub dropped_full: AtomicU64,
    pub dropped_host: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct DeliverySnapshot {
    /// Events taken into the module's queue.
    pub delivered: u64,
    /// Events dropped because the queue (or module-caused events' share of
    /// it) was full.
    pub dropped_full: u64,
    /// Of those, events hostd itself caused (crashes, loads, shutdown).
    pub dropped_host: u64,
    /// Events waiting in the queue now.
    pub queued: u64,
}

impl DeliveryStats {
    fn count(&self, cause: Cause, offer: &Offer) {
        let counter = match offer {
            Offer::Queued => &self.delivered,
            Offer::Full if cause == Cause::Host => {
                self.dropped_host.fetch_add(1, Ordering::Relaxed);
                &self.dropped_full
            }
            Offer::Full => &self.dropped_full,
            Offer::Closed => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

struct Subscriber {
    types: HashSet<EventType>,
    queue: Arc<EventQueue>,
    stats: Arc<DeliveryStats>,
    version: String,
    announced: bool,
    /// Connected during start-up: owed the start-up events on subscribing.
    startup: bool,
}

impl Subscriber {
    fn offer(&self, cause: Cause, frame: EventFrame) -> bool {
        let offer = self.queue.offer(cause, frame);
        self.stats.count(cause, &offer);
        offer == Offer::Queued
    }
}

#[derive(Default)]
struct Inner {
    subs: HashMap<String, Subscriber>,
    stats: HashMap<String, Arc<DeliveryStats>>,
    /// Announced modules (their ModuleLoaded was published), with versions.
    loaded: BTreeMap<String, String>,
    /// Start-up events, kept for start-up modules that subscribe late.
    startup_events: Vec<(EventType, EventFrame)>,
    startup_over: bool,
}

pub struct Bus {
    inner: RwLock<Inner>,
    max_frame: u32,
    queue_bounds: QueueBounds,
}

impl Bus {
    pub fn new(max_frame: u32, queue_bounds: QueueBounds) -> Bus {
        Bus { inner: RwLock::new(Inner::default()), max_frame, queue_bounds }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection came up: its queue is where this module's events go.
    pub fn attach(&self, module: &str, version: &str) -> Arc<EventQueue> {
        let queue = EventQueue::new(self.queue_bounds);
        let mut inner = self.write();
        let stats = inner.stats.entry(module.to_string()).or_default().clone();
        let startup = !inner.startup_over;
        let sub = Subscriber {
            types: HashSet::new(),
            queue: queue.clone(),
            stats,
            version: version.to_string(),
            announced: false,
            startup,
        };
        if let Some(old) = inner.subs.insert(module.to_string(), sub) {
            old.queue.close();
        }
        queue
    }

    /// The connection went away: no more deliveries, and it is no longer
    /// loaded for modules that subscribe later.
    pub fn detach(&self, module: &str) {
        let mut inner = self.write();
        if let Some(sub) = inner.subs.remove(module) {
            sub.queue.close();
        }
        inner.loaded.remove(module);
    }

    /// Subscribe `module` to `types`. A subscription that adds
    /// ModuleLoaded first receives ModuleLoaded for every module already
    /// announced; a start-up module receives the start-up events it newly
    /// subscribed to; then, on its first subscription, the module itself is
    /// announced to everyone.
    pub fn subscribe(&self, module: &str, types: &[EventType]) {
        let replay = {
            let inner = self.read();
            let Some(sub) = inner.subs.get(module) else { return };
            types.contains(&EventType::ModuleLoaded) && !sub.types.contains(&EventType::ModuleLoaded)
        };
        // Encode outside the write lock; the loaded set may change meanwhile,
        // which is the same race as a module loading a moment later.
        let loaded: Vec<EventFrame> = if replay {
            let names: Vec<(String, String)> = self.read().loaded.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
            names.into_iter().filter_map(|(n, v)| encode_event(module_loaded(n, v), self.max_frame)).collect()
        } else {
            Vec::new()
        };
        let mut inner = self.write();
        let Inner { subs, startup_events, .. } = &mut *inner;
        let Some(sub) = subs.get_mut(module) else { return };
        let added: Vec<EventType> = types.iter().copied().filter(|t| sub.types.insert(*t)).collect();
        for frame in loaded {
            let _ = sub.offer(Cause::Host, frame);
        }
        if sub.startup {
            for (ty, frame) in startup_events.iter().filter(|(ty, _)| added.contains(ty)) {
                tracing::debug!(module, event = %ty, "start-up event handed to a late subscriber");
                let _ = sub.offer(Cause::Host, frame.clone());
            }
        }
        drop(inner);
        self.announce(module);
    }

    /// Publish ModuleLoaded for `module` unless it was announced already.
    pub fn announce(&self, module: &str) {
        let version = {
            let mut inner = self.write();
            let Inner { subs, loaded, .. } = &mut *inner;
            let Some(sub) = subs.get_mut(module) else { return };
            if sub.announced {
                return;
            }
            sub.announced = true;
            loaded.insert(module.to_string(), sub.version.clone());
            sub.version.clone()
        };
        self.publish(module_loaded(module.to_string(), version));
    }

    pub fn unsubscribe(&self, module: &str, types: &[EventType]) {
        if let Some(sub) = self.write().subs.get_mut(module) {
            for t in types {
                sub.types.remove(t);
            }
        }
    }

    /// Publish an event hostd itself caused. Returns how many queues took it.
    pub fn publish(&self, event: Event) -> usize {
        self.publish_as(Cause::Host, event)
    }

    /// Publish an event a module caused (it counts against the module
    /// share of every recipient's queue).
    pub fn publish_for_module(&self, event: Event) -> usize {
        self.publish_as(Cause::Module, event)
    }

    /// Publish a start-up event and keep it for start-up modules that
    /// subscribe to it later; [`Bus::end_startup`] stops the keeping for
    /// modules that connect afterwards.
    pub fn publish_startup(&self, event: Event) {
        let ty = event.event_type;
        if let Some(frame) = encode_event(event, self.max_frame) {
            let mut inner = self.write();
            inner.startup_events.retain(|(t, _)| *t != ty);
            inner.startup_events.push((ty, frame.clone()));
            for sub in inner.subs.values().filter(|s| s.types.contains(&ty)) {
                let _ = sub.offer(Cause::Host, frame.clone());
            }
        }
    }

    /// Start-up is over: modules connecting from now on were loaded (or
    /// restarted) later, and are not owed the start-up events.
    pub fn end_startup(&self) {
        self.write().startup_over = true;
    }

    fn publish_as(&self, cause: Cause, event: Event) -> usize {
        let ty = event.event_type;
        let Some(frame) = encode_event(event, self.max_frame) else { return 0 };
        self.read().subs.values().filter(|s| s.types.contains(&ty)).filter(|s| s.offer(cause, frame.clone())).count()
    }

    pub fn stats(&self, module: &str) -> DeliverySnapshot {
        let inner = self.read();
        let Some(s) = inner.stats.get(module) else { return DeliverySnapshot::default() };
        DeliverySnapshot {
            delivered: s.delivered.load(Ordering::Relaxed),
            dropped_full: s.dropped_full.load(Ordering::Relaxed),
            dropped_host: s.dropped_host.load(Ordering::Relaxed),
            queued: inner.subs.get(module).map_or(0, |s| s.queue.queued() as u64),
        }
    }

    pub fn subscriptions(&self, module: &str) -> Vec<EventType> {
        let mut v: Vec<EventType> = self.read().subs.get(module).map(|s| s.types.iter().copied().collect()).unwrap_or_default();
        v.sort();
        v
    }
}

fn module_loaded(module_name: String, version: String) -> Event {
    Event { event_type: EventType::ModuleLoaded, publisher: None, payload: EventPayload::ModuleLoaded { module_name, version } }
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

#[cfg(test)]
mod tests {
    const EVENT_BUFFER: usize = 100;
    const MODULE_SHARE: usize = 75;
    use super::*;

    fn decode(frame: &EventFrame) -> Event {
        match proto::decode::<HostMessage>(&frame[proto::FRAME_HEADER..]).expect("decodes") {
            HostMessage::Event(e) => e,
            other => panic!("not an event: {other:?}"),
        }
    }

    fn drain(q: &EventQueue) -> Vec<Event> {
        std::iter::from_fn(|| q.try_take()).map(|f| decode(&f)).collect()
    }

    fn loaded_names(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match &e.payload {
                EventPayload::ModuleLoaded { module_name, .. } => Some(module_name.clone()),
                _ => None,
            })
            .collect()
    }

    fn custom(n: u8) -> Event {
        Event { event_type: EventType::Custom, publisher: Some("p".into()), payload: EventPayload::Data(vec![n]) }
    }

    fn crashed() -> Event {
        Event { event_type: EventType::NodeShutdown, publisher: None, payload: EventPayload::None }
    }

    #[test]
    fn module_floods_fill_only_their_share_and_host_events_still_fit() {
        let bus = Bus::new(proto::DEFAULT_MAX_FRAME, QueueBounds::default());
        let q = bus.attach("slow", "1.0.0");
        bus.subscribe("slow", &[EventType::Custom, EventType::NodeShutdown]);
        let _ = drain(&q);
        for i in 0..(EVENT_BUFFER + 50) {
            bus.publish_for_module(custom(i as u8));
        }
        let s = bus.stats("slow");
        assert_eq!((s.queued, s.dropped_full, s.dropped_host), (MODULE_SHARE as u64, (EVENT_BUFFER + 50 - MODULE_SHARE) as u64, 0));
        assert_eq!(bus.publish(crashed()), 1, "a host event still fits after a module flood");
        for _ in 0..EVENT_BUFFER {
            bus.publish(crashed());
        }
        let s = bus.stats("slow");
        assert_eq!(s.queued, EVENT_BUFFER as u64, "never more than the buffer");
        assert_eq!(s.dropped_host, (EVENT_BUFFER - (EVENT_BUFFER - MODULE_SHARE) + 1) as u64);
        // Order is preserved for what was kept.
        let got = drain(&q);
        for (i, e) in got.iter().take(MODULE_SHARE).enumerate() {
            assert_eq!(e.payload, EventPayload::Data(vec![i as u8]));
        }
        assert_eq!(got[MODULE_SHARE].event_type, EventType::NodeShutdown);
        bus.detach("slow");
        assert_eq!(bus.publish_for_module(custom(0)), 0);
        assert!(bus.subscriptions("slow").is_empty(), "a detached module has no subscriptions");
    }

    #[test]
    fn module_loaded_follows_the_seeds_ordering() {
        let bus = Bus::new(proto::DEFAULT_MAX_FRAME, QueueBounds::default());
        let a = bus.attach("a", "1.0.0");
        bus.subscribe("a", &[EventType::ModuleLoaded]);
        assert_eq!(loaded_names(&drain(&a)), ["a"], "its own ModuleLoaded reaches a subscribed module");
        let b = bus.attach("b", "2.0.0");
        assert!(drain(&a).is_empty(), "nothing is published for b before it subscribes");
        bus.subscribe("b", &[EventType::ModuleLoaded]);
        assert_eq!(loaded_names(&drain(&b)), ["a", "b"], "modules already loaded first, then itself");
        assert_eq!(loaded_names(&drain(&a)), ["b"]);
        // A module whose first subscription lacks ModuleLoaded is announced
        // then, and gets the replay when a later subscription adds it.
        let c = bus.attach("c", "1.0.0");
        bus.subscribe("c", &[EventType::Custom]);
        assert_eq!(loaded_names(&drain(&a)), ["c"]);
        assert!(drain(&c).is_empty());
        bus.subscribe("c", &[EventType::ModuleLoaded]);
        assert_eq!(loaded_names(&drain(&c)), ["a", "b", "c"]);
        bus.subscribe("c", &[EventType::ModuleLoaded]);
        assert!(drain(&c).is_empty(), "subscribing again to what it has adds nothing");
        // A module that never subscribes is announced by hostd after its
        // start-up window, once.
        let _d = bus.attach("d", "4.0.0");
        bus.announce("d");
        bus.announce("d");
        assert_eq!(loaded_names(&drain(&a)), ["d"]);
        bus.detach("d");
        let e = bus.attach("e", "1.0.0");
        bus.subscribe("e", &[EventType::ModuleLoaded]);
        assert_eq!(loaded_names(&drain(&e)), ["a", "b", "c", "e"], "a detached module is no longer loaded");
    }

    #[test]
    fn start_up_events_reach_start_up_modules_that_subscribe_late() {
        let bus = Bus::new(proto::DEFAULT_MAX_FRAME, QueueBounds::default());
        let early = bus.attach("early", "1.0.0");
        bus.subscribe("early", &[EventType::NodeStartupCompleted]);
        let late = bus.attach("late", "1.0.0");
        bus.publish_startup(Event { event_type: EventType::NodeStartupCompleted, publisher: None, payload: EventPayload::None });
        bus.end_startup();
        assert_eq!(drain(&early).len(), 1, "a subscriber gets it when it is published");
        bus.subscribe("late", &[EventType::NodeStartupCompleted]);
        assert_eq!(drain(&late).len(), 1, "a start-up module that subscribes afterwards still gets it");
        bus.subscribe("late", &[EventType::NodeStartupCompleted]);
        assert!(drain(&late).is_empty(), "once");
        let hot = bus.attach("hot", "1.0.0");
        bus.subscribe("hot", &[EventType::NodeStartupCompleted]);
        assert!(drain(&hot).is_empty(), "a module loaded after start-up is not owed start-up events");
    }
}
