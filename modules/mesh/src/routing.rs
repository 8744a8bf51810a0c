//! The route table: path vectors learned from neighbours' signed adverts
//! and from discovery, the newest signed record of every destination, and
//! each path's quality.
//!
//! - A path is the list of routers between this node and a destination.
//!   One that contains this node, the advertising neighbour twice, the
//!   destination, or a repeat is a loop and is refused; so are paths of
//!   more than [`MAX_ROUTERS`] routers.
//! - A path lives while its destination's newest record is younger than
//!   the route expiry: a destination that stops re-signing its record
//!   drops out of every table, whatever the links in between do.
//! - A neighbour's link going down removes everything learned through it
//!   at once (the caller then advertises the changes: withdrawals).
//! - What is advertised to neighbour N never includes a path through N:
//!   such destinations are advertised as unreachable (split horizon with
//!   poison reverse).

use crate::msg::AdvertEntry;
use crate::packet::MAX_ROUTERS;
use crate::record::NodeRecord;
use mesh_api::NodeId;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quality {
    /// Packets on the path that asked for an ACK.
    pub sent: u64,
    pub acked: u64,
    /// Of those, the ones whose answer never came (an ACK still on its
    /// way is neither).
    pub lost: u64,
    /// Exponentially weighted round trip, µs (0: none measured).
    pub rtt_us: f64,
}

impl Quality {
    /// Higher is better: ACK rate dominates, then fewer hops, then RTT.
    /// The round trip counts at most 4 points against a hop's 5: another
    /// router costs fees and shows the packet to one more party, which no
    /// faster round trip makes up for; among paths of one length it decides.
    pub fn score(&self, routers: usize) -> f64 {
        // Until enough answers are in, assume the path works.
        let answered = self.acked + self.lost;
        let rate = if answered < 4 { 1.0 } else { self.acked as f64 / answered as f64 };
        rate * 100.0 - routers as f64 * 5.0 - (self.rtt_us / 1000.0).min(4.0)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub routers: Vec<NodeId>,
    pub quality: Quality,
    pub score: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Loop,
    TooLong,
    BadRecord,
    /// Signed later than this node's clock allows (skew).
    FromFuture,
    Stale,
    TableFull,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Loop => "advert_loop",
            Refused::TooLong => "advert_too_long",
            Refused::BadRecord => "advert_bad_record",
            Refused::FromFuture => "advert_record_from_future",
            Refused::Stale => "advert_stale",
            Refused::TableFull => "route_table_full",
        }
    }
}

#[derive(Debug)]
pub struct RouteTable {
    me: NodeId,
    expiry_ms: u64,
    skew_ms: u64,
    max_destinations: usize,
    max_discovered: usize,
    /// Authenticated neighbours.
    neighbours: BTreeMap<NodeId, ()>,
    /// Per neighbour: destination → routers after the neighbour.
    learned: HashMap<NodeId, HashMap<NodeId, Vec<NodeId>>>,
    /// Per destination: full router lists found by discovery.
    discovered: HashMap<NodeId, Vec<Vec<NodeId>>>,
    records: HashMap<NodeId, NodeRecord>,
    quality: HashMap<(NodeId, Vec<NodeId>), Quality>,
}

impl RouteTable {
    pub fn new(me: NodeId, expiry_ms: u64, skew_ms: u64, max_destinations: usize) -> RouteTable {
        RouteTable {
            me,
            expiry_ms,
            skew_ms,
            max_destinations: max_destinations.max(1),
            max_discovered: 4,
            neighbours: BTreeMap::new(),
            learned: HashMap::new(),
            discovered: HashMap::new(),
            records: HashMap::new(),
            quality: HashMap::new(),
        }
    }

    pub fn neighbours(&self) -> impl Iterator<Item = &NodeId> {
        self.neighbours.keys()
    }

    pub fn is_neighbour(&self, n: &NodeId) -> bool {
        self.neighbours.contains_key(n)
    }

    pub fn record(&self, n: &NodeId) -> Option<&NodeRecord> {
        self.records.get(n)
    }

    fn fresh(&self, dest: &NodeId, now_ms: u64) -> bool {
        self.records.get(dest).is_some_and(|r| r.signed_ms.saturating_add(self.expiry_ms) > now_ms)
    }

    /// Keep `rec` if it is valid, fresh and newer than what is known.
    /// Signatures are checked only for records not already held verbatim.
    pub fn offer_record(&mut self, rec: &NodeRecord, now_ms: u64) -> Result<(), Refused> {
        if let Some(old) = self.records.get(&rec.node_id) {
            if old.sig == rec.sig && old == rec {
                return Ok(());
            }
            if old.signed_ms >= rec.signed_ms {
                return Ok(());
            }
        } else if self.records.len() >= self.max_destinations && rec.node_id != self.me {
            return Err(Refused::TableFull);
        }
        if rec.signed_ms > now_ms + self.skew_ms {
            return Err(Refused::FromFuture);
        }
        if rec.signed_ms.saturating_add(self.expiry_ms) <= now_ms {
            return Err(Refused::Stale);
        }
        if !rec.verify() {
            return Err(Refused::BadRecord);
        }
        self.records.insert(rec.node_id, rec.clone());
        Ok(())
    }

    pub fn add_neighbour(&mut self, n: NodeId, rec: &NodeRecord, now_ms: u64) -> Result<(), Refused> {
        self.offer_record(rec, now_ms)?;
        self.neighbours.insert(n, ());
        Ok(())
    }

    /// The link to `n` went down: forget it and everything learned through it.
    pub fn remove_neighbour(&mut self, n: &NodeId) {
        self.neighbours.remove(n);
        self.learned.remove(n);
        for paths in self.discovered.values_mut() {
            paths.retain(|p| p.first() != Some(n));
        }
        self.discovered.retain(|_, p| !p.is_empty());
    }

    fn check_path(&self, neighbour: &NodeId, dest: &NodeId, path: &[NodeId]) -> Result<(), Refused> {
        if path.len() + 1 > MAX_ROUTERS {
            return Err(Refused::TooLong);
        }
        let mut seen = std::collections::HashSet::with_capacity(path.len() + 3);
        for n in [&self.me, neighbour, dest].into_iter().chain(path.iter()) {
            if !seen.insert(*n) {
                return Err(Refused::Loop);
            }
        }
        Ok(())
    }

    /// Apply one advert entry from `neighbour`.
    pub fn apply(&mut self, neighbour: &NodeId, e: &AdvertEntry, now_ms: u64) -> Result<(), Refused> {
        if e.destination == self.me {
            return Ok(());
        }
        match &e.route {
            None => {
                if let Some(l) = self.learned.get_mut(neighbour) {
                    l.remove(&e.destination);
                }
                Ok(())
            }
            Some((path, rec)) => {
                if rec.node_id != e.destination {
                    return Err(Refused::BadRecord);
                }
                if e.destination == *neighbour {
                    // The neighbour's own entry: no routers in between.
                    if !path.is_empty() {
                        return Err(Refused::Loop);
                    }
                } else {
                    self.check_path(neighbour, &e.destination, path)?;
                }
                self.offer_record(rec, now_ms)?;
                let l = self.learned.entry(*neighbour).or_default();
                if !l.contains_key(&e.destination) && l.len() >= self.max_destinations {
                    return Err(Refused::TableFull);
                }
                l.insert(e.destination, path.clone());
                Ok(())
            }
        }
    }

    /// Keep a path found by discovery (routers from here to `rec`'s node).
    pub fn add_discovered(&mut self, routers: Vec<NodeId>, rec: &NodeRecord, now_ms: u64) -> Result<(), Refused> {
        let dest = rec.node_id;
        match routers.split_first() {
            Some((first, rest)) => self.check_path(first, &dest, rest)?,
            None => return Ok(()),
        }
        self.offer_record(rec, now_ms)?;
        let paths = self.discovered.entry(dest).or_default();
        if !paths.contains(&routers) {
            if paths.len() >= self.max_discovered {
                paths.remove(0);
            }
            paths.push(routers);
        }
        Ok(())
    }

    /// Every valid path to `dest`, best first.
    pub fn paths(&self, dest: &NodeId, now_ms: u64) -> Vec<Path> {
        if *dest == self.me || !self.fresh(dest, now_ms) {
            return Vec::new();
        }
        let mut out: Vec<Vec<NodeId>> = Vec::new();
        if self.neighbours.contains_key(dest) {
            out.push(Vec::new());
        }
        for (n, l) in &self.learned {
            if !self.neighbours.contains_key(n) || n == dest {
                continue;
            }
            if let Some(p) = l.get(dest) {
                let mut r = Vec::with_capacity(p.len() + 1);
                r.push(*n);
                r.extend_from_slice(p);
                out.push(r);
            }
        }
        for p in self.discovered.get(dest).into_iter().flatten() {
            if p.first().is_some_and(|f| self.neighbours.contains_key(f)) {
                out.push(p.clone());
            }
        }
        out.sort();
        out.dedup();
        let mut paths: Vec<Path> = out
            .into_iter()
            .map(|routers| {
                let quality = self.quality.get(&(*dest, routers.clone())).cloned().unwrap_or_default();
                let score = quality.score(routers.len());
                Path { routers, quality, score }
            })
            .collect();
        paths.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.routers.cmp(&b.routers)));
        paths
    }

    pub fn best(&self, dest: &NodeId, now_ms: u64) -> Option<Path> {
        self.paths(dest, now_ms).into_iter().next()
    }

    /// Every destination with a fresh record (and not this node).
    pub fn destinations(&self) -> Vec<NodeId> {
        let mut d: Vec<NodeId> = self.records.keys().filter(|n| **n != self.me).copied().collect();
        d.sort();
        d
    }

    /// What to advertise to `to`: for each destination the best path, or
    /// unreachable when there is none or it leads through `to`.
    pub fn advert_for(&self, to: &NodeId, now_ms: u64) -> Vec<AdvertEntry> {
        self.destinations()
            .into_iter()
            .filter(|d| d != to)
            .map(|d| {
                let route = self
                    .best(&d, now_ms)
                    .filter(|p| p.routers.first() != Some(to) && !p.routers.contains(to))
                    .and_then(|p| self.records.get(&d).map(|r| (p.routers, r.clone())));
                AdvertEntry { destination: d, route }
            })
            .collect()
    }

    /// Drop records (and so routes) past expiry; the destinations dropped.
    pub fn expire(&mut self, now_ms: u64) -> Vec<NodeId> {
        let expiry = self.expiry_ms;
        let me = self.me;
        let gone: Vec<NodeId> =
            self.records.iter().filter(|(n, r)| **n != me && r.signed_ms.saturating_add(expiry) <= now_ms).map(|(n, _)| *n).collect();
        for n in &gone {
            self.records.remove(n);
            self.discovered.remove(n);
            for l in self.learned.values_mut() {
                l.remove(n);
            }
            self.quality.retain(|(d, _), _| d != n);
        }
        gone
    }

    /// A packet asking for an ACK went out on `routers` to `dest`.
    pub fn note_sent(&mut self, dest: &NodeId, routers: &[NodeId]) {
        self.quality.entry((*dest, routers.to_vec())).or_default().sent += 1;
    }

    pub fn note_acked(&mut self, dest: &NodeId, routers: &[NodeId], rtt_us: u64) {
        let q = self.quality.entry((*dest, routers.to_vec())).or_default();
        q.acked += 1;
        q.rtt_us = if q.rtt_us == 0.0 { rtt_us as f64 } else { q.rtt_us * 0.875 + rtt_us as f64 * 0.125 };
        Self::age(q);
    }

    /// A packet's ACK did not come within its time.
    pub fn note_lost(&mut self, dest: &NodeId, routers: &[NodeId]) {
        if let Some(q) = self.quality.get_mut(&(*dest, routers.to_vec())) {
            q.lost += 1;
            Self::age(q);
        }
    }

    /// Old history should not pin a path forever: halve it now and then.
    fn age(q: &mut Quality) {
        if q.acked + q.lost > 1024 {
            q.sent /= 2;
            q.acked /= 2;
            q.lost /= 2;
        }
    }

    pub fn path_count(&self, now_ms: u64) -> usize {
        self.destinations().iter().map(|d| self.paths(d, now_ms).len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::record::FeeSchedule;
    use mesh_api::MeshMode;

    fn node() -> Identity {
        Identity::generate().unwrap()
    }

    fn rec(id: &Identity, t: u64) -> NodeRecord {
        NodeRecord::sign(id, MeshMode::Open, FeeSchedule::default(), None, None, t)
    }

    fn entry(dest: &Identity, path: Vec<NodeId>, t: u64) -> AdvertEntry {
        AdvertEntry { destination: dest.node_id(), route: Some((path, rec(dest, t))) }
    }

    #[test]
    fn loops_are_refused_and_poison_reverse_hides_paths_through_the_neighbour() {
        let (me, a, b, d) = (node(), node(), node(), node());
        let mut t = RouteTable::new(me.node_id(), 10_000, 1000, 100);
        t.add_neighbour(a.node_id(), &rec(&a, 1), 1).unwrap();
        t.add_neighbour(b.node_id(), &rec(&b, 1), 1).unwrap();
        assert_eq!(t.apply(&a.node_id(), &entry(&d, vec![me.node_id()], 1), 1), Err(Refused::Loop), "through me");
        assert_eq!(t.apply(&a.node_id(), &entry(&d, vec![b.node_id(), b.node_id()], 1), 1), Err(Refused::Loop), "repeat");
        assert_eq!(t.apply(&a.node_id(), &entry(&d, vec![[9; 32]; 10], 1), 1), Err(Refused::TooLong));
        t.apply(&a.node_id(), &entry(&d, vec![], 1), 1).unwrap();
        let best = t.best(&d.node_id(), 2).unwrap();
        assert_eq!(best.routers, vec![a.node_id()]);
        let to_a = t.advert_for(&a.node_id(), 2);
        let d_to_a = to_a.iter().find(|e| e.destination == d.node_id()).unwrap();
        assert!(d_to_a.route.is_none(), "poisoned toward the neighbour it goes through");
        let to_b = t.advert_for(&b.node_id(), 2);
        let d_to_b = to_b.iter().find(|e| e.destination == d.node_id()).unwrap();
        assert_eq!(d_to_b.route.as_ref().map(|r| r.0.clone()), Some(vec![a.node_id()]));
    }

    #[test]
    fn link_loss_withdraws_and_silence_expires() {
        let (me, a, b, d) = (node(), node(), node(), node());
        let mut t = RouteTable::new(me.node_id(), 5_000, 1000, 100);
        t.add_neighbour(a.node_id(), &rec(&a, 1), 1).unwrap();
        t.add_neighbour(b.node_id(), &rec(&b, 1), 1).unwrap();
        t.apply(&a.node_id(), &entry(&d, vec![], 1), 1).unwrap();
        t.apply(&b.node_id(), &entry(&d, vec![], 1), 1).unwrap();
        assert_eq!(t.paths(&d.node_id(), 2).len(), 2);
        t.remove_neighbour(&a.node_id());
        assert_eq!(t.best(&d.node_id(), 2).unwrap().routers, vec![b.node_id()], "the other path remains");
        t.apply(&b.node_id(), &entry(&d, vec![], 3000), 3000).unwrap();
        assert!(t.best(&d.node_id(), 7999).is_some(), "refreshed at 3000, expires at 8000");
        assert!(t.expire(8000).contains(&d.node_id()));
        assert!(t.best(&d.node_id(), 8000).is_none());
        assert_eq!(t.apply(&b.node_id(), &entry(&d, vec![], 1), 8000), Err(Refused::Stale), "an old record cannot revive it");
    }

    #[test]
    fn forged_records_and_full_tables_are_refused() {
        let (me, a, d) = (node(), node(), node());
        let mut t = RouteTable::new(me.node_id(), 5_000, 1000, 2);
        t.add_neighbour(a.node_id(), &rec(&a, 1), 1).unwrap();
        let mut forged = entry(&d, vec![], 1);
        if let Some((_, r)) = forged.route.as_mut() {
            r.signed_ms = 2;
        }
        assert_eq!(t.apply(&a.node_id(), &forged, 2), Err(Refused::BadRecord));
        t.apply(&a.node_id(), &entry(&d, vec![], 1), 1).unwrap();
        let e = node();
        assert_eq!(t.apply(&a.node_id(), &entry(&e, vec![], 1), 1), Err(Refused::TableFull));
    }
}
