//! Anti-monopoly at path choice (issue 18 groundwork): how much of this
//! node's routed traffic each router entity carried over a sliding hour,
//! and the rules a path must meet.
//!
//! - A router entity whose share is at or over the cap is skipped (once
//!   enough traffic was seen to make a share meaningful).
//! - A path with two or more routers needs two or more distinct entities,
//!   none holding more than half of its router slots.
//! - When no path complies: strict mode fails (RouteFailed "anti-monopoly"),
//!   relaxed mode takes the best path and counts it.
//!
//! Shares sum to one over the entities a node can use, so a cap below
//! 1 / (entities available) cannot hold for all of them: then nothing
//! complies and the mode decides.
//!
//! What this cannot stop: one operator posing as many entities across many
//! network groups; only costly identity (operator-signed certificates from
//! a known set) stops that.

use std::collections::HashMap;
use std::net::IpAddr;

/// Whether an address says anything about who runs a node: private,
/// link-local, loopback, unique-local and documentation addresses are
/// shared by every operator, so they form no network group.
pub fn routable(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => !(v4.is_private() || v4.is_link_local() || v4.is_loopback() || v4.is_unspecified() || v4.is_broadcast() || v4.is_documentation() || v4.octets()[0] == 100 && v4.octets()[1] & 0xc0 == 64),
        IpAddr::V6(v6) => {
            let s0 = v6.segments()[0];
            !(v6.is_loopback() || v6.is_unspecified() || s0 & 0xfe00 == 0xfc00 || s0 & 0xffc0 == 0xfe80 || (s0 == 0x2001 && v6.segments()[1] == 0x0db8))
        }
    }
}

/// The network group an address belongs to: IPv4 /16, IPv6 /32.
pub fn network_group(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.0.0/16", o[0], o[1])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}::/32", s[0], s[1])
        }
    }
}

const BUCKETS: usize = 60;
const BUCKET_MS: u64 = 60_000;

/// Bytes each entity carried for this node, in one-minute buckets over the last hour.
#[derive(Debug, Default)]
pub struct ShareMeter {
    /// (bucket start ms, entity → bytes, bytes of all routed packets)
    buckets: Vec<(u64, HashMap<String, u64>, u64)>,
}

impl ShareMeter {
    fn bucket(&mut self, now_ms: u64) -> &mut (u64, HashMap<String, u64>, u64) {
        let start = now_ms - now_ms % BUCKET_MS;
        self.buckets.retain(|(s, _, _)| *s + (BUCKETS as u64) * BUCKET_MS > now_ms);
        if self.buckets.last().is_none_or(|(s, _, _)| *s != start) {
            self.buckets.push((start, HashMap::new(), 0));
        }
        let last = self.buckets.len() - 1;
        &mut self.buckets[last]
    }

    /// A packet of `bytes` went over a path through `entities` (its routers').
    pub fn record(&mut self, entities: &[String], bytes: u64, now_ms: u64) {
        if entities.is_empty() {
            return;
        }
        let b = self.bucket(now_ms);
        b.2 += bytes;
        let mut seen: Vec<&String> = Vec::new();
        for e in entities {
            if !seen.contains(&e) {
                seen.push(e);
                match b.1.get_mut(e) {
                    Some(v) => *v += bytes,
                    None => {
                        b.1.insert(e.clone(), bytes);
                    }
                }
            }
        }
    }

    /// Total routed bytes in the window.
    pub fn total(&self, now_ms: u64) -> u64 {
        self.live(now_ms).map(|b| b.2).sum()
    }

    fn live(&self, now_ms: u64) -> impl Iterator<Item = &(u64, HashMap<String, u64>, u64)> {
        self.buckets.iter().filter(move |(s, _, _)| *s + (BUCKETS as u64) * BUCKET_MS > now_ms)
    }

    /// Every entity with bytes in the window.
    pub fn entities(&self, now_ms: u64) -> Vec<String> {
        let mut out: Vec<String> = self.live(now_ms).flat_map(|b| b.1.keys().cloned()).collect();
        out.sort();
        out.dedup();
        out
    }

    /// The fraction of routed bytes in the window that went through `entity`.
    pub fn share(&self, entity: &str, now_ms: u64) -> f64 {
        let total = self.total(now_ms);
        if total == 0 {
            return 0.0;
        }
        self.live(now_ms).map(|b| b.1.get(entity).copied().unwrap_or(0)).sum::<u64>() as f64 / total as f64
    }
}

/// Why a path breaks the diversity rule, if it does.
pub fn diversity_violation(entities: &[String]) -> Option<String> {
    if entities.len() < 2 {
        return None;
    }
    let mut counts: HashMap<&String, usize> = HashMap::new();
    for e in entities {
        *counts.entry(e).or_default() += 1;
    }
    if counts.len() < 2 {
        return Some(format!("all {} routers belong to entity {}", entities.len(), entities[0]));
    }
    counts
        .iter()
        .find(|(_, n)| **n * 2 > entities.len())
        .map(|(e, n)| format!("entity {e} holds {n} of {} router slots", entities.len()))
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Share at or over which an entity is skipped (e.g. 0.30).
    pub cap: f64,
    /// Fail rather than use a non-compliant path.
    pub strict: bool,
    /// Routed bytes in the window before shares count.
    pub min_bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    /// Index into the candidates of a compliant path.
    Compliant(usize),
    /// Relaxed mode: the best path, breaking the rules.
    Relaxed(usize),
    /// Strict mode: nothing complies.
    Failed(String),
}

/// Pick among `candidates` (best first; each its routers' entities).
pub fn choose(candidates: &[Vec<String>], meter: &ShareMeter, policy: &Policy, now_ms: u64) -> Choice {
    let counted = meter.total(now_ms) >= policy.min_bytes;
    let mut last_why = String::from("no path");
    for (i, entities) in candidates.iter().enumerate() {
        if let Some(why) = diversity_violation(entities) {
            last_why = why;
            continue;
        }
        if counted {
            if let Some(e) = entities.iter().find(|e| meter.share(e, now_ms) >= policy.cap) {
                last_why = format!("entity {e} carries {:.2} of this node's routed traffic (cap {:.2})", meter.share(e, now_ms), policy.cap);
                continue;
            }
        }
        return Choice::Compliant(i);
    }
    if candidates.is_empty() {
        return Choice::Failed("no path".into());
    }
    if policy.strict {
        Choice::Failed(format!("anti-monopoly: {last_why}"))
    } else {
        Choice::Relaxed(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ents(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn network_groups_are_v4_16_and_v6_32_and_private_addresses_have_none() {
        assert_eq!(network_group("203.0.113.7".parse().unwrap()), "203.0.0.0/16");
        assert_eq!(network_group("2001:db8:1::5".parse().unwrap()), "2001:db8::/32");
        for shared in ["169.254.1.2", "10.1.2.3", "192.168.0.1", "127.0.0.1", "100.64.0.1", "fd00::1", "fe80::1", "::1", "203.0.113.7"] {
            assert!(!routable(shared.parse().unwrap()), "{shared}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2a00:1450::1"] {
            assert!(routable(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn diversity_needs_two_entities_none_over_half() {
        assert_eq!(diversity_violation(&ents(&["a"])), None);
        assert!(diversity_violation(&ents(&["a", "a"])).is_some());
        assert_eq!(diversity_violation(&ents(&["a", "b"])), None);
        assert!(diversity_violation(&ents(&["a", "a", "b"])).is_some());
        assert_eq!(diversity_violation(&ents(&["a", "a", "b", "c"])), None);
    }

    /// With the cheapest path through entity X and others through Y and Z,
    /// the cap keeps X's share near it; with the cap off (control) X takes all.
    #[test]
    fn the_cap_holds_an_entity_near_its_share_and_the_control_shows_it_would_take_all() {
        let candidates = vec![ents(&["x"]), ents(&["y"]), ents(&["z"])];
        for (cap, lo, hi) in [(0.4, 0.38, 0.42), (1.1, 0.99, 1.0)] {
            let policy = Policy { cap, strict: false, min_bytes: 10_000 };
            let mut m = ShareMeter::default();
            let now = 3_600_000;
            for _ in 0..1000 {
                let i = match choose(&candidates, &m, &policy, now) {
                    Choice::Compliant(i) | Choice::Relaxed(i) => i,
                    Choice::Failed(w) => panic!("{w}"),
                };
                m.record(&candidates[i], 1024, now);
            }
            let share = m.share("x", now);
            assert!((lo..=hi).contains(&share), "cap {cap}: x carried {share}");
        }
    }

    #[test]
    fn strict_mode_fails_when_nothing_complies_and_relaxed_takes_the_best() {
        let candidates = vec![ents(&["x", "x"])];
        let m = ShareMeter::default();
        let strict = Policy { cap: 0.3, strict: true, min_bytes: 0 };
        assert!(matches!(choose(&candidates, &m, &strict, 0), Choice::Failed(w) if w.starts_with("anti-monopoly")));
        assert_eq!(choose(&candidates, &m, &Policy { strict: false, ..strict }, 0), Choice::Relaxed(0));
        let mixed = vec![ents(&["x", "x"]), ents(&["x", "y"])];
        assert_eq!(choose(&mixed, &m, &strict, 0), Choice::Compliant(1), "the mixed path is taken over the one-entity path");
    }

    #[test]
    fn shares_slide_out_after_an_hour() {
        let mut m = ShareMeter::default();
        m.record(&ents(&["x"]), 100, 0);
        assert_eq!(m.share("x", 1000), 1.0);
        m.record(&ents(&["y"]), 100, 3_600_000);
        assert_eq!(m.share("x", 3_600_000), 0.0, "the first minute left the window");
        assert_eq!(m.share("y", 3_600_000), 1.0);
    }
}
