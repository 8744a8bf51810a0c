//! Everything the running node holds, behind one lock (the module runs on
//! one thread; the lock is never held across an await).

use commons_mesh::dedup::Dedup;
use commons_mesh::mesh_api::{Delivery, Ledger, NodeId, PacketId};
use commons_mesh::settle::{Settle, Stage};
use commons_mesh::routing::RouteTable;
use commons_mesh::settings::Settings;
use commons_mesh::window::SeqWindow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// One of our mesh links.
pub struct Link {
    pub peer_addr: String,
    /// `peer_addr`'s address, parsed once (anti-monopoly's network groups).
    pub peer_ip: Option<std::net::IpAddr>,
    pub inbound: bool,
    pub max_frame: u32,
    pub tx: mpsc::Sender<Vec<u8>>,
    pub our_nonce: [u8; 32],
    pub peer_nonce: Option<[u8; 32]>,
    /// Set once the peer proved its key.
    pub peer: Option<NodeId>,
    pub last_heard: Instant,
    pub ping_sent: Option<(u64, Instant)>,
    pub rtt_us: u64,
    /// ACK/NACK this second (rate limit).
    pub control_window: (u64, u32),
    /// Adverts this second (rate limit).
    pub advert_window: (u64, u32),
    /// Invoices issued for quotes from this link this second (each costs
    /// a signature and a held preimage).
    pub quote_window: (u64, u32),
    pub frames_in: u64,
    pub frames_out: u64,
    pub dropped_full: u64,
}

/// Count one event in a per-second `window` (second, count); whether it
/// is still within `limit`.
pub fn within(window: &mut (u64, u32), limit: u32) -> bool {
    let now_s = commons_mesh::now_ms() / 1000;
    if window.0 != now_s {
        *window = (now_s, 0);
    }
    window.1 += 1;
    window.1 <= limit
}

/// A sent packet whose ACK (or NACK) is awaited.
pub struct Pending {
    pub destination: NodeId,
    pub routers: Vec<NodeId>,
    pub sent: Instant,
    pub until_ms: u64,
    pub waiter: Option<oneshot::Sender<Delivery>>,
}

/// A discovery in progress.
pub struct Discovery {
    pub target: NodeId,
    pub max_hops: u8,
    pub found: Vec<Vec<NodeId>>,
    pub first: Option<oneshot::Sender<()>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handler {
    pub module: String,
    pub method: String,
}

/// Free-traffic budget of one source (token bucket in bytes).
pub struct Budget {
    pub tokens: f64,
    pub at: Instant,
}

#[derive(Default)]
pub struct Counters {
    pub sent: u64,
    pub forwarded: u64,
    pub delivered: u64,
    pub acked: u64,
    pub nacked: u64,
    pub nacks_sent: u64,
    pub verified: u64,
    pub discoveries: u64,
    pub discovery_failures: u64,
    pub adverts_in: u64,
    pub adverts_out: u64,
    pub replays: u64,
    pub duplicates: u64,
    pub max_routers_seen: u64,
    /// Drops by reason.
    pub dropped: BTreeMap<&'static str, u64>,
}

impl Counters {
    pub fn drop(&mut self, why: &'static str) {
        *self.dropped.entry(why).or_default() += 1;
    }
}

/// An invoice this node issued (stub backend) and the preimage it
/// releases when paid.
pub struct Quote {
    pub preimage: [u8; 32],
    pub until_ms: u64,
}

/// Payments: the ledger, the replay store's bookkeeping, quotes issued,
/// round trips awaited and what each calling module spent.
#[derive(Default)]
pub struct Payments {
    pub ledger: Ledger,
    /// Entries in the durable replay store.
    pub replay_count: u64,
    pub pruned: u64,
    /// Hashes verified and being written (a second use meanwhile is a replay).
    pub in_flight: HashSet<[u8; 32]>,
    pub refused: BTreeMap<&'static str, u64>,
    /// Calling module → (budget window start, unix s; sats spent in it).
    pub spent: HashMap<String, (u64, u64)>,
    /// Stub quotes by sha256 of the invoice's text.
    pub quotes: HashMap<[u8; 32], Quote>,
    /// Round trips this node started, by packet and stage.
    pub settling: HashMap<(PacketId, Stage), oneshot::Sender<Settle>>,
    pub stub_released: u64,
}

/// A record's signature and the entity its certificate proved (if any).
pub type CheckedCert = ([u8; 64], Option<String>);

/// Anti-monopoly counters.
#[derive(Default)]
pub struct MonopolyCounters {
    pub relaxed: u64,
    pub failed: u64,
    pub paths_refused: u64,
}

pub struct Node {
    pub settings: Settings,
    pub me: NodeId,
    pub links: HashMap<u64, Link>,
    pub by_node: HashMap<NodeId, u64>,
    pub table: RouteTable,
    pub dedup: Dedup,
    pub windows: HashMap<NodeId, SeqWindow>,
    /// Windows changed and not yet written (flushed every second and at shutdown).
    pub dirty: Vec<NodeId>,
    /// Per source: the sequence up to which acceptance is durably reserved.
    pub reserved: HashMap<NodeId, u64>,
    pub next_seq: u64,
    pub seq_reserved: u64,
    pub pending: HashMap<PacketId, Pending>,
    pub discoveries: HashMap<u64, Discovery>,
    pub seen_requests: Dedup,
    pub request_budget: HashMap<NodeId, (u64, u32)>,
    pub handlers: BTreeMap<String, Handler>,
    pub budgets: HashMap<NodeId, Budget>,
    pub advert_seq: u64,
    /// This node's signed record, re-signed every advert interval.
    pub own_record: Option<commons_mesh::record::NodeRecord>,
    pub counters: Counters,
    pub sends: u64,
    pub pay: Payments,
    /// The operator's entity map (config, then the CLI's additions).
    pub entities: BTreeMap<NodeId, String>,
    pub meter: commons_mesh::monopoly::ShareMeter,
    pub monopoly: MonopolyCounters,
    /// Entity certificates already checked: node → (the record's
    /// signature it came with, the entity if it verified under a trusted
    /// authority). A signature check per router per packet would cost
    /// more than the rest of the path check.
    pub cert_cache: std::cell::RefCell<HashMap<NodeId, CheckedCert>>,
}

impl Node {
    pub fn new(settings: Settings, me: NodeId, next_seq: u64, seq_reserved: u64) -> Node {
        Node {
            table: RouteTable::new(me, settings.route_expiry_ms, settings.clock_skew_ms, settings.max_routes),
            dedup: Dedup::new(settings.dedup_capacity),
            seen_requests: Dedup::new(4096),
            settings,
            me,
            links: HashMap::new(),
            by_node: HashMap::new(),
            windows: HashMap::new(),
            dirty: Vec::new(),
            reserved: HashMap::new(),
            next_seq,
            seq_reserved,
            pending: HashMap::new(),
            discoveries: HashMap::new(),
            request_budget: HashMap::new(),
            handlers: BTreeMap::new(),
            budgets: HashMap::new(),
            advert_seq: 0,
            own_record: None,
            counters: Counters::default(),
            sends: 0,
            pay: Payments::default(),
            entities: BTreeMap::new(),
            meter: Default::default(),
            monopoly: MonopolyCounters::default(),
            cert_cache: Default::default(),
        }
    }

    /// The authenticated link to `node`, if any.
    pub fn link_to(&self, node: &NodeId) -> Option<u64> {
        self.by_node.get(node).copied()
    }

    /// Queue `frame` on `link`; false (and counted) if its queue is full or it is gone.
    pub fn send(&mut self, link: u64, frame: Vec<u8>) -> bool {
        let Some(l) = self.links.get_mut(&link) else {
            self.counters.drop("link_gone");
            return false;
        };
        if frame.len() > l.max_frame as usize {
            self.counters.drop("frame_too_big");
            return false;
        }
        match l.tx.try_send(frame) {
            Ok(()) => {
                l.frames_out += 1;
                true
            }
            Err(_) => {
                l.dropped_full += 1;
                self.counters.drop("link_queue_full");
                false
            }
        }
    }

    pub fn send_to(&mut self, node: &NodeId, frame: Vec<u8>) -> bool {
        match self.link_to(node) {
            Some(l) => self.send(l, frame),
            None => {
                self.counters.drop("no_link_to_next_hop");
                false
            }
        }
    }

    /// Count one answer or settle message on `link`; false (and counted)
    /// past `control_per_sec`.
    pub fn allow_control(&mut self, link: u64) -> bool {
        let limit = self.settings.control_per_sec;
        let Some(l) = self.links.get_mut(&link) else { return true };
        let ok = within(&mut l.control_window, limit);
        self.allowed(ok, "control_rate")
    }

    /// Count one invoice issued for a quote that came over `link`; false
    /// (and counted) past `quotes_per_sec`.
    pub fn allow_quote(&mut self, link: u64) -> bool {
        let limit = self.settings.payments.quotes_per_sec;
        let Some(l) = self.links.get_mut(&link) else { return false };
        let ok = within(&mut l.quote_window, limit);
        self.allowed(ok, "quote_rate")
    }

    fn allowed(&mut self, ok: bool, counter: &'static str) -> bool {
        if !ok {
            self.counters.drop(counter);
        }
        ok
    }

    /// Charge `bytes` of free traffic to `source`; false when over budget.
    pub fn charge(&mut self, source: &NodeId, bytes: usize) -> bool {
        let rate = self.settings.free_bytes_per_sec as f64;
        let now = Instant::now();
        if !self.budgets.contains_key(source) && self.budgets.len() >= self.settings.max_sources {
            // Forget the idlest budgets: a full bucket is what they would refill to.
            let cutoff = now - std::time::Duration::from_secs(1);
            self.budgets.retain(|_, b| b.at > cutoff);
            if self.budgets.len() >= self.settings.max_sources {
                return false;
            }
        }
        let b = self.budgets.entry(*source).or_insert(Budget { tokens: rate, at: now });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(rate);
        b.at = now;
        if b.tokens >= bytes as f64 {
            b.tokens -= bytes as f64;
            true
        } else {
            false
        }
    }
}
