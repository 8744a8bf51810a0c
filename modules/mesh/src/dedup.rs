//! Packet ids seen recently, each kept until its packet's ttl ends, at
//! most `capacity` (oldest evicted first, counted). It stops loops and
//! duplicates cheaply at every hop; the destination's persisted sequence
//! window is what stops replays for good.

use std::collections::{HashMap, VecDeque};

#[derive(Debug)]
pub struct Dedup {
    seen: HashMap<[u8; 32], u64>,
    order: VecDeque<([u8; 32], u64)>,
    capacity: usize,
    pub evicted: u64,
}

impl Dedup {
    pub fn new(capacity: usize) -> Dedup {
        Dedup { seen: HashMap::new(), order: VecDeque::new(), capacity: capacity.max(1), evicted: 0 }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Drop ids whose packets expired before `now_ms`. Ids are kept in
    /// insertion order and expiries are not monotonic, so a long-lived id
    /// at the front holds back the rest until capacity pushes it out; that
    /// only keeps ids longer than needed.
    pub fn prune(&mut self, now_ms: u64) {
        while let Some((id, until)) = self.order.front().copied() {
            if until > now_ms {
                break;
            }
            self.order.pop_front();
            if self.seen.get(&id) == Some(&until) {
                self.seen.remove(&id);
            }
        }
    }

    /// Record `id` until `until_ms`; false if it was already there.
    pub fn insert(&mut self, id: [u8; 32], until_ms: u64) -> bool {
        if self.seen.contains_key(&id) {
            return false;
        }
        while self.seen.len() >= self.capacity {
            match self.order.pop_front() {
                Some((old, until)) => {
                    if self.seen.get(&old) == Some(&until) {
                        self.seen.remove(&old);
                        self.evicted += 1;
                    }
                }
                None => break,
            }
        }
        self.seen.insert(id, until_ms);
        self.order.push_back((id, until_ms));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_refused_once_seen_expire_and_stay_bounded() {
        let mut d = Dedup::new(2);
        assert!(d.insert([1; 32], 100));
        assert!(!d.insert([1; 32], 100));
        assert!(d.insert([2; 32], 200));
        assert!(d.insert([3; 32], 300), "the oldest is evicted at capacity");
        assert_eq!((d.len(), d.evicted), (2, 1));
        assert!(d.insert([1; 32], 100), "evicted ids are forgotten");
        d.prune(350);
        assert!(d.is_empty(), "both expired by 350");
    }
}
