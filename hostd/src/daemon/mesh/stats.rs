//! Mesh counters for `hostd status`: per link and per module.

use super::lock;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Frames and bytes each way.
#[derive(Default)]
pub struct Traffic {
    frames_in: AtomicU64,
    bytes_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_out: AtomicU64,
}

impl Traffic {
    pub fn received(&self, bytes: usize) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn sent(&self, bytes: usize) {
        self.frames_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn json(&self) -> serde_json::Value {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "frames_in": get(&self.frames_in),
            "bytes_in": get(&self.bytes_in),
            "frames_out": get(&self.frames_out),
            "bytes_out": get(&self.bytes_out),
        })
    }
}

pub type LinkStats = Traffic;

/// One module's mesh since its connection began.
#[derive(Default)]
pub struct ModuleStats {
    traffic: Traffic,
    links_up_in: AtomicU64,
    links_up_out: AtomicU64,
    /// Sends answered Busy (a full send window or global buffer).
    busy_sends: AtomicU64,
    throttled_us: AtomicU64,
    /// Link closes by reason, refused connects by reason, refused inbound
    /// connections by reason.
    closes: Mutex<BTreeMap<&'static str, u64>>,
    refused_connects: Mutex<BTreeMap<&'static str, u64>>,
    refused_inbound: Mutex<BTreeMap<&'static str, u64>>,
}

fn bump(m: &Mutex<BTreeMap<&'static str, u64>>, why: &'static str) {
    *lock(m).entry(why).or_default() += 1;
}

impl ModuleStats {
    pub fn received(&self, bytes: usize) {
        self.traffic.received(bytes);
    }

    pub fn sent(&self, bytes: usize) {
        self.traffic.sent(bytes);
    }

    pub fn count_link_up(&self, inbound: bool) {
        let c = if inbound { &self.links_up_in } else { &self.links_up_out };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_busy(&self) {
        self.busy_sends.fetch_add(1, Ordering::Relaxed);
    }

    pub fn throttled(&self, d: Duration) {
        self.throttled_us.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn count_close(&self, why: &'static str) {
        bump(&self.closes, why);
    }

    pub fn refuse_connect(&self, why: &'static str) {
        bump(&self.refused_connects, why);
    }

    pub fn refuse_inbound(&self, why: &'static str) {
        bump(&self.refused_inbound, why);
    }

    pub fn json(&self) -> serde_json::Value {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut v = self.traffic.json();
        v["links_opened"] = serde_json::json!({ "inbound": get(&self.links_up_in), "outbound": get(&self.links_up_out) });
        v["busy_sends"] = get(&self.busy_sends).into();
        v["throttled_ms"] = (get(&self.throttled_us) / 1000).into();
        v["closed"] = serde_json::json!(*lock(&self.closes));
        v["refused_connects"] = serde_json::json!(*lock(&self.refused_connects));
        v["refused_inbound"] = serde_json::json!(*lock(&self.refused_inbound));
        v
    }
}
